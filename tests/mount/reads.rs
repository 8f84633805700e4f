//! Reads through a real mount of the simulator, checked byte for byte against a `sync -d`
//! copy: many concurrent readers, random offsets, the thumbnailer pattern; then CDN faults,
//! expired URLs and a vanished network, where a read gives the right bytes or EIO within its
//! bound, never wrong bytes, and the cache never keeps a damaged block.

use crate::support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// (relative path, size) of every date-tree file of the reference copy, in name order.
fn files(reference: &Path) -> Vec<(String, u64)> {
    tree_sizes(reference).into_iter().collect()
}

fn tree_sizes(root: &Path) -> BTreeMap<String, u64> {
    tree(root, false)
        .into_iter()
        .map(|(p, (size, _, _))| (p, size))
        .collect()
}

/// A small deterministic generator for offsets.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Run `f(i)` for i in 0..n on `threads` threads.
fn parallel(threads: usize, n: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= n {
                        return;
                    }
                    f(i);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("reader thread");
    }
}

#[test]
fn concurrent_random_and_thumbnail_reads_return_the_right_bytes() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(1100, 0.015));
    let reference = env.path("reference");
    env.sync(&reference, &[]);
    let list = Arc::new(files(&reference));
    assert!(list.len() >= 1000);
    let mnt = env.empty_dir("mnt");
    let mounted = env.mount(&mnt, &["--poll-interval", "3600"]);
    let (mnt, reference) = (Arc::new(mnt), Arc::new(reference));

    // The thumbnailer pattern: the first 64 KiB of 1,000 files, cold.
    {
        let (list, mnt, reference) = (list.clone(), mnt.clone(), reference.clone());
        parallel(4, 1000, move |i| {
            let (rel, size) = &list[i];
            let want = (*size).min(64 * 1024) as usize;
            let mut got = vec![0u8; want];
            let mut f = std::fs::File::open(mnt.join(rel)).unwrap();
            f.read_exact(&mut got).unwrap();
            let mut expected = vec![0u8; want];
            std::fs::File::open(reference.join(rel))
                .unwrap()
                .read_exact(&mut expected)
                .unwrap();
            assert!(got == expected, "{rel}: head differs");
        });
    }

    // 32 readers of the largest file at once.
    let largest = list.iter().max_by_key(|(_, s)| *s).unwrap().0.clone();
    let want = sha256_file(&reference.join(&largest));
    {
        let (mnt, largest, want) = (mnt.clone(), largest.clone(), want.clone());
        parallel(32, 32, move |_| {
            assert_eq!(sha256_file(&mnt.join(&largest)), want, "{largest}");
        });
    }

    // 32 readers over every file.
    {
        let (list, mnt, reference) = (list.clone(), mnt.clone(), reference.clone());
        parallel(32, list.len(), move |i| {
            let rel = &list[i].0;
            assert_eq!(
                sha256_file(&mnt.join(rel)),
                sha256_file(&reference.join(rel)),
                "{rel}"
            );
        });
    }

    // Random offsets and lengths, including past the end.
    {
        let (list, mnt, reference) = (list.clone(), mnt.clone(), reference.clone());
        parallel(8, 800, move |i| {
            let mut rng = Lcg(i as u64 * 7919 + 1);
            let (rel, size) = &list[rng.next() as usize % list.len()];
            let offset = rng.next() % (size + 1024);
            let len = 1 + rng.next() % (300 * 1024);
            let mut got = vec![0u8; len as usize];
            let n = read_at_full(&mnt.join(rel), &mut got, offset);
            let mut expected = vec![0u8; len as usize];
            let m = read_at_full(&reference.join(rel), &mut expected, offset);
            assert_eq!(n, m, "{rel} @{offset}+{len}: length");
            assert!(got[..n] == expected[..m], "{rel} @{offset}+{len}: bytes");
        });
    }
    mounted.finish();
}

/// pread until `buf` is full or the file ends; returns the bytes read.
fn read_at_full(path: &Path, buf: &mut [u8], offset: u64) -> usize {
    let f = std::fs::File::open(path).unwrap();
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => panic!("{path:?} @{offset}: {e}"),
        }
    }
    done
}

/// Read a whole file the way `cat` does; `Ok(bytes)` or the errno of the failed read, and the
/// longest single `read` call.
fn read_whole(path: &Path) -> (Result<Vec<u8>, i32>, Duration) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut longest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let r = f.read(&mut buf);
        longest = longest.max(t.elapsed());
        match r {
            Ok(0) => return (Ok(out), longest),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (Err(e.raw_os_error().unwrap_or(-1)), longest),
        }
    }
}

/// Longest any read may take with `--read-timeout 4`: the bound plus generous slack for a
/// loaded machine. A read past it means a hang, which the mount promises never to have.
const HANG: Duration = Duration::from_secs(4 + 20);

#[test]
fn faults_give_right_bytes_or_eio_and_the_cache_stays_clean() {
    if !fuse_ready() {
        return;
    }
    let mut env = Env::new(small(300, 0.01));
    let reference = env.path("reference");
    env.sync(&reference, &[]);
    let list: Vec<(String, u64)> = files(&reference);
    let mnt = env.empty_dir("mnt");
    let mounted = env.mount(&mnt, &["--poll-interval", "3600", "--read-timeout", "4"]);

    // Two thirds of the files are read under faults; the last third is kept for offline.
    let split = list.len() * 2 / 3;
    let (online, offline) = list.split_at(split);
    env.fault("cdn-reset", 0.3);
    env.fault("url-expire", 0.2);
    env.fault("cdn-stall", 0.05);
    env.fault("cdn-503", 0.1);
    let read_all = |files: &[(String, u64)], must_succeed: bool| -> (usize, usize) {
        let files: Arc<Vec<(String, u64)>> = Arc::new(files.to_vec());
        let (mnt, reference) = (mnt.clone(), reference.clone());
        let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ok2, failed2) = (ok.clone(), failed.clone());
        parallel(8, files.len(), move |i| {
            let rel = &files[i].0;
            let (result, longest) = read_whole(&mnt.join(rel));
            assert!(longest < HANG, "{rel}: a read took {longest:?}");
            match result {
                Ok(bytes) => {
                    let want = std::fs::read(reference.join(rel)).unwrap();
                    assert!(bytes == want, "{rel}: WRONG BYTES returned");
                    ok2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Err(errno) => {
                    assert_eq!(errno, libc::EIO, "{rel}: errno {errno}");
                    assert!(!must_succeed, "{rel}: EIO with a healthy CDN");
                    failed2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        (
            ok.load(std::sync::atomic::Ordering::SeqCst),
            failed.load(std::sync::atomic::Ordering::SeqCst),
        )
    };
    let (ok, _failed) = read_all(online, false);
    assert!(ok > 0, "some reads succeed despite the faults");
    for fault in ["cdn-reset", "url-expire", "cdn-503"] {
        let kind = fault.parse().unwrap();
        assert!(
            env.sim().state().faults.fired(kind) > 0,
            "{fault} never fired"
        );
    }

    // Healthy again: everything reads correctly, including what was cached under faults.
    env.clear_faults();
    let (ok, failed) = read_all(online, true);
    assert_eq!((ok, failed), (online.len(), 0));

    // The network is gone: cached files still read right, others fail with EIO in time,
    // listing works.
    env.stop_sim();
    let (ok, failed) = read_all(online, true);
    assert_eq!((ok, failed), (online.len(), 0), "cached files offline");
    let (ok, failed) = read_all(&offline[..offline.len().min(12)], false);
    assert_eq!(ok, 0, "uncached files cannot be read offline");
    assert!(failed > 0);
    assert_eq!(
        tree_sizes_via_stat(&mnt).len(),
        tree_sizes(&reference).len()
    );
    mounted.finish();
}

/// Paths and sizes of the date tree by `stat` only (no reads).
fn tree_sizes_via_stat(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dir == root && VIEWS.contains(&name.as_str()) {
                continue;
            }
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    meta.len(),
                );
            }
        }
    }
    out
}

#[test]
fn a_mount_starts_offline_from_its_catalog() {
    if !fuse_ready() {
        return;
    }
    let mut env = Env::new(small(40, 0.001));
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--poll-interval", "3600", "--read-timeout", "3"]);
    let all: Vec<String> = tree_sizes_via_stat(&mnt).into_keys().collect();
    let cached = &all[0];
    let want = std::fs::read(mnt.join(cached)).unwrap();
    up.finish();

    // iCloud is gone; the catalog and the cache are still here.
    env.stop_sim();
    let up = env.mount(&mnt, &["--poll-interval", "3600", "--read-timeout", "3"]);
    let err = take(&up.stderr);
    assert!(err.contains("mounting the catalog as it is"), "{err}");
    assert_eq!(
        tree_sizes_via_stat(&mnt).len(),
        all.len(),
        "the whole tree offline"
    );
    assert_eq!(
        std::fs::read(mnt.join(cached)).unwrap(),
        want,
        "cached bytes offline"
    );
    let (result, longest) = read_whole(&mnt.join(&all[all.len() - 1]));
    assert_eq!(result.unwrap_err(), libc::EIO, "uncached bytes need iCloud");
    assert!(longest < HANG);
    up.finish();
}

/// A tmpfs of `bytes` mounted on `path` for the life of the value (the cache's disk).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs on {path:?}");
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

#[test]
fn a_full_cache_disk_is_reported_once_and_the_cache_keeps_what_fits() {
    if !fuse_ready() {
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test as root"
        );
        eprintln!("skipping: mounting a small tmpfs needs root");
        return;
    }
    let env = Env::new(small(60, 0.02));
    let reference = env.path("reference");
    env.sync(&reference, &[]);
    let list = files(&reference);
    let total: u64 = list.iter().map(|(_, size)| size).sum();
    // The disk holds a fraction of the library; --cache-size (10G by default) is far above.
    let disk_bytes = 4 << 20;
    assert!(total > 4 * disk_bytes, "library of {total} bytes");
    let disk = SmallDisk::mount(&env.path("small-disk"), disk_bytes);
    let cache = disk.0.join("cache").display().to_string();
    let mnt = env.empty_dir("mnt");
    let flags = ["--poll-interval", "3600", "--cache-dir", cache.as_str()];
    let up = env.mount(&mnt, &flags);
    for (rel, _) in &list {
        let bytes = std::fs::read(mnt.join(rel)).unwrap();
        assert!(
            bytes == std::fs::read(reference.join(rel)).unwrap(),
            "{rel}: wrong bytes"
        );
    }
    let err = take(&up.stderr);
    up.finish();
    let full = err.matches("the cache's disk is full").count();
    assert_eq!(
        full, 1,
        "one warning for a full disk, not one per block:\n{err}"
    );
    assert!(!err.contains("writing a cache block failed"), "{err}");
    assert!(
        err.lines().filter(|l| l.contains(" WARN ")).count() <= 2,
        "at most the full disk and the index that shares it:\n{err}"
    );

    // The cache kept what fits, on disk: the last file read comes back on a new mount (no
    // memory tier) without a CDN request.
    let (last, _) = list.last().unwrap();
    let up = env.mount(&mnt, &flags);
    let before = env.cdn().0;
    let bytes = std::fs::read(mnt.join(last)).unwrap();
    assert!(bytes == std::fs::read(reference.join(last)).unwrap());
    assert_eq!(env.cdn().0, before, "{last} was served from the cache");
    up.finish();
}

/// `lsattr` (an inode-flags ioctl) and `SEEK_DATA`/`SEEK_HOLE` get their ordinary answers,
/// without a log line each (fuser's defaults warned "[Not Implemented]" at every call).
#[test]
fn ioctls_and_seek_data_are_answered_quietly() {
    use std::os::fd::AsRawFd;
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(5, 0.001));
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--poll-interval", "3600"]);
    let (rel, size) = files(&up.mnt)
        .into_iter()
        .find(|(p, _)| !p.starts_with("Albums"))
        .unwrap();
    let file = std::fs::File::open(up.mnt.join(&rel)).unwrap();
    let fd = file.as_raw_fd();
    for _ in 0..3 {
        let mut flags: libc::c_long = 0;
        // SAFETY: FS_IOC_GETFLAGS writes one long into `flags`.
        let r = unsafe { libc::ioctl(fd, 0x8008_6601, &mut flags) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        assert!(
            r == -1 && matches!(errno, Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)),
            "{r} {errno:?}"
        );
        // SAFETY: plain lseek on an open descriptor.
        assert_eq!(unsafe { libc::lseek(fd, 0, libc::SEEK_DATA) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) }, size as i64);
    }
    drop(file);
    let err = take(&up.stderr);
    up.finish();
    assert!(!err.contains("Not Implemented"), "{err}");
}

/// Apple throttling the sign-in a mount needs (exit code 3 for a command) does not stop a mount
/// whose catalog holds the library: it mounts what it knows, as when iCloud is out of reach.
#[test]
fn a_mount_starts_from_its_catalog_while_sign_ins_are_throttled() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(20, 0.001));
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--poll-interval", "3600"]);
    let all = tree_sizes_via_stat(&mnt);
    up.finish();

    env.sim().state().auth.expire_web_sessions();
    env.fault("api-429", 1.0);
    let up = env.mount(&mnt, &["--poll-interval", "3600", "--read-timeout", "3"]);
    let err = take(&up.stderr);
    assert!(err.contains("throttling"), "{err}");
    assert!(err.contains("mounting the catalog as it is"), "{err}");
    assert_eq!(tree_sizes_via_stat(&mnt), all, "the whole tree");
    up.finish();
}
