//! Faults of the simulator at a few percent: each run completes with every file correct and
//! no partial file left (CDN 503, connection resets, truncated bodies, HTML error pages,
//! stalls shorter than the run but longer than the client's timeout, expired URLs, sessions
//! expiring mid-run, API 503s).

use crate::support;

use icloudpd_rs::sim::SimConfig;
use support::*;

fn run_with_fault(fault: &str, tweak: impl FnOnce(&mut SimConfig), extra: &[&str]) {
    let mut config = small(60);
    config.faults = vec![fault.to_string()];
    tweak(&mut config);
    let env = Env::new(config);
    let photos = env.folder("photos");
    let run = env.sync(&photos, extra);
    run.expect_code(0);
    let expected = expected_tree(&env, &[]);
    let n = assert_tree(&env, &photos, &expected) as u64;
    assert_eq!(run.summary(), (n, 0, 0, n), "{fault}");
    assert_recorded(&env, &photos);
    let fired: u64 = icloudpd_rs::sim::faults::FaultKind::ALL
        .iter()
        .map(|k| env.sim.state().faults.fired(*k))
        .sum();
    assert!(fired > 0, "{fault} never fired: the test proves nothing");
}

#[test]
fn cdn_503() {
    run_with_fault("cdn-503=0.05", |_| {}, &[]);
}

#[test]
fn cdn_reset() {
    run_with_fault("cdn-reset=0.05", |_| {}, &[]);
}

#[test]
fn cdn_truncate() {
    run_with_fault("cdn-truncate=0.05", |_| {}, &[]);
}

#[test]
fn cdn_html() {
    run_with_fault("cdn-html=0.05", |_| {}, &[]);
}

#[test]
fn cdn_stall() {
    run_with_fault("cdn-stall=0.05", |c| c.stall_secs = 4, &["--timeout", "1"]);
}

#[test]
fn url_expire() {
    run_with_fault("url-expire=0.05", |_| {}, &[]);
}

#[test]
fn session_expire() {
    // It fires on CloudKit calls only, and a 60-asset sync makes about fifteen of them.
    run_with_fault("session-expire=0.1", |_| {}, &[]);
}

#[test]
fn api_503() {
    run_with_fault("api-503=0.05", |_| {}, &[]);
}

/// A file whose every attempt fails in the first pass is taken again at the end of the run:
/// when that works, the run is clean (exit 0, no warning), and the failure was only noted.
#[test]
fn a_file_that_comes_in_the_second_pass_is_not_a_warning() {
    use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
    let env = Env::new(small(10));
    let photos = env.folder("photos");
    let (unlucky, _) = env.manifest().into_keys().min().expect("an asset");
    let attempts = icloudpd_rs::fetch::FetchConfig::default().max_attempts;
    env.sim.state().faults.set(
        FaultKind::Cdn503,
        FaultRule {
            p: 1.0,
            asset_ids: Some([unlucky.clone()].into()),
            remaining: Some(attempts.into()),
        },
    );
    let run = env.sync(&photos, &[]);
    run.expect_code(0);
    assert_eq!(
        env.sim.state().faults.fired(FaultKind::Cdn503),
        u64::from(attempts),
        "the first pass gave up on {unlucky}"
    );
    // (The tests log at warn level: the note of the first failure is at info.)
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    let expected = expected_tree(&env, &[]);
    let n = assert_tree(&env, &photos, &expected) as u64;
    assert_eq!(run.summary(), (n, 0, 0, n));

    // Failing the second pass too is a failure, and said so.
    env.sim.state().faults.set(
        FaultKind::Cdn503,
        FaultRule {
            p: 1.0,
            asset_ids: Some([unlucky.clone()].into()),
            remaining: None,
        },
    );
    let run = env.sync(&env.folder("again"), &[]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("WARN") && run.stderr.contains("download failed"),
        "{}",
        run.stderr
    );
}
