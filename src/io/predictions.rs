//! Predictions written as they are made, batch by batch: CSV (floats in their shortest
//! round-trip form, `ryu`) or a 2-D float32 `.npy` array, so that predicting for a file of
//! any size needs the memory of one batch.
//!
//! Columns, in both formats: `prediction` — the value for regression; for a classifier
//! its class, as the class name in CSV (`labels[c]`, or `c` without names) and in `.npy`
//! as the class's number when every name is one (labels read from numbers: `0`, `3`, …),
//! else the class index `c` — then with `proba` one probability column per class
//! (`p_<name>` in the CSV header).

use std::io::{Seek, SeekFrom, Write};

use super::model::Prediction;
use crate::error::{Error, Result};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Comma-separated text with a header row.
    Csv,
    /// A 2-D little-endian float32 `.npy` array, C order.
    Npy,
}

/// A writer of predictions, batch by batch, into `W` (a file; `.npy` needs [`Seek`] to
/// write the row count into the header at the end).
///
/// # Example
/// ```
/// use gradflow::io::{Prediction, PredictionWriter, OutputFormat};
/// let labels = vec!["cat".to_string(), "dog".into()];
/// let mut w = PredictionWriter::new(std::io::Cursor::new(Vec::new()), OutputFormat::Csv, Some(labels), true)?;
/// w.write(&Prediction::Classes { classes: vec![1], proba: vec![0.1, 0.9], k: 2 })?;
/// w.write(&Prediction::Classes { classes: vec![0], proba: vec![0.8, 0.2], k: 2 })?;
/// let text = w.finish()?.into_inner();
/// assert_eq!(String::from_utf8(text)?, "prediction,p_cat,p_dog\ndog,0.1,0.9\ncat,0.8,0.2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PredictionWriter<W: Write + Seek> {
    out: std::io::BufWriter<W>,
    format: OutputFormat,
    labels: Option<Vec<String>>,
    /// The `.npy` value of each class (its number, or its index).
    class_values: Vec<f32>,
    proba: bool,
    /// Rows written, and the columns of each (known from the first batch).
    rows: u64,
    cols: Option<usize>,
    /// Bytes reserved for the `.npy` header.
    header_len: usize,
}

/// Bytes of the `.npy` header written first and rewritten at the end: room for any row
/// count (a multiple of 64, as the format asks).
const NPY_HEADER: usize = 128;

impl<W: Write + Seek> PredictionWriter<W> {
    /// A writer into `out`; `labels`: a classifier's class names (`None`: numbered);
    /// `proba`: add the class probabilities.
    ///
    /// # Errors
    /// [`Error::Io`] when the `.npy` header's room cannot be written.
    pub fn new(
        out: W,
        format: OutputFormat,
        labels: Option<Vec<String>>,
        proba: bool,
    ) -> Result<Self> {
        let class_values = match &labels {
            Some(l) => {
                let numbers: Option<Vec<f32>> = l
                    .iter()
                    .map(|s| s.parse::<f32>().ok().filter(|v| v.is_finite()))
                    .collect();
                numbers.unwrap_or_else(|| (0..l.len()).map(|c| c as f32).collect())
            }
            None => Vec::new(),
        };
        let mut w = PredictionWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, out),
            format,
            labels,
            class_values,
            proba,
            rows: 0,
            cols: None,
            header_len: 0,
        };
        if format == OutputFormat::Npy {
            // Room for the header, written for real by `finish`.
            w.out.write_all(&[b' '; NPY_HEADER]).map_err(io)?;
            w.header_len = NPY_HEADER;
        }
        Ok(w)
    }

    /// Writes the rows of one batch.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::ShapeMismatch`] when the labels do not name every class or
    /// a batch's columns differ from the first's.
    pub fn write(&mut self, prediction: &Prediction) -> Result<()> {
        let cols = match prediction {
            Prediction::Real(_) => 1,
            Prediction::Classes { k, .. } => 1 + if self.proba { *k } else { 0 },
        };
        if let (Prediction::Classes { k, .. }, Some(l)) = (prediction, &self.labels)
            && l.len() != *k
        {
            return Err(Error::ShapeMismatch {
                what: "class labels",
                expected: format!("{k} names, one per class"),
                got: format!("{} names", l.len()),
            });
        }
        match self.cols {
            None => {
                self.cols = Some(cols);
                if self.format == OutputFormat::Csv {
                    self.csv_header(prediction)?;
                }
            }
            Some(c) if c != cols => {
                return Err(Error::ShapeMismatch {
                    what: "prediction batch",
                    expected: format!("{c} columns"),
                    got: format!("{cols} columns"),
                });
            }
            Some(_) => {}
        }
        match self.format {
            OutputFormat::Csv => self.csv_rows(prediction)?,
            OutputFormat::Npy => self.npy_rows(prediction)?,
        }
        self.rows += match prediction {
            Prediction::Real(y) => y.len(),
            Prediction::Classes { classes, .. } => classes.len(),
        } as u64;
        Ok(())
    }

    /// Ends the output (the `.npy` header now says the row count) and returns `W`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn finish(mut self) -> Result<W> {
        if self.format == OutputFormat::Npy {
            let rows = usize::try_from(self.rows).unwrap_or(usize::MAX);
            let header =
                super::npy::header_f32_sized(rows, self.cols.unwrap_or(1), Some(self.header_len));
            self.out.seek(SeekFrom::Start(0)).map_err(io)?;
            self.out.write_all(&header).map_err(io)?;
            self.out.seek(SeekFrom::End(0)).map_err(io)?;
        }
        self.out.into_inner().map_err(|e| io(e.into_error()))
    }

    fn name(&self, c: u32) -> String {
        match &self.labels {
            Some(l) => l[c as usize].clone(),
            None => c.to_string(),
        }
    }

    fn csv_header(&mut self, prediction: &Prediction) -> Result<()> {
        let mut head = vec!["prediction".to_string()];
        if let (Prediction::Classes { k, .. }, true) = (prediction, self.proba) {
            head.extend((0..*k as u32).map(|c| format!("p_{}", self.name(c))));
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&head).map_err(csv_io)?;
        let bytes = w.into_inner().map_err(|e| io(e.into_error()))?;
        self.out.write_all(&bytes).map_err(io)
    }

    fn csv_rows(&mut self, prediction: &Prediction) -> Result<()> {
        let mut text = Vec::with_capacity(1 << 16);
        let mut float = ryu::Buffer::new();
        match prediction {
            Prediction::Real(y) => {
                for &v in y {
                    text.extend_from_slice(float.format(v).as_bytes());
                    text.push(b'\n');
                }
            }
            Prediction::Classes { classes, proba, k } => {
                // Class names as CSV fields (quoted when they need it), once each.
                let names: Vec<Vec<u8>> = (0..*k as u32)
                    .map(|c| {
                        let mut w = csv::WriterBuilder::new()
                            .terminator(csv::Terminator::Any(b'\n'))
                            .from_writer(Vec::new());
                        w.write_record([self.name(c)]).map_err(csv_io)?;
                        let mut b = w.into_inner().map_err(|e| io(e.into_error()))?;
                        b.pop();
                        Ok(b)
                    })
                    .collect::<Result<_>>()?;
                for (i, &c) in classes.iter().enumerate() {
                    text.extend_from_slice(&names[c as usize]);
                    if self.proba {
                        for &q in &proba[i * k..(i + 1) * k] {
                            text.push(b',');
                            text.extend_from_slice(float.format(q).as_bytes());
                        }
                    }
                    text.push(b'\n');
                    if text.len() >= 1 << 16 {
                        self.out.write_all(&text).map_err(io)?;
                        text.clear();
                    }
                }
            }
        }
        self.out.write_all(&text).map_err(io)
    }

    fn npy_rows(&mut self, prediction: &Prediction) -> Result<()> {
        let mut bytes = Vec::with_capacity(1 << 16);
        match prediction {
            Prediction::Real(y) => y.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
            Prediction::Classes { classes, proba, k } => {
                for (i, &c) in classes.iter().enumerate() {
                    let value = self
                        .class_values
                        .get(c as usize)
                        .copied()
                        .unwrap_or(c as f32);
                    bytes.extend(value.to_le_bytes());
                    if self.proba {
                        proba[i * k..(i + 1) * k]
                            .iter()
                            .for_each(|q| bytes.extend(q.to_le_bytes()));
                    }
                }
            }
        }
        self.out.write_all(&bytes).map_err(io)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io {
        path: "predictions".into(),
        message: e.to_string(),
    }
}

fn csv_io(e: csv::Error) -> Error {
    Error::Io {
        path: "predictions".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn written(
        format: OutputFormat,
        labels: Option<Vec<String>>,
        proba: bool,
        batches: &[Prediction],
    ) -> Vec<u8> {
        let mut w = PredictionWriter::new(Cursor::new(Vec::new()), format, labels, proba).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn csv_values_round_trip_and_names_are_quoted_when_needed() {
        let values = vec![1.5f32, -2.0, 1e-7, f32::MAX, 0.1];
        let text = written(
            OutputFormat::Csv,
            None,
            false,
            &[Prediction::Real(values.clone())],
        );
        let text = String::from_utf8(text).unwrap();
        let back: Vec<f32> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
        assert_eq!(back, values);
        let labels = Some(vec!["a,b".to_string(), "plain".into()]);
        let batch = Prediction::Classes {
            classes: vec![0, 1],
            proba: vec![0.5; 4],
            k: 2,
        };
        let text = String::from_utf8(written(OutputFormat::Csv, labels, true, &[batch])).unwrap();
        assert_eq!(
            text,
            "prediction,\"p_a,b\",p_plain\n\"a,b\",0.5,0.5\nplain,0.5,0.5\n"
        );
    }

    #[test]
    fn npy_output_is_an_array_numpy_reads_with_the_row_count_of_every_batch() {
        let batches = [
            Prediction::Classes {
                classes: vec![1, 0],
                proba: vec![0.25, 0.75, 1.0, 0.0],
                k: 2,
            },
            Prediction::Classes {
                classes: vec![1],
                proba: vec![0.5, 0.5],
                k: 2,
            },
        ];
        let bytes = written(
            OutputFormat::Npy,
            Some(vec!["3".into(), "7".into()]),
            true,
            &batches,
        );
        let header = crate::data::npy_header::parse(&bytes).unwrap();
        assert_eq!(
            (header.shape, header.descr.as_str(), header.data_offset),
            (vec![3, 3], "<f4", NPY_HEADER)
        );
        let values: Vec<f32> = bytes[NPY_HEADER..]
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(values, [7.0, 0.25, 0.75, 3.0, 1.0, 0.0, 7.0, 0.5, 0.5]);
        // Names that are not numbers: the class index.
        let bytes = written(
            OutputFormat::Npy,
            Some(vec!["cat".into(), "dog".into()]),
            false,
            &batches[..1],
        );
        assert_eq!(
            &bytes[NPY_HEADER..],
            [1f32.to_le_bytes(), 0f32.to_le_bytes()].concat()
        );
    }

    #[test]
    fn a_batch_of_another_width_or_labels_of_another_count_is_an_error() {
        let mut w = PredictionWriter::new(
            Cursor::new(Vec::new()),
            OutputFormat::Csv,
            Some(vec!["x".into()]),
            false,
        )
        .unwrap();
        let e = w
            .write(&Prediction::Classes {
                classes: vec![0],
                proba: vec![1.0, 0.0],
                k: 2,
            })
            .unwrap_err();
        assert!(e.to_string().contains("2 names, one per class"), "{e}");
        let mut w =
            PredictionWriter::new(Cursor::new(Vec::new()), OutputFormat::Npy, None, true).unwrap();
        w.write(&Prediction::Real(vec![1.0])).unwrap();
        let e = w
            .write(&Prediction::Classes {
                classes: vec![0],
                proba: vec![1.0, 0.0],
                k: 2,
            })
            .unwrap_err();
        assert!(e.to_string().contains("columns"), "{e}");
    }
}
