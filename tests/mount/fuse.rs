//! Real kernel mounts: a namespace of thousands of files whose bytes come from a local test
//! CDN, exercised with the tools users run (`ls -lR`, `find`, `rsync`), concurrent and random
//! readers, faults, live updates, unmounting and every bad-mountpoint case.
//!
//! They need root (or fusermount3) and `/dev/fuse`. Under `CI=true` they must run: a missing
//! prerequisite fails loudly instead of skipping.

use crate::core_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use core_support::*;
use icloudpd_rs::mount::{
    BlockFetcher, Entry, MountError, MountHandle, MountOptions, Namespace, mount,
};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Whether the FUSE tests can run here; under `CI=true` a missing prerequisite is a failure.
fn fuse_ready() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let problem = if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse")
    } else if !root && !tool_exists("fusermount3") {
        Some("not root and no fusermount3")
    } else if !tool_exists("rsync") {
        Some("rsync is not installed")
    } else {
        None
    };
    match problem {
        None => true,
        Some(p) if ci => panic!("CI=true but the FUSE tests cannot run: {p}"),
        Some(p) => {
            eprintln!("skipping FUSE test: {p}");
            false
        }
    }
}

fn tool_exists(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One test file: path in the mount, id (content seed and inode key), size.
#[derive(Clone)]
struct TestFile {
    path: String,
    id: u64,
    size: u64,
}

/// `n` photos spread over dated folders, sizes from `size(i)`.
fn library(n: u64, first_id: u64, size: impl Fn(u64) -> u64) -> Vec<TestFile> {
    (0..n)
        .map(|i| {
            let id = first_id + i;
            TestFile {
                path: format!(
                    "{}/{:02}/{:02}/IMG_{id:05}.JPG",
                    2020 + i % 3,
                    1 + i % 12,
                    1 + (i / 12) % 28
                ),
                id,
                size: size(i),
            }
        })
        .collect()
}

struct Mounted {
    handle: Option<MountHandle>,
    cdn: TestCdn,
    urls: Arc<UrlState>,
    fetcher: Arc<BlockFetcher>,
    files: Vec<TestFile>,
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn new(files: Vec<TestFile>, total_timeout: Duration) -> Mounted {
        Self::with_mirror(files, total_timeout, &[])
    }

    /// Mount `files`; those whose id is in `mirrored` also get a complete local copy.
    fn with_mirror(files: Vec<TestFile>, total_timeout: Duration, mirrored: &[u64]) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let cdn = TestCdn::start(files.iter().map(|f| (f.id, f.size)));
        let urls = UrlState::new(&cdn.base);
        let sizes: HashMap<u64, u64> = files.iter().map(|f| (f.id, f.size)).collect();
        let (source, fetcher) = cached_source(
            &sizes,
            urls.clone(),
            &dir.path().join("cache"),
            4 << 30,
            fetcher_config(total_timeout),
        );
        let mirror = dir.path().join("mirror");
        std::fs::create_dir(&mirror).unwrap();
        for f in files.iter().filter(|f| mirrored.contains(&f.id)) {
            let p = mirror.join(format!("{}.jpg", f.id));
            std::fs::write(&p, content(f.id, f.size)).unwrap();
            source.locator().local.lock().unwrap().insert(f.id, p);
        }
        let entries = files.iter().map(|f| entry(&f.path, f.id, f.size)).collect();
        let (ns, skipped) = Namespace::new(entries, &["Albums".to_string()]);
        assert!(skipped.is_empty());
        let handle = mount(Arc::new(ns), source.clone(), MountOptions::new(&mnt))
            .unwrap_or_else(|e| panic!("mount failed: {e}"));
        let mnt = handle.mountpoint().to_path_buf();
        Mounted {
            handle: Some(handle),
            cdn,
            urls,
            fetcher,
            files,
            mnt,
            _dir: dir,
        }
    }

    fn handle(&self) -> &MountHandle {
        self.handle.as_ref().unwrap()
    }

    fn path(&self, f: &TestFile) -> PathBuf {
        self.mnt.join(&f.path)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take()
            && let Err(e) = h.unmount()
        {
            eprintln!("unmount failed: {e}");
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = path.as_os_str().as_bytes();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p.as_bytes() == want))
}

/// Run `f` on a thread; panic if it has not finished after `limit` (a hang is a failure).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("operation hung for more than {limit:?}"))
}

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
fn concurrent_and_random_readers() {
    if !fuse_ready() {
        return;
    }
    let big = TestFile {
        path: "videos/big.MOV".into(),
        id: 1,
        size: 24 * MIB + 4321,
    };
    let mut files = vec![big.clone()];
    files.extend(library(320, 100, |i| 10 * KIB + (i * 7777) % (300 * KIB)));
    let m = Arc::new(Mounted::new(files, Duration::from_secs(20)));

    // 32 readers of one large file, each with its own chunk size.
    let want = Arc::new(content(big.id, big.size));
    let mut threads = Vec::new();
    for t in 0..32u64 {
        let (m, want, path) = (m.clone(), want.clone(), m.path(&big));
        threads.push(std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            let chunk = (4 * KIB + t * 9 * KIB) as usize;
            let mut off = 0usize;
            let mut buf = vec![0u8; chunk];
            while off < want.len() {
                let n = f.read_at(&mut buf, off as u64).unwrap();
                assert!(n > 0);
                assert!(buf[..n] == want[off..off + n], "reader {t} at {off}");
                off += n;
            }
            drop(m);
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        m.cdn.requests_for(big.id) as usize,
        m.cdn.requests_for(big.id) as usize
    );
    let big_bytes_once = m.cdn.bytes();
    assert_eq!(
        big_bytes_once, big.size,
        "32 readers, every byte fetched once"
    );

    // Random offsets.
    let f = std::fs::File::open(m.path(&big)).unwrap();
    let mut seed = 7u64;
    for _ in 0..500 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (seed >> 16) % big.size;
        let len = 1 + ((seed >> 3) % (200 * KIB)) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).unwrap();
        let expect = len.min((big.size - off) as usize);
        assert_eq!(n, expect);
        assert!(buf[..n] == want[off as usize..off as usize + n]);
    }

    // 32 readers over many files.
    let small: Vec<TestFile> = m.files[1..].to_vec();
    let small = Arc::new(small);
    let mut threads = Vec::new();
    for t in 0..32usize {
        let (m, small) = (m.clone(), small.clone());
        threads.push(std::thread::spawn(move || {
            for f in small.iter().skip(t % 7).step_by(3) {
                let bytes = std::fs::read(m.path(f)).unwrap();
                assert!(bytes == content(f.id, f.size), "{}", f.path);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let small_total: u64 = small.iter().map(|f| f.size).sum();
    assert_eq!(
        m.cdn.bytes(),
        big.size + small_total,
        "every byte fetched once"
    );
}

#[test]
fn thumbnail_pattern_reads_one_request_per_file() {
    if !fuse_ready() {
        return;
    }
    let files = library(1000, 1, |i| 80 * KIB + (i * 4099) % (200 * KIB));
    let m = Arc::new(Mounted::new(files, Duration::from_secs(20)));
    let mut threads = Vec::new();
    for t in 0..8usize {
        let m = m.clone();
        threads.push(std::thread::spawn(move || {
            for f in m.files.iter().skip(t).step_by(8) {
                let file = std::fs::File::open(m.path(f)).unwrap();
                let mut head = vec![0u8; 64 * 1024];
                let n = file.read_at(&mut head, 0).unwrap();
                assert_eq!(n, head.len());
                assert!(head == content_range(f.id, 0, 64 * KIB), "{}", f.path);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(m.cdn.requests(), 1000, "one request per file");
}

#[test]
fn faults_give_right_bytes_or_eio_and_never_block_listing() {
    if !fuse_ready() {
        return;
    }
    let files: Vec<TestFile> = (1..=6)
        .map(|id| TestFile {
            path: format!("d/{id}.jpg"),
            id,
            size: 2 * MIB + id,
        })
        .collect();
    let m = Arc::new(Mounted::new(files, Duration::from_secs(3)));
    let faults = &m.cdn.state.faults;
    let read = |i: usize| std::fs::read(m.path(&m.files[i]));
    let want = |i: usize| content(m.files[i].id, m.files[i].size);

    faults.reset.store(1, Ordering::SeqCst);
    assert!(read(0).unwrap() == want(0), "after a connection reset");
    faults.stall.store(1, Ordering::SeqCst);
    assert!(read(1).unwrap() == want(1), "after a stall");
    faults.min_signature.store(
        m.urls.signature.load(Ordering::SeqCst) + 1,
        Ordering::SeqCst,
    );
    assert!(read(2).unwrap() == want(2), "after an expired URL");
    assert!(m.urls.refreshes.load(Ordering::SeqCst) >= 1);

    // A read stalled on the network does not block `ls` or `stat` of the mount.
    faults.stall.store(1000, Ordering::SeqCst);
    let m2 = m.clone();
    let slow = std::thread::spawn(move || std::fs::read(m2.path(&m2.files[3])));
    std::thread::sleep(Duration::from_millis(200));
    let mnt = m.mnt.clone();
    let listing = within(Duration::from_secs(2), move || {
        run(Command::new("ls").arg("-l").arg(mnt.join("d")))
    });
    assert_eq!(listing.lines().filter(|l| l.contains(".jpg")).count(), 6);
    let err = within(Duration::from_secs(30), move || slow.join().unwrap()).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EIO),
        "a stalled CDN gives EIO"
    );
    faults.stall.store(0, Ordering::SeqCst);

    // Network gone: EIO within the bound; back: right bytes.
    m.urls.go_offline();
    let m2 = m.clone();
    let err = within(Duration::from_secs(30), move || {
        std::fs::read(m2.path(&m2.files[4]))
    })
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    *m.urls.base.write().unwrap() = m.cdn.base.clone();
    assert!(read(4).unwrap() == want(4), "after the network came back");
    assert!(m.handle().stats().read_errors >= 2);
    assert!(m.fetcher.stats().failures >= 2);
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

#[test]
fn mirrored_files_are_served_from_disk() {
    if !fuse_ready() {
        return;
    }
    let files = library(20, 1, |i| 100 * KIB + i * 1000);
    let mirrored: Vec<u64> = (1..=10).collect();
    let m = Mounted::with_mirror(files, Duration::from_secs(10), &mirrored);
    for f in &m.files {
        let bytes = std::fs::read(m.path(f)).unwrap();
        assert!(bytes == content(f.id, f.size), "{}", f.path);
    }
    let stats = m.handle().stats();
    eprintln!("mirrored reads: {stats:?}");
    if stats.passthrough {
        assert!(stats.passthrough_opens >= 10, "{stats:?}");
    }
    // Only the ten files without a mirror went to the CDN.
    let fetched: u64 = m.files.iter().filter(|f| f.id > 10).map(|f| f.size).sum();
    assert_eq!(m.cdn.bytes(), fetched);
    assert_eq!(m.fetcher.stats().bytes, fetched);
}

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
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.mnt) {
            let c = std::ffi::CString::new(self.mnt.as_os_str().as_bytes()).unwrap();
            // SAFETY: valid path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn unmount_by_sigterm_and_by_fusermount() {
    if !fuse_ready() {
        return;
    }
    for how in ["SIGTERM", "SIGINT", "fusermount3 -u"] {
        let base = tempfile::tempdir().unwrap();
        let mnt = base.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mnt = mnt.canonicalize().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fuse::zz_child_process_entry",
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
        };
        let stdout = child.child.stdout.take().unwrap();
        let lines = BufReader::new(stdout).lines();
        // libtest prints its own prefix on the same line; keep the pipe open afterwards.
        let (ready, _lines) = within(Duration::from_secs(30), move || {
            let mut lines = lines;
            let ready = lines.any(|l| l.is_ok_and(|l| l.contains("READY")));
            (ready, lines)
        });
        assert!(ready, "the child did not mount");
        assert!(is_mounted(&mnt));
        assert!(mnt.join("hello").is_dir());
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
