//! Shared by the in-process kernel-mount tests (`fuse`, `fuse_reads`, `fuse_lifecycle`): a
//! library of test files mounted over a local test CDN, commands that must succeed, a bound on
//! operations that could hang.

use crate::core_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use core_support::*;
use icloudpd_rs::mount::{BlockFetcher, MountHandle, MountOptions, Namespace, mount};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;

/// One test file: path in the mount, id (content seed and inode key), size.
#[derive(Clone)]
pub struct TestFile {
    pub path: String,
    pub id: u64,
    pub size: u64,
}

/// `n` photos spread over dated folders, sizes from `size(i)`.
pub fn library(n: u64, first_id: u64, size: impl Fn(u64) -> u64) -> Vec<TestFile> {
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

/// The fs core mounted in this process over a local test CDN (unmounted on drop).
pub struct Mounted {
    pub handle: Option<MountHandle>,
    pub cdn: TestCdn,
    pub urls: Arc<UrlState>,
    pub fetcher: Arc<BlockFetcher>,
    pub files: Vec<TestFile>,
    pub mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    /// Mount `files`, each network read bounded by `total_timeout`.
    pub fn new(files: Vec<TestFile>, total_timeout: Duration) -> Mounted {
        Self::with_mirror(files, total_timeout, &[])
    }

    /// Mount `files`; those whose id is in `mirrored` also get a complete local copy.
    pub fn with_mirror(files: Vec<TestFile>, total_timeout: Duration, mirrored: &[u64]) -> Mounted {
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

    /// The live mount.
    pub fn handle(&self) -> &MountHandle {
        self.handle.as_ref().unwrap()
    }

    /// Where `f` is in the mount.
    pub fn path(&self, f: &TestFile) -> PathBuf {
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

/// Run a command that must succeed; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run `f` on a thread; panic if it has not finished after `limit` (a hang is a failure).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("operation hung for more than {limit:?}"))
}
