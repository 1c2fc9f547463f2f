//! The per-epoch progress bar of `gradflow train`, fed by `Trainer::with_progress`.
//!
//! Drawn on standard error, and only when standard error is a terminal: piped or
//! redirected output (and `--json` consumers) see nothing of it.

use std::io::IsTerminal;

use gradflow::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `epochs` steps, hidden when standard error is not a terminal.
pub fn epoch_bar(epochs: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30.cyan/blue}] epoch {pos}/{len} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// The callback for `Trainer::with_progress`: moves `bar` to the epoch just synced and
/// shows its loss and the throughput so far.
pub fn callback(bar: ProgressBar) -> impl Fn(Progress) + Send + Sync + 'static {
    move |p: Progress| {
        bar.set_position(p.epoch as u64 + 1);
        bar.set_message(format!(
            "loss {:.4e} · {} samples/s",
            p.loss,
            human(p.samples_per_sec)
        ));
    }
}

/// `1234567.0` → `1.23 M`.
pub fn human(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}
