//! Reading bytes through real kernel mounts: concurrent and random readers, thumbnail-sized
//! peeks, CDN faults (right bytes or EIO, never a blocked listing), mirrored files from disk.
//!
//! They need root (or fusermount3) and `/dev/fuse`. Under `CI=true` they must run: a missing
//! prerequisite fails loudly instead of skipping.

use crate::core_support;
use crate::fuse_support::*;
use crate::support::fuse_ready;

use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use core_support::*;

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
    // Bytes received, not bytes the CDN answered: a request abandoned on a stall (a busy
    // machine) and resumed after its last byte costs no byte twice, but the CDN counts the
    // whole of both.
    assert_eq!(
        m.fetcher.stats().bytes,
        big.size,
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
        m.fetcher.stats().bytes,
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

#[test]
fn cold_files_read_and_mmap_exactly() {
    if !fuse_ready() {
        return;
    }
    let files = vec![
        TestFile {
            path: "videos/a.MOV".into(),
            id: 1,
            size: 9 * MIB + 777,
        },
        TestFile {
            path: "videos/b.MOV".into(),
            id: 2,
            size: 3 * MIB + 5,
        },
    ];
    let m = Mounted::new(files, Duration::from_secs(20));
    // A shared read-only mapping of a file never read (image viewers and players map files):
    // a cold file must not refuse it.
    let a = &m.files[0];
    let f = std::fs::File::open(m.path(a)).unwrap();
    let len = a.size as usize;
    // SAFETY: a fresh read-only shared mapping of an open file, unmapped below, never
    // aliased mutably.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    // SAFETY: the mapping is `len` readable bytes.
    let mapped = unsafe { std::slice::from_raw_parts(map as *const u8, len) };
    assert!(mapped == &content(a.id, a.size)[..], "mapped bytes");
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(map, len) };

    // Unaligned buffers and odd sizes, read on a cold file: exact bytes, exact lengths.
    let b = &m.files[1];
    let want = content(b.id, b.size);
    let f = std::fs::File::open(m.path(b)).unwrap();
    let mut heap = vec![0u8; MIB as usize + 3];
    let mut off = 0usize;
    while off < want.len() {
        let n = f.read_at(&mut heap[3..], off as u64).unwrap();
        assert_eq!(n, (want.len() - off).min(MIB as usize), "at {off}");
        assert!(heap[3..3 + n] == want[off..off + n], "at {off}");
        off += n;
    }
    assert_eq!(f.read_at(&mut heap, b.size).unwrap(), 0, "end of file");
}
