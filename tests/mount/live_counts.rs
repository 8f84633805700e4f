//! What a mount costs while nothing changes, and what it says it shows: a poll that finds
//! nothing new makes one CloudKit request (`changes/database`), a change still shows up at the
//! next poll (a shared library's too), and the start message counts photos and videos apart
//! from their XMP sidecars.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use icloudpd_rs::sim::SimConfig;

use crate::support::*;

/// Names of the files of the date tree (the views skipped).
fn date_tree_names(root: &Path) -> Vec<String> {
    files_under(root, true)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The files under `root` (the views skipped when `skip_views`).
fn files_under(root: &Path, skip_views: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if skip_views && dir == root && VIEWS.contains(&name.as_str()) {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// CloudKit requests per path (`private/changes/database`, ...) served so far.
fn cloudkit_counts(env: &Env) -> Vec<(String, u64)> {
    let snapshot = env.sim().state().stats.snapshot();
    let by_path = snapshot["by_path"].as_object().unwrap().clone();
    by_path
        .into_iter()
        .filter_map(|(path, n)| {
            let call = path.split("/production/").nth(1)?.to_string();
            Some((call, n.as_u64().unwrap()))
        })
        .collect()
}

/// Requests per call made between two `cloudkit_counts`.
fn made_since(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<(String, u64)> {
    after
        .iter()
        .map(|(call, n)| {
            let was = before
                .iter()
                .find(|(c, _)| c == call)
                .map_or(0, |(_, n)| *n);
            (call.clone(), n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Wait (at most 30 s) until the mount shows every asset of `ids` (a shared library's are
/// under `Libraries`).
fn wait_for_assets(root: &Path, ids: &[String]) {
    eventually(&format!("{ids:?} in the mount"), || {
        let shown: BTreeSet<String> = files_under(root, false)
            .iter()
            .filter_map(|f| getxattr(f, "user.icloud.asset_id"))
            .map(|v| String::from_utf8(v).unwrap())
            .collect();
        ids.iter().all(|id| shown.contains(id))
    });
}

#[test]
fn a_poll_that_finds_nothing_costs_one_request_and_a_change_still_shows() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(SimConfig {
        shared_library: true,
        shared_assets: 5,
        ..small(20, 0.001)
    });
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--poll-interval", "1"]);

    // Past the first poll, then a few polls with nothing to find.
    std::thread::sleep(Duration::from_millis(1500));
    let before = cloudkit_counts(&env);
    std::thread::sleep(Duration::from_secs(6));
    let made = made_since(&before, &cloudkit_counts(&env));
    let polls = made
        .iter()
        .find(|(call, _)| call == "private/changes/database")
        .map_or(0, |(_, n)| *n);
    assert!(polls >= 3, "polls made: {made:?}");
    assert_eq!(
        made,
        vec![("private/changes/database".to_string(), polls)],
        "requests other than one changes/database per poll"
    );

    // A change in each library still shows up at the next poll.
    let added = env.mutate(serde_json::json!({"op": "add", "count": 2}));
    wait_for_assets(&up.mnt, &added);
    let shared = env.sim().state().library.zone_names()[1].clone();
    let added = env.mutate(serde_json::json!({"op": "add", "count": 1, "zone": shared}));
    wait_for_assets(&up.mnt, &added);
    up.finish();
}

#[test]
fn the_start_message_counts_photos_apart_from_their_sidecars() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(15, 0.001));
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--xmp-sidecar", "--poll-interval", "3600"]);
    let names = date_tree_names(&up.mnt);
    let sidecars = names.iter().filter(|n| n.ends_with(".xmp")).count();
    let media = names.len() - sidecars;
    assert!(sidecars > 0 && media > 0, "{names:?}");
    let err = take(&up.stderr);
    let said = format!("{media} files and {sidecars} XMP sidecars in the date tree");
    assert!(err.contains(&said), "wanted {said:?} in:\n{err}");
    up.finish();
}
