//! Progress of long operator work (`replay`, `redrive`): a live line with counts and rate
//! (indicatif) when standard error is a terminal, and plain lines at most every
//! [`PLAIN_EVERY`] when it is not (a CI log, a pipe), so neither floods nor stays silent.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a plain progress line is written when standard error is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

enum Mode {
    Hidden,
    Bar(ProgressBar),
    Plain { last: Mutex<Instant> },
}

pub struct Progress {
    label: String,
    started: Instant,
    mode: Mode,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise. `total`: the items expected, if known.
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        let mode = if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let template = match total {
                Some(_) => "{prefix} {bar:30} {pos}/{len} {per_sec} {msg} [{elapsed}]",
                None => "{prefix} {spinner} {pos} {per_sec} {msg} [{elapsed}]",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            Mode::Bar(bar)
        } else {
            Mode::Plain {
                last: Mutex::new(Instant::now()),
            }
        };
        Progress {
            label: label.to_string(),
            started: Instant::now(),
            mode,
        }
    }

    /// No output (nested work, tests).
    pub fn hidden() -> Progress {
        Progress {
            label: String::new(),
            started: Instant::now(),
            mode: Mode::Hidden,
        }
    }

    /// `items` done so far, with what they amount to (`"3,400 records, 3,398 put"`).
    pub fn update(&self, items: u64, unit: &str, message: impl FnOnce() -> String) {
        match &self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => {
                bar.set_position(items);
                bar.set_message(format!("{unit}; {}", message()));
            }
            Mode::Plain { last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(items, unit, &message()));
                }
            }
        }
    }

    /// The plain progress line: label, items and their rate, the message, elapsed time.
    fn line(&self, items: u64, unit: &str, message: &str) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { items as f64 / secs } else { 0.0 };
        format!(
            "{}: {items} {unit} ({rate:.1}/s), {message} [{secs:.0} s]",
            self.label
        )
    }

    /// Ends the bar (the caller prints the summary).
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_items_rate_and_what_they_amount_to() {
        let p = Progress {
            label: "replay travelpayouts".into(),
            started: Instant::now() - Duration::from_secs(10),
            mode: Mode::Hidden,
        };
        let line = p.line(50, "answers", "1200 records, 1200 put");
        assert!(
            line.starts_with("replay travelpayouts: 50 answers (5.0/s), 1200 records, 1200 put ["),
            "{line}"
        );
    }
}
