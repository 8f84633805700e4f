//! `--notification-script`: a program run when a sync needs attention or ends, with the
//! figures in its environment:
//!
//! | variable | value |
//! |---|---|
//! | `ICLOUDPD_RS_EVENT` | `2fa-needed`, `sync-complete` or `sync-failed` |
//! | `ICLOUDPD_RS_USERNAME` | the Apple ID |
//! | `ICLOUDPD_RS_DIRECTORY` | the download folder |
//! | `ICLOUDPD_RS_DOWNLOADED`, `_SKIPPED`, `_FAILED`, `_TOTAL` | file counts of the run |
//! | `ICLOUDPD_RS_BYTES` | bytes downloaded |
//! | `ICLOUDPD_RS_EXIT_CODE` | the exit code the run ends with |
//! | `ICLOUDPD_RS_MESSAGE` | the summary line or the error |
//!
//! The program is run directly (no shell), with stdin closed and its output on our stderr;
//! it gets [`SCRIPT_TIMEOUT`] before it is killed. A stop asked for meanwhile (Ctrl-C, which
//! does not reach the script's own process group) sends it SIGTERM and gives it
//! [`STOP_GRACE`]. Its failure is a warning, never the run's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::RunReport;

/// How long the script may run.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the script may take to finish once the run is asked to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Signing in needs a two-factor code (run `icloudpd-rs login`).
    TwoFactorNeeded,
    /// A run ended with every file in place.
    SyncComplete,
    /// A run ended with failures, or could not run.
    SyncFailed,
}

impl Event {
    /// The value of `ICLOUDPD_RS_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::TwoFactorNeeded => "2fa-needed",
            Event::SyncComplete => "sync-complete",
            Event::SyncFailed => "sync-failed",
        }
    }
}

/// Everything the script is told.
#[derive(Debug, Clone, Default)]
pub struct Figures<'a> {
    pub username: &'a str,
    pub directory: &'a str,
    pub report: Option<&'a RunReport>,
    pub exit_code: i32,
    pub message: &'a str,
}

/// Run `script` for `event`; an error describes why it did not run or failed. `stopping` says
/// whether the run was asked to stop: a stop asked for while the script runs ends it (a run
/// already stopping still tells the script how it ended).
pub fn run_script(
    script: &Path,
    event: Event,
    figures: &Figures<'_>,
    stopping: &dyn Fn() -> bool,
) -> Result<(), String> {
    run_script_within(script, event, figures, SCRIPT_TIMEOUT, stopping)
}

fn run_script_within(
    script: &Path,
    event: Event,
    figures: &Figures<'_>,
    timeout: Duration,
    stopping: &dyn Fn() -> bool,
) -> Result<(), String> {
    let mut cmd = Command::new(script);
    // The script's output goes to our stderr: our stdout carries results.
    cmd.stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .env("ICLOUDPD_RS_EVENT", event.as_str())
        .env("ICLOUDPD_RS_USERNAME", figures.username)
        .env("ICLOUDPD_RS_DIRECTORY", figures.directory)
        .env("ICLOUDPD_RS_EXIT_CODE", figures.exit_code.to_string())
        .env("ICLOUDPD_RS_MESSAGE", figures.message);
    let r = figures.report;
    let n = |f: fn(&RunReport) -> u64| r.map(f).unwrap_or(0).to_string();
    cmd.env("ICLOUDPD_RS_DOWNLOADED", n(|r| r.downloaded))
        .env("ICLOUDPD_RS_SKIPPED", n(|r| r.skipped))
        .env("ICLOUDPD_RS_FAILED", n(|r| r.failed))
        .env("ICLOUDPD_RS_TOTAL", n(|r| r.total))
        .env("ICLOUDPD_RS_BYTES", n(|r| r.bytes_downloaded));
    // A process group of its own, so that a script stopped at the deadline takes what it
    // started with it (a `sleep`, a `curl`), instead of leaving them behind at every round of
    // a watch.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // A run already stopping still tells the script how it ended: only a stop asked for
    // while the script runs ends it. Asked before the spawn: a stop that comes once the
    // script has started (a busy machine may not run this thread again before it) is one.
    let mut watch_for_stop = !stopping();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let group = libc::pid_t::try_from(child.id()).ok();
    let signal_group = |signal| {
        if let Some(group) = group {
            // SAFETY: signals the process group the child leads (created above).
            unsafe { libc::killpg(group, signal) };
        }
    };
    let mut deadline = Instant::now() + timeout;
    let mut stopped_with_run = false;
    loop {
        match child.try_wait() {
            Ok(Some(_)) if stopped_with_run => {
                return Err(format!("{} was stopped with the run", script.display()));
            }
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} exited with {status}", script.display())),
            Ok(None) if Instant::now() >= deadline => {
                signal_group(libc::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                return Err(if stopped_with_run {
                    format!("{} was stopped with the run", script.display())
                } else {
                    format!(
                        "{} did not finish within {}s and was stopped",
                        script.display(),
                        timeout.as_secs()
                    )
                });
            }
            Ok(None) => {
                if watch_for_stop && stopping() {
                    watch_for_stop = false;
                    stopped_with_run = true;
                    signal_group(libc::SIGTERM);
                    deadline = deadline.min(Instant::now() + STOP_GRACE);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", script.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// An executable shell script `name` in `dir` with `body` after the `#!/bin/sh` line.
    fn executable(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let script = dir.join(name);
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn the_script_sees_the_event_and_the_figures() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let script = executable(
            dir.path(),
            "notify.sh",
            &format!(
                "echo \"$ICLOUDPD_RS_EVENT $ICLOUDPD_RS_DOWNLOADED $ICLOUDPD_RS_EXIT_CODE $ICLOUDPD_RS_MESSAGE\" > {}",
                out.display()
            ),
        );
        let figures = Figures {
            username: "a@b.c",
            directory: "/p",
            report: None,
            exit_code: 3,
            message: "code needed",
        };
        run_script(&script, Event::TwoFactorNeeded, &figures, &|| false).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.trim(), "2fa-needed 0 3 code needed");
    }

    #[test]
    fn a_script_stopped_at_the_deadline_takes_what_it_started_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = executable(
            dir.path(),
            "hang.sh",
            &format!("sleep 300 &\necho $! > {}\nwait", pid_file.display()),
        );
        let e = run_script_within(
            &script,
            Event::SyncComplete,
            &Figures::default(),
            Duration::from_millis(700),
            &|| false,
        )
        .unwrap_err();
        assert!(e.contains("was stopped"), "{e}");
        let sleep_pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = format!("/proc/{}/stat", sleep_pid.trim());
        let deadline = Instant::now() + Duration::from_secs(5);
        // Gone, or a zombie waiting for init to reap it.
        while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(Instant::now() < deadline, "the script's child still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_stop_asked_for_ends_the_script_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let script = executable(dir.path(), "slow.sh", "sleep 300");
        let started = Instant::now();
        let stop_at = started + Duration::from_millis(300);
        let e = run_script(&script, Event::SyncComplete, &Figures::default(), &|| {
            Instant::now() >= stop_at
        })
        .unwrap_err();
        assert!(e.contains("stopped with the run"), "{e}");
        // SIGTERM ends `sleep` at once; the grace is only for scripts that ignore it.
        assert!(
            started.elapsed() < SCRIPT_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_run_that_was_stopped_still_tells_the_script_in_full() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let script = executable(
            dir.path(),
            "late.sh",
            &format!("sleep 0.3\ntouch {}", done.display()),
        );
        run_script(&script, Event::SyncFailed, &Figures::default(), &|| true).unwrap();
        assert!(done.exists());
    }

    #[test]
    fn a_failing_or_missing_script_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let e = run_script(
            &dir.path().join("nope"),
            Event::SyncComplete,
            &Figures::default(),
            &|| false,
        )
        .unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        let script = executable(dir.path(), "fail.sh", "exit 4");
        let e = run_script(&script, Event::SyncFailed, &Figures::default(), &|| false).unwrap_err();
        assert!(e.contains("exit"), "{e}");
    }
}
