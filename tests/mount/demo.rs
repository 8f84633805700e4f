//! `icloudpd-rs demo`: starts, mounts a simulated library, serves listings and bytes, and on
//! Ctrl-C leaves nothing mounted and no temporary folder behind.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Start `demo` with `args`; wait for its guide; returns the child with its output, the
/// mountpoint and the demo's scratch folder it printed.
fn start_demo(args: &[&str]) -> (Mounted, PathBuf, PathBuf) {
    let mut child = demo_command(args).env("RUST_LOG", "warn").spawn().unwrap();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mnt, mirror) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "demo exited with {status}:\n{}\n{}",
                take(&stdout),
                take(&stderr)
            );
        }
        let out = take(&stdout);
        if out.contains("Ctrl-C stops everything") {
            let field = |label: &str| {
                out.lines()
                    .find_map(|l| l.trim().strip_prefix(label))
                    .map(|rest| PathBuf::from(rest.trim().split(" (").next().unwrap().trim()))
                    .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
            };
            break (field("Mounted at:"), field("Demo data:"));
        }
        if Instant::now() >= deadline {
            // Not left running (and mounted) behind the failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("demo not ready:\n{}", take(&stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        Mounted {
            child: Some(child),
            mnt: mnt.clone(),
            stdout,
            stderr,
        },
        mnt,
        mirror,
    )
}

fn first_file(root: &Path) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                return e.path();
            }
        }
    }
    panic!("no file under {root:?}");
}

#[test]
fn demo_mounts_serves_and_cleans_up_on_ctrl_c() {
    if !fuse_ready() {
        return;
    }
    // A mountpoint the demo creates, with a missing parent (and removes again, both).
    let base = tempfile::tempdir().unwrap();
    let wanted = base.path().join("new").join("photos");
    let (demo, mnt, scratch) = start_demo(&[
        wanted.to_str().unwrap(),
        "--assets",
        "150",
        "--size-scale",
        "0.001",
    ]);
    assert_eq!(mnt, wanted);
    assert!(is_mounted(&mnt.canonicalize().unwrap()));
    let top: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(top.iter().any(|n| n == "Albums"), "{top:?}");
    assert!(
        top.iter().any(|n| n.len() == 4 && n.parse::<u32>().is_ok()),
        "{top:?}"
    );
    let file = first_file(&mnt.join(top.iter().find(|n| n.parse::<u32>().is_ok()).unwrap()));
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len() as u64, file.metadata().unwrap().len());
    assert!(bytes.len() >= 1024);
    assert!(scratch.join("mirror").is_dir(), "the mirror folder");
    run_the_guide(&take(&demo.stdout));

    let (code, err) = demo.stop_with(libc::SIGINT);
    assert_eq!(code, 0, "{err}");
    assert!(!is_mounted(&mnt), "left mounted");
    assert!(!scratch.exists(), "{scratch:?} left behind");
    assert!(!mnt.exists(), "the mountpoint it created is removed");
    assert!(!base.path().join("new").exists(), "its parent too");
}

/// A mountpoint that cannot be used is refused at once, before the library is generated.
#[test]
fn demo_refuses_an_unusable_mountpoint_before_starting() {
    let base = tempfile::tempdir().unwrap();
    let full = base.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep.txt"), b"mine").unwrap();
    let a_file = base.path().join("file");
    std::fs::write(&a_file, b"x").unwrap();
    for (mountpoint, says) in [
        (full.clone(), "not empty"),
        (
            a_file.join("sub").join("mnt"),
            "cannot create the mountpoint",
        ),
    ] {
        let out = demo_command(&[mountpoint.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mountpoint:?}: {err}");
        assert!(err.contains(says), "{mountpoint:?}: {err}");
        assert!(
            !err.contains("generating"),
            "{mountpoint:?}: started: {err}"
        );
    }
    assert_eq!(std::fs::read(full.join("keep.txt")).unwrap(), b"mine");
}

/// Every command the guide suggests works as printed (but opening a file manager).
fn run_the_guide(guide: &str) {
    let commands: Vec<&str> = guide
        .lines()
        .skip_while(|l| !l.starts_with("Try, in another terminal:"))
        .skip(1)
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('#'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with("xdg-open "))
        .collect();
    assert!(commands.len() >= 7, "{guide}");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    for cmd in commands {
        let tool = cmd.split_whitespace().next().unwrap();
        if !tool_exists(tool) && !ci {
            eprintln!("not trying {cmd:?}: no {tool} here");
            continue;
        }
        let out = Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {cmd}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // Copies print nothing; every other suggestion shows something.
        if !matches!(tool, "cp" | "rsync") {
            assert!(!out.stdout.is_empty(), "{cmd}: no output");
        }
        if tool == "getfattr" {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("user.icloud.asset_id="), "{text}");
        }
    }
}

#[test]
fn demo_without_a_mountpoint_uses_and_removes_a_temporary_one() {
    if !fuse_ready() {
        return;
    }
    let (demo, mnt, scratch) =
        start_demo(&["--assets", "60", "--size-scale", "0.001", "--no-mirror"]);
    assert!(is_mounted(&mnt));
    assert!(mnt.starts_with(&scratch) && scratch.starts_with(std::env::temp_dir()));
    assert!(!scratch.join("mirror").exists());
    let (code, err) = demo.stop_with(libc::SIGTERM);
    assert_eq!(code, 0, "{err}");
    assert!(!is_mounted(&mnt));
    assert!(!scratch.exists(), "temporary folders left behind");
}

/// Start `demo` with `args` and the default log level, its output on non-blocking pipes read
/// by the caller (`read_some`), so that the test can close them as a closed terminal does.
fn spawn_demo_on_pipes(
    args: &[&str],
) -> (
    std::process::Child,
    std::process::ChildStdout,
    std::process::ChildStderr,
) {
    use std::os::fd::AsRawFd;
    let mut child = demo_command(args).env_remove("RUST_LOG").spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
        // SAFETY: fcntl on a pipe this process owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    (child, stdout, stderr)
}

/// Append what `pipe` has now to `into` (without waiting).
/// Read a running demo's output until `done(stdout, stderr)` holds, within `secs` seconds;
/// the output read so far.
fn read_until(
    child: &mut std::process::Child,
    (stdout, stderr): (
        &mut std::process::ChildStdout,
        &mut std::process::ChildStderr,
    ),
    secs: u64,
    done: impl Fn(&str, &str) -> bool,
) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(&out, &err) {
        read_some(stdout, &mut out);
        read_some(stderr, &mut err);
        if let Some(status) = child.try_wait().unwrap() {
            panic!("demo exited with {status}:\n{out}\n{err}");
        }
        assert!(
            Instant::now() < deadline,
            "demo not there yet:\n{out}\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (out, err)
}

/// `icloudpd-rs demo ARGS`, its output piped, with no account from the environment.
fn demo_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("demo")
        .args(args)
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUD_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn read_some(pipe: &mut impl std::io::Read, into: &mut String) {
    let mut buf = [0u8; 65536];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => into.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => return, // WouldBlock: nothing more for now
        }
    }
}

/// The demo's scratch folders of the process `pid` (`icloudpd-rs-demo-PID-*` in the temporary
/// folder).
fn scratch_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("icloudpd-rs-demo-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Wait (at most a minute) for `child` to exit; its exit code.
fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not exit after SIGHUP");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Closing the terminal the demo runs in (SIGHUP, and the terminal gone: every later write
/// fails) unmounts it and removes its temporary folder, as Ctrl-C does. The messages it writes
/// after the terminal is gone used to panic before the folder was removed.
#[test]
fn demo_cleans_up_when_its_terminal_closes() {
    if !fuse_ready() {
        return;
    }
    let (mut child, mut stdout, mut stderr) =
        spawn_demo_on_pipes(&["--assets", "150", "--size-scale", "0.001"]);
    let (out, _) = read_until(&mut child, (&mut stdout, &mut stderr), 180, |out, _| {
        out.contains("Ctrl-C stops everything")
    });
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|rest| PathBuf::from(rest.trim().split(" (").next().unwrap().trim()))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"))
    };
    let (mnt, scratch) = (field("Mounted at:"), field("Demo data:"));
    let mounted = Mounted {
        child: None,
        mnt: mnt.clone(),
        stdout: Default::default(),
        stderr: Default::default(),
    }; // unmounts whatever a failed test leaves
    assert!(is_mounted(&mnt));
    assert!(scratch.join("mirror").is_dir());
    // The terminal is gone: nobody reads the demo's output any more.
    drop(stdout);
    drop(stderr);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let code = wait_exit(&mut child);
    assert!(!is_mounted(&mnt), "left mounted");
    assert!(!scratch.exists(), "{scratch:?} left behind");
    assert_eq!(code, Some(0), "unmounted and cleaned up like on Ctrl-C");
    drop(mounted);
}

/// A SIGHUP while the demo is still starting (signing in, listing) removes its temporary
/// folder and exits with 128 + 1, as SIGINT and SIGTERM do (it used to kill it at once).
#[test]
fn demo_cleans_up_when_its_terminal_closes_while_starting() {
    // A slow simulator: signing in and listing take seconds.
    let (mut child, mut stdout, mut stderr) = spawn_demo_on_pipes(&[
        "--assets",
        "300",
        "--size-scale",
        "0.001",
        "--latency",
        "300",
    ]);
    read_until(&mut child, (&mut stdout, &mut stderr), 60, |_, err| {
        err.contains("signing in and listing")
    });
    let scratch = scratch_of(child.id());
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    drop(stdout);
    drop(stderr);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let code = wait_exit(&mut child);
    assert!(!scratch[0].exists(), "{:?} left behind", scratch[0]);
    assert_eq!(code, Some(128 + libc::SIGHUP), "stopped while starting");
}
