//! Shared by the `mount` and `demo` tests: a simulator, the real binary mounted against it as
//! a child process (unmounted and killed if a test fails half way), reference trees written by
//! `sync -d`, and file walks that skip the views.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use icloudpd_rs::sim::{BackgroundSim, SimConfig};
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_icloudpd-rs");

/// Top-level names of the views (with a layout whose root never uses them).
pub const VIEWS: [&str; 6] = [
    "Albums",
    "Favorites",
    "Media Types",
    "Hidden",
    "Recently Deleted",
    "Libraries",
];

/// Whether the FUSE tests can run here; under `CI=true` a missing prerequisite is a failure.
pub fn fuse_ready() -> bool {
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

pub fn tool_exists(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A simulator config with small files.
pub fn small(assets: usize, size_scale: f64) -> SimConfig {
    SimConfig {
        assets,
        size_scale,
        iterations: 1000,
        ..SimConfig::default()
    }
}

/// A simulator and a scratch directory (data dir, mountpoints, reference trees).
pub struct Env {
    pub sim: Option<BackgroundSim>,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub username: String,
    pub password: String,
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn new(config: SimConfig) -> Env {
        let sim = BackgroundSim::start(config).expect("simulator starts");
        Env {
            endpoint: sim.endpoint().to_string(),
            username: sim.account().username.clone(),
            password: sim.account().password.clone(),
            sim: Some(sim),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn sim(&self) -> &BackgroundSim {
        self.sim.as_ref().expect("the simulator is running")
    }

    /// Stop the simulator: the network is gone.
    pub fn stop_sim(&mut self) {
        self.sim.take();
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new empty directory of the scratch area.
    pub fn empty_dir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        p.canonicalize().unwrap()
    }

    /// The binary with `args` and the account's options (password in the environment).
    pub fn command(&self, args: &[&str]) -> Command {
        // A benchmark may compare another build of the binary (`BENCH_BIN`) with this one.
        let bin = std::env::var("BENCH_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| BIN.into());
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .args([
                "-u",
                &self.username,
                "--endpoint",
                &self.endpoint,
                "--data-dir",
                &self.data().display().to_string(),
            ])
            .env_remove("ICLOUD_USERNAME")
            .env_remove("ICLOUDPD_RS_ENDPOINT")
            .env("ICLOUD_PASSWORD", &self.password)
            // The session's steps (unmounting, unmounted) show where a stop got stuck.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_MOUNT_LOG")
                    .unwrap_or_else(|_| "warn,icloudpd_rs::mount::session=info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Run the binary to its end (panics after 5 minutes).
    pub fn run(&self, args: &[&str]) -> Run {
        let child = self.command(args).spawn().expect("start the binary");
        let (code, stdout, stderr) = wait_bounded(child, Duration::from_secs(300));
        Run {
            code,
            stdout,
            stderr,
        }
    }

    /// `sync -d DIR` plus `flags`; panics unless it succeeds.
    pub fn sync(&self, dir: &Path, flags: &[&str]) {
        let d = dir.display().to_string();
        let mut args = vec!["sync", "-d", d.as_str(), "--no-progress-bar"];
        args.extend_from_slice(flags);
        let run = self.run(&args);
        assert_eq!(run.code, 0, "sync failed:\n{}\n{}", run.stdout, run.stderr);
    }

    /// Mount at `mnt` with `flags`; returns once the filesystem is up.
    pub fn mount(&self, mnt: &Path, flags: &[&str]) -> Mounted {
        let m = mnt.display().to_string();
        let mut args = vec!["mount", m.as_str()];
        args.extend_from_slice(flags);
        let child = self.command(&args).spawn().expect("start mount");
        Mounted::wait_up(child, mnt)
    }

    /// (CDN requests, CDN bytes) served so far.
    pub fn cdn(&self) -> (u64, u64) {
        let stats = &self.sim().state().stats;
        (stats.cdn_requests(), stats.cdn_bytes())
    }

    /// Apply simulator mutations.
    pub fn mutate(&self, ops: serde_json::Value) -> Vec<String> {
        self.sim()
            .state()
            .library
            .mutate_json(&ops)
            .expect("mutation")
            .asset_ids
    }

    /// Arm a fault with probability `p` (0 disarms it).
    pub fn fault(&self, name: &str, p: f64) {
        let kind: FaultKind = name.parse().expect("fault name");
        self.sim().state().faults.set(
            kind,
            FaultRule {
                p,
                ..FaultRule::default()
            },
        );
    }

    /// Disarm every fault.
    pub fn clear_faults(&self) {
        self.sim().state().faults.clear();
    }

    /// The account's catalog, read-only.
    pub fn catalog(&self) -> icloudpd_rs::catalog::Catalog {
        let path = std::fs::read_dir(self.data())
            .expect("data dir")
            .flatten()
            .map(|e| e.path().join("catalog.sqlite"))
            .find(|p| p.exists())
            .expect("a catalog");
        icloudpd_rs::catalog::Catalog::open_read_only(path).expect("catalog")
    }
}

/// Wait for the child; kill it (and panic) past `limit`. Returns (code, stdout, stderr).
pub fn wait_bounded(mut child: Child, limit: Duration) -> (i32, String, String) {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the binary hung for {limit:?}; stderr:\n{}", take(&err));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(50));
    (status.code().unwrap_or(-1), take(&out), take(&err))
}

type Sink = Arc<Mutex<Vec<u8>>>;

/// Collect a pipe in the background (readable at any time).
pub fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Sink {
    let sink: Sink = Arc::default();
    let s = sink.clone();
    std::thread::spawn(move || {
        let Some(mut p) = pipe else { return };
        let mut buf = [0u8; 4096];
        loop {
            match p.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => s.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    sink
}

pub fn take(sink: &Sink) -> String {
    String::from_utf8_lossy(&sink.lock().unwrap()).into_owned()
}

/// Whether something is mounted exactly at `path`.
pub fn is_mounted(path: &Path) -> bool {
    let want = path.as_os_str().as_bytes().to_vec();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p.as_bytes() == want))
}

/// `fusermount3 -u MNT`, as a user unmounts (the mount's process then exits by itself).
pub fn fusermount_u(mnt: &Path) {
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(mnt)
        .output()
        .expect("run fusermount3");
    assert!(out.status.success(), "fusermount3 -u {mnt:?}: {out:?}");
}

/// Detach whatever is mounted at `path` (cleanup after a failed test).
pub fn force_unmount(path: &Path) {
    if is_mounted(path) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A running `mount` child.
pub struct Mounted {
    pub child: Option<Child>,
    pub mnt: PathBuf,
    pub stdout: Sink,
    pub stderr: Sink,
}

impl Mounted {
    /// Wait until `mnt` is mounted (or the child died: panic with its output).
    pub fn wait_up(mut child: Child, mnt: &Path) -> Mounted {
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let mnt = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                panic!(
                    "mount exited early with {status}:\n{}\n{}",
                    take(&stdout),
                    take(&stderr)
                );
            }
            // Mounted and serving (the ready line is printed after the mount is up).
            if is_mounted(&mnt) && take(&stderr).contains("mounted at") {
                break;
            }
            assert!(Instant::now() < deadline, "mount not up: {}", take(&stderr));
            std::thread::sleep(Duration::from_millis(25));
        }
        Mounted {
            child: Some(child),
            mnt,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Send `signal` and wait for the exit; returns the exit code and the output.
    pub fn stop_with(mut self, signal: i32) -> (i32, String) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), signal) };
        self.wait_exit()
    }

    /// Wait for the child to exit (at most a minute).
    pub fn wait_exit(&mut self) -> (i32, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("mount did not exit: {}", take(&self.stderr));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        (status.code().unwrap_or(-1), take(&self.stderr))
    }

    /// Unmount with SIGINT and check the clean exit.
    pub fn finish(self) {
        let mnt = self.mnt.clone();
        let (code, err) = self.stop_with(libc::SIGINT);
        assert_eq!(code, 0, "mount exit code; stderr:\n{err}");
        assert!(!is_mounted(&mnt), "left mounted");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A failed test still lets the process clean up (the demo removes its folders);
            // SIGKILL only if it does not stop.
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        force_unmount(&self.mnt);
    }
}

/// Regular files under `root` (relative path -> (size, mtime ns, sha256)), skipping the views
/// at the top when `skip_views`.
pub fn tree(root: &Path, skip_views: bool) -> BTreeMap<String, (u64, i128, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if skip_views
                && dir == root
                && VIEWS.contains(&entry.file_name().to_string_lossy().as_ref())
            {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mtime = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
                out.insert(rel, (meta.len(), mtime, sha256_file(&path)));
            }
        }
    }
    out
}

pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path:?}: {e}"));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {path:?}: {e}"));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// Assert two trees are equal, naming the first differences.
pub fn assert_same_tree(
    what: &str,
    got: &BTreeMap<String, (u64, i128, String)>,
    want: &BTreeMap<String, (u64, i128, String)>,
) {
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, v)| (k, v, &got[k]))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{what}: {} vs {} files; missing {missing:?}, extra {extra:?}, differ {differ:?}",
        got.len(),
        want.len()
    );
}

/// `rsync -a SRC/ DST/` without the views; returns the number of files it transferred.
pub fn rsync_date_tree(src: &Path, dst: &Path) -> u64 {
    let mut cmd = Command::new("rsync");
    cmd.arg("-a").arg("--stats");
    for v in VIEWS {
        cmd.arg(format!("--exclude=/{v}"));
    }
    let out = cmd
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .expect("rsync");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "rsync failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Number of regular files transferred: "))
        .map(|n| n.trim().replace(',', "").parse().unwrap())
        .unwrap_or(0)
}

/// `user.*` attribute `name` of `path`, through getxattr(2).
pub fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and buffer.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// The asset ids of the files directly in `dir` (by their `user.icloud.asset_id`).
pub fn asset_ids_in(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .filter_map(|e| getxattr(&e.path(), "user.icloud.asset_id"))
        .map(|v| String::from_utf8(v).unwrap())
        .collect()
}

/// Wait until `ok` holds (polled every 200 ms), failing the test after a minute.
pub fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
