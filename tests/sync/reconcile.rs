//! The tree always ends equal to the plan without downloading again: files are renamed when
//! the layout changes, and when a first listing (newest first) gave an early download the name
//! that an earlier-added photo, listed later, owns.

use crate::support;

use support::*;

#[test]
fn a_changed_layout_renames_every_file_and_downloads_nothing() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = env.cdn();
    let flat = ["--folder-structure", "none"];
    let run = env.sync(&photos, &flat);
    run.expect_code(0);
    assert_eq!(env.cdn(), before, "no CDN request");
    let expected = expected_tree(&env, &flat);
    assert_eq!(
        run.summary(),
        (0, expected.len() as u64, 0, expected.len() as u64)
    );
    assert_tree(&env, &photos, &expected);
    assert_recorded(&env, &photos);
    // The date folders emptied by the renames are gone.
    let leftovers: Vec<_> = std::fs::read_dir(&photos)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And back.
    env.sync(&photos, &[]).expect_code(0);
    assert_eq!(env.cdn(), before);
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}

#[test]
fn collisions_found_late_in_a_first_listing_end_in_the_planned_names() {
    // Past 9,999 assets the simulator's IMG_nnnn counter wraps: same names, other sizes.
    let env = Env::new(small(10_050));
    let photos = env.folder("photos");
    let flat = ["--folder-structure", "none", "--threads-num", "16"];
    let run = env.sync(&photos, &flat);
    run.expect_code(0);
    let expected = expected_tree(&env, &flat[..2]);
    let collided = expected
        .keys()
        .filter(|p| {
            let stem = p.rsplit_once('.').map_or(p.as_str(), |(s, _)| s);
            stem.rsplit_once('-')
                .is_some_and(|(_, n)| n.chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    assert!(
        collided > 10,
        "only {collided} collisions: the test proves little"
    );
    // Exactly the plan (no parked or partial file left), every file with the right bytes.
    assert_tree(&env, &photos, &expected);
    assert_recorded(&env, &photos);
    let before = env.cdn();
    let again = env.sync(&photos, &flat);
    again.expect_code(0);
    assert_eq!(again.summary().0, 0);
    assert_eq!(env.cdn(), before);
}
