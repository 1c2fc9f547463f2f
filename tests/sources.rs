//! Row sources for streaming: memory-mapped `.npy` and raw files, generators, datasets.

use gradflow::Error;
use gradflow::data::{Dataset, FileTargets, MappedFile, RowSource, RowTargets, Synthetic, Targets};

/// Writes a version-1.0 `.npy` file by the format's definition: magic, version, header
/// length, a Python-dict header padded with spaces to a multiple of 64 bytes, then data.
fn write_npy(
    name: &str,
    descr: &str,
    fortran: bool,
    shape: &[usize],
    data: &[u8],
) -> std::path::PathBuf {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    let path = std::env::temp_dir().join(format!("gradflow-test-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
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
    let f32_path = write_npy("a.npy", "<f4", false, &[500, 4], &f32_bytes(&table));
    let f64_bytes: Vec<u8> = table
        .iter()
        .flat_map(|&v| f64::from(v).to_le_bytes())
        .collect();
    let f64_path = write_npy("b.npy", "<f8", false, &[500, 4], &f64_bytes);
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

#[test]
fn labelled_files_check_their_labels() {
    let table = [0.5f32, 1.0, 1.5, 0.0, 2.5, 2.0, 3.5, 2.5];
    let path = write_npy("labels.npy", "<f4", false, &[4, 2], &f32_bytes(&table));
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
    let ints = write_npy("ints.npy", "<i4", false, &[2, 2], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&ints, real)).contains("dtype <i4 is not <f4 or <f8"));
    let fortran = write_npy("fortran.npy", "<f4", true, &[2, 2], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&fortran, real)).contains("Fortran-ordered"));
    let flat = write_npy("flat.npy", "<f4", false, &[4], &[0u8; 16]);
    assert!(msg(MappedFile::npy(&flat, real)).contains("shape [4] is not 2-D"));
    let short = write_npy("short.npy", "<f4", false, &[3, 2], &[0u8; 16]);
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
        "nan.npy",
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
        "bad-label.npy",
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
