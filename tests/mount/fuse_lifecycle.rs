//! Mounting and unmounting for real: every bad mountpoint refused with its fix (and nothing
//! left mounted), a mount in a child process ended by SIGTERM, SIGINT or `fusermount3 -u`, and
//! the stale mount a killed one leaves.
//!
//! They need root (or fusermount3) and `/dev/fuse`. Under `CI=true` they must run: a missing
//! prerequisite fails loudly instead of skipping.

use crate::core_support;
use crate::fuse_support::*;
use crate::support::{force_unmount, fuse_ready, is_mounted};

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use core_support::*;
use icloudpd_rs::mount::{MountError, MountOptions, Namespace, check_mountpoint, mount};

/// A stale FUSE mount at `dir`: mounted, then its daemon gone (its device fd closed).
fn make_stale_mount(dir: &Path) {
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .unwrap();
    use std::os::fd::AsRawFd;
    let opts = format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd());
    let target = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let opts = std::ffi::CString::new(opts).unwrap();
    // SAFETY: valid C strings; a plain mount(2).
    let rc = unsafe {
        libc::mount(
            c"stale-test".as_ptr(),
            target.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
    drop(dev);
}

#[test]
fn bad_mountpoints_are_refused_with_their_fix() {
    if !fuse_ready() {
        return;
    }
    let try_mount = |dir: &Path| {
        let (ns, _) = Namespace::new(vec![entry("a.jpg", 1, 10)], &[]);
        let cdn_base = "http://127.0.0.1:9".to_string();
        let urls = UrlState::new(&cdn_base);
        let sizes = HashMap::from([(1u64, 10u64)]);
        let cache = tempfile::tempdir().unwrap();
        let (source, _) = cached_source(
            &sizes,
            urls,
            cache.path(),
            1 << 20,
            fetcher_config(Duration::from_secs(1)),
        );
        mount(Arc::new(ns), source, MountOptions::new(dir))
    };
    // How many mounts sit exactly at `path` (other tests mount elsewhere meanwhile).
    let mounts_at = |path: &Path| {
        let want = path.as_os_str().as_bytes().to_vec();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.as_bytes() == want))
            .count()
    };
    let base = tempfile::tempdir().unwrap();

    let missing = base.path().join("missing");
    let e = try_mount(&missing).unwrap_err();
    assert!(matches!(e, MountError::MissingMountpoint(_)), "{e}");
    assert!(e.to_string().contains("mkdir -p"), "{e}");

    let file = base.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        try_mount(&file).unwrap_err(),
        MountError::NotADirectory(_)
    ));

    let full = base.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    assert!(matches!(
        try_mount(&full).unwrap_err(),
        MountError::NotEmpty(_)
    ));

    let taken = base.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    let first = try_mount(&taken).unwrap();
    let e = try_mount(&taken).unwrap_err();
    assert!(matches!(e, MountError::AlreadyMounted { .. }), "{e}");
    assert!(e.to_string().contains("fusermount3 -u"), "{e}");
    first.unmount().unwrap();
    assert!(!is_mounted(&taken.canonicalize().unwrap()));

    let stale = base.path().join("stale");
    std::fs::create_dir(&stale).unwrap();
    let stale = stale.canonicalize().unwrap();
    make_stale_mount(&stale);
    let e = std::fs::metadata(&stale).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::ENOTCONN),
        "the test mount is stale"
    );
    let e = try_mount(&stale).unwrap_err();
    assert!(matches!(e, MountError::StaleMount(_)), "{e}");
    assert!(e.to_string().contains("fusermount3 -u"), "{e}");
    // A folder inside the stale mount: the fix names the mount, not the folder.
    let e = try_mount(&stale.join("2024")).unwrap_err();
    match &e {
        MountError::StaleMount(at) => assert_eq!(at, &stale, "{e}"),
        other => panic!("expected a stale mount, got {other}"),
    }
    assert_eq!(mounts_at(&stale), 1, "only the stale mount, nothing on top");
    let c = std::ffi::CString::new(stale.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }, 0);

    for p in [&file, &full, &taken, &stale] {
        let p = p.canonicalize().unwrap();
        assert_eq!(mounts_at(&p), 0, "{} is left mounted", p.display());
    }
}

/// Not a test on its own: the child process of `unmount_by_sigterm_and_by_fusermount`, which
/// re-runs this binary with `MOUNT_FUSE_CHILD_DIR` set. Without it, it returns at once.
#[test]
fn zz_child_process_entry() {
    let Ok(dir) = std::env::var("MOUNT_FUSE_CHILD_DIR") else {
        return;
    };
    let (ns, _) = Namespace::new(vec![entry("hello/a.jpg", 1, 10)], &[]);
    let urls = UrlState::new("http://127.0.0.1:9");
    let cache = tempfile::tempdir().unwrap();
    let (source, _) = cached_source(
        &HashMap::from([(1u64, 10u64)]),
        urls,
        cache.path(),
        1 << 20,
        fetcher_config(Duration::from_secs(1)),
    );
    let mut handle = mount(Arc::new(ns), source, MountOptions::new(&dir)).unwrap();
    handle.catch_signals();
    println!("READY");
    let code = match handle.run_until_signal() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("run_until_signal: {e}");
            3
        }
    };
    std::process::exit(code);
}

/// Kills the child and clears its mount if the test fails half way.
struct ChildGuard {
    child: std::process::Child,
    mnt: PathBuf,
    /// The child's stdout, kept open: the child must not see a broken pipe.
    stdout: Option<std::io::Lines<BufReader<std::process::ChildStdout>>>,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        force_unmount(&self.mnt);
    }
}

/// Mount a one-file filesystem under `base` in a child process (this binary re-run with
/// `MOUNT_FUSE_CHILD_DIR`); returns once it serves. Its stdout pipe stays open with it.
fn mount_in_a_child(base: &Path) -> (ChildGuard, PathBuf) {
    let mnt = base.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mnt = mnt.canonicalize().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fuse_lifecycle::zz_child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MOUNT_FUSE_CHILD_DIR", &mnt)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard {
        child,
        mnt: mnt.clone(),
        stdout: None,
    };
    let stdout = child.child.stdout.take().unwrap();
    let lines = BufReader::new(stdout).lines();
    // libtest prints its own prefix on the same line.
    let (ready, lines) = within(Duration::from_secs(30), move || {
        let mut lines = lines;
        let ready = lines.any(|l| l.is_ok_and(|l| l.contains("READY")));
        (ready, lines)
    });
    child.stdout = Some(lines);
    assert!(ready, "the child did not mount");
    assert!(is_mounted(&mnt));
    assert!(mnt.join("hello").is_dir());
    (child, mnt)
}

#[test]
fn a_mount_whose_process_was_killed_is_named_stale() {
    if !fuse_ready() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let (mut child, mnt) = mount_in_a_child(base.path());
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    assert!(is_mounted(&mnt), "a killed daemon leaves its mount behind");
    let e = check_mountpoint(&mnt).unwrap_err();
    assert!(matches!(e, MountError::StaleMount(_)), "{e}");
    assert!(e.to_string().contains("fusermount3 -u"), "{e}");
}

#[test]
fn unmount_by_sigterm_and_by_fusermount() {
    if !fuse_ready() {
        return;
    }
    for how in ["SIGTERM", "SIGINT", "fusermount3 -u"] {
        let base = tempfile::tempdir().unwrap();
        let (mut child, mnt) = mount_in_a_child(base.path());
        match how {
            "SIGTERM" | "SIGINT" => {
                let sig = if how == "SIGTERM" {
                    libc::SIGTERM
                } else {
                    libc::SIGINT
                };
                // SAFETY: signalling our own child.
                assert_eq!(unsafe { libc::kill(child.child.id() as i32, sig) }, 0);
            }
            _ => {
                run(Command::new("fusermount3").arg("-u").arg(&mnt));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{how}: the child did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{how}: child exited with {status}");
        assert!(!is_mounted(&mnt), "{how}: still mounted");
    }
}
