//! Real kernel mounts seen through the tools users run: `ls -lR`, `find`, `stat`, `rsync` over
//! a namespace of thousands of files whose bytes come from a local test CDN; live updates
//! reaching the kernel.
//!
//! They need root (or fusermount3) and `/dev/fuse`. Under `CI=true` they must run: a missing
//! prerequisite fails loudly instead of skipping.

use crate::core_support;
use crate::fuse_support::*;
use crate::support::fuse_ready;

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use core_support::*;
use icloudpd_rs::mount::Entry;

#[test]
fn listing_stat_and_bytes_of_a_few_thousand_files() {
    if !fuse_ready() {
        return;
    }
    let mut files = library(2000, 1, |i| 1 + (i * 7919) % (48 * KIB));
    files.extend(library(4, 10_000, |i| 3 * MIB + i * 1000));
    let m = Mounted::new(files, Duration::from_secs(20));
    let n = m.files.len();

    let listing = run(Command::new("ls").arg("-lR").arg(&m.mnt));
    assert_eq!(listing.lines().filter(|l| l.contains("IMG_")).count(), n);
    let found = run(Command::new("find").arg(&m.mnt).args(["-type", "f"]));
    assert_eq!(found.lines().count(), n);
    let dirs = run(Command::new("find").arg(&m.mnt).args(["-type", "d"]));
    assert!(dirs.lines().any(|l| l.ends_with("/Albums")));

    for f in &m.files {
        let md = std::fs::metadata(m.path(f)).unwrap();
        assert!(md.is_file());
        assert_eq!(md.len(), f.size, "{}", f.path);
        assert_eq!(md.mtime() as u64, 1_600_000_000 + f.id, "{}", f.path);
        assert_eq!(md.permissions().mode() & 0o7777, 0o444);
        assert_eq!(md.blocks(), f.size.div_ceil(512));
        assert_eq!(md.nlink(), 1);
    }
    let root = std::fs::metadata(&m.mnt).unwrap();
    assert_eq!(root.permissions().mode() & 0o7777, 0o555);
    // `stat` agrees (a different code path: statx from another process).
    let f = &m.files[17];
    let out = run(Command::new("stat").args(["-c", "%s %Y %a"]).arg(m.path(f)));
    assert_eq!(
        out.trim(),
        format!("{} {} 444", f.size, 1_600_000_000 + f.id)
    );

    for f in &m.files {
        let bytes = std::fs::read(m.path(f)).unwrap();
        assert!(bytes == content(f.id, f.size), "bytes of {}", f.path);
    }
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    assert_eq!(m.cdn.bytes(), total, "every byte fetched exactly once");

    // statfs.
    let c = std::ffi::CString::new(m.mnt.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    assert_eq!(st.f_files as usize, n);
    assert_eq!(st.f_bfree, 0);
    assert_eq!(st.f_namemax, 255);
    assert_eq!(st.f_blocks as u64, total.div_ceil(st.f_frsize as u64));
    assert_ne!(st.f_flag & libc::ST_RDONLY, 0);

    // Read-only: every kind of modification is EROFS.
    let erofs = |r: std::io::Result<()>| {
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    };
    erofs(std::fs::write(m.mnt.join("new.jpg"), b"x"));
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(m.path(f))
            .map(drop),
    );
    erofs(std::fs::create_dir(m.mnt.join("newdir")));
    erofs(std::fs::remove_file(m.path(f)));
    erofs(std::fs::rename(m.path(f), m.mnt.join("moved.jpg")));
    erofs(std::fs::set_permissions(
        m.path(f),
        std::fs::Permissions::from_mode(0o644),
    ));

    // Extended attributes.
    let p = std::ffi::CString::new(m.path(f).as_os_str().as_bytes()).unwrap();
    let name = c"user.icloud.asset_id";
    let mut buf = [0u8; 64];
    // SAFETY: valid path, name and buffer.
    let n = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n as usize], format!("ASSET-{}", f.id).as_bytes());
    // SAFETY: as above; size 0 asks for the length.
    let n0 = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    assert_eq!(n0, n);
    let mut small = [0u8; 2];
    // SAFETY: as above.
    let r = unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), small.as_mut_ptr().cast(), 2) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ERANGE)
    );
    // No SELinux labels or ACLs here: EOPNOTSUPP (so `ls -l` stops asking).
    // SAFETY: as above.
    let r = unsafe {
        libc::getxattr(
            p.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
}

/// Relative path -> (size, mtime, bytes) of every file under `root`.
fn snapshot(root: &Path) -> HashMap<PathBuf, (u64, i64, Vec<u8>)> {
    let mut out = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(
                    rel,
                    (md.len(), md.mtime(), std::fs::read(e.path()).unwrap()),
                );
            }
        }
    }
    out
}

#[test]
fn rsync_copies_the_tree_then_copies_nothing() {
    if !fuse_ready() {
        return;
    }
    let mut files = library(400, 1, |i| 1 + (i * 104_729) % (200 * KIB));
    files.extend(library(2, 5000, |_| 2 * MIB + 3));
    let m = Mounted::new(files, Duration::from_secs(20));
    let dest = tempfile::tempdir().unwrap();
    let src = format!("{}/", m.mnt.display());
    run(Command::new("rsync").arg("-a").arg(&src).arg(dest.path()));
    let copied = snapshot(dest.path());
    assert_eq!(copied.len(), m.files.len());
    for f in &m.files {
        let (size, mtime, bytes) = &copied[Path::new(&f.path)];
        assert_eq!(*size, f.size);
        assert_eq!(*mtime as u64, 1_600_000_000 + f.id);
        assert!(*bytes == content(f.id, f.size), "{}", f.path);
    }
    assert!(dest.path().join("Albums").is_dir());

    let requests = m.cdn.requests();
    let stats = run(Command::new("rsync")
        .args(["-a", "--stats"])
        .arg(&src)
        .arg(dest.path()));
    assert!(
        stats.contains("Number of regular files transferred: 0"),
        "second rsync transferred something:\n{stats}"
    );
    assert_eq!(m.cdn.requests(), requests, "second rsync made CDN requests");
}

#[test]
fn live_updates_reach_the_kernel() {
    if !fuse_ready() {
        return;
    }
    let files: Vec<TestFile> = (1..=3)
        .map(|id| TestFile {
            path: format!("day/{id}.jpg"),
            id,
            size: 1000 + id,
        })
        .collect();
    let m = Mounted::new(files, Duration::from_secs(10));
    let day = m.mnt.join("day");
    let names = || {
        let mut v: Vec<String> = std::fs::read_dir(&day)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(), vec!["1.jpg", "2.jpg", "3.jpg"]);
    // The kernel now caches the listing and a negative entry for 4.jpg.
    assert!(std::fs::metadata(day.join("4.jpg")).is_err());
    let ino1 = std::fs::metadata(day.join("1.jpg")).unwrap().ino();

    let mut entries: Vec<Entry> = vec![entry("day/1.jpg", 1, 1001), entry("day/2.jpg", 2, 1002)];
    entries.push(entry("day/4.jpg", 4, 1004));
    // Only the namespace changes here: the bytes of file 4 are never read.
    let skipped = m.handle().apply(entries, &["Albums".to_string()]);
    assert!(skipped.is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while names() != vec!["1.jpg", "2.jpg", "4.jpg"] {
        assert!(Instant::now() < deadline, "listing still {:?}", names());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::metadata(day.join("4.jpg")).unwrap().len(), 1004);
    assert!(std::fs::metadata(day.join("3.jpg")).is_err());
    assert_eq!(std::fs::metadata(day.join("1.jpg")).unwrap().ino(), ino1);
    assert!(std::fs::read(day.join("1.jpg")).unwrap() == content(1, 1001));
}
