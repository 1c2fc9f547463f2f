//! `--plot`: the epoch loss curve as a PNG, with plotters' bitmap backend.
//!
//! Text (title, axis numbers) needs a TrueType font, read at run time from
//! `GRADFLOW_FONT` or a usual system location (DejaVu, Liberation, …); without one the
//! curve is drawn with its grid but no text, and a notice says so.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::CliError;

/// Environment variable naming a `.ttf` file for the plot's text.
pub const FONT_ENV: &str = "GRADFLOW_FONT";

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font as plotters' `sans-serif` once per process; `false` when none loads.
fn font() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let env = std::env::var(FONT_ENV).ok();
        env.iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied())
            .filter_map(|p| std::fs::read(p).ok())
            // plotters keeps a `'static` reference to the font: leaked once per process.
            .any(|bytes| {
                register_font(
                    "sans-serif",
                    FontStyle::Normal,
                    Box::leak(bytes.into_boxed_slice()),
                )
                .is_ok()
            })
    })
}

/// Draws `losses` (one per epoch) against the epoch number into a PNG at `path`; a log
/// scale when the losses are positive and span more than a factor of 10.
///
/// # Errors
/// A failure naming the file when it cannot be drawn or written.
pub fn loss_curve(path: &Path, losses: &[f64], title: &str) -> Result<(), CliError> {
    let fail = |e: &dyn std::fmt::Display| {
        CliError::failed(
            format!("{}: cannot draw the loss plot: {e}", path.display()),
            Some("check that the directory exists and is writable".into()),
        )
    };
    let finite: Vec<(f64, f64)> = losses
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| ((i + 1) as f64, l))
        .collect();
    if finite.is_empty() {
        return Err(fail(&"no finite epoch loss to plot"));
    }
    let text = font();
    if !text {
        eprintln!(
            "gradflow: no TrueType font found (set {FONT_ENV}=/path/to/font.ttf): the plot has no text"
        );
    }
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, l)| {
            (lo.min(l), hi.max(l))
        });
    let epochs = i32::try_from(finite.len()).unwrap_or(i32::MAX);
    let points: Vec<(i32, f64)> = finite.iter().map(|&(x, l)| (x as i32, l)).collect();
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(80);
    }
    // One body for both y scales (their coordinate types differ).
    macro_rules! draw {
        ($y_range:expr) => {{
            let mut chart = builder
                .build_cartesian_2d(0..epochs + 1, $y_range)
                .map_err(|e| fail(&e))?;
            let mut mesh = chart.configure_mesh();
            if text {
                mesh.x_desc("epoch").y_desc("mean training loss");
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(|e| fail(&e))?;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| fail(&e))?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                .map_err(|e| fail(&e))?;
        }};
    }
    if lo > 0.0 && hi / lo > 10.0 {
        draw!((lo / 1.5..hi * 1.5).log_scale());
    } else {
        let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-12);
        draw!(lo - pad..hi + pad);
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
