//! The filesystem core driven directly, without a kernel: namespace, attributes, readdir
//! cookies, xattrs, and the read path through the block cache against a local CDN.

use crate::core_support;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use core_support::*;
use icloudpd_rs::cache::{BLOCK_SIZE, ContentKey};
use icloudpd_rs::mount::{
    ContentSource, CoreConfig, Entry, FsCore, FsError, Kind, Namespace, Owner, ROOT_INO, XattrReply,
};

const MIB: u64 = 1 << 20;

fn core_over(entries: Vec<Entry>, source: Arc<dyn ContentSource>) -> FsCore {
    let (ns, skipped) = Namespace::new(entries, &["Albums".to_string()]);
    assert!(skipped.is_empty(), "{skipped:?}");
    let cfg = CoreConfig {
        owner: Owner {
            uid: 1234,
            gid: 567,
        },
        ..CoreConfig::default()
    };
    FsCore::new(Arc::new(ns), source, cfg)
}

/// A source for metadata-only tests: opening works, nothing is read.
struct NoBytes;
impl ContentSource for NoBytes {
    fn open(
        &self,
        file: icloudpd_rs::mount::FileId,
        _size: u64,
    ) -> Result<Arc<dyn icloudpd_rs::mount::OpenContent>, icloudpd_rs::mount::ReadError> {
        Err(icloudpd_rs::mount::ReadError::Unavailable(
            file,
            "no bytes in this test".into(),
        ))
    }
}

fn lookup_path(core: &FsCore, path: &str) -> u64 {
    let mut ino = ROOT_INO;
    for part in path.split('/') {
        ino = core
            .lookup(ino, part.as_bytes())
            .unwrap()
            .unwrap_or_else(|| panic!("{path}: {part} missing"))
            .ino;
    }
    ino
}

#[test]
fn attributes_are_exact() {
    let core = core_over(
        vec![
            entry("2024/05/06/IMG_0001.JPG", 1, 1_234_567),
            entry("2024/05/06/IMG_0002.MOV", 2, 512),
            entry("2024/05/07/empty.jpg", 3, 0),
        ],
        Arc::new(NoBytes),
    );
    let ino = lookup_path(&core, "2024/05/06/IMG_0001.JPG");
    let a = core.getattr(ino, None).unwrap();
    assert_eq!(a.kind, Kind::File);
    assert_eq!(a.size, 1_234_567);
    assert_eq!(a.blocks, 1_234_567u64.div_ceil(512));
    assert_eq!(a.mtime, mtime(1_600_000_001));
    assert_eq!((a.perm, a.nlink, a.uid, a.gid), (0o444, 1, 1234, 567));
    assert_eq!(
        core.getattr(lookup_path(&core, "2024/05/06/IMG_0002.MOV"), None)
            .unwrap()
            .blocks,
        1
    );
    assert_eq!(
        core.getattr(lookup_path(&core, "2024/05/07/empty.jpg"), None)
            .unwrap()
            .blocks,
        0
    );
    let day = core
        .getattr(lookup_path(&core, "2024/05/06"), None)
        .unwrap();
    assert_eq!((day.kind, day.perm, day.nlink), (Kind::Dir, 0o555, 2));
    assert_eq!(day.mtime, mtime(1_600_000_002));
    let month = core.getattr(lookup_path(&core, "2024/05"), None).unwrap();
    assert_eq!(month.nlink, 4);
    let root = core.getattr(ROOT_INO, None).unwrap();
    assert_eq!(root.nlink, 4, "2024 and Albums");

    // Negative lookups are answers (cacheable), not errors; bad parents are errors.
    assert_eq!(core.lookup(ROOT_INO, b".hidden").unwrap(), None);
    assert!(matches!(core.lookup(ino, b"x"), Err(FsError::NotDir)));
    assert!(matches!(core.lookup(999_999, b"x"), Err(FsError::NotFound)));
    assert!(matches!(
        core.getattr(999_999, None),
        Err(FsError::NotFound)
    ));

    let s = core.statfs();
    assert_eq!(s.files, 3);
    assert_eq!(s.blocks, (1_234_567u64 + 512).div_ceil(s.frsize as u64));
    assert_eq!((s.bfree, s.bavail, s.ffree, s.namelen), (0, 0, 0, 255));
}

#[test]
fn read_only_everywhere() {
    let core = core_over(vec![entry("a/b.jpg", 1, 10)], Arc::new(NoBytes));
    let file = lookup_path(&core, "a/b.jpg");
    let dir = lookup_path(&core, "a");
    assert_eq!(core.open(file, true).unwrap_err().errno(), libc::EROFS);
    assert_eq!(core.open(dir, false).unwrap_err().errno(), libc::EISDIR);
    assert_eq!(core.open(dir, true).unwrap_err().errno(), libc::EROFS);
    assert_eq!(
        core.opendir(file, false).unwrap_err().errno(),
        libc::ENOTDIR
    );
    assert!(core.opendir(dir, false).is_ok());
    assert_eq!(
        core.readdir(file, 0, |_| false).unwrap_err().errno(),
        libc::ENOTDIR
    );
    // A source failure at open is EIO.
    assert_eq!(core.open(file, false).unwrap_err().errno(), libc::EIO);
}

#[test]
fn xattrs_follow_the_probe_and_erange_rules() {
    let core = core_over(vec![entry("a.jpg", 7, 10)], Arc::new(NoBytes));
    let ino = lookup_path(&core, "a.jpg");
    let value = b"ASSET-7".to_vec();
    assert_eq!(
        core.getxattr(ino, b"user.icloud.asset_id", 0).unwrap(),
        XattrReply::Size(value.len() as u32)
    );
    assert_eq!(
        core.getxattr(ino, b"user.icloud.asset_id", 100).unwrap(),
        XattrReply::Data(value.clone())
    );
    assert_eq!(
        core.getxattr(ino, b"user.icloud.asset_id", 3)
            .unwrap_err()
            .errno(),
        libc::ERANGE
    );
    assert_eq!(
        core.getxattr(ino, b"user.other", 0).unwrap_err().errno(),
        libc::ENODATA
    );
    // Other namespaces do not exist here (so `ls -l` stops probing them).
    for name in [
        &b"security.selinux"[..],
        b"system.posix_acl_access",
        b"trusted.x",
    ] {
        assert_eq!(
            core.getxattr(ino, name, 0).unwrap_err().errno(),
            libc::EOPNOTSUPP
        );
        assert_eq!(
            core.getxattr(ROOT_INO, name, 0).unwrap_err().errno(),
            libc::EOPNOTSUPP
        );
    }
    let list = b"user.icloud.asset_id\0".to_vec();
    assert_eq!(
        core.listxattr(ino, 0).unwrap(),
        XattrReply::Size(list.len() as u32)
    );
    assert_eq!(core.listxattr(ino, 64).unwrap(), XattrReply::Data(list));
    assert_eq!(core.listxattr(ino, 5).unwrap_err().errno(), libc::ERANGE);
    assert_eq!(core.listxattr(ROOT_INO, 0).unwrap(), XattrReply::Size(0));
    assert_eq!(
        core.getxattr(ROOT_INO, b"user.x", 0).unwrap_err().errno(),
        libc::ENODATA
    );
    assert_eq!(
        core.listxattr(424_242, 0).unwrap_err().errno(),
        libc::ENOENT
    );
}

/// Read a whole directory with pages of `page` entries, as the kernel does.
fn list_all(core: &FsCore, dir: u64, page: usize) -> Vec<(u64, Vec<u8>, u64)> {
    let mut out: Vec<(u64, Vec<u8>, u64)> = Vec::new();
    let mut cookie = 0;
    loop {
        let mut got = 0;
        core.readdir(dir, cookie, |e| {
            if got == page {
                return true;
            }
            got += 1;
            out.push((e.cookie, e.name.to_vec(), e.ino));
            false
        })
        .unwrap();
        if got == 0 {
            return out;
        }
        cookie = out.last().unwrap().0;
    }
}

#[test]
fn readdir_of_ten_thousand_entries_resumes_from_every_cookie() {
    let n = 10_000u64;
    let entries: Vec<Entry> = (0..n)
        .map(|i| entry(&format!("big/IMG_{:05}.JPG", (i * 7919) % n), i + 1, 100))
        .collect();
    let core = core_over(entries, Arc::new(NoBytes));
    let dir = lookup_path(&core, "big");
    let listing = list_all(&core, dir, 37);
    assert_eq!(listing.len() as u64, n + 2);
    assert_eq!(listing[0].1, b".");
    assert_eq!(listing[0].2, dir);
    assert_eq!(listing[1].1, b"..");
    assert_eq!(listing[1].2, ROOT_INO);
    let names: Vec<&Vec<u8>> = listing[2..].iter().map(|e| &e.1).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "byte-wise sorted");
    let cookies: Vec<u64> = listing.iter().map(|e| e.0).collect();
    assert!(cookies.iter().all(|&c| c != 0));
    assert!(
        cookies.windows(2).all(|w| w[0] < w[1]),
        "unique, increasing"
    );
    // Any returned cookie resumes exactly after its entry (checked on the next page).
    for (i, c) in cookies.iter().enumerate() {
        let mut next = Vec::new();
        core.readdir(dir, *c, |e| {
            next.push(e.name.to_vec());
            next.len() == 5
        })
        .unwrap();
        let expected: Vec<Vec<u8>> = listing[i + 1..]
            .iter()
            .take(4)
            .map(|e| e.1.clone())
            .collect();
        assert_eq!(
            next[..expected.len()],
            expected[..],
            "resume after cookie #{i}"
        );
    }
    // Rewinding to 0 restarts, like a new opendir.
    let again = list_all(&core, dir, 1000);
    assert_eq!(again, listing);
}

#[test]
fn live_updates_through_the_core() {
    let (ns, _) = Namespace::new(vec![entry("d/a.jpg", 1, 10), entry("d/b.jpg", 2, 20)], &[]);
    let ns = Arc::new(ns);
    let core = FsCore::new(ns.clone(), Arc::new(NoBytes), CoreConfig::default());
    let d = lookup_path(&core, "d");
    let a = lookup_path(&core, "d/a.jpg");
    let before = list_all(&core, d, 100);
    let b_cookie = before[3].0;
    let update = ns.apply(vec![entry("d/a.jpg", 1, 10), entry("d/c.jpg", 3, 30)], &[]);
    assert!(!update.invalidations.is_empty());
    assert_eq!(lookup_path(&core, "d/a.jpg"), a);
    assert_eq!(core.lookup(d, b"b.jpg").unwrap(), None);
    assert_eq!(
        core.getattr(lookup_path(&core, "d/c.jpg"), None)
            .unwrap()
            .size,
        30
    );
    // A cookie handed out before the update still resumes in the right place.
    let mut after = Vec::new();
    core.readdir(d, b_cookie, |e| {
        after.push(e.name.to_vec());
        false
    })
    .unwrap();
    assert_eq!(after, vec![b"c.jpg".to_vec()]);
}

struct Fixture {
    cdn: TestCdn,
    urls: Arc<UrlState>,
    sizes: HashMap<u64, u64>,
    cache_dir: tempfile::TempDir,
}

fn fixture(files: &[(u64, u64)]) -> Fixture {
    let cdn = TestCdn::start(files.iter().copied());
    let urls = UrlState::new(&cdn.base);
    Fixture {
        cdn,
        urls,
        sizes: files.iter().copied().collect(),
        cache_dir: tempfile::tempdir().unwrap(),
    }
}

fn read_core(fx: &Fixture, total: Duration) -> (FsCore, Arc<icloudpd_rs::mount::BlockFetcher>) {
    let (source, fetcher) = cached_source(
        &fx.sizes,
        fx.urls.clone(),
        fx.cache_dir.path(),
        1 << 30,
        fetcher_config(total),
    );
    let entries = fx
        .sizes
        .iter()
        .map(|(&id, &size)| entry(&format!("f/{id}.jpg"), id, size))
        .collect();
    (core_over(entries, source), fetcher)
}

async fn read_file(core: &FsCore, id: u64, chunk: u32) -> Vec<u8> {
    let ino = lookup_path(core, &format!("f/{id}.jpg"));
    let fh = core.open(ino, false).unwrap().fh;
    let mut out = Vec::new();
    loop {
        let data = core.read(fh, out.len() as u64, chunk).await.unwrap();
        if data.is_empty() {
            break;
        }
        assert!(
            data.len() == chunk as usize
                || out.len() + data.len() == core.getattr(ino, None).unwrap().size as usize
        );
        out.extend_from_slice(&data);
    }
    core.release(fh);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_exact_bytes_at_any_offset() {
    let fx = fixture(&[(1, 3 * MIB + 12_345), (2, 100), (3, 0), (4, MIB)]);
    let (core, _) = read_core(&fx, Duration::from_secs(10));
    for (id, size) in [(1u64, 3 * MIB + 12_345), (2, 100), (3, 0), (4, MIB)] {
        assert_eq!(
            read_file(&core, id, 128 * 1024).await,
            content(id, size),
            "file {id}"
        );
    }
    // Random offsets and sizes, including across block boundaries and past the end.
    let ino = lookup_path(&core, "f/1.jpg");
    let fh = core.open(ino, false).unwrap().fh;
    let size = 3 * MIB + 12_345;
    let mut seed = 42u64;
    for _ in 0..200 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (seed >> 20) % (size + 1000);
        let len = ((seed >> 7) % 300_000) as u32 + 1;
        let got = core.read(fh, off, len).await.unwrap();
        let want_len = (off + len as u64).min(size).saturating_sub(off);
        assert_eq!(got.len() as u64, want_len, "read {len} at {off}");
        if want_len > 0 {
            assert_eq!(
                &got[..],
                &content_range(1, off, want_len)[..],
                "bytes at {off}"
            );
        }
    }
    core.release(fh);
    assert_eq!(core.open_handles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_of_one_block_share_one_transfer() {
    let fx = fixture(&[(1, 5 * MIB)]);
    fx.cdn.state.faults.latency_ms.store(300, Ordering::SeqCst);
    let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
    let core = Arc::new(core);
    let ino = lookup_path(&core, "f/1.jpg");
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let core = core.clone();
        tasks.push(tokio::spawn(async move {
            let fh = core.open(ino, false).unwrap().fh;
            // Different offsets inside block 2.
            let off = 2 * MIB + i * 4096;
            let data = core.read(fh, off, 4096).await.unwrap();
            core.release(fh);
            (off, data)
        }));
    }
    for t in tasks {
        let (off, data) = t.await.unwrap();
        assert_eq!(&data[..], &content_range(1, off, 4096)[..]);
    }
    assert_eq!(fx.cdn.requests(), 1, "one request for sixteen readers");
    assert_eq!(fetcher.stats().transfers, 1);
    // The window is 256 KiB, but readers left waiting grow the read-ahead (by design): under a
    // loaded machine the one transfer may be longer. It stays a window, not the whole file.
    assert!(
        fx.cdn.bytes() <= MIB,
        "a first window, not the whole file: {}",
        fx.cdn.bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thumbnail_peek_costs_a_small_request_and_sequential_reads_grow_the_window() {
    let fx = fixture(&[(1, 6 * MIB), (2, 40 * MIB)]);
    let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
    let ino = lookup_path(&core, "f/1.jpg");
    let fh = core.open(ino, false).unwrap().fh;
    assert_eq!(
        &core.read(fh, 0, 65_536).await.unwrap()[..],
        &content_range(1, 0, 65_536)[..]
    );
    core.release(fh);
    assert_eq!((fx.cdn.requests(), fx.cdn.bytes()), (1, 256 * 1024));

    // A sequential reader of 40 MiB: few, growing requests, and every byte exactly once.
    let before = fx.cdn.requests();
    assert_eq!(read_file(&core, 2, 128 * 1024).await, content(2, 40 * MIB));
    let requests = fx.cdn.requests() - before;
    assert!(requests <= 12, "{requests} requests for 40 MiB");
    assert_eq!(
        fx.cdn.bytes(),
        256 * 1024 + 40 * MIB,
        "nothing fetched twice"
    );
    assert_eq!(fetcher.stats().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_survives_a_new_core_and_a_corrupt_block_is_refetched() {
    let fx = fixture(&[(1, 3 * MIB)]);
    {
        let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
        assert_eq!(read_file(&core, 1, 128 * 1024).await, content(1, 3 * MIB));
        // Bytes received, not bytes the CDN answered: a request abandoned on a stall (a busy
        // machine) and resumed after its last byte costs no byte twice, but the CDN counts the
        // whole of both.
        assert_eq!(fetcher.stats().bytes, 3 * MIB, "every byte fetched once");
    }
    // A new core opens the cache once the last one has let go of it, background work
    // (cache inserts, warm-ups, the verification of the complete file) included.
    let (core, fetcher) = loop {
        let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
        if fetcher.cache().stats().blocks == 3 {
            break (core, fetcher);
        }
        drop((core, fetcher));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let requests = fx.cdn.requests();
    assert_eq!(read_file(&core, 1, 128 * 1024).await, content(1, 3 * MIB));
    assert_eq!(fx.cdn.requests(), requests, "a warm cache makes no request");
    drop((core, fetcher));

    // Flip a byte of block 1 on disk while no cache is open (a cache still warming blocks in
    // the background could publish the good bytes it read just before), then read with a
    // fresh one: the block is dropped, fetched again exactly once, and never served.
    let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
    let cache = fetcher.cache();
    let key = ContentKey::new("checksum-1", 3 * MIB);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(cache.block_file(&key))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, BLOCK_SIZE + 77).unwrap();
    f.write_all_at(&[b[0] ^ 0xFF], BLOCK_SIZE + 77).unwrap();
    assert_eq!(read_file(&core, 1, 128 * 1024).await, content(1, 3 * MIB));
    // Found by the read, a warm-up or the verification of the complete file, each counting
    // its own finding; only one drops the copy and one transfer replaces it.
    assert!(cache.stats().corrupt >= 1);
    assert_eq!(
        fetcher.stats().bytes,
        MIB,
        "exactly the corrupt block again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrored_files_are_read_from_disk_when_their_size_matches() {
    let fx = fixture(&[(1, 200_000), (2, 300_000)]);
    let (source, _) = cached_source(
        &fx.sizes,
        fx.urls.clone(),
        fx.cache_dir.path(),
        1 << 30,
        fetcher_config(Duration::from_secs(10)),
    );
    let mirror = tempfile::tempdir().unwrap();
    let p1 = mirror.path().join("1.jpg");
    std::fs::write(&p1, content(1, 200_000)).unwrap();
    let p2 = mirror.path().join("2.jpg");
    std::fs::write(&p2, b"truncated").unwrap();
    {
        let mut local = source_locator_local(&source);
        local.insert(1, p1);
        local.insert(2, p2);
    }
    let entries = vec![entry("f/1.jpg", 1, 200_000), entry("f/2.jpg", 2, 300_000)];
    let core = core_over(entries, source);
    let opened = core.open(lookup_path(&core, "f/1.jpg"), false).unwrap();
    assert!(opened.local);
    core.release(opened.fh);
    assert_eq!(read_file(&core, 1, 128 * 1024).await, content(1, 200_000));
    assert_eq!(fx.cdn.requests(), 0);
    // A mirrored file of the wrong size is ignored: bytes come from the CDN.
    assert!(
        !core
            .open(lookup_path(&core, "f/2.jpg"), false)
            .unwrap()
            .local
    );
    assert_eq!(read_file(&core, 2, 128 * 1024).await, content(2, 300_000));
    assert!(fx.cdn.requests() > 0);
}

fn source_locator_local(
    source: &Arc<icloudpd_rs::mount::CachedSource<TestLocator>>,
) -> std::sync::MutexGuard<'_, HashMap<u64, std::path::PathBuf>> {
    source.locator().local.lock().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_give_right_bytes_or_eio_never_wrong_bytes() {
    let fx = fixture(&[
        (1, 2 * MIB),
        (2, 2 * MIB),
        (3, 2 * MIB),
        (4, 2 * MIB),
        (5, MIB),
    ]);
    let (core, _) = read_core(&fx, Duration::from_secs(3));
    let faults = &fx.cdn.state.faults;

    // Connection reset mid-body, a stalled body, a 503: retried, right bytes.
    faults.reset.store(1, Ordering::SeqCst);
    assert_eq!(read_file(&core, 1, 128 * 1024).await, content(1, 2 * MIB));
    faults.stall.store(1, Ordering::SeqCst);
    assert_eq!(read_file(&core, 2, 128 * 1024).await, content(2, 2 * MIB));
    faults.unavailable.store(2, Ordering::SeqCst);
    assert_eq!(read_file(&core, 3, 128 * 1024).await, content(3, 2 * MIB));

    // Expired URLs: a fresh one is asked for, right bytes.
    faults.min_signature.store(
        fx.urls.signature.load(Ordering::SeqCst) + 1,
        Ordering::SeqCst,
    );
    assert_eq!(read_file(&core, 4, 128 * 1024).await, content(4, 2 * MIB));
    assert!(fx.urls.refreshes.load(Ordering::SeqCst) >= 1);

    // Network gone: EIO within the bound (the outer timeout only guards against a hang).
    fx.urls.go_offline();
    let ino = lookup_path(&core, "f/5.jpg");
    let fh = core.open(ino, false).unwrap().fh;
    let res = tokio::time::timeout(Duration::from_secs(30), core.read(fh, 0, 4096))
        .await
        .expect("a dead network must give an error, not a hang");
    assert_eq!(res.unwrap_err().errno(), libc::EIO);
    // Back online: the same handle reads right bytes.
    *fx.urls.base.write().unwrap() = fx.cdn.base.clone();
    let data = core.read(fh, 0, 4096).await.unwrap();
    assert_eq!(&data[..], &content_range(5, 0, 4096)[..]);
    core.release(fh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_head_is_extended_not_refetched() {
    let fx = fixture(&[(1, 3 * MIB + 5)]);
    let (core, fetcher) = read_core(&fx, Duration::from_secs(10));
    let ino = lookup_path(&core, "f/1.jpg");
    // A peek caches the head of block 0...
    let fh = core.open(ino, false).unwrap().fh;
    assert_eq!(
        &core.read(fh, 0, 4096).await.unwrap()[..],
        &content_range(1, 0, 4096)[..]
    );
    core.release(fh);
    assert_eq!(fx.cdn.bytes(), 256 * 1024);
    // ...a read further into block 0 (on another handle) fetches only the rest of it...
    let fh = core.open(ino, false).unwrap().fh;
    let got = core.read(fh, 700 * 1024, 100 * 1024).await.unwrap();
    assert_eq!(&got[..], &content_range(1, 700 * 1024, 100 * 1024)[..]);
    core.release(fh);
    // ...and a concurrent head peek and full read of the same file agree.
    let core = Arc::new(core);
    let (a, b) = {
        let (c1, c2) = (core.clone(), core.clone());
        let peek = tokio::spawn(async move {
            let fh = c1.open(ino, false).unwrap().fh;
            let d = c1.read(fh, 2 * MIB, 4096).await.unwrap();
            c1.release(fh);
            d
        });
        let full = tokio::spawn(async move {
            let fh = c2.open(ino, false).unwrap().fh;
            let d = c2.read(fh, 2 * MIB, (MIB + 5) as u32).await.unwrap();
            c2.release(fh);
            d
        });
        (peek.await.unwrap(), full.await.unwrap())
    };
    assert_eq!(&a[..], &content_range(1, 2 * MIB, 4096)[..]);
    assert_eq!(&b[..], &content_range(1, 2 * MIB, MIB + 5)[..]);
    assert_eq!(
        read_file(&core, 1, 128 * 1024).await,
        content(1, 3 * MIB + 5)
    );
    // Block 0 came in two pieces without overlap; block 2 at most once more than its size
    // (the peek and the full read may race for it).
    assert!(
        fx.cdn.bytes() <= 3 * MIB + 5 + 128 * 1024,
        "{}",
        fx.cdn.bytes()
    );
    assert_eq!(fetcher.stats().failures, 0);
}
