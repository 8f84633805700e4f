//! A file recorded as downloaded that the user replaced is in the way, as anything else found
//! at a planned path: a symbolic link is never followed, written through, replaced or deleted,
//! however often the sync runs, and each run reports it (exit code 2).

use crate::support;

use support::*;

#[test]
fn a_recorded_file_replaced_by_a_symbolic_link_is_in_the_way_at_every_run() {
    let env = Env::new(small(12));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let mut planned = expected.keys();
    let (short, same) = (planned.next().unwrap(), planned.next().unwrap());
    // One link to a small file of the user's, one to a copy of the very file (same size and
    // bytes): neither is followed.
    let mine = env.folder("mine.txt");
    std::fs::write(&mine, "xyz").unwrap();
    let copy = env.folder("copy");
    std::fs::rename(photos.join(same), &copy).unwrap();
    let copy_bytes = std::fs::read(&copy).unwrap();
    std::fs::remove_file(photos.join(short)).unwrap();
    std::os::unix::fs::symlink(&mine, photos.join(short)).unwrap();
    std::os::unix::fs::symlink(&copy, photos.join(same)).unwrap();

    let report = env.folder("report.json");
    let r = report.display().to_string();
    for run in 0..2 {
        let sync = env.sync(&photos, &["--report-json", &r]);
        sync.expect_code(2);
        assert_eq!(sync.summary().2, 2, "run {run}: {}", sync.stdout);
        let failed = failures(&report);
        let paths: Vec<&String> = failed.keys().collect();
        let mut want = vec![short, same];
        want.sort();
        assert_eq!(paths, want, "run {run}: {failed:?}");
        for (path, error) in &failed {
            assert!(
                error.starts_with(&format!(
                    "{path} is in the way: a symbolic link is there (never written through)"
                )),
                "run {run}: {error}"
            );
        }
        for link in [short, same] {
            let meta = std::fs::symlink_metadata(photos.join(link)).unwrap();
            assert!(
                meta.is_symlink(),
                "run {run}: {link} is still the user's link"
            );
        }
        assert_eq!(std::fs::read_to_string(&mine).unwrap(), "xyz");
        assert_eq!(std::fs::read(&copy).unwrap(), copy_bytes);
    }
    // `status --failed` names them; once a link is moved away, its file comes back.
    let status = env.run(&["status", "--failed"]);
    status.expect_code(0);
    assert!(status.stdout.contains(short.as_str()), "{}", status.stdout);
    std::fs::remove_file(photos.join(short)).unwrap();
    std::fs::remove_file(photos.join(same)).unwrap();
    let sync = env.sync(&photos, &[]);
    sync.expect_code(0);
    assert_eq!(sync.summary().0, 2, "{}", sync.stdout);
    assert_tree(&env, &photos, &expected);
}

/// The mount reads a mirrored file straight from the download folder only while it is the
/// file recorded: a symbolic link put in its place is not followed (its bytes come from
/// iCloud), even one to a file of the right size.
#[test]
fn the_mount_does_not_read_through_a_link_in_a_mirrored_files_place() {
    use icloudpd_rs::auth::{AuthOptions, PasswordSources};
    use icloudpd_rs::mount::FileLocator;
    use icloudpd_rs::view::{CatalogLocator, MirrorRoot, SessionSlot, UrlBroker, ids};

    let env = Env::new(small(6));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let catalog = env.catalog();
    let root = catalog.root_id(&photos).unwrap().expect("a root");
    let mut recorded = catalog.downloaded_paths(root).unwrap();
    recorded.sort_by(|a, b| a.1.cmp(&b.1));
    let (linked, kept) = (&recorded[0], &recorded[1]);
    let copy = env.folder("copy");
    std::fs::rename(photos.join(&linked.1), &copy).unwrap();
    std::os::unix::fs::symlink(&copy, photos.join(&linked.1)).unwrap();

    let slot = SessionSlot::new(
        AuthOptions::new("nobody", PasswordSources::default(), env.data()),
        None,
    );
    let locator = std::sync::Arc::new(CatalogLocator::new(
        catalog.path().to_path_buf(),
        UrlBroker::new(slot),
        Some(MirrorRoot {
            id: root,
            path: photos.clone(),
        }),
    ));
    let local = |version| {
        let (file, _) = ids::version_ids(version).expect("a file id");
        locator.locate(file).expect("located").local
    };
    assert_eq!(local(kept.0), Some(photos.join(&kept.1)));
    assert_eq!(local(linked.0), None, "{} is a link", linked.1);
}

/// `verify` does not follow a link put in a downloaded file's place either, even one to a
/// copy of the very file: it is not our file (sync calls it in the way).
#[test]
fn verify_reports_a_link_in_a_files_place() {
    let env = Env::new(small(8));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let linked = expected.keys().next().unwrap();
    let copy = env.folder("copy");
    std::fs::copy(photos.join(linked), &copy).unwrap();
    std::fs::remove_file(photos.join(linked)).unwrap();
    std::os::unix::fs::symlink(&copy, photos.join(linked)).unwrap();

    let dir = photos.to_str().unwrap();
    let verify = env.run(&["verify", "-d", dir]);
    verify.expect_code(1);
    assert!(
        verify
            .stdout
            .contains(&format!("{linked}: not a regular file")),
        "{}",
        verify.stdout
    );
}

/// A downloaded file the user rewrote (other bytes, another size) is in the way at every run,
/// never overwritten: the first run reported it, and the second one took the failure recorded
/// then for a copy of its own to replace.
#[test]
fn a_recorded_file_the_user_rewrote_is_never_overwritten() {
    let env = Env::new(small(8));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let expected = expected_tree(&env, &[]);
    let rewritten = expected.keys().next().unwrap();
    std::fs::write(photos.join(rewritten), "the user's edit").unwrap();
    for run in 1..=2 {
        let sync = env.sync(&photos, &[]);
        sync.expect_code(2);
        assert!(
            sync.stderr.contains("is in the way"),
            "run {run}: {}",
            sync.stderr
        );
        assert_eq!(
            std::fs::read_to_string(photos.join(rewritten)).unwrap(),
            "the user's edit",
            "run {run} overwrote the user's file"
        );
    }
}
