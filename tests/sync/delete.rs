//! Deletions: `--auto-delete` removes the local files of photos deleted in iCloud (by asset
//! id, with confirmation), `--keep-icloud-recent-days` / `--delete-after-download` move photos
//! to Recently Deleted only when every version is downloaded and checked, and dry runs only
//! list.

use crate::support;

use std::collections::{BTreeMap, HashSet};

use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use serde_json::json;
use support::*;

/// Asset ids the simulator has in Recently Deleted.
fn deleted_in_icloud(env: &Env) -> HashSet<String> {
    env.manifest()
        .values()
        .filter(|e| e.is_deleted)
        .map(|e| e.asset_id.clone())
        .collect()
}

#[test]
fn auto_delete_removes_the_files_of_deleted_photos_only_when_confirmed() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = expected_tree(&env, &[]);
    let mut ids = before.values().map(|(a, _)| a.clone());
    let (trashed, purged) = (ids.next().unwrap(), ids.nth(3).unwrap());
    env.mutate(json!([
        {"op": "delete", "asset_ids": [trashed]},
        {"op": "purge", "asset_ids": [purged]},
    ]));
    let doomed: Vec<&String> = before
        .iter()
        .filter(|(_, (a, _))| *a == trashed || *a == purged)
        .map(|(p, _)| p)
        .collect();
    assert!(!doomed.is_empty());

    let dry = env.sync(&photos, &["--auto-delete", "--dry-run"]);
    dry.expect_code(0);
    for p in &doomed {
        // Part of the plan: on standard output, with the paths that would be downloaded.
        assert!(
            dry.stdout.contains(&format!("would delete {p}")),
            "{}",
            dry.stdout
        );
        assert!(photos.join(p).exists(), "a dry run deletes nothing");
    }

    // Not from a terminal and without --yes: refused before any work, nothing deleted.
    let kept = env.sync(&photos, &["--auto-delete"]);
    kept.expect_code(1);
    assert!(kept.stderr.contains("--yes"), "{}", kept.stderr);
    for p in &doomed {
        assert!(photos.join(p).exists(), "{p} deleted without confirmation");
    }

    let run = env.sync(&photos, &["--auto-delete", "--yes"]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains(&format!("{} local file(s) deleted", doomed.len())),
        "{}",
        run.stdout
    );
    let after = expected_tree(&env, &[]);
    assert_tree(&env, &photos, &after);
    for p in &doomed {
        assert!(!photos.join(p).exists(), "{p} kept");
    }
    assert_eq!(after.len(), before.len() - doomed.len());
}

#[test]
fn photos_go_to_recently_deleted_only_when_every_version_is_downloaded_and_checked() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let plan = expected_tree(&env, &[]);
    // A live photo whose video no longer checks out on disk (same size, other bytes).
    let (video, (live, _)) = plan
        .iter()
        .find(|(_, (_, version))| version == "live_original")
        .expect("a live photo");
    let mut bytes = std::fs::read(photos.join(video)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(photos.join(video), &bytes).unwrap();
    // A new photo whose download always fails.
    let failing = env.mutate(json!({"op": "add", "count": 1}))[0].clone();
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some([failing.clone()].into_iter().collect()),
            remaining: None,
        },
    );
    let keep: HashSet<String> = [live.clone(), failing.clone()].into_iter().collect();
    let others: HashSet<String> = plan
        .values()
        .map(|(a, _)| a.clone())
        .filter(|a| !keep.contains(a))
        .collect();

    let dry = env.sync(&photos, &["--keep-icloud-recent-days", "0", "--dry-run"]);
    dry.expect_code(0);
    let listed = dry.stdout.matches("would move to Recently Deleted").count();
    // The new photo too: a dry run cannot know that its download will fail.
    assert_eq!(listed, others.len() + 1, "{}", dry.stdout);
    assert!(dry.stdout.contains(&failing), "{}", dry.stdout);
    assert!(
        deleted_in_icloud(&env).is_empty(),
        "a dry run changes nothing in iCloud"
    );

    let run = env.sync(&photos, &["--keep-icloud-recent-days", "0", "--yes"]);
    run.expect_code(2);
    assert_eq!(deleted_in_icloud(&env), others);
    // The local files stay.
    assert!(plan.keys().all(|p| photos.join(p).exists()));
}

#[test]
fn delete_after_download_takes_only_what_this_run_downloaded() {
    let env = Env::new(small(15));
    let photos = env.folder("photos");
    // A dry run of a first sync names every photo it would download, then move.
    let dry = env.sync(&photos, &["--delete-after-download", "--dry-run"]);
    dry.expect_code(0);
    let photo_count = expected_tree(&env, &[])
        .values()
        .map(|(asset, _)| asset.clone())
        .collect::<HashSet<_>>()
        .len();
    assert_eq!(
        dry.stdout.matches("would move to Recently Deleted").count(),
        photo_count,
        "{}",
        dry.stdout
    );
    assert!(deleted_in_icloud(&env).is_empty());
    env.sync(&photos, &[]).expect_code(0);
    assert!(deleted_in_icloud(&env).is_empty());
    // Nothing downloaded now: nothing deleted.
    env.sync(&photos, &["--delete-after-download", "--yes"])
        .expect_code(0);
    assert!(deleted_in_icloud(&env).is_empty());
    let base = files_on_disk(&photos);
    let added = env.mutate(json!({"op": "add", "count": 2}));
    // A dry run names the photos it would download, then move: the new ones only.
    let dry = env.sync(&photos, &["--delete-after-download", "--dry-run"]);
    dry.expect_code(0);
    let listed: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.contains("would move to Recently Deleted"))
        .collect();
    assert_eq!(listed.len(), added.len(), "{}", dry.stdout);
    assert!(added.iter().all(|id| dry.stdout.contains(id.as_str())));
    assert!(deleted_in_icloud(&env).is_empty());
    let run = env.sync(&photos, &["--delete-after-download", "--yes"]);
    run.expect_code(0);
    let deleted = deleted_in_icloud(&env);
    assert_eq!(deleted, added.into_iter().collect::<HashSet<_>>());
    let moved_files: Vec<String> = files_on_disk(&photos)
        .into_keys()
        .filter(|p| !base.contains_key(p))
        .collect();
    assert!(!moved_files.is_empty());

    // A later run with --auto-delete keeps the copies of the photos this tool moved to
    // Recently Deleted (that is why they were moved), and still removes the files of a photo
    // deleted in iCloud by someone else.
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let other: Vec<String> = catalog
        .assets(lib, icloudpd_rs::catalog::AssetFilter::AllPhotos)
        .map(|a| a.unwrap().asset.id)
        .filter(|id| !deleted.contains(id))
        .take(1)
        .collect();
    drop(catalog);
    env.mutate(json!({"op": "delete", "asset_ids": other}));
    let run = env.sync(&photos, &["--auto-delete", "--yes"]);
    run.expect_code(0);
    let after = files_on_disk(&photos);
    for p in &moved_files {
        assert!(
            after.contains_key(p),
            "{p}: moved to Recently Deleted by us, kept"
        );
    }
    assert!(
        base.keys().any(|p| !after.contains_key(p)),
        "the other deleted photo's files go"
    );
}

#[test]
fn auto_delete_and_icloud_deletion_together_are_refused() {
    let env = Env::new(small(5));
    let run = env.sync(
        &env.folder("p"),
        &["--auto-delete", "--delete-after-download"],
    );
    run.expect_code(1);
    assert!(run.stderr.contains("cannot be combined"), "{}", run.stderr);
}

#[test]
fn auto_delete_removes_the_folders_it_empties_and_keeps_folders_holding_anything_else() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = expected_tree(&env, &[]);
    // Day folders (`YYYY/MM/DD`) by the assets whose files they hold.
    let mut by_day: std::collections::BTreeMap<String, HashSet<String>> = Default::default();
    for (path, (asset, _)) in &before {
        let day = path.rsplit_once('/').unwrap().0.to_string();
        by_day.entry(day).or_default().insert(asset.clone());
    }
    let lone: Vec<(&String, &String)> = by_day
        .iter()
        .filter(|(_, assets)| assets.len() == 1)
        .map(|(day, assets)| (day, assets.iter().next().unwrap()))
        .collect();
    assert!(lone.len() >= 2, "the library has day folders of one photo");
    let (emptied_day, gone) = lone[0];
    let (kept_day, also_gone) = lone[1];
    // The user keeps a note in the second folder: it must stay, with the folder.
    std::fs::write(photos.join(kept_day).join("notes.txt"), b"mine").unwrap();
    env.mutate(json!({"op": "delete", "asset_ids": [gone, also_gone]}));

    env.sync(&photos, &["--auto-delete", "--yes"])
        .expect_code(0);
    assert!(
        !photos.join(emptied_day).exists(),
        "{emptied_day} left empty"
    );
    // Its month and year folders went too if they held nothing else; the root stays.
    let month = emptied_day.rsplit_once('/').unwrap().0;
    let month_still_used = before
        .keys()
        .any(|p| p.starts_with(&format!("{month}/")) && !p.starts_with(emptied_day))
        || kept_day.starts_with(&format!("{month}/"));
    assert_eq!(photos.join(month).exists(), month_still_used, "{month}");
    assert!(photos.is_dir());
    assert_eq!(
        std::fs::read(photos.join(kept_day).join("notes.txt")).unwrap(),
        b"mine"
    );
    let left: Vec<_> = std::fs::read_dir(photos.join(kept_day))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "only the photo's files went");
    let after = expected_tree(&env, &[]);
    for p in after.keys() {
        assert!(photos.join(p).is_file(), "{p} lost");
    }
}

#[test]
fn auto_delete_removes_every_album_folder_copy_of_a_deleted_photo() {
    // An asset in several album folders is written once and hard-linked into the others; only
    // the first path is recorded.
    let env = Env::new(small(60));
    let photos = env.folder("photos");
    let flags = ["--album", "all", "--folder-structure", "{album}"];
    env.sync(&photos, &flags).expect_code(0);
    let before = album_tree(&env, &[]);
    assert_tree(&env, &photos, &before);
    let mut paths_of: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (path, (id, _)) in &before {
        paths_of.entry(id).or_default().push(path);
    }
    let (id, paths) = paths_of
        .iter()
        .find(|(_, p)| p.len() > 1)
        .expect("no photo in two albums: the test proves little");
    env.mutate(json!({"op": "delete", "asset_ids": [id]}));

    let with = |extra: &[&'static str]| [&flags[..], extra].concat();
    let dry = env.sync(&photos, &with(&["--auto-delete", "--dry-run"]));
    dry.expect_code(0);
    for p in paths {
        assert!(
            dry.stdout.contains(&format!("would delete {p}")),
            "{p}: {}",
            dry.stdout
        );
    }
    env.sync(&photos, &with(&["--auto-delete", "--yes"]))
        .expect_code(0);
    for p in paths {
        assert!(
            !photos.join(p).exists(),
            "{p} kept after its photo was deleted"
        );
    }
    // Every other photo's files stay, in every folder.
    assert_tree(&env, &photos, &album_tree(&env, &[]));
}

#[test]
fn auto_delete_after_a_reset_state_removes_the_files_still_as_written() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = expected_tree(&env, &[]);
    let mut ids = before.values().map(|(a, _)| a.clone());
    let (intact, changed) = (ids.next().unwrap(), ids.nth(3).unwrap());
    let paths_of = |id: &String| -> Vec<&String> {
        before
            .iter()
            .filter(|(_, (a, _))| a == id)
            .map(|(p, _)| p)
            .collect()
    };
    env.mutate(json!({"op": "delete", "asset_ids": [&intact, &changed]}));
    env.sync(&photos, &[]).expect_code(0);
    // The state forgotten: files are trusted again only once read back, and the photos in
    // Recently Deleted are no longer planned, so no sync reads theirs back.
    let dir = photos.display().to_string();
    env.run(&["reset-state", "-d", &dir, "--yes"])
        .expect_code(0);
    // One of them changed since, at the same size: not ours to delete any more.
    let edited = photos.join(paths_of(&changed)[0]);
    let mut bytes = std::fs::read(&edited).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&edited, &bytes).unwrap();
    env.sync(&photos, &[]).expect_code(0);

    env.sync(&photos, &["--auto-delete", "--yes"])
        .expect_code(0);
    for p in paths_of(&intact) {
        assert!(
            !photos.join(p).exists(),
            "{p} kept after its photo was deleted"
        );
    }
    assert!(
        edited.exists(),
        "a file changed since it was written was deleted"
    );
}
