//! `--set-exif-datetime` and `--xmp-sidecar` during a sync: dates written into JPEGs and HEICs
//! that had none, a sidecar beside every file, both digests recorded (the file on disk and the bytes as
//! downloaded), `verify --checksums` clean, and nothing downloaded again on the next run.

use crate::support;

use icloudpd_rs::catalog::{DownloadState, DownloadStateKind};
use support::*;

#[test]
fn metadata_is_written_and_both_digests_are_recorded() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    let flags = ["--set-exif-datetime", "--xmp-sidecar"];
    let run = env.sync(&photos, &flags);
    run.expect_code(0);
    // Every JPEG and HEIC of the simulator takes a date, and every file its sidecar (names
    // at the length limit included): not one warning.
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    let expected = expected_tree(&env, &[]);
    let manifest = env.manifest();
    let on_disk = files_on_disk(&photos);

    let catalog = env.catalog();
    let root = catalog.root_id(&photos).unwrap().unwrap();
    let (mut rewritten, mut rewritten_heic) = (0, 0);
    let mut by_path = std::collections::HashMap::new();
    for record in catalog.downloads(root, DownloadStateKind::Downloaded) {
        let record = record.unwrap();
        if let DownloadState::Downloaded {
            rel_path, sha256, ..
        } = &record.state
        {
            by_path.insert(rel_path.clone(), (record.version, *sha256));
        }
    }
    for (path, key) in &expected {
        let name_len = path.rsplit('/').next().unwrap().len();
        // Names leave room for `.xmp`, so that every file, even one whose name was cut to the
        // limit, has its sidecar.
        assert!(name_len + ".xmp".len() <= 255, "{path}: {name_len} bytes");
        assert!(
            on_disk.contains_key(&format!("{path}.xmp")),
            "{path}: no sidecar"
        );
        let served = manifest[key].sha256.clone().unwrap();
        let (version, recorded) = by_path[path];
        assert_eq!(
            on_disk[path],
            hex::encode(recorded),
            "{path}: recorded digest"
        );
        if on_disk[path] != served {
            rewritten += 1;
            rewritten_heic += usize::from(path.ends_with(".HEIC"));
            assert!(
                path.ends_with(".JPG") || path.ends_with(".HEIC"),
                "{path}: only JPEGs and HEICs without a date are rewritten"
            );
            let source = catalog.download_source_digest(version, root).unwrap();
            assert_eq!(
                source.map(hex::encode),
                Some(served),
                "{path}: downloaded digest"
            );
        }
    }
    assert!(rewritten > 0, "no JPEG got a date: the test proves nothing");
    assert!(rewritten_heic > 0, "no HEIC got a date");
    // Nothing but the planned files and their sidecars.
    for path in on_disk.keys() {
        let file = path.strip_suffix(".xmp").unwrap_or(path);
        assert!(expected.contains_key(file), "unplanned {path}");
    }

    let dir = photos.to_str().unwrap();
    env.run(&["verify", "-d", dir, "--checksums"])
        .expect_code(0);
    let before = env.cdn();
    let again = env.sync(&photos, &flags);
    again.expect_code(0);
    assert_eq!(again.summary().0, 0);
    assert_eq!(env.cdn(), before);
}
