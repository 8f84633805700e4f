//! Measuring helpers of the mount benchmark (`bench.rs`): timings, CPU and memory of a
//! process, reads that bypass or drop caches, and an optional `perf` recorder.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `runs` timings.
pub fn median_of(runs: usize, mut timing: impl FnMut() -> Duration) -> Duration {
    let mut all: Vec<Duration> = (0..runs).map(|_| timing()).collect();
    all.sort();
    all[runs / 2]
}

pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let out = f();
    (t.elapsed(), out)
}

pub fn quiet(cmd: &mut Command) -> Duration {
    let (d, status) = time(|| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    });
    assert!(status.success(), "{cmd:?}");
    d
}

/// Read the whole file with a buffer of 1 MiB from the heap, or of `BENCH_READ_BUF` bytes
/// page-aligned as `cat` and `cp` have theirs (128-256 KiB).
pub fn read_all(path: &Path) -> u64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut heap;
    let buf = match std::env::var("BENCH_READ_BUF")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => {
            heap = vec![0u8; len + 4096];
            let skip = heap.as_ptr().align_offset(4096);
            &mut heap[skip..skip + len]
        }
        None => {
            heap = vec![0u8; MIB as usize];
            &mut heap[..]
        }
    };
    let mut total = 0;
    loop {
        let n = f.read(buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// Writes back every dirty page and lets the machine go quiet: the kernel's writeback of what
/// an earlier step wrote (the metadata phase's trees, the plain download's copy) would
/// otherwise take CPU from whichever measurement happens to follow it.
pub fn settle() {
    // SAFETY: sync(2) takes no argument and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(300));
}

/// Write `mib` MiB into a new file under `dir` and delete it, right before a timed step. Under
/// a hypervisor that unmaps the pages a guest frees (see `scripts/lib/page-reporting.sh`), the
/// first write to such a page costs a host fault: writing into the page cache ran at 450-580
/// MiB/s on those pages against ~3,000 MiB/s on mapped ones. Which side of a comparison got
/// mapped pages was chance (a plain download replacing its earlier copy reused that copy's
/// pages; the mount's cache writes took unmapped ones: 20-30% of its CPU). With the reporting
/// deferred, the page cache's next allocations reuse the pages freed here (freeing anonymous
/// memory instead was measured not to do it).
pub fn warm_free_memory(dir: &Path, mib: usize) {
    let path = dir.join("warm-free-memory");
    let block = vec![1u8; 1 << 20];
    if let Ok(mut f) = std::fs::File::create(&path) {
        for _ in 0..mib {
            if std::io::Write::write_all(&mut f, &block).is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

pub fn drop_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: advisory call on an owned descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// CPU time (user + system) process `pid` has used so far, all threads.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) are space-separated; utime and
    // stime are the 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: plain query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

pub fn rss_mib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// `perf record` of the cold read when `BENCH_PERF` names an output file (the whole system
/// with `BENCH_PERF_ALL`, else the mount process), stopped when dropped. `tag` is appended to
/// the file's name (one file per round).
pub struct Profiler(Option<std::process::Child>);

impl Profiler {
    pub fn start(pid: i32, tag: &str) -> Profiler {
        let Ok(out) = std::env::var("BENCH_PERF") else {
            return Profiler(None);
        };
        let out = format!("{out}{tag}");
        let mut cmd = Command::new("perf");
        if std::env::var("BENCH_PERF_STAT").is_ok() {
            // Counts instead of samples: instructions hardly depend on the machine's load.
            let events = "task-clock,instructions,cycles,page-faults,context-switches";
            cmd.args(["stat", "-e", events, "-o", &out])
                .args(["-p", &pid.to_string()]);
            let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok();
            std::thread::sleep(Duration::from_millis(500));
            return Profiler(child);
        }
        cmd.args(["record", "-o", &out]);
        match std::env::var("BENCH_PERF_EVENT") {
            Ok(event) => cmd.args(["-e", &event]),
            Err(_) if std::env::var("BENCH_PERF_DWARF").is_ok() => {
                cmd.args(["--call-graph", "dwarf,16384", "-F", "500"])
            }
            Err(_) => cmd.args(["-g", "-F", "2000"]),
        };
        if std::env::var("BENCH_PERF_ALL").is_ok() {
            cmd.arg("-a");
        } else {
            cmd.args(["-p", &pid.to_string()]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok();
        std::thread::sleep(Duration::from_millis(500));
        Profiler(child)
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let _ = c.wait();
        }
    }
}
