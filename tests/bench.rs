//! The bench engine and the demo: complete, finite, consistent reports; the GPU compared
//! with the CPU point by point; the crossover rule on hand-made numbers.

mod common;

use common::gpu;
use gradflow::bench::{
    self, Backends, BenchOptions, BenchReport, BenchRow, DemoOptions, Measured, Metric, Quality,
    Workload, crossover_batch,
};

/// The markdown table's data rows (`| W1 | cpu | …`).
fn table_rows(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .filter(|l| l.starts_with("| W") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

fn assert_finite(r: &BenchRow) {
    let m = r
        .measured
        .as_ref()
        .unwrap_or_else(|| panic!("{} {} did not run: {:?}", r.workload, r.backend, r.error));
    for (what, v) in [
        ("wall_s", m.wall_s),
        ("samples_per_sec", m.samples_per_sec),
        ("ms_per_step", m.ms_per_step),
        ("final_loss", m.final_loss),
        ("quality", m.quality.value),
    ] {
        assert!(v.is_finite(), "{} {} {what} = {v}", r.workload, r.backend);
    }
    assert!(m.samples_per_sec > 0.0 && m.wall_s > 0.0 && m.steps >= 1);
    assert_eq!(m.runs, 1, "quick mode times one run");
}

/// Quick mode on the CPU: every workload, once, with finite numbers; the JSON and the
/// markdown hold the same rows, and the JSON reads back to the same report.
#[test]
fn quick_cpu_bench_reports_every_workload() {
    let opts = BenchOptions::quick().backends(Backends::Cpu);
    let report = bench::run(&opts, &mut std::io::sink()).expect("bench");
    let ids: Vec<Workload> = report.rows.iter().map(|r| r.workload).collect();
    assert_eq!(ids, Workload::ALL, "one CPU row per workload, in order");
    for r in &report.rows {
        assert_eq!(r.backend, "cpu");
        assert_finite(r);
        assert_eq!(r.rows, ((r.workload.rows() as f64) * 0.01).round() as usize);
    }
    // W1's data are y = x·w* + 0.5 + 0.01 ε: gradient descent and the closed form both
    // reach the noise floor (MSE ≈ 1e-4, R² ≈ 1), W4's 50 full-batch steps come close.
    let loss = |w: Workload| {
        report.rows[w as usize]
            .measured
            .as_ref()
            .unwrap()
            .final_loss
    };
    assert!(loss(Workload::W1) < 2e-4, "W1 loss {}", loss(Workload::W1));
    assert!(loss(Workload::W5) < 2e-4, "W5 loss {}", loss(Workload::W5));
    assert!(loss(Workload::W4) < 0.05, "W4 loss {}", loss(Workload::W4));
    assert!(report.crossovers.is_empty(), "no GPU row, no crossover");

    let md = report.markdown();
    let lines = table_rows(&md);
    assert_eq!(lines.len(), report.rows.len(), "{md}");
    for (line, r) in lines.iter().zip(&report.rows) {
        assert!(
            line.starts_with(&format!("| {} | cpu |", r.workload)),
            "{line}"
        );
        let m = r.measured.as_ref().unwrap();
        assert!(line.contains(&format!("{:.6e}", m.final_loss)), "{line}");
    }
    let json = report.to_json().expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["rows"].as_array().map(Vec::len), Some(lines.len()));
    assert_eq!(BenchReport::from_json(&json).expect("read back"), report);
}

/// A tiny run on both backends: each point has a CPU and a GPU row, the GPU's adapter,
/// a GPU/CPU ratio and final losses that agree (same batches and seed on both).
#[test]
fn tiny_bench_compares_gpu_with_cpu() {
    let Some(ctx) = gpu("tiny_bench_compares_gpu_with_cpu") else {
        return;
    };
    let opts = BenchOptions::quick()
        .scale(0.1)
        .workloads(&[Workload::W1, Workload::W3])
        .gpu(ctx);
    let report = bench::run(&opts, &mut std::io::sink()).expect("bench");
    assert!(report.gpu_adapter.is_some() && report.gpu_error.is_none());
    assert_eq!(report.rows.len(), 4, "{:#?}", report.rows);
    for pair in report.rows.chunks(2) {
        let (c, g) = (&pair[0], &pair[1]);
        assert_eq!((c.backend.as_str(), g.backend.as_str()), ("cpu", "gpu"));
        assert_finite(c);
        assert_finite(g);
        let gm = g.measured.as_ref().unwrap();
        assert!(gm.adapter.starts_with("gpu: "), "{}", gm.adapter);
        let ratio = g.gpu_cpu_ratio.expect("ratio");
        let want = gm.samples_per_sec / c.measured.as_ref().unwrap().samples_per_sec;
        assert!((ratio - want).abs() <= 1e-12 * want, "{ratio} vs {want}");
        assert_eq!(
            g.agrees,
            Some(true),
            "loss differs by {:?}",
            g.loss_rel_diff
        );
    }
    assert_eq!(report.crossovers.len(), 2, "W1 and W3");
    assert!(
        table_rows(&report.markdown())
            .iter()
            .any(|l| l.contains("agrees ("))
    );
}

/// No adapter (a filter that matches none): the GPU rows say why, the CPU rows still run.
#[test]
fn gpu_rows_say_why_without_an_adapter() {
    let opts = BenchOptions::quick()
        .scale(0.1)
        .workloads(&[Workload::W1, Workload::W5])
        .adapter("no-such-adapter-xyz");
    let report = bench::run(&opts, &mut std::io::sink()).expect("bench");
    let err = report.gpu_error.as_deref().expect("no adapter");
    assert!(err.starts_with("no GPU adapter found"), "{err}");
    assert_eq!(report.rows.len(), 4, "a CPU and a GPU row per workload");
    for r in &report.rows {
        match r.backend.as_str() {
            "cpu" => assert_finite(r),
            _ => assert!(r.measured.is_none() && r.error.is_some(), "{r:?}"),
        }
    }
    assert_eq!(
        report.rows[1].error.as_deref(),
        Some(err),
        "W1's GPU row names the reason"
    );
    assert_eq!(
        report.crossovers[0].batch, None,
        "no GPU measurement, no crossover"
    );
    let md = report.markdown();
    assert!(
        md.contains("| W1 | gpu | — |") && md.contains("not run: no GPU adapter found"),
        "{md}"
    );
    assert!(md.contains("No GPU ran: no GPU adapter found"), "{md}");
}

fn measured(samples_per_sec: f64, final_loss: f64) -> Measured {
    Measured {
        adapter: "test".into(),
        mode: "test".into(),
        steps: 10,
        runs: 1,
        wall_s: 1.0,
        samples_per_sec,
        ms_per_step: 100.0,
        final_loss,
        quality: Quality {
            metric: Metric::R2,
            value: 1.0,
        },
    }
}

/// The crossover is the smallest batch at which the GPU is strictly faster, whatever the
/// order of the points; a tie is not a win; no win is `None`.
#[test]
fn crossover_on_hand_made_numbers() {
    assert_eq!(
        crossover_batch(&[
            (100_000, 1.0e6, 9.0e6),
            (4096, 2.0e6, 2.5e6),
            (1, 1.0e6, 1.0e3),
            (256, 2.0e6, 2.0e6), // a tie
            (32, 2.0e6, 0.1e6),
        ]),
        Some(4096)
    );
    assert_eq!(crossover_batch(&[(1, 5.0, 1.0), (256, 5.0, 4.9)]), None);
    assert_eq!(crossover_batch(&[]), None);
    assert_eq!(crossover_batch(&[(1, 1.0, 2.0)]), Some(1));

    // The same rule over a report's sweep rows: the full batch wins first here.
    let sweep_row = |backend: &str, batch: usize, full: bool, sps: f64| BenchRow {
        workload: Workload::W3,
        backend: backend.into(),
        sweep: true,
        batch,
        full_batch: full,
        rows: 2000,
        epochs: 1,
        measured: Some(measured(sps, 2.0)),
        error: None,
        gpu_cpu_ratio: None,
        loss_rel_diff: None,
        agrees: None,
    };
    let mut report = BenchReport {
        quick: true,
        sweep: true,
        scale: 0.01,
        cpu_threads: 2,
        gpu_adapter: Some("test".into()),
        gpu_error: None,
        rows: vec![
            sweep_row("cpu", 32, false, 1.0e4),
            sweep_row("gpu", 32, false, 1.0e3),
            sweep_row("cpu", 2000, true, 1.0e4),
            sweep_row("gpu", 2000, true, 3.0e4),
        ],
        crossovers: Vec::new(),
        notes: Vec::new(),
    };
    report.update_crossovers();
    let c = &report.crossovers[0];
    assert_eq!(
        (c.batch, c.full_batch, &c.compared[..]),
        (Some(2000), true, &[32, 2000][..])
    );
    assert!(report.markdown().contains("- W3: full batch (2000 rows)"));
    report.rows[3].measured = Some(measured(0.5e4, 2.0));
    report.update_crossovers();
    assert_eq!(report.crossovers[0].batch, None);
    assert!(report.markdown().contains("- W3: none"));
}

/// The demo on tiny data writes a table with all four models (and the GPU's rows,
/// compared with the CPU, when there is an adapter), then the normal equations.
#[test]
fn tiny_demo_prints_all_four_models() {
    let mut opts = DemoOptions::default().scale(0.002);
    match gpu("tiny_demo_prints_all_four_models") {
        Some(ctx) => opts = opts.gpu(ctx),
        None => opts = opts.backends(Backends::Cpu),
    }
    let with_gpu = opts.backends.gpu();
    let mut out = Vec::new();
    let report = bench::demo(&mut out, opts).expect("demo");
    let text = String::from_utf8(out).expect("utf-8");
    let models = [
        "linear regression",
        "logistic regression",
        "softmax regression",
        "MLP 64-128-10 sigmoid",
    ];
    for m in models {
        let rows = text
            .lines()
            .filter(|l| l.starts_with(&format!("| {m} ")))
            .count();
        assert_eq!(rows, if with_gpu { 2 } else { 1 }, "{m} in\n{text}");
    }
    assert_eq!(report.rows.len(), if with_gpu { 8 } else { 4 });
    assert!(report.rows.iter().all(|r| r.final_loss.is_finite()));
    if with_gpu {
        assert!(report.all_agree(), "{text}");
        assert!(report.rows.iter().any(|r| r.speedup.is_some()));
    }
    assert!(
        text.contains("normal equations on the linear data: Cholesky"),
        "{text}"
    );
    assert!(report.normal.is_some());
}
