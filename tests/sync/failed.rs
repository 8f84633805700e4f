//! Failed files: `status --failed` lists them (not those of photos gone from iCloud since),
//! `retry-failed` downloads them, and says so when given other flags than the failed sync.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use support::*;

#[test]
fn failed_files_are_listed_and_retried() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    // Learn the plan, then make two assets' URLs always refused.
    env.sync(&env.folder("probe"), &["--dry-run"])
        .expect_code(0);
    let expected = expected_tree(&env, &[]);
    let victims: HashSet<String> = expected.values().map(|(a, _)| a.clone()).take(2).collect();
    let victim_files = expected
        .values()
        .filter(|(a, _)| victims.contains(a))
        .count() as u64;
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some(victims.clone()),
            remaining: None,
        },
    );
    let run = env.sync(&photos, &[]);
    run.expect_code(2);
    let (downloaded, _, failed, total) = run.summary();
    assert_eq!(failed, victim_files);
    assert_eq!(downloaded + failed, total);

    let status = env.run(&["status", "--failed"]);
    status.expect_code(0);
    assert_eq!(
        status
            .stdout
            .lines()
            .filter(|l| l.contains("attempt"))
            .count() as u64,
        victim_files,
        "{}",
        status.stdout
    );

    env.sim.state().faults.clear();
    let retry_failed = || {
        let dir = photos.to_str().unwrap();
        env.run(&["retry-failed", "-d", dir, "--no-progress-bar"])
    };
    let retry = retry_failed();
    retry.expect_code(0);
    assert_eq!(retry.summary(), (victim_files, 0, 0, victim_files));
    assert_tree(&env, &photos, &expected);
    let status = env.run(&["status", "--failed"]);
    assert!(status.stdout.contains("0 failed"), "{}", status.stdout);
    // Again: nothing failed any more, and it says so.
    let again = retry_failed();
    again.expect_code(0);
    let said = format!("nothing to retry: no file failed in {}", photos.display());
    assert!(again.stdout.contains(&said), "{}", again.stdout);
}

#[test]
fn retry_failed_with_other_flags_than_the_failed_sync_says_what_it_left() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    let adjusted = ["--size", "adjusted"];
    env.sync(&env.folder("probe"), &["--dry-run"])
        .expect_code(0);
    // A photo whose file under `--size adjusted` is its edit: a retry without the flag plans
    // its original instead, which did not fail.
    let victim = expected_tree(&env, &adjusted)
        .values()
        .find(|(_, version)| version == "adjusted")
        .expect("an edited photo")
        .0
        .clone();
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some(HashSet::from([victim])),
            remaining: None,
        },
    );
    env.sync(&photos, &adjusted).expect_code(2);
    env.sim.state().faults.clear();
    let dir = photos.to_str().unwrap();
    let bare = env.run(&["retry-failed", "-d", dir, "--no-progress-bar"]);
    bare.expect_code(2);
    assert!(
        bare.stderr
            .contains("nothing to retry with these flags, but 1 file(s) failed"),
        "{}",
        bare.stderr
    );
    assert!(!bare.stdout.contains("no file failed"), "{}", bare.stdout);
    let flagged = env.run(&[
        "retry-failed",
        "-d",
        dir,
        "--no-progress-bar",
        "--size",
        "adjusted",
    ]);
    flagged.expect_code(0);
    assert_eq!(flagged.summary(), (1, 0, 0, 1));
    assert_tree(&env, &photos, &expected_tree(&env, &adjusted));
}

#[test]
fn a_failure_of_a_photo_purged_from_icloud_is_no_longer_listed() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    env.sync(&env.folder("probe"), &["--dry-run"])
        .expect_code(0);
    let victim = expected_tree(&env, &[]).values().next().unwrap().0.clone();
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some(HashSet::from([victim.clone()])),
            remaining: None,
        },
    );
    env.sync(&photos, &[]).expect_code(2);
    env.sim.state().faults.clear();
    env.mutate(serde_json::json!({"op": "purge", "asset_ids": [victim]}));
    env.sync(&photos, &[]).expect_code(0);
    // `status`, `status --failed` and `retry-failed` agree: nothing failed.
    let status = env.run(&["status", "--failed"]);
    status.expect_code(0);
    assert!(!status.stdout.contains("attempt"), "{}", status.stdout);
    assert!(status.stdout.contains("0 failed"), "{}", status.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["failed"], 0, "{json}");
}
