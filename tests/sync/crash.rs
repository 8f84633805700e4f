//! Interruptions: `kill -9` at several moments, then a sync that completes the tree without
//! fetching again any file that was complete; SIGINT stopping gracefully with state flushed;
//! two syncs of one account never overlapping.

use crate::support;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use support::*;

/// A library whose files take a few seconds to download (per-connection bandwidth limit).
fn slow_env() -> Env {
    let mut config = small(40);
    config.size_scale = 0.01;
    config.cdn_bandwidth = Some(400_000);
    Env::new(config)
}

/// Inode of every file of `expected` present at its path now.
fn complete_files(
    root: &std::path::Path,
    expected: &std::collections::BTreeMap<String, (String, String)>,
) -> HashMap<String, u64> {
    expected
        .keys()
        .filter_map(|p| {
            std::fs::metadata(root.join(p))
                .ok()
                .map(|m| (p.clone(), m.ino()))
        })
        .collect()
}

#[test]
fn kill_9_at_random_moments_then_sync_completes_without_fetching_complete_files_again() {
    let env = slow_env();
    let photos = env.folder("photos");
    // The plan, from a dry run (no download).
    env.sync(&photos, &["--dry-run"]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let manifest = env.manifest();
    let total: u64 = expected.values().map(|key| manifest[key].size).sum();
    let mut complete: HashMap<String, u64> = HashMap::new();
    let folder = photos.display().to_string();
    // Deterministic "random" moments: early (listing), middle, late.
    for (round, wait_ms) in [150u64, 900, 1700, 600, 2500].into_iter().enumerate() {
        let mut child = env
            .command(&["sync", "-d", &folder, "--no-progress-bar"])
            .spawn()
            .expect("start");
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("kill -9");
        let _ = child.wait();
        let now = complete_files(&photos, &expected);
        for (path, ino) in &complete {
            assert_eq!(
                now.get(path),
                Some(ino),
                "round {round}: {path} was complete and got replaced"
            );
        }
        complete = now;
    }
    assert!(
        complete.len() < expected.len(),
        "the kills came too late to interrupt anything"
    );
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    assert_tree(&env, &photos, &expected);
    assert_recorded(&env, &photos);
    let now = complete_files(&photos, &expected);
    for (path, ino) in &complete {
        assert_eq!(
            now.get(path),
            Some(ino),
            "{path} was complete and got fetched again"
        );
    }
    let (_, cdn_bytes) = env.cdn();
    eprintln!(
        "{} of {} files complete before the last run; {cdn_bytes} CDN bytes for {total}",
        complete.len(),
        expected.len()
    );
    assert!(
        cdn_bytes < total * 2,
        "{cdn_bytes} bytes served for {total} bytes of files: resumes do not work"
    );
}

#[test]
fn sigint_stops_gracefully_and_the_next_run_resumes() {
    let env = slow_env();
    let photos = env.folder("photos");
    let interrupted = env.folder("interrupted.json");
    let child = spawn_sync(&env, &photos, &interrupted);
    // Stopped once downloads have begun (the plan is made), long before they are all done.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.cdn().0 == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let stderr = wait_interrupted(child);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&interrupted).unwrap()).unwrap();
    assert_eq!(doc["status"], "interrupted", "{doc}");
    // The summary's counts leave out the files never come to: the run says how many.
    let count = |k: &str| doc[k].as_u64().unwrap_or_else(|| panic!("{k} in {doc}"));
    let untried = count("total") - count("downloaded") - count("skipped") - count("failed");
    assert!(untried > 0, "the slow library was done in 0.3 s: {doc}");
    assert!(
        stderr.contains(&format!("interrupted with {untried} file(s) not tried")),
        "{stderr}"
    );
    assert_stopped_run_resumes(&env, &photos);
}

/// After a run stopped by a signal: whatever is recorded is on disk with the recorded digest,
/// every file that made it to its final path is recorded (the state was flushed before
/// exiting), and the next run skips exactly those and ends with the exact tree. Returns how
/// many files the stopped run had finished.
fn assert_stopped_run_resumes(env: &Env, photos: &Path) -> usize {
    assert_recorded(env, photos);
    let catalog = env.catalog();
    let root = catalog.root_id(photos).unwrap().unwrap();
    let recorded: std::collections::BTreeSet<String> = catalog
        .downloads(root, icloudpd_rs::catalog::DownloadStateKind::Downloaded)
        .map(|r| match r.unwrap().state {
            icloudpd_rs::catalog::DownloadState::Downloaded { rel_path, .. } => rel_path,
            _ => unreachable!(),
        })
        .collect();
    drop(catalog);
    let finished: std::collections::BTreeSet<String> = files_on_disk(photos)
        .into_keys()
        .filter(|p| !p.rsplit('/').next().unwrap().starts_with('.'))
        .collect();
    assert_eq!(
        finished, recorded,
        "finished files and recorded ones differ"
    );
    let expected = expected_tree(env, &[]);
    let report = env.folder("resumed.json");
    let run = env.sync(photos, &["--report-json", report.to_str().unwrap()]);
    run.expect_code(0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["skip_reasons"]["already_downloaded"], finished.len());
    assert!(doc["skip_reasons"].get("adopted").is_none(), "{doc}");
    assert_tree(env, photos, &expected);
    finished.len()
}

/// A closed terminal or ssh session (SIGHUP, its output gone with it) stops a sync as SIGTERM
/// does: files in flight get their grace period, everything finished is recorded, the exit
/// code is 128 + 1, and the next run resumes to the exact tree (SIGHUP used to kill it at
/// once, and its summary lines then panicked on the dead terminal).
#[test]
fn sighup_stops_gracefully_and_the_next_run_resumes() {
    let env = slow_env();
    let photos = env.folder("photos");
    let report = env.folder("hangup.json");
    let mut child = spawn_sync(&env, &photos, &report);
    // Mid-run: once a first file is complete.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !files_on_disk_any(&photos, |name| !name.starts_with('.')) {
        assert!(
            std::time::Instant::now() < deadline,
            "no file was downloaded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The terminal goes away: nothing reads the output any more.
    drop(child.stdout.take());
    drop(child.stderr.take());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let out = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(128 + libc::SIGHUP));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["status"], "interrupted", "{doc}");
    let total = expected_tree(&env, &[]).len();
    let finished = assert_stopped_run_resumes(&env, &photos);
    assert!(
        finished > 0 && finished < total,
        "{finished} of {total} finished"
    );
}

/// While a sync runs, a second one of the same account (same catalog) and a second one into
/// the same folder from another data folder (a container beside its host: another catalog)
/// are both refused, naming the first; the first finishes with the exact tree.
#[test]
fn two_syncs_never_overlap() {
    let env = slow_env();
    let photos = env.folder("photos");
    let folder = photos.display().to_string();
    let first = env
        .command(&["sync", "-d", &folder, "--no-progress-bar"])
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_millis(700));
    let second = env.sync(&env.folder("other"), &[]);
    second.expect_code(1);
    assert!(
        second.stderr.contains("this sync did not start")
            && second.stderr.contains("icloudpd-rs sync")
            && second.stderr.contains("wait for it to finish"),
        "{}",
        second.stderr
    );
    assert!(
        !env.folder("other").exists(),
        "the refused sync touched nothing"
    );
    // The catalogs differ here: only the folder's own lock keeps the two apart.
    let third = env
        .command_in(
            &env.folder("other-data"),
            &["sync", "-d", &folder, "--no-progress-bar"],
        )
        .output()
        .expect("third sync");
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is being written by another icloudpd-rs process")
            && stderr.contains(&format!("pid {}", first.id())),
        "{stderr}"
    );
    let out = wait_bounded(first, Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = expected_tree(&env, &[]);
    assert_tree(&env, &photos, &expected);
}

#[test]
fn a_second_sigint_quits_at_once_leaving_only_resumable_files_and_the_next_run_completes() {
    use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    // Every transfer sends part of its file, then stalls (for minutes): in-flight files
    // cannot finish within the grace period.
    env.sim.state().faults.set(
        FaultKind::CdnStall,
        FaultRule {
            p: 1.0,
            asset_ids: None,
            remaining: None,
        },
    );
    let report = env.folder("report.json");
    let mut child = spawn_sync(&env, &photos, &report);
    // Wait until transfers are in flight (partial files on disk), then signal twice.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !files_on_disk_any(&photos, |name| name.ends_with(".icloudpd-rs.part")) {
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "no transfer started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sigint(&child);
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    // The stalls last minutes: the wait's bound guards against a hang.
    let stderr = wait_interrupted(child);
    assert!(stderr.contains("quitting now"), "{stderr}");
    // It quit on the second signal, not at the end of the grace period (which writes the
    // interrupted run's report).
    assert!(
        !report.exists(),
        "the run went on to its graceful end: {stderr}"
    );
    // Only resumable partial files are left besides complete ones, and whatever is recorded
    // is on disk with its digest.
    for path in files_on_disk(&photos).into_keys() {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            !name.starts_with('.') || name.ends_with(".icloudpd-rs.part"),
            "{path}: a temporary file that no run resumes"
        );
    }
    assert_recorded(&env, &photos);

    env.sim.state().faults.clear();
    env.sync(&photos, &[]).expect_code(0);
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
    assert_recorded(&env, &photos);
    assert!(
        !files_on_disk_any(&photos, |name| name.starts_with('.')),
        "temp files left after a complete run"
    );
}

/// True when a file under `root` has a name for which `pred` holds.
fn files_on_disk_any(root: &std::path::Path, pred: impl Fn(&str) -> bool) -> bool {
    root.is_dir()
        && files_on_disk(root)
            .keys()
            .any(|p| pred(p.rsplit('/').next().unwrap_or(p)))
}

/// A run killed between renaming files to a new layout and recording the renames (the state
/// a `kill -9` in the middle of a layout change leaves): the next run finds each file where it
/// went, by the rename noted before it was made, instead of downloading it again and leaving
/// the moved copy behind.
#[test]
fn files_renamed_by_a_killed_run_are_found_where_they_went() {
    use icloudpd_rs::catalog::{Catalog, DownloadState, DownloadStateKind, DownloadUpdate};
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let dated = expected_tree(&env, &[]);
    let flat: HashMap<(String, String), String> =
        expected_tree(&env, &["--folder-structure", "none"])
            .into_iter()
            .map(|(path, key)| (key, path))
            .collect();
    let path = env.catalog().path().to_path_buf();
    let mut catalog = Catalog::open(&path).unwrap();
    let root = catalog.root_id(&photos).unwrap().unwrap();
    let mut notes = Vec::new();
    for record in catalog.downloads(root, DownloadStateKind::Downloaded) {
        let record = record.unwrap();
        let DownloadState::Downloaded { rel_path, .. } = record.state else {
            continue;
        };
        if notes.len() == 5 {
            break;
        }
        let target = flat[&dated[&rel_path]].clone();
        std::fs::rename(photos.join(&rel_path), photos.join(&target)).unwrap();
        notes.push(DownloadUpdate::Renaming {
            version: record.version,
            rel_path: target,
        });
    }
    catalog.apply_download_updates(root, &notes).unwrap();
    drop(catalog);

    let before = env.cdn();
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    assert_eq!(run.summary().0, 0, "downloaded again: {}", run.stderr);
    assert_eq!(env.cdn(), before, "no CDN request");
    assert_tree(&env, &photos, &dated);
    assert_eq!(
        files_on_disk(&photos).len(),
        dated.len(),
        "a moved copy stayed"
    );
    assert_recorded(&env, &photos);
}
