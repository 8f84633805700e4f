//! The progress bar of `sync` on a terminal, and the log writer that keeps log lines from
//! breaking it: while a bar is shown, each log line (and each line a command prints with
//! [`suspend`]) is written with the bar cleared, then the bar is drawn again below it.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::mirror::LiveCounters;

/// The bar on screen, if any: log lines go above it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Run `f` (which prints) with the progress bar, if one is shown, cleared meanwhile.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match active() {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

/// Where `tracing` writes: stderr, above the progress bar when one is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::with_capacity(256))
    }
}

/// One log event, buffered so that it reaches the terminal in one piece when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        emit(active().as_ref(), &mut std::io::stderr().lock(), &self.0);
    }
}

/// Write `bytes` to `out`, with `bar` cleared meanwhile when there is one.
fn emit(bar: Option<&ProgressBar>, out: &mut dyn Write, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut write = || {
        // A log line that cannot be written has nowhere else to go.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    };
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Where a run stands, as the bar shows it.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    planned: u64,
    downloaded: u64,
    failed: u64,
    skipped: u64,
    bytes: u64,
}

/// Draws [`Figures`] on a bar: a spinner until the first file is planned (there is no total
/// yet, and an empty 0/0 bar would be drawn full), then the bar.
struct RunView {
    bar: ProgressBar,
    /// The bar's style, until it replaces the spinner.
    counting: Option<ProgressStyle>,
}

impl RunView {
    fn new(bar: &ProgressBar) -> RunView {
        let waiting = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(waiting);
        bar.set_message("listing and planning");
        RunView {
            bar: bar.clone(),
            counting: Some(
                ProgressStyle::with_template("{bar:30} {pos}/{len} files {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        }
    }

    fn show(&mut self, f: Figures) {
        let done = f.downloaded + f.failed + f.skipped;
        if f.planned == 0 && done == 0 {
            self.bar.tick();
            return;
        }
        if let Some(style) = self.counting.take() {
            self.bar.set_style(style);
        }
        self.bar.set_length(f.planned.max(done));
        self.bar.set_position(done);
        self.bar.set_message(format!(
            "({} downloaded, {} failed, {:.1} MB)",
            f.downloaded,
            f.failed,
            f.bytes as f64 / 1e6
        ));
    }
}

/// The progress bar on stderr: files and bytes, redrawn a few times a second.
pub struct ProgressLine {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ProgressLine {
    /// Show a bar that follows `counters` (call inside the runtime).
    pub fn start(counters: LiveCounters) -> ProgressLine {
        let bar = ProgressBar::new(0);
        let mut view = RunView::new(&bar);
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        let ticker = tokio::spawn(async move {
            loop {
                let c = counters.current();
                view.show(Figures {
                    planned: c.planned.load(Ordering::Relaxed),
                    downloaded: c.downloaded.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    skipped: c.skipped(),
                    bytes: c.bytes.load(Ordering::Relaxed),
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ProgressLine { bar, ticker }
    }

    /// Remove the bar; log lines go straight to stderr again.
    pub fn finish(self) {
        self.ticker.abort();
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

    use super::{Figures, RunView, emit};

    /// A terminal that records what is done to it, and what the log writes, in order.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, event: String) -> std::io::Result<()> {
            self.0.lock().unwrap().push(event);
            Ok(())
        }

        fn events(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        /// A screen and a bar of `len` drawn on it.
        fn with_bar(len: u64) -> (Screen, ProgressBar) {
            let screen = Screen::default();
            let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
            (
                screen.clone(),
                ProgressBar::with_draw_target(Some(len), target),
            )
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("down {n}"))
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("clear".into())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl std::io::Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(buf).trim_end()))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_written_with_the_bar_cleared_then_the_bar_comes_back_below() {
        let (screen, bar) = Screen::with_bar(10);
        bar.set_style(ProgressStyle::with_template("files {pos}/{len}").unwrap());
        bar.set_position(3);
        bar.tick();
        let drawn = |events: &[String]| events.iter().any(|e| e.contains("files 3/10"));
        assert!(drawn(&screen.events()), "{:?}", screen.events());

        let mut out = screen.clone();
        emit(Some(&bar), &mut out, b"INFO first download started\n");
        let events = screen.events();
        let log = events
            .iter()
            .position(|e| e == "log INFO first download started")
            .unwrap_or_else(|| panic!("{events:?}"));
        let before = &events[..log];
        let last_bar = before
            .iter()
            .rposition(|e| e.contains("files 3/10"))
            .unwrap();
        assert!(
            before[last_bar..].iter().any(|e| e == "clear"),
            "the bar was not cleared before the log line: {events:?}"
        );
        assert!(
            drawn(&events[log + 1..]),
            "the bar is not drawn again below the log line: {events:?}"
        );

        // Without a bar the line goes straight out.
        let plain = Screen::default();
        emit(None, &mut plain.clone(), b"WARN x\n");
        assert_eq!(plain.events(), ["log WARN x"]);
    }

    #[test]
    fn a_spinner_until_a_file_is_planned_then_the_bar() {
        let (screen, bar) = Screen::with_bar(0);
        let mut view = RunView::new(&bar);
        view.show(Figures::default());
        let events = screen.events();
        assert!(
            events.iter().any(|e| e.contains("listing and planning")),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| e.contains("0/0") || e.contains('█')),
            "no total yet, so no bar: {events:?}"
        );
        view.show(Figures {
            planned: 5,
            downloaded: 2,
            bytes: 3_000_000,
            ..Figures::default()
        });
        let events = screen.events();
        assert!(
            events
                .iter()
                .any(|e| e.contains("2/5 files (2 downloaded, 0 failed, 3.0 MB)")),
            "{events:?}"
        );
    }
}
