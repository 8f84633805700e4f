//! Write/read throughput of the catalog at library scale. Not a test: it asserts nothing about
//! time and is ignored by default. Run it through `scripts/bench-catalog-db.sh` (release build).
//!
//! Environment: `CATALOG_BENCH_ASSETS` (default 100000), `CATALOG_BENCH_DIR` (default: a
//! temporary directory; use a real disk to measure one).

use crate::support;

use std::time::{Duration, Instant};

use icloudpd_rs::catalog::{AssetFilter, Catalog, RunKind};
use icloudpd_rs::model::{Asset, VersionKind};
use rusqlite::{Connection, params};
use support::*;

const PAGE: usize = 100;

/// Asset `i` of the synthetic library: 3 versions, every 2nd a live photo (+1), every 4th
/// edited (+1): ~3.75 versions per asset on average.
fn synthetic(i: usize) -> Asset {
    let mut a = photo(&format!("AY6c+BsE0jjaXx9t{i:012}"), i as i64);
    a.asset_record = format!("F2A23C38-0020-42FE-A273-{i:012X}");
    a.keywords = if i.is_multiple_of(5) {
        vec!["beach".into()]
    } else {
        vec![]
    };
    if i.is_multiple_of(2) {
        a.versions.push(version(
            VersionKind::LiveOriginal,
            3_000_000,
            &format!("live-{i}"),
        ));
    }
    if i.is_multiple_of(4) {
        a.versions.push(version(
            VersionKind::Adjusted,
            2_000_000,
            &format!("adj-{i}"),
        ));
    }
    a
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process: steadier than wall time on a shared machine.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    let out = f();
    (out, wall.elapsed(), cpu_time() - cpu)
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One full run over `n` assets, generated page by page (nothing accumulates in memory).
fn full_run(c: &mut Catalog, lib: icloudpd_rs::catalog::LibraryId, n: usize) -> Vec<u64> {
    let run = c.begin_run(lib, RunKind::Full, Some(n as u64)).unwrap();
    let mut rss = Vec::new();
    let mut page = Vec::with_capacity(PAGE);
    for i in 0..n {
        page.push(synthetic(i));
        if page.len() == PAGE || i + 1 == n {
            c.upsert_page(run, &page, &[]).unwrap();
            page.clear();
        }
        if (i + 1) % (n / 5).max(1) == 0 {
            rss.push(rss_kib("VmRSS:"));
        }
    }
    c.finish_full_enumeration(run, Some("tok")).unwrap();
    rss
}

/// The nearest physical limit: the same number of rows through plain prepared INSERTs into
/// bare tables, same pragmas, same page-sized transactions, no lookups, no indexes.
fn raw_sqlite_baseline(dir: &std::path::Path, n: usize) {
    let conn = Connection::open(dir.join("raw.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE a (k INTEGER PRIMARY KEY, id TEXT, name TEXT, d1 INTEGER, d2 INTEGER);
         CREATE TABLE v (k INTEGER PRIMARY KEY, a INTEGER, kind TEXT, size INTEGER, c TEXT);",
    )
    .unwrap();
    let mut i = 0;
    while i < n {
        conn.execute_batch("BEGIN").unwrap();
        for j in i..(i + PAGE).min(n) {
            let a = synthetic(j);
            conn.prepare_cached("INSERT INTO a (id, name, d1, d2) VALUES (?1, ?2, ?3, ?4)")
                .unwrap()
                .execute(params![a.id, a.filename, a.asset_date_ms, a.added_date_ms])
                .unwrap();
            let key = conn.last_insert_rowid();
            for v in &a.versions {
                conn.prepare_cached("INSERT INTO v (a, kind, size, c) VALUES (?1, ?2, ?3, ?4)")
                    .unwrap()
                    .execute(params![key, v.kind.as_str(), v.size as i64, v.checksum])
                    .unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
        i += PAGE;
    }
}

#[test]
#[ignore = "benchmark: run scripts/bench-catalog-db.sh"]
fn catalog_throughput() {
    let n: usize = std::env::var("CATALOG_BENCH_ASSETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let scratch = Scratch::new();
    let dir = std::env::var_os("CATALOG_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| scratch.dir.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bench-catalog.db");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let _ = std::fs::remove_file(dir.join("raw.db"));
    let versions: usize = (0..n).map(|i| synthetic(i).versions.len()).sum();
    println!(
        "catalog bench: {n} assets, {versions} versions, pages of {PAGE}, in {}",
        dir.display()
    );
    let rss_start = rss_kib("VmRSS:");

    let (mut c, lib) = writer(&db);
    let report = |what: &str, n: usize, wall: Duration, cpu: Duration| {
        println!(
            "{what:<30} wall {:>6.2} s  cpu {:>6.2} s  {:>8.0} /s (cpu)",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            per_sec(n, cpu)
        );
    };
    let (rss, wall, first_cpu) = timed(|| full_run(&mut c, lib, n));
    report("first full run (all new)", n, wall, first_cpu);
    println!("  versions/s (cpu): {:.0}", per_sec(versions, first_cpu));
    println!("  RSS during run (KiB, at 20% steps): {rss:?} (start {rss_start})");
    let (_, wall, cpu) = timed(|| full_run(&mut c, lib, n));
    report("second full run (unchanged)", n, wall, cpu);

    let ((seen, listed_versions), wall, cpu) = timed(|| {
        let mut seen = 0usize;
        let mut listed = 0usize;
        for a in c.assets(lib, AssetFilter::AllPhotos) {
            seen += 1;
            listed += a.unwrap().asset.versions.len();
        }
        (seen, listed)
    });
    assert_eq!((seen, listed_versions), (n, versions));
    report("stream all assets+versions", n, wall, cpu);

    let (status, wall, cpu) = timed(|| c.status(None).unwrap());
    report("status()", 1, wall, cpu);
    assert_eq!(status.assets, n as u64);
    let (check, wall, cpu) = timed(|| {
        Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
            .unwrap()
    });
    report(&format!("PRAGMA quick_check ({check})"), 1, wall, cpu);
    drop(c);
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!("database size: {:.1} MiB", size as f64 / 1048576.0);
    println!("peak RSS: {} KiB", rss_kib("VmHWM:"));

    let ((), wall, raw_cpu) = timed(|| raw_sqlite_baseline(&dir, n));
    report("raw SQLite baseline (bare)", n, wall, raw_cpu);
    println!(
        "catalog first run costs {:.1}x the raw inserts of the same rows (cpu)",
        first_cpu.as_secs_f64() / raw_cpu.as_secs_f64()
    );
}
