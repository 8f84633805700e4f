//! Photos edited in iCloud (`/_sim/mutate` `edit`): the new file replaces the old one. Under
//! `--size adjusted` the edit supersedes the original, which goes once the edit is on disk;
//! a re-edit replaces the adjusted file in place, or removes its older copy when its path
//! changed; an edit reverted in iCloud (`revert`) gives the original its place back and the
//! edit's file goes. Never removed or overwritten: a file whose bytes changed on disk since we
//! wrote it, and an original whose edit failed to download.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use icloudpd_rs::sim::SimConfig;
use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use serde_json::json;
use support::*;

const ADJUSTED: &[&str] = &["--size", "adjusted"];

/// Flip the last byte of a file (same size, other content).
fn damage(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Photos (HEIC and JPEG originals, so an edit's JPEG name sometimes equals the original's)
/// that have no edit yet: their path under `--size adjusted`, by asset id.
fn unedited_photos(
    expected: &BTreeMap<String, (String, String)>,
    n: usize,
) -> Vec<(String, String)> {
    let pick = |ext: &str| {
        expected
            .iter()
            .filter(|(p, (_, v))| v == "original" && p.ends_with(ext))
            .map(|(p, (a, _))| (a.clone(), p.clone()))
            .collect::<Vec<_>>()
    };
    let (heic, jpg) = (pick(".HEIC"), pick(".JPG"));
    assert!(
        !heic.is_empty() && !jpg.is_empty(),
        "the library has HEIC and JPEG photos"
    );
    heic.into_iter()
        .take(n - n / 2)
        .chain(jpg.into_iter().take(n / 2))
        .collect()
}

#[test]
fn an_edit_replaces_the_original_under_size_adjusted_and_keeps_what_is_not_ours() {
    let env = Env::new(small(60));
    let photos = env.folder("photos");
    env.sync(&photos, ADJUSTED).expect_code(0);
    let picked = unedited_photos(&expected_tree(&env, ADJUSTED), 6);
    let ids: Vec<String> = picked.iter().map(|(a, _)| a.clone()).collect();
    // One original changed by the user since the download; one edit that cannot download.
    let (_, changed_path) = picked[0].clone();
    let changed_bytes = damage(&photos.join(&changed_path));
    let (failing_id, failing_path) = picked[picked.len() - 1].clone();
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some([failing_id.clone()].into_iter().collect()),
            remaining: None,
        },
    );
    let report = env.folder("report.json");
    let run = env.sync(
        &photos,
        &[ADJUSTED, &["--report-json", report.to_str().unwrap()]].concat(),
    );
    run.expect_code(2);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["failures"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["failures"][0]["asset_id"], failing_id.as_str());

    let expected = expected_tree(&env, ADJUSTED);
    let on_disk = files_on_disk(&photos);
    // The edits whose originals were ours are in place and the originals are gone...
    let manifest = env.manifest();
    for (id, old) in &picked[1..picked.len() - 1] {
        let (new, _) = expected
            .iter()
            .find(|(_, (a, v))| a == id && v == "adjusted")
            .unwrap_or_else(|| panic!("{id}: no adjusted file planned"));
        assert_eq!(
            on_disk.get(new),
            manifest[&(id.clone(), "adjusted".to_string())]
                .sha256
                .as_ref(),
            "{new}: the edit is not in place"
        );
        if old != new {
            assert!(
                !on_disk.contains_key(old),
                "{old}: the replaced original is still there"
            );
        }
    }
    assert_eq!(doc["replaced"], picked.len() as u64 - 2, "{doc}");
    // ...the one the user changed is kept as it is (or moved aside when the edit's name is
    // the same)...
    let kept: Vec<&String> = on_disk
        .iter()
        .filter(|(_, sha)| **sha == sha256_bytes(&changed_bytes))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(kept.len(), 1, "the changed original is kept: {kept:?}");
    // ...and the original whose edit failed stays until the edit is on disk.
    assert!(
        on_disk.contains_key(&failing_path),
        "{failing_path}: removed before its edit came"
    );

    // Once the edit can download, its original goes too and the tree is the plan (plus the
    // user's changed file).
    env.sim.state().faults.clear();
    env.sync(&photos, ADJUSTED).expect_code(0);
    let on_disk = files_on_disk(&photos);
    assert_eq!(on_disk[kept[0]], sha256_bytes(&changed_bytes));
    let mut plan = expected.clone();
    plan.remove(kept[0]);
    assert_plan_plus_users_file(&env, &photos, &plan, kept[0]);
}

#[test]
fn a_re_edit_replaces_the_edited_file_in_place_or_removes_its_older_copy_when_it_moved() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, ADJUSTED).expect_code(0);
    let picked = unedited_photos(&expected_tree(&env, ADJUSTED), 4);
    let ids: Vec<String> = picked.iter().map(|(a, _)| a.clone()).collect();
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sync(&photos, ADJUSTED).expect_code(0);
    assert_tree(&env, &photos, &expected_tree(&env, ADJUSTED));

    // Edited again: same paths, new content, replaced in place; a file the user changed is
    // not overwritten.
    let edited_path = |id: &str| {
        expected_tree(&env, ADJUSTED)
            .into_iter()
            .find(|(_, (a, v))| a == id && v == "adjusted")
            .map(|(p, _)| p)
            .unwrap()
    };
    let guarded = edited_path(&ids[0]);
    let guarded_bytes = damage(&photos.join(&guarded));
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    let run = env.sync(&photos, ADJUSTED);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&guarded) && run.stderr.contains("changed on disk"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(photos.join(&guarded)).unwrap(), guarded_bytes);
    std::fs::remove_file(photos.join(&guarded)).unwrap();
    env.sync(&photos, ADJUSTED).expect_code(0);
    assert_tree(&env, &photos, &expected_tree(&env, ADJUSTED));

    // Edited again while the layout changes: the new files land at their new paths and the
    // older copies go (the others are renamed, not downloaded).
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    let flat = [ADJUSTED, &["--folder-structure", "none"]].concat();
    let before = env.cdn();
    let run = env.sync(&photos, &flat);
    run.expect_code(0);
    assert_eq!(
        run.summary().0,
        ids.len() as u64,
        "only the edits are downloaded"
    );
    assert!(env.cdn().0 > before.0);
    assert_tree(&env, &photos, &expected_tree(&env, &flat));
    assert_recorded(&env, &photos);
}

#[test]
fn a_reverted_edit_brings_the_original_back_and_removes_the_edits_file_if_still_ours() {
    let env = Env::new(small(60));
    let photos = env.folder("photos");
    env.sync(&photos, ADJUSTED).expect_code(0);
    let picked = unedited_photos(&expected_tree(&env, ADJUSTED), 6);
    let ids: Vec<String> = picked.iter().map(|(a, _)| a.clone()).collect();
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sync(&photos, ADJUSTED).expect_code(0);
    let edited = expected_tree(&env, ADJUSTED);
    assert_tree(&env, &photos, &edited);
    let edit_paths: Vec<String> = ids
        .iter()
        .map(|id| {
            edited
                .iter()
                .find(|(_, (a, v))| a == id && v == "adjusted")
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| panic!("{id}: no adjusted file planned"))
        })
        .collect();
    // One edit's file changed by the user since it was downloaded: it is theirs now.
    let changed_bytes = damage(&photos.join(&edit_paths[0]));

    env.mutate(json!({"op": "revert", "asset_ids": ids}));
    let report = env.folder("report.json");
    let run = env.sync(
        &photos,
        &[ADJUSTED, &["--report-json", report.to_str().unwrap()]].concat(),
    );
    run.expect_code(0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        doc["downloaded"],
        ids.len() as u64,
        "the originals again: {doc}"
    );
    assert_eq!(doc["replaced"], ids.len() as u64 - 1, "{doc}");
    let reverted = expected_tree(&env, ADJUSTED);
    // The plan is the originals at their first paths (the picked photos are JPEG and HEIC,
    // so an edit's file had the original's name for some and another name for others).
    for ((id, first), edit_path) in picked.iter().zip(&edit_paths) {
        assert_eq!(
            reverted.get(first),
            Some(&(id.clone(), "original".to_string())),
            "{id}: the original is planned at {first} again"
        );
        assert!(
            !reverted.contains_key(edit_path) || edit_path == first,
            "{edit_path}"
        );
    }
    assert!(
        picked.iter().zip(&edit_paths).any(|((_, a), b)| a == b)
            && picked.iter().zip(&edit_paths).any(|((_, a), b)| a != b),
        "both kinds of reverts (same name, other name) are covered"
    );
    // Every file is the plan's, plus the user's changed file (moved aside when the original
    // takes its name back).
    let on_disk = files_on_disk(&photos);
    let kept: Vec<&String> = on_disk
        .iter()
        .filter(|(_, sha)| **sha == sha256_bytes(&changed_bytes))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(kept.len(), 1, "the user's changed file is kept: {kept:?}");
    assert_plan_plus_users_file(&env, &photos, &reverted, kept[0]);
    // The user's file is left alone for good.
    assert_eq!(files_on_disk(&photos), on_disk);
}

/// The original's file deleted by the user, then the photo edited (its edit takes the same
/// name), then the edit reverted: the original's old record names the path the edit's bytes
/// now hold. The folder must end with the original's bytes, not skip the path as done.
#[test]
fn a_revert_after_the_original_was_deleted_locally_brings_the_original_back() {
    // Sizes large enough for an edit's size to differ from its original's, as in life.
    let env = Env::new(SimConfig {
        size_scale: 0.005,
        ..small(60)
    });
    let photos = env.folder("photos");
    env.sync(&photos, ADJUSTED).expect_code(0);
    let tree = expected_tree(&env, ADJUSTED);
    // JPEG photos: their edit (a JPEG) keeps the original's name.
    let picked: Vec<(String, String)> = unedited_photos(&tree, 20)
        .into_iter()
        .filter(|(_, p)| p.to_ascii_uppercase().ends_with(".JPG"))
        .take(2)
        .collect();
    assert!(!picked.is_empty(), "a JPEG photo to edit");
    for (_, path) in &picked {
        std::fs::remove_file(photos.join(path)).unwrap();
    }
    let ids: Vec<String> = picked.iter().map(|(a, _)| a.clone()).collect();
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sync(&photos, ADJUSTED).expect_code(0);
    assert_tree(&env, &photos, &expected_tree(&env, ADJUSTED));
    env.mutate(json!({"op": "revert", "asset_ids": ids}));
    env.sync(&photos, ADJUSTED).expect_code(0);
    let reverted = expected_tree(&env, ADJUSTED);
    for (id, path) in &picked {
        assert_eq!(
            reverted.get(path),
            Some(&(id.clone(), "original".to_string()))
        );
    }
    assert_tree(&env, &photos, &reverted);
    assert_recorded(&env, &photos);
}

/// The tree is `plan` plus the user's changed file at `kept`: every planned file holds the
/// simulator's bytes, the catalog agrees with the disk, and a second run downloads nothing.
fn assert_plan_plus_users_file(
    env: &Env,
    photos: &Path,
    plan: &BTreeMap<String, (String, String)>,
    kept: &str,
) {
    let mut on_disk = files_on_disk(photos);
    assert!(on_disk.remove(kept).is_some(), "{kept}: the user's file");
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        plan.keys().collect::<Vec<_>>(),
        "the tree is the plan plus the user's file"
    );
    let manifest = env.manifest();
    for (path, (asset, version)) in plan {
        assert_eq!(
            Some(&on_disk[path]),
            manifest[&(asset.clone(), version.clone())].sha256.as_ref(),
            "{path}"
        );
    }
    assert_recorded(env, photos);
    let before = env.cdn();
    let again = env.sync(photos, ADJUSTED);
    again.expect_code(0);
    assert_eq!(again.summary().0, 0);
    assert_eq!(env.cdn(), before, "a second run downloads nothing");
}

fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn edits_reach_every_album_folder_of_a_photo() {
    let env = Env::new(small(60));
    let photos = env.folder("photos");
    let flags = [
        "--album",
        "all",
        "--folder-structure",
        "{album}",
        "--size",
        "adjusted",
    ];
    env.sync(&photos, &flags).expect_code(0);
    let before = album_tree(&env, ADJUSTED);
    assert_tree(&env, &photos, &before);
    // Unedited photos that are in several albums.
    let mut paths_of: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (path, (id, version)) in &before {
        if version == "original" && !path.ends_with(".MOV") {
            paths_of.entry(id).or_default().push(path);
        }
    }
    let ids: Vec<String> = paths_of
        .iter()
        .filter(|(_, p)| p.len() > 1)
        .map(|(id, _)| id.to_string())
        .take(4)
        .collect();
    assert!(
        !ids.is_empty(),
        "no photo in two albums: the test proves little"
    );

    // The edit replaces the original in every folder (hard links of it included)...
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sync(&photos, &flags).expect_code(0);
    assert_tree(&env, &photos, &album_tree(&env, ADJUSTED));
    // ...and so does a second edit of the same photos...
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    env.sync(&photos, &flags).expect_code(0);
    assert_tree(&env, &photos, &album_tree(&env, ADJUSTED));
    assert_recorded(&env, &photos);
    // ...and the edit reverted: the originals come back in every folder, the edit's file
    // and its links go.
    env.mutate(json!({"op": "revert", "asset_ids": ids}));
    env.sync(&photos, &flags).expect_code(0);
    assert_eq!(
        album_tree(&env, ADJUSTED),
        before,
        "the plan of before the edits"
    );
    assert_tree(&env, &photos, &before);
    assert_recorded(&env, &photos);
}
