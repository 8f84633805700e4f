//! `demo MOUNTPOINT` with a bare relative name (`demo dmnt`): the folder is created in the
//! working directory, as `./dmnt` is, and removed again when the demo stops.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Start `demo ARGS` in `cwd`; returns once its guide is printed.
fn start_demo_in(cwd: &Path, mnt: &Path, args: &[&str]) -> Mounted {
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .current_dir(cwd)
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUD_PASSWORD")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Mounted {
        stdout: drain(child.stdout.take()),
        stderr: drain(child.stderr.take()),
        child: Some(child),
        mnt: mnt.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !take(&demo.stdout).contains("Ctrl-C stops everything") {
        let exited = demo.child.as_mut().unwrap().try_wait().unwrap().is_some();
        assert!(
            !exited && Instant::now() < deadline,
            "demo not ready:\n{}\n{}",
            take(&demo.stdout),
            take(&demo.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    demo
}

#[test]
fn demo_creates_a_bare_relative_mountpoint_and_removes_it() {
    if !fuse_ready() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let cwd_path = cwd.path().canonicalize().unwrap();
    let mnt = cwd_path.join("dmnt");
    let demo = start_demo_in(
        &cwd_path,
        &mnt,
        &[
            "dmnt",
            "--assets",
            "40",
            "--size-scale",
            "0.001",
            "--no-mirror",
        ],
    );
    let out = take(&demo.stdout);
    assert!(
        out.contains(&format!("Mounted at: {}", mnt.display())),
        "{out}"
    );
    assert!(is_mounted(&mnt), "{out}");
    assert!(mnt.join("Albums").is_dir());

    let (code, err) = demo.stop_with(libc::SIGINT);
    assert_eq!(code, 0, "{err}");
    assert!(!is_mounted(&mnt), "left mounted");
    assert!(!mnt.exists(), "the mountpoint it created is removed");
    assert!(cwd_path.is_dir(), "the working directory stays");
}
