//! `sync` end to end against the simulator: every planned file with the simulator's bytes,
//! a second run that downloads nothing (no CDN request), the bare icloudpd-style command,
//! dry runs that change nothing, files deleted by the user fetched again, and incremental
//! runs after changes in iCloud.

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
