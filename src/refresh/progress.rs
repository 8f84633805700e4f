//! The enumeration progress line: assets listed / expected, on stderr when it is a terminal,
//! nothing otherwise (logs and pipes stay clean).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress line, or nothing.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A line for listing `zone` when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool, zone: &str, expected: Option<u64>) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = match expected {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        };
        let style =
            ProgressStyle::with_template("{msg} {human_pos}/{human_len} assets [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(format!("Listing {zone}:"));
        Progress { bar: Some(bar) }
    }

    /// Count `n` more assets.
    pub fn add(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Remove the line.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
