//! Row sources for streaming: memory-mapped `.npy` and raw files, generators, datasets.

mod common;

use common::{f32_bytes, write_npy};
use gradflow::Error;
use gradflow::data::{Dataset, FileTargets, MappedFile, RowSource, RowTargets, Synthetic, Targets};

/// A path for a test's file `name` in the temporary directory (the process id in it, so
/// that concurrent runs do not share files).
fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gradflow-test-{}-{name}", std::process::id()))
}

#[test]
fn npy_f32_and_f64_files_gather_like_the_dataset() {
    let data = Synthetic::linear(500, 3).seed(4).dataset().unwrap();
    let Targets::Real(y) = data.targets() else {
        unreachable!()
    };
    // Columns: x0, y, x1, x2 — the target in the middle, to test the column split.
    let table: Vec<f32> = (0..500)
        .flat_map(|i| {
            let r = data.row(i);
            [r[0], y[i], r[1], r[2]]
        })
        .collect();
    let f32_path = write_npy(&temp("a.npy"), "<f4", false, &[500, 4], &f32_bytes(&table));
    let f64_bytes: Vec<u8> = table
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect();
    let f64_path = write_npy(&temp("b.npy"), "<f8", false, &[500, 4], &f64_bytes);
    let rows = [499u32, 0, 250, 250, 17];
    let (mut want_x, mut want_y) = (vec![0f32; 15], vec![0f32; 5]);
    RowSource::gather(&data, &rows, &mut want_x, RowTargets::Real(&mut want_y)).unwrap();
    for path in [&f32_path, &f64_path] {
        let file = MappedFile::npy(path, FileTargets::Real { column: 1 }).unwrap();
        assert_eq!((file.n(), file.p(), file.classes()), (500, 3, None));
        let (mut x, mut yy) = (vec![0f32; 15], vec![0f32; 5]);
        file.gather(&rows, &mut x, RowTargets::Real(&mut yy))
            .unwrap();
        assert_eq!((x, yy), (want_x.clone(), want_y.clone()), "{path:?}");
    }
}

/// The same table stored in C and in Fortran order, as floats of either width, as
/// integers of every width and as booleans: every layout gathers the same values, for any
/// rows in any order (the Fortran path reads in blocks of 256 rows: 600 rows cross two
/// block edges).
#[test]
fn every_dtype_and_order_gathers_the_same_table() {
    let (n, cols) = (600usize, 3usize);
    // Small whole numbers, so that every dtype holds the table exactly; the target
    // (column 1) in 0..2 so that booleans and unsigned types hold it too.
    let value = |r: usize, c: usize| match c {
        1 => (r % 2) as f64,
        _ => ((r * 7 + c * 13) % 100) as f64,
    };
    let cell = |i: usize, fortran: bool| match fortran {
        false => value(i / cols, i % cols),
        true => value(i % n, i / n),
    };
    let encode = |descr: &str, v: f64| -> Vec<u8> {
        match descr {
            "<f4" => (v as f32).to_le_bytes().to_vec(),
            "<f8" => v.to_le_bytes().to_vec(),
            "|i1" => (v as i8).to_le_bytes().to_vec(),
            "<i2" => (v as i16).to_le_bytes().to_vec(),
            "<i4" => (v as i32).to_le_bytes().to_vec(),
            "<i8" => (v as i64).to_le_bytes().to_vec(),
            "|u1" => (v as u8).to_le_bytes().to_vec(),
            "<u2" => (v as u16).to_le_bytes().to_vec(),
            "<u4" => (v as u32).to_le_bytes().to_vec(),
            "<u8" => (v as u64).to_le_bytes().to_vec(),
            "|b1" => vec![u8::from(v != 0.0)],
            _ => unreachable!(),
        }
    };
    let rows: Vec<u32> = (0..n as u32)
        .rev()
        .step_by(3)
        .chain([5, 5, 599, 0])
        .collect();
    let gather = |path: &std::path::Path, classes: bool| {
        let targets = match classes {
            true => FileTargets::Classes {
                column: 1,
                classes: 2,
            },
            false => FileTargets::Real { column: 1 },
        };
        let file = MappedFile::npy(path, targets).unwrap();
        let mut x = vec![0f32; rows.len() * (cols - 1)];
        let (mut y, mut labels) = (vec![0f32; rows.len()], vec![0u32; rows.len()]);
        let t = match classes {
            true => RowTargets::Classes(&mut labels),
            false => RowTargets::Real(&mut y),
        };
        file.gather(&rows, &mut x, t).unwrap();
        (x, y, labels, file.is_fortran_order())
    };
    let reference = {
        let data: Vec<u8> = (0..n * cols)
            .flat_map(|i| encode("<f4", cell(i, false)))
            .collect();
        let path = write_npy(&temp("ref.npy"), "<f4", false, &[n, cols], &data);
        (gather(&path, false), gather(&path, true))
    };
    for descr in [
        "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1",
    ] {
        for fortran in [false, true] {
            // Booleans hold the target only: their features are 0/1 of the same table.
            let of = |v: f64, c: usize| {
                if descr == "|b1" && c != 1 {
                    f64::from(u8::from(v != 0.0))
                } else {
                    v
                }
            };
            let data: Vec<u8> = (0..n * cols)
                .flat_map(|i| {
                    let c = if fortran { i / n } else { i % cols };
                    encode(descr, of(cell(i, fortran), c))
                })
                .collect();
            let path = write_npy(&temp("t.npy"), descr, fortran, &[n, cols], &data);
            for classes in [false, true] {
                let (x, y, labels, f) = gather(&path, classes);
                assert_eq!(f, fortran);
                let (rx, ry, rl, _) = if classes { &reference.1 } else { &reference.0 };
                let want: Vec<f32> = match descr {
                    "|b1" => rx.iter().map(|&v| f32::from(u8::from(v != 0.0))).collect(),
                    _ => rx.clone(),
                };
                assert_eq!(x, want, "{descr} fortran={fortran}");
                assert_eq!((&y, &labels), (ry, rl), "{descr} fortran={fortran}");
            }
        }
    }
}

#[test]
fn a_fortran_file_reports_the_first_bad_value_in_row_order() {
    // Column-major: x0 = [1, NaN], x1 = [inf, 2], y = [0, 1]. Row order meets inf first.
    let data = f32_bytes(&[1.0, f32::NAN, f32::INFINITY, 2.0, 0.0, 1.0]);
    let path = write_npy(&temp("bad-fortran.npy"), "<f4", true, &[2, 3], &data);
    let file = MappedFile::npy(&path, FileTargets::Real { column: 2 }).unwrap();
    let err = file
        .gather(&[0, 1], &mut [0f32; 4], RowTargets::Real(&mut [0.0; 2]))
        .unwrap_err();
    assert!(
        matches!(err, Error::NonFinite { row: 0, col: 1, .. }),
        "{err}"
    );
}

#[test]
fn labelled_files_check_their_labels() {
    let table = [0.5f32, 1.0, 1.5, 0.0, 2.5, 2.0, 3.5, 2.5];
    let path = write_npy(
        &temp("labels.npy"),
        "<f4",
        false,
        &[4, 2],
        &f32_bytes(&table),
    );
    let file = MappedFile::npy(
        &path,
        FileTargets::Classes {
            column: 1,
            classes: 3,
        },
    )
    .unwrap();
    let (mut x, mut l) = ([0f32; 3], [0u32; 3]);
    file.gather(&[2, 0, 1], &mut x, RowTargets::Classes(&mut l))
        .unwrap();
    assert_eq!((x, l), ([2.5, 0.5, 1.5], [2, 1, 0]));
    let err = file
        .gather(&[3], &mut [0f32], RowTargets::Classes(&mut [0]))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("row 3, column 1: label 2.5 is not a class in 0..3"),
        "{err}"
    );
    let err = file
        .gather(&[0], &mut [0f32], RowTargets::Real(&mut [0.0]))
        .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn malformed_files_are_errors_naming_what_was_found() {
    let real = FileTargets::Real { column: 0 };
    let msg = |r: Result<MappedFile, Error>| r.unwrap_err().to_string();
    for descr in [">f4", "|O", "<c8", "<U3", ">i4"] {
        let odd = write_npy(&temp("odd.npy"), descr, false, &[2, 2], &[0u8; 64]);
        let m = msg(MappedFile::npy(&odd, real));
        assert!(
            m.contains(&format!("dtype {descr} is not a little-endian number")),
            "{m}"
        );
    }
    let short_ints = write_npy(&temp("short-ints.npy"), "<i8", true, &[2, 2], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&short_ints, real)).contains("truncated"));
    let flat = write_npy(&temp("flat.npy"), "<f4", false, &[4], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&flat, real)).contains("shape [4] is not 2-D"));
    let short = write_npy(&temp("short.npy"), "<f4", false, &[3, 2], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&short, real)).contains("truncated"));
    let text = std::env::temp_dir().join(format!("gradflow-test-{}-text.npy", std::process::id()));
    std::fs::write(&text, "a,b\n1,2\n").unwrap();
    assert!(msg(MappedFile::npy(&text, real)).contains("not a .npy file"));
    assert!(matches!(
        MappedFile::npy("/no/such/file.npy", real),
        Err(Error::Io { .. })
    ));
    let raw = std::env::temp_dir().join(format!("gradflow-test-{}-raw.f32", std::process::id()));
    std::fs::write(&raw, [0u8; 20]).unwrap();
    assert!(
        msg(MappedFile::raw_f32(&raw, 3, real))
            .contains("20 bytes is not a whole number of rows of 3 f32 values")
    );
    std::fs::write(&raw, [0u8; 24]).unwrap();
    assert!(
        msg(MappedFile::raw_f32(
            &raw,
            3,
            FileTargets::Real { column: 3 }
        ))
        .contains("target column 3")
    );
    let nan = write_npy(
        &temp("nan.npy"),
        "<f4",
        false,
        &[1, 2],
        &f32_bytes(&[f32::NAN, 1.0]),
    );
    let file = MappedFile::npy(&nan, FileTargets::Real { column: 1 }).unwrap();
    let err = file
        .gather(&[0], &mut [0f32], RowTargets::Real(&mut [0.0]))
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
}

/// A generator used as a source makes exactly the rows its dataset holds: streaming from it
/// sees the same data as training on the materialised dataset.
#[test]
fn generators_are_sources_of_their_own_rows() {
    let g = Synthetic::linear(10_000, 8).seed(3);
    let ds: Dataset = g.dataset().unwrap();
    let rows: Vec<u32> = (0..10_000).rev().step_by(37).collect();
    let (mut a, mut b) = (vec![0f32; rows.len() * 8], vec![0f32; rows.len() * 8]);
    let (mut ya, mut yb) = (vec![0f32; rows.len()], vec![0f32; rows.len()]);
    RowSource::gather(&g, &rows, &mut a, RowTargets::Real(&mut ya)).unwrap();
    RowSource::gather(&ds, &rows, &mut b, RowTargets::Real(&mut yb)).unwrap();
    assert_eq!((a, ya), (b, yb));
}

/// The prefetcher streams from any source: a generator's batches, gathered 3 to a group,
/// equal the batches of its materialised dataset gathered one by one under the same plan
/// (16 batches: groups of 3, 3, 3, 3, 3, 1), and a bad file row surfaces as an error.
#[test]
fn the_prefetcher_streams_from_generators_and_files() {
    use gradflow::data::epoch_plan;
    use gradflow::schedule::{HostBatch, HostTargets, Prefetcher};
    let g = Synthetic::teacher(1000, 5, 3).seed(8);
    let ds = g.dataset().unwrap();
    let plan = std::sync::Arc::new(epoch_plan(3, 1, 1000, 64, true, false).unwrap());
    std::thread::scope(|s| {
        let mut from_gen = Prefetcher::spawn(s, &g, 2, 3).unwrap();
        let mut from_ds = Prefetcher::spawn(s, &ds, 3, 1).unwrap();
        from_gen.begin_epoch(&plan);
        from_ds.begin_epoch(&plan);
        let mut group = None;
        let mut counts = Vec::new();
        for batch in plan.batches() {
            if !group.as_ref().is_some_and(|g: &HostBatch| g.holds(batch)) {
                if let Some(done) = group.take() {
                    from_gen.recycle(done);
                }
                let next = from_gen.next(batch).unwrap();
                counts.push(next.count);
                group = Some(next);
            }
            let a = group.as_ref().unwrap();
            let b = from_ds.next(batch).unwrap();
            assert_eq!((b.first, b.count, b.rows()), (batch.index, 1, batch.len));
            let (at, p) = (a.offset(batch), 5);
            assert_eq!(&a.x[at * p..(at + batch.len) * p], &b.x[..]);
            let HostTargets::Labels(la) = &a.targets else {
                panic!("teacher data are labelled")
            };
            assert_eq!(
                b.targets,
                HostTargets::Labels(la[at..at + batch.len].to_vec())
            );
            from_ds.recycle(b);
        }
        assert_eq!(counts, [3, 3, 3, 3, 3, 1]);
    });
    let path = write_npy(
        &temp("bad-label.npy"),
        "<f4",
        false,
        &[4, 2],
        &f32_bytes(&[0.0, 0.0, 1.0, 7.0, 2.0, 1.0, 3.0, 0.0]),
    );
    let file = MappedFile::npy(
        &path,
        FileTargets::Classes {
            column: 1,
            classes: 2,
        },
    )
    .unwrap();
    let plan = std::sync::Arc::new(epoch_plan(0, 0, 4, 4, false, false).unwrap());
    std::thread::scope(|s| {
        let mut feed = Prefetcher::spawn(s, &file, 2, 1).unwrap();
        feed.begin_epoch(&plan);
        let err = feed.next(plan.batches().next().unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("label 7 is not a class in 0..2"),
            "{err}"
        );
    });
}

/// `np.save(path, df.values)` writes a Fortran-ordered array: read whole or streamed, it
/// gives the same dataset and the same fit, bit for bit, as the C-ordered file.
#[test]
fn fortran_and_c_order_give_the_same_dataset_and_fit() {
    use gradflow::io::{TargetKind, npy};
    use gradflow::model::SoftmaxRegression;
    use gradflow::{TrainConfig, Trainer};
    let data = Synthetic::blobs(900, 4, 3).seed(9).dataset().unwrap();
    let Targets::Classes { labels, .. } = data.targets() else {
        unreachable!()
    };
    let (n, cols) = (900, 5);
    let value = |r: usize, c: usize| {
        if c < 4 {
            data.row(r)[c]
        } else {
            labels[r] as f32
        }
    };
    let c_order: Vec<f32> = (0..n * cols).map(|i| value(i / cols, i % cols)).collect();
    let f_order: Vec<f32> = (0..n * cols).map(|i| value(i % n, i / n)).collect();
    let c_path = write_npy(
        &temp("c.npy"),
        "<f4",
        false,
        &[n, cols],
        &f32_bytes(&c_order),
    );
    let f_path = write_npy(
        &temp("f.npy"),
        "<f4",
        true,
        &[n, cols],
        &f32_bytes(&f_order),
    );
    let c = npy::read(&c_path, None, TargetKind::Classes).unwrap();
    let f = npy::read(&f_path, None, TargetKind::Classes).unwrap();
    assert_eq!(c, f);
    let fit = |source: &dyn RowSource| {
        let mut model = SoftmaxRegression::new();
        let trainer = Trainer::new(TrainConfig::default().epochs(3).batch_size(64)).unwrap();
        model.fit(source, &trainer).unwrap();
        let p: Vec<u32> = model
            .predict_proba(data.features())
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        p
    };
    let streamed_c = npy::open(&c_path, None, TargetKind::Classes).unwrap();
    let streamed_f = npy::open(&f_path, None, TargetKind::Classes).unwrap();
    let want = fit(&c.dataset);
    assert_eq!(fit(&f.dataset), want);
    assert_eq!(fit(&streamed_c), fit(&streamed_f));
}
