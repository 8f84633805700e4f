//! The mount benchmark (not a test: `#[ignore]`, run by `scripts/bench-mount.sh`).
//!
//! Builds a synthetic library of `BENCH_FILES` (default 100,000) photos served by a local CDN,
//! an equivalent local tree (sparse files with the same names, sizes and mtimes), mounts the
//! library and prints each measurement as a ratio against its physical reference measured in
//! the same run:
//!
//! - `ls -lR` and `find` of the mount vs the local tree (target: within 2x);
//! - sequential read of a mirrored file (passthrough when available) and of a block-cached file
//!   vs reading a local file directly (target: >= 0.9x throughput);
//! - cold sequential read of a large file vs a plain HTTP download of the same URL (>= 0.8x);
//! - the thumbnail pattern (first 64 KiB of 1,000 uncached files, 8 readers) vs 1,000 plain
//!   Range requests with the same concurrency (within 1.5x).

use crate::core_support;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use core_support::*;
use icloudpd_rs::mount::{Entry, MountOptions, Namespace, mount};

const MIB: u64 = 1 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

fn run_quiet(cmd: &mut Command) -> Duration {
    let (d, status) = time(|| cmd.stdout(Stdio::null()).status().unwrap());
    assert!(status.success(), "{cmd:?} failed");
    d
}

/// Read a whole file with 1 MiB reads; returns the bytes read.
fn read_all(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// Drop the clean pages of `path` from the page cache.
fn drop_page_cache(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: plain advisory syscall on an owned descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

struct Row {
    what: &'static str,
    ours: Duration,
    reference: Duration,
    /// For throughput rows the ratio is reference/ours (higher is better).
    throughput: bool,
    target: &'static str,
}

#[test]
#[ignore = "benchmark: run scripts/bench-mount.sh"]
fn bench_mount() {
    let n_files = env_u64("BENCH_FILES", 100_000);
    let big = env_u64("BENCH_BIG_MIB", 512) * MIB;
    let latency = env_u64("BENCH_CDN_LATENCY_MS", 0);
    let base = match std::env::var_os("BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let root = base.path();
    eprintln!(
        "bench: {n_files} files, big files {} MiB, CDN latency {latency} ms, in {}",
        big / MIB,
        root.display()
    );

    // The library: photos of ~3 MB in a date tree, plus the big files of the read benchmarks.
    const BIG_HTTP: u64 = 10_000_001;
    const BIG_MIRRORED: u64 = 10_000_002;
    const BIG_CACHED: u64 = 10_000_003;
    let mut files: Vec<(String, u64, u64)> = (0..n_files)
        .map(|i| {
            let id = i + 1;
            let day = i / 91;
            let path = format!(
                "{}/{:02}/{:02}/IMG_{id:06}.JPG",
                2015 + day / 336,
                1 + (day / 28) % 12,
                1 + day % 28
            );
            (path, id, 1_500_000 + (i * 7919) % 3_000_000)
        })
        .collect();
    files.push(("videos/http.MOV".into(), BIG_HTTP, big));
    files.push(("videos/mirrored.MOV".into(), BIG_MIRRORED, big));
    files.push(("videos/cached.MOV".into(), BIG_CACHED, big / 2));

    let cdn = TestCdn::start(files.iter().map(|f| (f.1, f.2)));
    cdn.state.faults.latency_ms.store(latency, Ordering::SeqCst);
    let urls = UrlState::new(&cdn.base);
    let sizes: HashMap<u64, u64> = files.iter().map(|f| (f.1, f.2)).collect();
    let (source, fetcher) = cached_source(
        &sizes,
        urls,
        &root.join("cache"),
        8 << 30,
        fetcher_config(Duration::from_secs(60)),
    );

    // The equivalent local tree (sparse files: listing costs do not depend on content).
    let local = root.join("local");
    let (build_local, ()) = time(|| {
        for (path, id, size) in &files {
            let p = local.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(*size).unwrap();
            f.set_modified(mtime(1_600_000_000 + id)).unwrap();
        }
    });
    eprintln!("bench: local tree built in {build_local:?}");
    let mirrored = root.join("mirrored.MOV");
    std::fs::write(&mirrored, content(BIG_MIRRORED, big)).unwrap();
    source
        .locator()
        .local
        .lock()
        .unwrap()
        .insert(BIG_MIRRORED, mirrored.clone());
    // A real local file of the cached file's size, for the direct-read reference.
    let local_cached = root.join("local-cached.MOV");
    std::fs::write(&local_cached, content(BIG_CACHED, big / 2)).unwrap();

    let entries: Vec<Entry> = files
        .iter()
        .map(|(p, id, size)| entry(p, *id, *size))
        .collect();
    let (ns, skipped) = Namespace::new(entries, &[]);
    assert!(skipped.is_empty());
    let mnt = root.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let handle = mount(Arc::new(ns), source.clone(), MountOptions::new(&mnt)).unwrap();
    if let Ok(kb) = std::env::var("BENCH_READ_AHEAD_KB") {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(&mnt).unwrap().dev();
        let p = format!(
            "/sys/class/bdi/{}:{}/read_ahead_kb",
            libc::major(dev),
            libc::minor(dev)
        );
        std::fs::write(&p, &kb).unwrap();
        eprintln!(
            "bench: {p} = {}",
            std::fs::read_to_string(&p).unwrap().trim()
        );
    }
    let mut rows = Vec::new();

    // Listing. References are warm (two runs); the mount's first run is cold.
    run_quiet(Command::new("ls").arg("-lR").arg(&local));
    let ls_local = run_quiet(Command::new("ls").arg("-lR").arg(&local));
    let ls_cold = run_quiet(Command::new("ls").arg("-lR").arg(&mnt));
    let ls_warm = run_quiet(Command::new("ls").arg("-lR").arg(&mnt));
    rows.push(Row {
        what: "ls -lR (first, cold kernel caches)",
        ours: ls_cold,
        reference: ls_local,
        throughput: false,
        target: "<= 2x",
    });
    rows.push(Row {
        what: "ls -lR (again)",
        ours: ls_warm,
        reference: ls_local,
        throughput: false,
        target: "<= 2x",
    });
    run_quiet(Command::new("find").arg(&local));
    let find_local = run_quiet(Command::new("find").arg(&local));
    let find_mnt = run_quiet(Command::new("find").arg(&mnt));
    rows.push(Row {
        what: "find",
        ours: find_mnt,
        reference: find_local,
        throughput: false,
        target: "<= 2x",
    });

    // Mirrored file: the mount (passthrough when available) vs the file itself, both warm.
    read_all(&mirrored);
    let (direct, _) = time(|| read_all(&mirrored));
    let mnt_mirrored = mnt.join("videos/mirrored.MOV");
    read_all(&mnt_mirrored);
    let (through, n) = time(|| read_all(&mnt_mirrored));
    assert_eq!(n, big);
    rows.push(Row {
        what: "sequential read, mirrored file",
        ours: through,
        reference: direct,
        throughput: true,
        target: ">= 0.9x",
    });

    // Block-cached file: fill the cache, drop the kernel's pages, read through the daemon.
    let mnt_cached = mnt.join("videos/cached.MOV");
    read_all(&mnt_cached);
    std::thread::sleep(Duration::from_millis(500));
    drop_page_cache(&mnt_cached);
    read_all(&local_cached);
    let (direct, _) = time(|| read_all(&local_cached));
    let requests = cdn.requests();
    let (through, n) = time(|| read_all(&mnt_cached));
    assert_eq!(n, big / 2);
    let refetched = cdn.requests() - requests;
    rows.push(Row {
        what: "sequential read, block-cached file",
        ours: through,
        reference: direct,
        throughput: true,
        target: ">= 0.9x",
    });

    // Cold large file vs a plain HTTP download of the same URL.
    let http = http();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/f/{BIG_HTTP}?sig=1", cdn.base);
    let (plain, got) = time(|| {
        rt.block_on(async {
            let mut resp = http.get(&url).send().await.unwrap();
            let mut got = 0u64;
            while let Some(chunk) = resp.chunk().await.unwrap() {
                got += chunk.len() as u64;
            }
            got
        })
    });
    assert_eq!(got, big);
    let (through, n) = time(|| read_all(&mnt.join("videos/http.MOV")));
    assert_eq!(n, big);
    rows.push(Row {
        what: "cold sequential read vs HTTP download",
        ours: through,
        reference: plain,
        throughput: true,
        target: ">= 0.8x",
    });

    // Thumbnail pattern: 1,000 uncached files, 8 readers, first 64 KiB each.
    let thumbs: Arc<Vec<PathBuf>> = Arc::new(
        files
            .iter()
            .skip(50_000.min(files.len() / 2))
            .take(1000)
            .map(|f| mnt.join(&f.0))
            .collect(),
    );
    let thumb_ids: Vec<u64> = files
        .iter()
        .skip(50_000.min(files.len() / 2))
        .take(1000)
        .map(|f| f.1)
        .collect();
    let (plain, ()) = time(|| {
        rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = Vec::new();
            for id in &thumb_ids {
                let (http, sem) = (http.clone(), sem.clone());
                let url = format!("{}/f/{id}?sig=1", cdn.base);
                tasks.push(tokio::spawn(async move {
                    let _p = sem.acquire().await.unwrap();
                    let body = http
                        .get(&url)
                        .header("Range", "bytes=0-65535")
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    assert_eq!(body.len(), 65536);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    let bytes_before = cdn.bytes();
    let (m0, f0) = (handle.stats(), fetcher.stats());
    let (through, ()) = time(|| {
        let mut threads = Vec::new();
        for t in 0..8 {
            let thumbs = thumbs.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                for p in thumbs.iter().skip(t).step_by(8) {
                    let f = std::fs::File::open(p).unwrap();
                    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 65536);
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
    });
    let thumb_bytes = cdn.bytes() - bytes_before;
    let (m1, f1) = (handle.stats(), fetcher.stats());
    let waits = (m1.reads_async - m0.reads_async).max(1);
    let transfers = (f1.transfers - f0.transfers).max(1);
    println!(
        "thumbnail pattern: {} reads waited {} us on average; {} transfers took {} us on average",
        m1.reads_async - m0.reads_async,
        (m1.reads_async_wait_us - m0.reads_async_wait_us) / waits,
        f1.transfers - f0.transfers,
        (f1.transfer_us - f0.transfer_us) / transfers
    );
    rows.push(Row {
        what: "thumbnail pattern (1,000 x 64 KiB, 8 readers)",
        ours: through,
        reference: plain,
        throughput: false,
        target: "<= 1.5x",
    });

    let stats = handle.stats();
    let fstats = fetcher.stats();
    handle.unmount().unwrap();

    println!();
    println!(
        "{:<48} {:>12} {:>12} {:>8}  target",
        "measurement", "mount", "reference", "ratio"
    );
    for r in &rows {
        let ratio = if r.throughput {
            r.reference.as_secs_f64() / r.ours.as_secs_f64()
        } else {
            r.ours.as_secs_f64() / r.reference.as_secs_f64()
        };
        println!(
            "{:<48} {:>10.3}s {:>10.3}s {:>7.2}x  {}{}",
            r.what,
            r.ours.as_secs_f64(),
            r.reference.as_secs_f64(),
            ratio,
            r.target,
            if r.throughput {
                " (throughput)"
            } else {
                " (time)"
            }
        );
    }
    println!();
    println!(
        "big files: {} MiB; thumbnail pattern fetched {} MiB from the CDN; block-cached re-read made {refetched} CDN requests",
        big / MIB,
        thumb_bytes / MIB
    );
    println!("mount: {stats:?}");
    println!("fetcher: {fstats:?}");
}

/// The thumbnail pattern through the filesystem core without the kernel, next to plain Range
/// requests: separates the cost of the read path from the cost of FUSE.
#[test]
#[ignore = "benchmark: run scripts/bench-mount.sh"]
fn bench_core_thumbnails() {
    use icloudpd_rs::mount::{CoreConfig, FsCore};
    let n = env_u64("BENCH_THUMBS", 1000);
    let files: Vec<(u64, u64)> = (1..=n).map(|id| (id, 3_000_000 + id)).collect();
    let cdn = TestCdn::start(files.iter().copied());
    let urls = UrlState::new(&cdn.base);
    let sizes: HashMap<u64, u64> = files.iter().copied().collect();
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = cached_source(
        &sizes,
        urls,
        dir.path(),
        8 << 30,
        fetcher_config(Duration::from_secs(60)),
    );
    let entries: Vec<Entry> = files
        .iter()
        .map(|(id, size)| entry(&format!("d/{id}.jpg"), *id, *size))
        .collect();
    let (ns, _) = Namespace::new(entries, &[]);
    let core = Arc::new(FsCore::new(Arc::new(ns), source, CoreConfig::default()));
    let d = core.lookup(1, b"d").unwrap().unwrap().ino;
    let inos: Vec<u64> = files
        .iter()
        .map(|(id, _)| {
            core.lookup(d, format!("{id}.jpg").as_bytes())
                .unwrap()
                .unwrap()
                .ino
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let http = http();
    let (plain, ()) = time(|| {
        rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = Vec::new();
            for (id, _) in &files {
                let (http, sem) = (http.clone(), sem.clone());
                let url = format!("{}/f/{id}?sig=1", cdn.base);
                tasks.push(tokio::spawn(async move {
                    let _p = sem.acquire().await.unwrap();
                    let body = http
                        .get(&url)
                        .header("Range", "bytes=0-131071")
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    assert_eq!(body.len(), 131072);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    let (through, ()) = time(|| {
        rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = Vec::new();
            for ino in &inos {
                let (core, sem, ino) = (core.clone(), sem.clone(), *ino);
                tasks.push(tokio::spawn(async move {
                    let _p = sem.acquire().await.unwrap();
                    let fh = core.open(ino, false).unwrap().fh;
                    let data = core.read(fh, 0, 131072).await.unwrap();
                    assert_eq!(data.len(), 131072);
                    core.release(fh);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    });
    println!(
        "core thumbnails: {n} x 128 KiB heads, 8 at a time: core {:.3}s, plain Range requests {:.3}s, ratio {:.2}x",
        through.as_secs_f64(),
        plain.as_secs_f64(),
        through.as_secs_f64() / plain.as_secs_f64()
    );
}
