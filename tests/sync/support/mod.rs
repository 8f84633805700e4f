//! Shared helpers of the `sync` tests: a simulator, the real binary run against it, and the
//! checks that a download folder holds exactly the planned files with the simulator's bytes.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use icloudpd_rs::catalog::{AssetFilter, Catalog, DownloadState, DownloadStateKind};
use icloudpd_rs::cli::sync_cmd::SyncArgs;
use icloudpd_rs::layout::{self, LayoutPolicy};
use icloudpd_rs::mirror::RunMode;
use icloudpd_rs::sim::library::{ManifestEntry, ManifestOptions};
use icloudpd_rs::sim::{BackgroundSim, SimConfig};
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_icloudpd-rs");

/// A simulator with tiny files, and a scratch directory for data and photos.
pub struct Env {
    pub sim: BackgroundSim,
    pub dir: tempfile::TempDir,
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panic with the output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The summary line's counts: (downloaded, skipped, failed, total).
    pub fn summary(&self) -> (u64, u64, u64, u64) {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.contains(" downloaded, "))
            .unwrap_or_else(|| panic!("no summary line in:\n{}\n{}", self.stdout, self.stderr));
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("number"))
            .collect();
        assert_eq!(nums.len(), 4, "summary line {line:?}");
        (nums[0], nums[1], nums[2], nums[3])
    }
}

/// A simulator config with tiny files.
pub fn small(assets: usize) -> SimConfig {
    SimConfig {
        assets,
        size_scale: 0.0002,
        iterations: 1000,
        ..SimConfig::default()
    }
}

impl Env {
    /// Start a simulator for `config`.
    pub fn new(config: SimConfig) -> Env {
        Env {
            sim: BackgroundSim::start(config).expect("simulator starts"),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A download folder of this test (not created).
    pub fn folder(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Account options followed by `args`.
    pub fn account_args(&self, args: &[&str]) -> Vec<String> {
        self.account_args_in(&self.data(), args)
    }

    /// [`Self::account_args`] with another data folder.
    fn account_args_in(&self, data: &Path, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend([
            "-u".into(),
            self.sim.account().username.clone(),
            "--endpoint".into(),
            self.sim.endpoint().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ]);
        v
    }

    /// The binary with the account's options and `args` (password in the environment).
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(&self.data(), args)
    }

    /// [`Self::command`] with another data folder.
    pub fn command_in(&self, data: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(self.account_args_in(data, args))
            .env_remove("ICLOUD_USERNAME")
            .env_remove("ICLOUDPD_RS_ENDPOINT")
            .env("ICLOUD_PASSWORD", &self.sim.account().password)
            .env(
                "RUST_LOG",
                std::env::var("SYNC_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Run the binary to its end (panics after 5 minutes).
    pub fn run(&self, args: &[&str]) -> Run {
        let child = self.command(args).spawn().expect("start the binary");
        let out = wait_bounded(child, Duration::from_secs(300));
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `sync -d FOLDER` plus `extra`.
    pub fn sync(&self, folder: &Path, extra: &[&str]) -> Run {
        let folder = folder.display().to_string();
        let mut args = vec!["sync", "-d", folder.as_str(), "--no-progress-bar"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// (CDN requests, CDN bytes) served so far.
    pub fn cdn(&self) -> (u64, u64) {
        let stats = &self.sim.state().stats;
        (stats.cdn_requests(), stats.cdn_bytes())
    }

    /// The manifest of every zone by (asset id, version).
    pub fn manifest(&self) -> HashMap<(String, String), ManifestEntry> {
        self.sim
            .state()
            .library
            .manifest(&ManifestOptions {
                zone: None,
                sha256: true,
            })
            .expect("manifest")
            .into_iter()
            .map(|e| ((e.asset_id.clone(), e.version.to_string()), e))
            .collect()
    }

    /// The catalog, read-only.
    pub fn catalog(&self) -> Catalog {
        let account = self
            .data()
            .join(self.sim.account().username.replace(['/', '\\'], "_"));
        let path = std::fs::read_dir(self.data())
            .expect("data dir")
            .flatten()
            .map(|e| e.path().join("catalog.sqlite"))
            .find(|p| p.exists())
            .unwrap_or(account.join("catalog.sqlite"));
        Catalog::open_read_only(path).expect("catalog")
    }

    /// Apply simulator mutations.
    pub fn mutate(&self, ops: serde_json::Value) -> Vec<String> {
        self.sim
            .state()
            .library
            .mutate_json(&ops)
            .expect("mutation")
            .asset_ids
    }
}

/// The policy and selection `sync` would use with `flags`.
pub fn config_for(flags: &[&str]) -> icloudpd_rs::mirror::MirrorConfig {
    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        sync: SyncArgs,
    }
    let mut argv = vec!["x", "-d", "/tmp/unused"];
    argv.extend_from_slice(flags);
    let probe = Probe::try_parse_from(argv).expect("flags parse");
    icloudpd_rs::cli::sync_cmd::mirror_config(&probe.sync, RunMode::Download).expect("config")
}

/// What `layout::plan_tree` says the folder should hold for `flags`: relative path ->
/// (asset id, version as the manifest names it).
pub fn expected_tree(env: &Env, flags: &[&str]) -> BTreeMap<String, (String, String)> {
    let config = config_for(flags);
    expected_tree_for(env, &config.policy)
}

/// [`expected_tree`] for a policy, over All Photos of every library in the catalog.
pub fn expected_tree_for(env: &Env, policy: &LayoutPolicy) -> BTreeMap<String, (String, String)> {
    let catalog = env.catalog();
    let mut assets = Vec::new();
    for lib in catalog.libraries().expect("libraries") {
        if lib.library.zone != "PrimarySync" {
            continue;
        }
        for a in catalog.assets(lib.id, AssetFilter::AllPhotos) {
            assets.push(a.expect("asset").asset);
        }
    }
    layout::plan_tree(&assets, policy, None)
        .into_iter()
        .map(|f| {
            (
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            )
        })
        .collect()
}

/// Every regular file under `root`, relative, with its SHA-256; hidden files included.
pub fn files_on_disk(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, sha256_file(&entry.path()));
            }
        }
    }
    out
}

pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

/// The folder holds exactly `expected`, every file with the simulator's bytes; returns the
/// number of files.
pub fn assert_tree(env: &Env, root: &Path, expected: &BTreeMap<String, (String, String)>) -> usize {
    let manifest = env.manifest();
    let on_disk = files_on_disk(root);
    let extra: Vec<&String> = on_disk
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .collect();
    let missing: Vec<&String> = expected
        .keys()
        .filter(|p| !on_disk.contains_key(*p))
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "tree differs from the plan: {} extra {:?}, {} missing {:?}",
        extra.len(),
        extra.iter().take(10).collect::<Vec<_>>(),
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    for (path, (asset, version)) in expected {
        let entry = manifest
            .get(&(asset.clone(), version.clone()))
            .unwrap_or_else(|| panic!("{path}: {asset} {version} not in the manifest"));
        assert_eq!(
            Some(&on_disk[path]),
            entry.sha256.as_ref(),
            "{path}: bytes differ from the simulator's"
        );
    }
    expected.len()
}

/// Every file recorded as downloaded in `root` is at its planned path with the recorded digest.
pub fn assert_recorded(env: &Env, root: &Path) {
    let catalog = env.catalog();
    let root_id = catalog.root_id(root).expect("root").expect("registered");
    for record in catalog.downloads(root_id, DownloadStateKind::Downloaded) {
        let record = record.expect("record");
        let DownloadState::Downloaded {
            rel_path, sha256, ..
        } = record.state
        else {
            unreachable!()
        };
        let actual = sha256_file(&root.join(&rel_path));
        assert_eq!(actual, hex::encode(sha256), "{rel_path}: recorded digest");
    }
}

/// Wait for the child, draining its output; kill it (and panic) if it runs past `limit`.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
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
            let err = String::from_utf8_lossy(&err.join().expect("stderr")).into_owned();
            let tail: String = err
                .chars()
                .rev()
                .take(4000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("the binary hung for {limit:?}; end of stderr:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    }
}

/// `sync -d FOLDER --report-json REPORT`, stopped by SIGINT once `after` has passed; waits
/// (bounded) for exit code 130 after it said it stops, and returns the report it wrote.
pub fn sync_interrupted(
    env: &Env,
    folder: &Path,
    report: &Path,
    after: Duration,
) -> serde_json::Value {
    let child = spawn_sync(env, folder, report);
    std::thread::sleep(after);
    sigint(&child);
    wait_interrupted(child);
    serde_json::from_str(&std::fs::read_to_string(report).expect("the report")).expect("JSON")
}

/// A sync into `folder` writing its report to `report`, started (output piped).
pub fn spawn_sync(env: &Env, folder: &Path, report: &Path) -> Child {
    env.command(&[
        "sync",
        "-d",
        &folder.display().to_string(),
        "--no-progress-bar",
        "--report-json",
        &report.display().to_string(),
    ])
    .spawn()
    .expect("start")
}

pub fn sigint(child: &Child) {
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

/// Wait (bounded) for an interrupted run: exit code 130 after saying it stops; its stderr.
pub fn wait_interrupted(child: Child) -> String {
    let out = wait_bounded(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    stderr
}

/// The failures of a `--report-json` document by path.
pub fn failures(report: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("JSON");
    doc["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["error"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The plan of an album layout (`--album all --folder-structure {album}` + `extra`): every
/// album's members laid out in its folder.
pub fn album_tree(env: &Env, extra: &[&str]) -> BTreeMap<String, (String, String)> {
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let policy = config_for(&[&["--folder-structure", "{album}"], extra].concat()).policy;
    let mut out = BTreeMap::new();
    for album in catalog.albums(lib).unwrap() {
        if album.album.is_folder || album.album.deleted {
            continue;
        }
        let members: Vec<_> = catalog
            .assets(lib, AssetFilter::Album(album.key))
            .map(|a| a.unwrap().asset)
            .collect();
        let path: Vec<&str> = album.path.iter().map(String::as_str).collect();
        for f in icloudpd_rs::layout::plan_tree(&members, &policy, Some(&path)) {
            out.insert(
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            );
        }
    }
    out
}
