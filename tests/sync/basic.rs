//! `sync` end to end against the simulator: every planned file with the simulator's bytes,
//! a second run that downloads nothing (no CDN request), the bare icloudpd-style command,
//! dry runs that change nothing, files deleted by the user fetched again, incremental runs
//! after changes in iCloud, and the user's files and folders in the way (there before the run,
//! or put there while their path downloads) never replaced.

use crate::support;

use serde_json::json;
use support::*;

#[test]
fn first_sync_gets_every_file_right_and_a_second_run_downloads_nothing() {
    let env = Env::new(small(120));
    let photos = env.folder("photos");
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    let expected = expected_tree(&env, &[]);
    let n = assert_tree(&env, &photos, &expected);
    assert!(n > 120, "live photos add their videos: {n} files");
    assert_eq!(run.summary(), (n as u64, 0, 0, n as u64));
    assert_recorded(&env, &photos);

    let before = env.cdn();
    let again = env.sync(&photos, &[]);
    again.expect_code(0);
    assert_eq!(again.summary(), (0, n as u64, 0, n as u64));
    assert_eq!(env.cdn(), before, "a second run makes no CDN request");
    assert_tree(&env, &photos, &expected);
}

#[test]
fn the_bare_icloudpd_form_syncs() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    let folder = photos.display().to_string();
    // `icloudpd-rs --username ME --directory DIR`, no subcommand.
    let mut cmd = env.command(&["--directory", &folder, "--no-progress-bar"]);
    let out = wait_bounded(cmd.spawn().unwrap(), std::time::Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}

#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    let run = env.sync(&photos, &["--dry-run"]);
    run.expect_code(0);
    let expected = expected_tree(&env, &[]);
    let printed: std::collections::BTreeSet<String> =
        run.stdout.lines().map(str::to_string).collect();
    let planned: std::collections::BTreeSet<String> = expected.keys().cloned().collect();
    assert_eq!(printed, planned, "a dry run prints the planned paths");
    assert!(!photos.exists(), "a dry run creates no folder");
    assert_eq!(env.cdn().0, 0, "no CDN request");
    let catalog = env.catalog();
    assert_eq!(catalog.root_id(&photos).unwrap(), None, "no download state");

    // icloudpd's flag: the same files, each with its folder (as icloudpd prints them).
    let only = env.sync(&photos, &["--only-print-filenames"]);
    only.expect_code(0);
    let full: std::collections::BTreeSet<String> = planned
        .iter()
        .map(|p| photos.join(p).display().to_string())
        .collect();
    let printed: std::collections::BTreeSet<String> =
        only.stdout.lines().map(str::to_string).collect();
    assert_eq!(printed, full);
    assert!(!photos.exists());
}

#[test]
fn a_file_deleted_by_the_user_is_fetched_again_and_nothing_else() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let victim = expected.keys().nth(3).unwrap().clone();
    std::fs::remove_file(photos.join(&victim)).unwrap();
    let before = env.cdn().0;
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    assert_eq!(run.summary().0, 1, "only the deleted file is downloaded");
    assert_eq!(env.cdn().0, before + 1);
    assert_tree(&env, &photos, &expected);
}

#[test]
fn changes_in_icloud_are_followed_incrementally() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let added = env.mutate(json!({"op": "add", "count": 3}));
    assert_eq!(added.len(), 3);
    let expected_before_edit = expected_tree(&env, &[]);
    let hide = expected_before_edit.values().next().unwrap().0.clone();
    env.mutate(json!([{"op": "hide", "asset_ids": [hide]}]));
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    let (downloaded, ..) = run.summary();
    assert!(
        downloaded >= 3,
        "the new photos are downloaded: {}",
        run.stdout
    );
    let expected = expected_tree(&env, &[]);
    for id in &added {
        assert!(expected.values().any(|(a, _)| a == id), "{id} planned");
    }
    // The hidden photo leaves the plan; its file stays on disk (nothing is deleted without
    // --auto-delete), every planned file is there with the right bytes.
    let on_disk = files_on_disk(&photos);
    for path in expected.keys() {
        assert!(on_disk.contains_key(path), "{path} on disk");
    }
}

#[test]
fn a_file_or_folder_in_the_way_is_named_as_such_and_left_alone() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    env.sync(&photos, &["--dry-run"]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let mut planned = expected.keys();
    let (folder, file) = (planned.next().unwrap(), planned.next().unwrap());
    let link = planned.next().unwrap();
    std::fs::create_dir_all(photos.join(folder)).unwrap();
    std::fs::write(photos.join(folder).join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(photos.join(file).parent().unwrap()).unwrap();
    std::fs::write(photos.join(file), "not a photo").unwrap();
    // A symbolic link to a folder elsewhere, at a file's path: never written through.
    let elsewhere = env.folder("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(photos.join(link).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, photos.join(link)).unwrap();

    let report = env.folder("report.json");
    let r = report.display().to_string();
    env.sync(&photos, &["--report-json", &r]).expect_code(2);
    let failed = failures(&report);
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed[link].starts_with(&format!("{link} is in the way: a symbolic link is there")),
        "{}",
        failed[link]
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(
        failed[folder],
        format!("{folder} is in the way: a folder is there; move it away and run again")
    );
    assert!(
        failed[file].starts_with(&format!(
            "{file} is in the way: a file that is not from this library"
        )),
        "{}",
        failed[file]
    );
    assert_eq!(
        std::fs::read_to_string(photos.join(folder).join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(photos.join(file)).unwrap(),
        "not a photo"
    );
}

/// The final paths of the partial downloads under `root` now (a part may vanish meanwhile).
fn downloading(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    const SUFFIX: &str = ".icloudpd-rs.part";
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            } else if name.len() >= 250 {
                // A part of a long name carries it cut to fit NAME_MAX: not its final name.
            } else if let Some(stem) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(SUFFIX))
                // `.<name>.<8 hex digits of tag><suffix>`
                .and_then(|n| n.len().checked_sub(9).map(|cut| &n[..cut]))
            {
                out.push(dir.join(stem));
            }
        }
    }
    out
}

/// A file the user puts at a path while that path's file downloads (checked free before the
/// transfer) is not replaced when the download ends: the run fails that file (exit 2), and
/// once the user moves theirs away the next run finishes it from its complete part.
#[test]
fn a_file_put_at_a_path_while_it_downloads_is_never_replaced() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let mut config = small(6);
    config.size_scale = 0.01;
    config.cdn_bandwidth = Some(20_000);
    let env = Env::new(config);
    let photos = env.folder("photos");
    let report = env.folder("report.json");
    let mut child = spawn_sync(&env, &photos, &report);
    let mine = b"MY OWN PRECIOUS FILE\n";
    let deadline = Instant::now() + Duration::from_secs(120);
    let taken = 'found: loop {
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "no transfer was seen in flight"
        );
        for path in downloading(&photos) {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(mine).unwrap();
                    break 'found path;
                }
                // That one finished meanwhile: take another.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = wait_bounded(child, Duration::from_secs(300));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        std::fs::read(&taken).unwrap(),
        mine,
        "the user's file was replaced"
    );
    let rel = taken
        .strip_prefix(&photos)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let failed = failures(&report);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[&rel].ends_with("appeared while the run was going on; it was left as it is"),
        "{failed:?}"
    );

    // Moved away: the next run finishes the file from its complete part, without the CDN.
    let kept = env.folder("mine.txt");
    std::fs::rename(&taken, &kept).unwrap();
    let before = env.cdn();
    let again = env.sync(&photos, &[]);
    again.expect_code(0);
    assert_eq!(again.summary().0, 1, "{}", again.stdout);
    assert_eq!(env.cdn(), before, "the complete part was used");
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
    assert_recorded(&env, &photos);
    assert_eq!(std::fs::read(&kept).unwrap(), mine);
}
