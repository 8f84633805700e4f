//! Sign-in at a terminal (a pseudo-terminal): prompts, answers typed in, signals at a prompt.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cli::{BIN, sim, two_factor};
use crate::pty::Pty;

/// Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) at the hidden password prompt: the process dies of the
/// signal, as shells expect (130 for Ctrl-C), and the terminal echoes again (it was left with
/// echo off: the guard's Drop never runs when a signal kills the process).
#[test]
fn a_signal_at_the_password_prompt_leaves_the_terminal_echoing() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut pty = Pty::open();
        assert!(pty.echo_on());
        let data = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(BIN);
        // No password source and a terminal: the prompt comes before any request (port 9 is
        // never reached).
        cmd.args([
            "login",
            "-u",
            "x@example.com",
            "--endpoint",
            "http://127.0.0.1:9",
            "--data-dir",
            &data.path().to_string_lossy(),
        ])
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUD_PASSWORD")
        .env_remove("ICLOUDPD_RS_ENDPOINT")
        .env_remove("RUST_LOG");
        let mut child = pty.spawn(&mut cmd);
        pty.read_until("Password for x@example.com: ", Duration::from_secs(60));
        // The prompt is written just before echo goes off.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pty.echo_on() {
            assert!(std::time::Instant::now() < deadline, "echo never went off");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = wait_child(&mut child, Duration::from_secs(30));
        assert_eq!(status.signal(), Some(signal), "signal {signal}: {status}");
        assert!(
            pty.echo_on(),
            "signal {signal} at the password prompt left the terminal with echo off"
        );
    }
}

/// The child's exit status, within `limit` (else it is killed and the test fails).
fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// On a terminal, `sync` asks for the password and the two-factor code as icloudpd does (and
/// `login` does), then downloads.
#[test]
fn sync_on_a_terminal_asks_for_the_password_and_the_code() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    let photos = tempfile::tempdir().expect("tempdir");
    let mut pty = Pty::open();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "sync",
        "-u",
        &acct.username,
        "--endpoint",
        sim.endpoint(),
        "--data-dir",
        &data.path().to_string_lossy(),
        "-d",
        &photos.path().to_string_lossy(),
        "--no-progress-bar",
    ])
    .env_remove("ICLOUD_USERNAME")
    .env_remove("ICLOUD_PASSWORD")
    .env_remove("ICLOUDPD_RS_ENDPOINT")
    .env_remove("RUST_LOG");
    let mut child = pty.spawn(&mut cmd);
    pty.read_until(
        &format!("Password for {}: ", acct.username),
        Duration::from_secs(60),
    );
    // Typed once echo is off, as a person would after the prompt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pty.echo_on() {
        assert!(std::time::Instant::now() < deadline, "echo never went off");
        std::thread::sleep(Duration::from_millis(10));
    }
    pty.type_in(&format!("{}\n", acct.password));
    pty.read_until("Enter the 6-digit code", Duration::from_secs(60));
    pty.type_in(&format!("{}\n", acct.two_factor_code));
    let status = wait_child(&mut child, Duration::from_secs(120));
    let shown = pty.read_until("", Duration::from_secs(1));
    assert!(status.success(), "{status}: {shown}");
    assert!(
        !shown.contains(&acct.password),
        "the password was echoed: {shown}"
    );
    // Five assets (some with a live photo's video too), all downloaded.
    assert!(walk(photos.path()) >= 5, "{shown}");
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}
