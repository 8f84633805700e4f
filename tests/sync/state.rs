//! The download-state commands against the simulator: `import-existing` (a tree from a clean
//! sync elsewhere, and one with icloudpd's collision names), `verify [--checksums]
//! [--repair]`, `reset-state`; `--until-found` over a folder synced with another data folder.
//! Failed files are in `failed.rs`.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use support::*;

/// Copy a tree (files and folders, mtimes kept).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

#[test]
fn import_existing_adopts_a_tree_without_downloading() {
    let env = Env::new(small(50));
    let a = env.folder("a");
    env.sync(&a, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let b = env.folder("b");
    copy_tree(&a, &b);
    // One file under the name icloudpd gives a same-name file of another size.
    let (moved_from, _) = expected.iter().next().unwrap();
    let size = std::fs::metadata(b.join(moved_from)).unwrap().len();
    let (stem, ext) = moved_from.rsplit_once('.').unwrap();
    let icloudpd_name = format!("{stem}-{size}.{ext}");
    std::fs::rename(b.join(moved_from), b.join(&icloudpd_name)).unwrap();

    let before = env.cdn();
    // At the default log level: the summary says what was adopted, not a line per file.
    let out = env
        .command(&[
            "import-existing",
            "-d",
            b.to_str().unwrap(),
            "--no-progress-bar",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("{} adopted", expected.len())),
        "{stdout}"
    );
    assert!(stderr.lines().count() < 10, "{stderr}");
    assert_eq!(env.cdn(), before, "import-existing downloads nothing");

    let sync = env.sync(&b, &[]);
    sync.expect_code(0);
    assert_eq!(sync.summary().0, 0, "nothing downloaded after an import");
    assert_eq!(env.cdn(), before, "no CDN request either");
    assert_tree(&env, &b, &expected);
    assert_recorded(&env, &b);
}

/// A folder removed by hand, then synced with `--size adjusted`: edits take their originals'
/// paths, and the originals' records are stale, not missing or damaged files.
#[test]
fn verify_tells_stale_records_from_damaged_files() {
    let env = Env::new(small(12));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    std::fs::remove_dir_all(&photos).unwrap();
    env.sync(&photos, &["--size", "adjusted"]).expect_code(0);
    let dir = photos.to_str().unwrap();
    let check = env.run(&["verify", "-d", dir, "--checksums"]);
    check.expect_code(0);
    assert!(
        check.stdout.contains("0 missing, 0 damaged"),
        "{}",
        check.stdout
    );
    let stale = check
        .stdout
        .lines()
        .filter(|l| l.ends_with("(the file there was written for another version since)"))
        .count();
    assert!(stale > 0, "{}", check.stdout);
    assert!(
        check.stdout.contains(&format!("{stale} older records")),
        "{}",
        check.stdout
    );
    let repair = env.run(&["verify", "-d", dir, "--checksums", "--repair"]);
    repair.expect_code(0);
    assert!(repair.stdout.contains(": forgotten"), "{}", repair.stdout);
    let again = env.run(&["verify", "-d", dir, "--checksums"]);
    again.expect_code(0);
    assert!(!again.stdout.contains("older record"), "{}", again.stdout);
    // The files are all still there, and a sync has nothing to do.
    let sync = env.sync(&photos, &["--size", "adjusted"]);
    sync.expect_code(0);
    assert_eq!(sync.summary().0, 0);
}

#[test]
fn verify_finds_missing_and_damaged_files_and_repair_fetches_them_again() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let dir = photos.to_str().unwrap();
    env.run(&["verify", "-d", dir, "--checksums"])
        .expect_code(0);

    let mut paths = expected.keys();
    let gone = paths.next().unwrap().clone();
    let damaged = paths.next().unwrap().clone();
    std::fs::remove_file(photos.join(&gone)).unwrap();
    let mut bytes = std::fs::read(photos.join(&damaged)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(photos.join(&damaged), &bytes).unwrap();

    let quick = env.run(&["verify", "-d", dir]);
    quick.expect_code(1);
    assert!(
        quick.stdout.contains(&format!("{gone}: missing")),
        "{}",
        quick.stdout
    );
    assert!(
        !quick.stdout.contains(&damaged),
        "same size: only --checksums sees it"
    );
    // Without -d: the account's only download folder.
    let full = env.run(&["verify", "--checksums"]);
    full.expect_code(1);
    assert!(
        full.stdout.contains(&format!("{damaged}: content differs")),
        "{}",
        full.stdout
    );
    // The repair it suggests is a command that works as printed (the folder made absolute).
    let suggested = full
        .stderr
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command suggested: {}", full.stderr));
    let rest = suggested
        .strip_prefix("icloudpd-rs verify ")
        .unwrap_or_else(|| panic!("{suggested}"));
    assert!(
        rest.contains("--checksums") && rest.ends_with("--repair"),
        "{rest}"
    );
    let repair = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{BIN} verify {rest}"))
        .current_dir("/")
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUDPD_RS_ENDPOINT")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&repair.stdout);
    assert!(
        out.contains("2 files marked for download"),
        "{out}{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    // `status --failed` says what verify found, in words.
    let failed = env.run(&["status", "--failed"]);
    assert!(
        failed.stdout.contains("verify: missing")
            && failed.stdout.contains("verify: content differs"),
        "{}",
        failed.stdout
    );

    let sync = env.sync(&photos, &[]);
    sync.expect_code(0);
    assert_eq!(sync.summary().0, 2, "the missing and the damaged file");
    assert_tree(&env, &photos, &expected);
    env.run(&["verify", "-d", dir, "--checksums"])
        .expect_code(0);

    // A second download folder: `verify` alone must be told which one.
    let other = env.folder("other");
    env.sync(&other, &[]).expect_code(0);
    let which = env.run(&["verify"]);
    which.expect_code(1);
    let listed = format!(
        "several folders ({}, {})",
        photos.display(),
        other.display()
    );
    assert!(which.stderr.contains(&listed), "{}", which.stderr);
}

#[test]
fn reset_state_needs_yes_and_the_next_sync_adopts_instead_of_downloading() {
    let env = Env::new(small(25));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let refused = env.run(&["reset-state", "-d", photos.to_str().unwrap()]);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    env.run(&["reset-state", "-d", photos.to_str().unwrap(), "--yes"])
        .expect_code(0);
    let before = env.cdn();
    let run = env.sync(
        &photos,
        &["--report-json", env.folder("r.json").to_str().unwrap()],
    );
    run.expect_code(0);
    assert_eq!(run.summary().0, 0);
    assert_eq!(env.cdn(), before);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.folder("r.json")).unwrap()).unwrap();
    assert_eq!(report["skip_reasons"]["adopted"], expected.len());
    assert_eq!(report["status"], "complete");
    assert_tree(&env, &photos, &expected);
    assert_recorded(&env, &photos);
}

#[test]
fn after_reset_state_files_are_checked_not_trusted() {
    let env = Env::new(small(25));
    let photos = env.folder("photos");
    let dir = photos.to_str().unwrap().to_string();
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    env.run(&["reset-state", "-d", &dir, "--yes"])
        .expect_code(0);
    // Same size, other bytes: a damaged (or user-changed) file is never taken as downloaded,
    // nor overwritten; a missing one is downloaded again.
    let mut paths = expected.keys();
    let (damaged, gone) = (paths.next().unwrap().clone(), paths.next().unwrap().clone());
    let mut bytes = std::fs::read(photos.join(&damaged)).unwrap();
    bytes[0] ^= 0x55;
    std::fs::write(photos.join(&damaged), &bytes).unwrap();
    std::fs::remove_file(photos.join(&gone)).unwrap();
    let run = env.sync(&photos, &[]);
    run.expect_code(2);
    assert_eq!(
        run.summary(),
        (1, expected.len() as u64 - 2, 1, expected.len() as u64)
    );
    assert!(
        run.stderr.contains(&damaged) && run.stderr.contains("changed on disk"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(photos.join(&damaged)).unwrap(),
        bytes,
        "left as it was"
    );
    let status = env.run(&["status", "--failed"]);
    assert!(status.stdout.contains(&damaged), "{}", status.stdout);

    // Moved away by the user: the next sync fetches iCloud's copy.
    std::fs::rename(photos.join(&damaged), env.folder("mine")).unwrap();
    env.sync(&photos, &[]).expect_code(0);
    assert_tree(&env, &photos, &expected);

    // A reset, then a changed layout: the checked files are renamed, not downloaded.
    env.run(&["reset-state", "-d", &dir, "--yes"])
        .expect_code(0);
    let before = env.cdn();
    let flat = ["--folder-structure", "none"];
    let run = env.sync(&photos, &flat);
    run.expect_code(0);
    assert_eq!(run.summary().0, 0);
    assert_eq!(env.cdn(), before);
    assert_tree(&env, &photos, &expected_tree(&env, &flat));
    assert_recorded(&env, &photos);
}

#[test]
fn state_commands_take_a_relative_download_folder_as_sync_does() {
    let env = Env::new(small(10));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let parent = photos.parent().unwrap();
    let name = photos.file_name().unwrap().to_str().unwrap();
    for (args, says) in [
        (["status", "-d", name], "Downloaded:"),
        (["verify", "-d", name], "0 missing"),
    ] {
        let out = env.command(&args).current_dir(parent).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stdout.contains(says), "{args:?}: {stdout}");
    }
}

/// `--until-found N` over a folder synced with another data folder (or written by icloudpd):
/// files already there with their planned size count as found, as icloudpd counts the files
/// it finds on disk. The walk stops after N such assets, so the old files the user deleted
/// stay deleted; a missing file among the newest is fetched, and resets the count.
#[test]
fn until_found_counts_the_files_already_on_disk() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let mut by_date: Vec<(i64, String)> = catalog
        .assets(lib, icloudpd_rs::catalog::AssetFilter::AllPhotos)
        .map(|a| a.unwrap().asset)
        .map(|a| (a.asset_date_ms, a.id))
        .collect();
    by_date.sort();
    let files_of = |id: &str| -> Vec<String> {
        expected
            .iter()
            .filter(|(_, (asset, _))| asset == id)
            .map(|(path, _)| path.clone())
            .collect()
    };
    // The user deleted the files of the two oldest assets and of the newest one.
    let old: Vec<String> = by_date[..2]
        .iter()
        .flat_map(|(_, id)| files_of(id))
        .collect();
    let newest = files_of(&by_date.last().unwrap().1);
    assert!(!old.is_empty() && !newest.is_empty());
    for path in old.iter().chain(&newest) {
        std::fs::remove_file(photos.join(path)).unwrap();
    }

    let folder = photos.display().to_string();
    let out = env
        .command_in(
            &env.folder("fresh-data"),
            &[
                "sync",
                "-d",
                &folder,
                "--no-progress-bar",
                "--until-found",
                "3",
            ],
        )
        .output()
        .expect("sync");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.expect_code(0);
    let (downloaded, skipped, failed, _) = run.summary();
    assert_eq!(
        (downloaded, failed),
        (newest.len() as u64, 0),
        "only the newest asset's files are fetched again\n{}",
        run.stdout
    );
    assert!(skipped >= 3, "{}", run.stdout);
    for path in &newest {
        assert!(photos.join(path).is_file(), "{path} fetched again");
    }
    for path in &old {
        assert!(!photos.join(path).exists(), "{path} stays deleted");
    }
}

/// `--xmp-sidecar` writes the GPS fix's speed and time as icloudpd does (`exif:GPSSpeed` as
/// Python's `str(float)`, left out when 0; `exif:GPSTimeStamp` in UTC without offset), from
/// the `locationEnc` the simulator sends as Apple does.
#[test]
fn sidecars_carry_the_gps_speed_and_time_stamp_of_the_fix() {
    use icloudpd_rs::sim::library::PRIMARY_ZONE;
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, &["--xmp-sidecar"]).expect_code(0);

    let library = &env.sim.state().library;
    let fixes: std::collections::HashMap<String, (f64, i64)> = library
        .zone(PRIMARY_ZONE)
        .unwrap()
        .read()
        .assets
        .iter()
        .filter_map(|a| {
            let fix = library.facts.meta(a).location?;
            Some((
                library.ids.master_name(a.key),
                (fix.speed, fix.timestamp_ms),
            ))
        })
        .collect();
    let element = |xml: &str, name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = start + xml[start..].find(&format!("</{name}>"))?;
        Some(xml[start..end].to_string())
    };
    let (mut moving, mut still) = (0, 0);
    for path in files_on_disk(&photos).into_keys() {
        if !path.ends_with(".xmp") {
            continue;
        }
        let xml = std::fs::read_to_string(photos.join(&path)).unwrap();
        let id = element(&xml, "icloud:AssetId").expect("asset id");
        let speed = element(&xml, "exif:GPSSpeed");
        let time = element(&xml, "exif:GPSTimeStamp");
        let Some(&(want_speed, want_ms)) = fixes.get(&id) else {
            assert_eq!((speed, time), (None, None), "{path}: no fix");
            continue;
        };
        let want_time = chrono::DateTime::from_timestamp_millis(want_ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        assert_eq!(time.as_deref(), Some(want_time.as_str()), "{path}");
        if want_speed == 0.0 {
            assert_eq!(speed, None, "{path}: a speed of 0 is left out");
            still += 1;
        } else {
            let speed = speed.unwrap_or_else(|| panic!("{path}: no GPSSpeed"));
            assert_eq!(speed.parse::<f64>().unwrap(), want_speed, "{path}");
            // Python's shortest form: a point always, no exponent for these speeds.
            assert!(speed.contains('.') && !speed.contains('e'), "{speed}");
            moving += 1;
        }
    }
    assert!(
        moving > 0 && still > 0,
        "the library has fixes with and without speed ({moving}, {still})"
    );
}

/// `status` after a sync stopped by SIGINT says so (its download state alone would read
/// "pending: 0"), per download folder, and a sync that completes replaces it.
#[test]
fn status_shows_the_last_sync_of_each_folder_interrupted_or_complete() {
    let mut config = small(40);
    config.size_scale = 0.01;
    config.cdn_bandwidth = Some(400_000);
    let env = Env::new(config);
    let photos = env.folder("photos");
    let report = env.folder("interrupted.json");
    let stopped = sync_interrupted(
        &env,
        &photos,
        &report,
        std::time::Duration::from_millis(1200),
    );
    assert_eq!(stopped["status"], "interrupted");

    let status = |json: bool| {
        let run = env.run(if json {
            &["status", "--json"][..]
        } else {
            &["status"][..]
        });
        run.expect_code(0);
        run.stdout.clone()
    };
    let doc: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    // The existing keys stay as they were.
    for key in [
        "pending",
        "downloaded",
        "interrupted_runs",
        "last_run",
        "libraries",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing: {doc}");
    }
    let last = doc["last_syncs"].as_array().expect("last_syncs");
    assert_eq!(last.len(), 1, "{doc}");
    assert!(last[0]["root"].as_str().unwrap().ends_with("/photos"));
    assert_eq!(last[0]["outcome"], "interrupted", "{doc}");
    assert_eq!(last[0]["mode"], "download");
    assert_eq!(last[0]["downloaded"], stopped["downloaded"]);
    assert!(last[0]["ended"].as_str().unwrap().ends_with('Z'));
    let text = status(false);
    let line = text
        .lines()
        .find(|l| l.starts_with("Last sync into "))
        .unwrap_or_else(|| panic!("no last sync line:\n{text}"));
    assert!(line.contains("/photos: interrupted "), "{line}");
    assert!(
        line.contains(&format!("({} downloaded", stopped["downloaded"])),
        "{line}"
    );
    assert!(line.ends_with("run sync again to finish"), "{line}");

    let done = env.sync(&photos, &[]);
    done.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let last = doc["last_syncs"].as_array().unwrap();
    assert_eq!(last.len(), 1, "the last run per folder: {doc}");
    assert_eq!(last[0]["outcome"], "complete", "{doc}");
    assert_eq!(last[0]["downloaded"], done.summary().0);
    assert_eq!(last[0]["failed"], 0);
    let text = status(false);
    assert!(
        text.lines()
            .any(|l| l.starts_with("Last sync into ") && l.contains("/photos: complete ")),
        "{text}"
    );
}

/// `status` after a run that could not go on (here: its download folder was replaced by
/// another one, as when a disk is unmounted under a run) gives the number of files that run
/// downloaded before it stopped, not 0, and no skipped count (a failed run reports none). The
/// run writes nothing into the folder now at the path.
#[test]
fn status_counts_what_a_failed_sync_downloaded_before_it_stopped() {
    let mut config = small(30);
    config.stall_secs = 3;
    let env = Env::new(config);
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let dirs: std::collections::BTreeSet<&str> = expected
        .keys()
        .filter_map(|p| p.rsplit_once('/').map(|(dir, _)| dir))
        .collect();
    // Folders are planned newest-named first: the files of the others are downloaded again,
    // then the last's first transfer stalls, and the folder is swapped meanwhile.
    let last = *dirs.first().unwrap();
    let in_last = |p: &String| p.rsplit_once('/').is_some_and(|(dir, _)| dir == last);
    let refetched: Vec<&String> = expected.keys().filter(|p| !in_last(p)).collect();
    assert!(refetched.len() > 10, "{dirs:?}");
    let stalled: HashSet<String> = expected
        .iter()
        .filter(|(p, _)| in_last(p))
        .map(|(_, (asset, _))| asset.clone())
        .collect();
    for path in &refetched {
        std::fs::remove_file(photos.join(path)).unwrap();
    }
    std::fs::remove_dir_all(photos.join(last)).unwrap();
    let rule = FaultRule {
        p: 1.0,
        asset_ids: Some(stalled),
        remaining: Some(1),
    };
    env.sim.state().faults.set(FaultKind::CdnStall, rule);

    // One transfer at a time: the other folders' files are all done before the last's.
    let mut cmd = env.command(&[
        "sync",
        "-d",
        photos.to_str().unwrap(),
        "--no-progress-bar",
        "--threads-num",
        "1",
        "--timeout",
        "1",
    ]);
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !refetched.iter().all(|p| photos.join(p).is_file()) {
        assert!(std::time::Instant::now() < deadline, "the files never came");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let away = env.folder("photos-away");
    std::fs::rename(&photos, &away).unwrap();
    std::fs::create_dir(&photos).unwrap();
    let out = wait_bounded(child, std::time::Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another folder"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&photos).unwrap().count(),
        0,
        "written into the folder now at the path"
    );
    for path in &refetched {
        assert!(away.join(path).is_file(), "{path} downloaded again");
    }

    let status = env.run(&["status", "--json"]);
    status.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let last_sync = &doc["last_syncs"][0];
    assert_eq!(last_sync["outcome"], "failed", "{doc}");
    assert_eq!(last_sync["downloaded"], refetched.len(), "{doc}");
    let text = env.run(&["status"]);
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("Last sync into "))
        .unwrap_or_else(|| panic!("no last sync line:\n{}", text.stdout));
    assert!(
        line.contains(": failed ") && line.contains(&format!("({} downloaded): ", refetched.len())),
        "{line}"
    );
    assert!(line.contains("another folder"), "{line}");
}
