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

/// An axis number with three significant digits (whole numbers from 100 to 9999, powers
/// of ten outside 0.001–9999), trailing zeros dropped:
/// `0.30000000000000004` → `0.3`, `0.123456` → `0.123`, `20000` → `2e4`.
pub fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if !(1e-3..1e4).contains(&a) {
        let s = format!("{v:.2e}");
        // 1.00e-5 → 1e-5, 2.50e3 → 2.5e3
        return match s.split_once('e') {
            Some((m, e)) => {
                let m = m.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{e}")
            }
            None => s,
        };
    }
    let digits = (2 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Tick values for a log axis from `lo` to `hi`: 1, 2 and 5 times each power of ten
/// (only the powers when the range spans more than three decades), as many as fall
/// inside.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi / lo > 1e3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// One curve of a loss plot.
pub struct Curve<'a> {
    /// The legend's name.
    pub name: &'a str,
    /// One value per epoch (or iteration); non-finite values are skipped.
    pub values: &'a [f64],
    /// Its colour.
    pub color: RGBColor,
}

/// Draws `curves` (the training loss, and the held-out loss when there is one) against
/// the epoch (or L-BFGS iteration) number into a PNG at `path`; a log scale when the
/// losses are positive and span more than a factor of 10. Axis numbers carry at most
/// three significant digits, and a legend names the curves when there are two.
///
/// # Errors
/// A failure naming the file when it cannot be drawn or written.
pub fn loss_curve(
    path: &Path,
    curves: &[Curve<'_>],
    title: &str,
    x_name: &str,
) -> Result<(), CliError> {
    let fail = |e: &dyn std::fmt::Display| {
        CliError::failed(
            format!("{}: cannot draw the loss plot: {e}", path.display()),
            Some("check that the directory exists and is writable".into()),
        )
    };
    let series: Vec<Vec<(i32, f64)>> = curves
        .iter()
        .map(|c| {
            c.values
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (i32::try_from(i + 1).unwrap_or(i32::MAX), l))
                .collect()
        })
        .collect();
    let all: Vec<(i32, f64)> = series.iter().flatten().copied().collect();
    if all.is_empty() {
        return Err(fail(&"no finite epoch loss to plot"));
    }
    let text = font();
    if !text {
        eprintln!(
            "gradflow: no TrueType font found (set {FONT_ENV}=/path/to/font.ttf): the plot has no text"
        );
    }
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, l)| {
            (lo.min(l), hi.max(l))
        });
    let epochs = all.iter().map(|p| p.0).max().unwrap_or(1);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(70);
    }
    let y_desc = if curves.len() > 1 {
        "mean loss"
    } else {
        "mean training loss"
    };
    // One body for both y scales (their coordinate types differ).
    macro_rules! draw {
        ($y_range:expr) => {{
            let mut chart = builder
                .build_cartesian_2d(0..epochs + 1, $y_range)
                .map_err(|e| fail(&e))?;
            let mut mesh = chart.configure_mesh();
            if text {
                mesh.x_desc(x_name)
                    .y_desc(y_desc)
                    .x_labels(10)
                    .y_label_formatter(&|v| tick(*v));
            } else {
                mesh.x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(|e| fail(&e))?;
            for (curve, points) in curves.iter().zip(&series) {
                let color = curve.color;
                let line = chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| fail(&e))?;
                if text && curves.len() > 1 {
                    line.label(curve.name).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                }
                // Markers only where they stay apart.
                if points.len() <= 100 {
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| fail(&e))?;
                }
            }
            if text && curves.len() > 1 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| fail(&e))?;
            }
        }};
    }
    if lo > 0.0 && hi / lo > 10.0 {
        let (lo, hi) = (lo / 1.5, hi * 1.5);
        draw!((lo..hi).log_scale().with_key_points(log_ticks(lo, hi)));
    } else {
        let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-12);
        draw!(lo - pad..hi + pad);
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn log_ticks_are_round() {
        assert_eq!(super::log_ticks(0.04, 0.9), [0.05, 0.1, 0.2, 0.5]);
        assert_eq!(super::log_ticks(3e-5, 2.0), [1e-4, 1e-3, 1e-2, 0.1, 1.0]);
    }

    #[test]
    fn ticks_are_short() {
        for (v, want) in [
            (0.30000000000000004, "0.3"),
            (0.6000000000000001, "0.6"),
            (0.05, "0.05"),
            (0.123456, "0.123"),
            (1.0, "1"),
            (12.5, "12.5"),
            (1234.6, "1235"),
            (20000.0, "2e4"),
            (0.00012, "1.2e-4"),
            (3e-7, "3e-7"),
            (0.0, "0"),
        ] {
            assert_eq!(tick(v), want, "{v}");
        }
    }
}
