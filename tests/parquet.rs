//! Parquet files (feature `parquet`): the same table as CSV and as Parquet reads into the
//! same dataset bit for bit, over row groups, every numeric type and text labels; nulls,
//! empty and truncated files are one-line errors; predict and convert read them.
#![cfg(feature = "parquet")]

mod cli_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cli_common::{fails_with, gradflow, succeeds, write};
use gradflow::io::{Column, CsvOptions, TargetKind, csv, parquet as pq};
use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// One row of the test table: x0 f32, x1 f64, x2 i32, x3 i64, flag bool, label text.
struct Row {
    x0: f32,
    x1: f64,
    x2: i32,
    x3: i64,
    flag: bool,
    label: Option<&'static str>,
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            x0: i as f32 * 0.25 - 3.0,
            x1: (i as f64).sin(),
            x2: i as i32 % 7 - 3,
            x3: (i as i64) * 1000,
            flag: i % 3 == 0,
            label: Some(["setosa", "virginica", "versicolor"][i % 3]),
        })
        .collect()
}

/// Writes `rows` as Parquet, `group` rows a row group, snappy pages.
fn write_parquet(path: &Path, rows: &[Row], group: usize) {
    let schema = Arc::new(
        parse_message_type(
            "message t { required float x0; required double x1; required int32 x2; \
             required int64 x3; required boolean flag; optional binary label (UTF8); }",
        )
        .unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    for part in rows.chunks(group.max(1)) {
        let mut rg = w.next_row_group().unwrap();
        let mut j = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            match j {
                0 => col.typed::<FloatType>().write_batch(
                    &part.iter().map(|r| r.x0).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                1 => col.typed::<DoubleType>().write_batch(
                    &part.iter().map(|r| r.x1).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                2 => col.typed::<Int32Type>().write_batch(
                    &part.iter().map(|r| r.x2).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                3 => col.typed::<Int64Type>().write_batch(
                    &part.iter().map(|r| r.x3).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                4 => col.typed::<BoolType>().write_batch(
                    &part.iter().map(|r| r.flag).collect::<Vec<_>>(),
                    None,
                    None,
                ),
                _ => {
                    let defs: Vec<i16> =
                        part.iter().map(|r| i16::from(r.label.is_some())).collect();
                    let values: Vec<ByteArray> = part
                        .iter()
                        .filter_map(|r| r.label)
                        .map(ByteArray::from)
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)
                }
            }
            .unwrap();
            col.close().unwrap();
            j += 1;
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// The same table as CSV (values printed so that they read back to the same f32).
fn write_csv(dir: &Path, rows: &[Row]) -> PathBuf {
    let mut text = String::from("x0,x1,x2,x3,flag,label\n");
    for r in rows {
        text += &format!(
            "{},{},{},{},{},{}\n",
            r.x0,
            r.x1 as f32,
            r.x2,
            r.x3,
            u8::from(r.flag),
            r.label.unwrap()
        );
    }
    write(dir, "t.csv", text)
}

#[test]
fn a_parquet_table_reads_as_its_csv_does_over_any_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let table = rows(1000);
    let csv_path = write_csv(dir.path(), &table);
    let label = Column::Name("label".into());
    let from_csv = csv::read(
        &csv_path,
        &CsvOptions::default().target(label.clone()).classes(),
    )
    .unwrap();
    for group in [1000, 333, 64] {
        let path = dir.path().join(format!("t{group}.parquet"));
        write_parquet(&path, &table, group);
        let got = pq::read(&path, Some(&label), TargetKind::Classes).unwrap();
        assert_eq!(got.dataset, from_csv.dataset, "row groups of {group}");
        assert_eq!(got.labels, from_csv.labels);
        assert_eq!(got.feature_names(), from_csv.feature_names().unwrap());
        // A numeric target: regression on x3, the label column then a feature it cannot be.
        let e = pq::read(&path, Some(&Column::Index(3)), TargetKind::Real).unwrap_err();
        assert!(
            e.to_string()
                .contains("column 5 (\"label\") holds text, but features must be numbers"),
            "{e}"
        );
    }
}

#[test]
fn nulls_empty_and_broken_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut table = rows(50);
    table[37].label = None;
    let path = dir.path().join("nulls.parquet");
    write_parquet(&path, &table, 20);
    let label = Column::Name("label".into());
    let e = pq::read(&path, Some(&label), TargetKind::Classes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 37, column 5 (\"label\"): null"), "{e}");
    // An empty class name: the same message read whole and opened for streaming.
    let mut table = rows(50);
    table[37].label = Some("");
    let path = dir.path().join("empty-label.parquet");
    write_parquet(&path, &table, 20);
    let read = pq::read(&path, Some(&label), TargetKind::Classes)
        .unwrap_err()
        .to_string();
    assert!(
        read.contains("row 37, column 5 (\"label\"): empty class label"),
        "{read}"
    );
    let open = pq::open(&path, Some(&label), TargetKind::Classes)
        .unwrap_err()
        .to_string();
    assert_eq!(open, read);
    let empty = dir.path().join("empty.parquet");
    write_parquet(&empty, &[], 10);
    let e = pq::read(&empty, Some(&label), TargetKind::Classes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no rows"), "{e}");
    // Cut in the middle: the footer is gone.
    let whole = dir.path().join("whole.parquet");
    write_parquet(&whole, &rows(200), 50);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = write(dir.path(), "cut.parquet", &bytes[..bytes.len() / 2]);
    let e = pq::read(&cut, None, TargetKind::Classes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Parquet file"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let text = write(dir.path(), "text.parquet", "a,b\n1,2\n");
    let e = pq::read(&text, None, TargetKind::Real)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Parquet file") && !e.contains('\n'), "{e}");
}

#[test]
fn train_predict_and_convert_read_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let table = rows(600);
    let csv_path = write_csv(dir.path(), &table);
    let path = dir.path().join("t.parquet");
    write_parquet(&path, &table, 128);
    let (p, c) = (path.to_str().unwrap(), csv_path.to_str().unwrap());
    for (data, model) in [(p, "pq.json"), (c, "csv.json")] {
        succeeds(
            dir.path(),
            &[
                "train", "--model", "softmax", "--data", data, "--target", "label", "--epochs",
                "5", "--save", model,
            ],
        );
    }
    // The same fit from either file: the same predictions, from either file.
    let mut outs = Vec::new();
    for (model, data) in [
        ("pq.json", p),
        ("csv.json", c),
        ("pq.json", c),
        ("csv.json", p),
    ] {
        let out = format!("{}-{}.csv", model, outs.len());
        succeeds(
            dir.path(),
            &[
                "predict", "--model", model, "--data", data, "--proba", "--out", &out,
            ],
        );
        outs.push(std::fs::read_to_string(dir.path().join(out)).unwrap());
    }
    assert!(outs.iter().all(|o| o == &outs[0]));
    // Numbers only convert: the text column is refused, naming it.
    fails_with(
        gradflow(dir.path()).args(["convert", p, "t.npy"]).assert(),
        1,
        "column 5 (\"label\") holds text",
    );
    let numeric: Vec<Row> = rows(300)
        .into_iter()
        .map(|r| Row { label: None, ..r })
        .collect();
    let numbers = dir.path().join("n.parquet");
    write_numbers(&numbers, &numeric);
    let out = succeeds(dir.path(), &["convert", numbers.to_str().unwrap(), "n.npy"]);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(": 300 rows × 5 columns → n.npy ("), "{text}");
    succeeds(dir.path(), &["convert", numbers.to_str().unwrap(), "n.csv"]);
    fails_with(
        gradflow(dir.path())
            .args([
                "convert",
                numbers.to_str().unwrap(),
                "refused.csv",
                "--target",
                "x0",
            ])
            .assert(),
        2,
        "--target x0: a Parquet file is written column by column",
    );
    assert!(!dir.path().join("refused.csv").exists());
    let back = std::fs::read_to_string(dir.path().join("n.csv")).unwrap();
    assert!(
        back.starts_with("x0,x1,x2,x3,flag\n-3.0,0.0,-3.0,0.0,1.0\n"),
        "{back}"
    );
    let npy = gradflow::io::npy::read(dir.path().join("n.npy"), None, TargetKind::Real).unwrap();
    assert_eq!(npy.dataset.n(), 300);
}

/// The numeric columns alone.
fn write_numbers(path: &Path, rows: &[Row]) {
    let schema = Arc::new(
        parse_message_type(
            "message t { required float x0; required double x1; required int32 x2; \
             required int64 x3; required boolean flag; }",
        )
        .unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut j = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        match j {
            0 => col.typed::<FloatType>().write_batch(
                &rows.iter().map(|r| r.x0).collect::<Vec<_>>(),
                None,
                None,
            ),
            1 => col.typed::<DoubleType>().write_batch(
                &rows.iter().map(|r| r.x1).collect::<Vec<_>>(),
                None,
                None,
            ),
            2 => col.typed::<Int32Type>().write_batch(
                &rows.iter().map(|r| r.x2).collect::<Vec<_>>(),
                None,
                None,
            ),
            3 => col.typed::<Int64Type>().write_batch(
                &rows.iter().map(|r| r.x3).collect::<Vec<_>>(),
                None,
                None,
            ),
            _ => col.typed::<BoolType>().write_batch(
                &rows.iter().map(|r| r.flag).collect::<Vec<_>>(),
                None,
                None,
            ),
        }
        .unwrap();
        col.close().unwrap();
        j += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

/// Read in place, row group by row group, a Parquet file gathers the rows its in-memory
/// read holds, in any order and across row groups, for either kind of target.
#[test]
fn a_streamed_parquet_file_gathers_what_its_read_holds() {
    use gradflow::data::{RowSource, RowTargets, Targets};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    write_parquet(&path, &rows(1000), 97);
    let order: Vec<u32> = (0..1000u32)
        .rev()
        .step_by(7)
        .chain([0, 999, 500, 96, 97])
        .collect();
    for (target, kind) in [
        (Column::Name("label".into()), TargetKind::Classes),
        (Column::Index(3), TargetKind::Real),
    ] {
        if kind == TargetKind::Real {
            // The text column would be a feature: regression on x3 without it.
            let numbers = dir.path().join("n.parquet");
            let numeric: Vec<Row> = rows(1000)
                .into_iter()
                .map(|r| Row { label: None, ..r })
                .collect();
            write_numbers(&numbers, &numeric);
            check_stream(&numbers, &target, kind, &order);
        } else {
            check_stream(&path, &target, kind, &order);
        }
    }

    fn check_stream(path: &Path, target: &Column, kind: TargetKind, order: &[u32]) {
        let whole = pq::read(path, Some(target), kind).unwrap();
        let stream = pq::open(path, Some(target), kind).unwrap();
        assert_eq!(
            (stream.n(), stream.p(), stream.labels.clone()),
            (whole.dataset.n(), whole.dataset.p(), whole.labels.clone())
        );
        let p = stream.p();
        let mut x = vec![0f32; order.len() * p];
        match whole.dataset.targets() {
            Targets::Classes { labels, .. } => {
                let mut y = vec![0u32; order.len()];
                stream
                    .gather(order, &mut x, RowTargets::Classes(&mut y))
                    .unwrap();
                let want: Vec<u32> = order.iter().map(|&r| labels[r as usize]).collect();
                assert_eq!(y, want);
            }
            Targets::Real(values) => {
                let mut y = vec![0f32; order.len()];
                stream
                    .gather(order, &mut x, RowTargets::Real(&mut y))
                    .unwrap();
                let want: Vec<f32> = order.iter().map(|&r| values[r as usize]).collect();
                assert_eq!(y, want);
            }
        }
        let want: Vec<f32> = order
            .iter()
            .flat_map(|&r| whole.dataset.row(r as usize).to_vec())
            .collect();
        assert_eq!(x, want);
    }
}

/// `train --stream` reads a Parquet file in place and fits what it fits from the same
/// table converted to `.npy`, read in place in the same (windowed) order.
#[test]
fn train_streams_a_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let numeric: Vec<Row> = rows(2000)
        .into_iter()
        .map(|r| Row { label: None, ..r })
        .collect();
    let path = dir.path().join("n.parquet");
    write_numbers(&path, &numeric);
    succeeds(dir.path(), &["convert", path.to_str().unwrap(), "n.npy"]);
    let fit = |data: &str| {
        let out = succeeds(
            dir.path(),
            &[
                "train",
                "--model",
                "linear",
                "--data",
                data,
                "--target",
                "3",
                "--stream",
                "--shuffle",
                "windowed",
                "--solver",
                "sgd",
                "--epochs",
                "3",
                "--json",
            ],
        );
        let v = cli_common::json(&out);
        (v["losses"].clone(), v["mode"].clone())
    };
    let (from_parquet, mode) = fit(path.to_str().unwrap());
    let (from_npy, _) = fit("n.npy");
    assert_eq!(from_parquet, from_npy);
    assert!(mode.to_string().contains("stream"), "{mode}");
}
