//! The bench plot: samples/s by batch size, CPU against GPU, one panel per workload, the
//! crossover marked. Bitmap backend only (feature `cli`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::report::{BenchReport, BenchRow};
use crate::error::{Error, Result};

/// Where a sans-serif TrueType font is looked for when `GRADFLOW_FONT` is not set.
const FONT_PATHS: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font for plotters once: the file `GRADFLOW_FONT` names, else the first of
/// [`FONT_PATHS`] that exists. `false` when there is none; the plot is then drawn
/// without text.
fn font() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("GRADFLOW_FONT") {
            Ok(p) => vec![p],
            Err(_) => FONT_PATHS.iter().map(|s| s.to_string()).collect(),
        };
        candidates.iter().any(|p| {
            std::fs::read(p).is_ok_and(|bytes| {
                // plotters keeps the font for the whole process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Draws samples/s against batch size (log–log), CPU in blue and GPU in red, one panel
/// per workload that trained by gradient descent, with the crossover batch marked by a
/// vertical line; writes a PNG (or any format the file extension names that the
/// `image` crate encodes) of 1200 × 420 pixels per row of up to 3 panels.
///
/// Text needs a TrueType font: the file `GRADFLOW_FONT` names, else DejaVu Sans or
/// Liberation Sans where Linux distributions install them. Without one the plot has no
/// text (lines and markers only).
///
/// ```no_run
/// use gradflow::bench::{self, BenchOptions};
/// let report = bench::run(&BenchOptions::quick().sweep(true), &mut std::io::stderr())?;
/// bench::plot(&report, "target/bench.png".as_ref())?;
/// # Ok::<(), gradflow::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when the image cannot be drawn or written; [`Error::Empty`] when the
/// report has no measured gradient-descent point.
pub fn plot(report: &BenchReport, path: &Path) -> Result<()> {
    let panels: Vec<Panel> = Panel::all(report);
    if panels.is_empty() {
        return Err(Error::Empty {
            what: "bench report",
            detail: "no measured gradient-descent point to plot".into(),
        });
    }
    let io = |e: &dyn std::fmt::Display| Error::Io {
        path: path.display().to_string(),
        message: format!("drawing the bench plot: {e}"),
    };
    let text = font();
    let cols = panels.len().min(3);
    let prows = panels.len().div_ceil(3);
    let root =
        BitMapBackend::new(path, (400 * cols as u32, 420 * prows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| io(&e))?;
    let areas = root.split_evenly((prows, cols));
    for (panel, area) in panels.iter().zip(&areas) {
        panel.draw(area, text).map_err(|e| io(&e))?;
    }
    root.present().map_err(|e| io(&e))?;
    Ok(())
}

/// One workload's curves.
struct Panel {
    title: String,
    cpu: Vec<(f64, f64)>,
    gpu: Vec<(f64, f64)>,
    crossover: Option<f64>,
}

impl Panel {
    fn all(report: &BenchReport) -> Vec<Panel> {
        let mut out = Vec::new();
        for w in super::Workload::ALL
            .into_iter()
            .filter(|w| w.is_iterative())
        {
            let sweep = report.sweep && w.sweeps();
            let rows: Vec<&BenchRow> = report
                .rows
                .iter()
                .filter(|r| r.workload == w && r.sweep == sweep)
                .collect();
            let series = |backend: &str| {
                let mut v: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.backend == backend)
                    .filter_map(|r| r.samples_per_sec().map(|s| (r.batch as f64, s)))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            let (cpu, gpu) = (series("cpu"), series("gpu"));
            if cpu.is_empty() && gpu.is_empty() {
                continue;
            }
            let crossover = report
                .crossovers
                .iter()
                .find(|c| c.workload == w)
                .and_then(|c| c.batch)
                .map(|b| b as f64);
            // The crossover goes in the legend; the title stays short enough for the
            // 400-pixel panel.
            out.push(Panel {
                title: format!("{} {}", w.id(), w.title()),
                cpu,
                gpu,
                crossover,
            });
        }
        out
    }

    fn draw(
        &self,
        area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        text: bool,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let all = self.cpu.iter().chain(&self.gpu);
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        let (x0, x1, y0, y1) = (x0 / 2.0, x1 * 2.0, y0 / 3.0, y1 * 3.0);
        let mut builder = ChartBuilder::on(area);
        builder.margin(12);
        if text {
            builder
                .caption(&self.title, ("sans-serif", 14))
                .x_label_area_size(36)
                .y_label_area_size(64);
        }
        let mut chart = builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("batch size (rows per step)")
                .y_desc("samples/s")
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .x_labels(6)
                .y_labels(6);
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw()?;
        for (points, color, name) in [(&self.cpu, BLUE, "CPU"), (&self.gpu, RED, "GPU")] {
            let line = chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            if text {
                line.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        if let Some(b) = self.crossover {
            let mark = chart.draw_series(std::iter::once(PathElement::new(
                vec![(b, y0), (b, y1)],
                BLACK.stroke_width(1),
            )))?;
            if text {
                mark.label(format!("crossover: batch {b:.0}"))
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
            }
        }
        if text {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}
