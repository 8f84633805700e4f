//! Graceful shutdown on SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session).
//!
//! The first signal stops the run from starting new files; files in flight get
//! [`GRACE`] to finish, after which they are dropped (their partial files stay and the next
//! run resumes them). State is flushed either way. A second signal exits at once with
//! 128 + the signal number, as shells expect.
//!
//! Messages are written with errors ignored: after a SIGHUP the terminal is usually gone, and
//! a failed write must not stop the shutdown (`eprintln!` would panic on EIO/EPIPE).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use super::Stopper;

/// How long files in flight may take to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(10);

/// The signal that stopped the run (0 while none arrived).
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<AtomicI32>);

impl Received {
    /// The signal number, if one arrived.
    pub fn signal(&self) -> Option<i32> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The exit code a process stopped by it should return (128 + signal).
    pub fn exit_code(&self) -> Option<i32> {
        self.signal().map(|n| 128 + n)
    }
}

/// Listen for SIGINT, SIGTERM and SIGHUP on the current runtime and stop `stopper` as described in the
/// module docs.
pub fn install(stopper: Stopper, grace: Duration) -> std::io::Result<Received> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let received = Received::default();
    let slot = received.0.clone();
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
        };
        slot.store(first, Ordering::Relaxed);
        let _ = writeln!(
            std::io::stderr(),
            "icloudpd-rs: stopping: finishing the files in flight (up to {}s; signal again to quit now)",
            grace.as_secs()
        );
        stopper.stop();
        let timer = stopper.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            timer.abort();
        });
        let second = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
        };
        let _ = writeln!(std::io::stderr(), "icloudpd-rs: quitting now");
        std::process::exit(128 + second);
    });
    Ok(received)
}
