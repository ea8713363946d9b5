//! Progress of `dk apply` / `dk destroy` on stderr: one log line per finished change (always),
//! plus an `indicatif` bar below them when stderr is a terminal (never when `TERM=dumb`; without
//! colors when `NO_COLOR` is set). Progress and logs go to stderr so stdout keeps the plan and the
//! summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a progress bar may be drawn: stderr is a terminal and `TERM` is not `dumb`.
pub fn bar_enabled() -> bool {
    std::io::stderr().is_terminal() && !matches!(std::env::var("TERM").as_deref(), Ok("dumb"))
}

/// Colors on stderr: a terminal and `NO_COLOR` unset or empty.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// The apply progress reporter.
pub struct ApplyProgress {
    bar: Option<ProgressBar>,
}

impl ApplyProgress {
    /// A reporter for `total` changes; draws a bar only when [`bar_enabled`].
    pub fn new(total: usize) -> Self {
        let bar = bar_enabled().then(|| {
            let template = if color_stderr() {
                "{spinner:.green} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} changes"
            } else {
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} changes"
            };
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        ApplyProgress { bar }
    }

    /// A change finished: its log line, printed above the bar when there is one.
    pub fn finished(&self, line: &str) {
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar (the log lines stay).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for ApplyProgress {
    fn drop(&mut self) {
        self.finish();
    }
}
