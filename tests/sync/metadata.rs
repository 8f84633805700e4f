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
        // The sidecar's mtime is its photo's, as the mount shows it (`rsync -a` of the mount
        // onto this folder then updates nothing).
        let mtime = |p: &str| {
            std::fs::metadata(photos.join(p))
                .unwrap()
                .modified()
                .unwrap()
        };
        assert_eq!(
            mtime(&format!("{path}.xmp")),
            mtime(path),
            "{path}: sidecar mtime"
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

/// The sidecars of every file in `root`: path -> (bytes, modification time).
fn sidecars(
    root: &std::path::Path,
) -> std::collections::BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    files_on_disk(root)
        .into_keys()
        .filter(|p| p.ends_with(".xmp"))
        .map(|p| {
            let path = root.join(&p);
            let bytes = std::fs::read(&path).unwrap();
            let mtime = path.metadata().unwrap().modified().unwrap();
            (p, (bytes, mtime))
        })
        .collect()
}

#[test]
fn sidecars_follow_files_downloaded_before_and_metadata_changed_since() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let files = files_on_disk(&photos);
    assert!(sidecars(&photos).is_empty());

    // --xmp-sidecar added later (as icloudpd does): every file gets its sidecar, no file is
    // downloaded or touched again.
    let before = env.cdn();
    let run = env.sync(&photos, &["--xmp-sidecar"]);
    run.expect_code(0);
    assert_eq!(run.summary().0, 0);
    assert_eq!(env.cdn(), before);
    let first = sidecars(&photos);
    assert_eq!(first.len(), files.len(), "one sidecar per file");
    for path in files.keys() {
        assert!(
            first.contains_key(&format!("{path}.xmp")),
            "{path}: no sidecar"
        );
    }
    let after = files_on_disk(&photos);
    for (path, digest) in &files {
        assert_eq!(&after[path], digest, "{path} changed");
    }

    // A photo becomes a favourite in iCloud: its sidecars say so after the next run, and no
    // other sidecar is rewritten.
    let expected = expected_tree(&env, &[]);
    let (path, (id, _)) = expected
        .iter()
        .find(|(path, (id, _))| {
            !first[&format!("{path}.xmp")]
                .0
                .windows(10)
                .any(|w| w == b"Rating>5<\x2f")
                && expected.values().filter(|(other, _)| other == id).count() == 1
        })
        .map(|(p, v)| (p.clone(), v.clone()))
        .expect("a photo that is not a favourite");
    env.mutate(serde_json::json!([{"op": "favorite", "asset_ids": [id]}]));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let run = env.sync(&photos, &["--xmp-sidecar"]);
    run.expect_code(0);
    assert_eq!(run.summary().0, 0);
    let second = sidecars(&photos);
    let changed: Vec<&String> = second
        .iter()
        .filter(|(p, v)| first[*p] != **v)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(changed, [&format!("{path}.xmp")]);
    let text = String::from_utf8(second[&format!("{path}.xmp")].0.clone()).unwrap();
    assert!(text.contains("<xmp:Rating>5</xmp:Rating>"), "{text}");

    // A sidecar removed by hand comes back; an unchanged library rewrites nothing.
    std::fs::remove_file(photos.join(format!("{path}.xmp"))).unwrap();
    env.sync(&photos, &["--xmp-sidecar"]).expect_code(0);
    let third = sidecars(&photos);
    assert_eq!(third.len(), second.len());
    assert_eq!(
        third[&format!("{path}.xmp")].0,
        second[&format!("{path}.xmp")].0
    );
    for (p, v) in &second {
        if *p != format!("{path}.xmp") {
            assert_eq!(&third[p], v, "{p} rewritten");
        }
    }
}

/// `--set-exif-datetime` rewrites files after download, so a file whose record was lost (a run
/// killed between writing and recording it, or the folder taken over with a new data folder)
/// no longer has iCloud's size: it is downloaded beside and recognised by its bytes, and only a
/// file that really differs is reported in the way.
#[test]
fn files_rewritten_by_set_exif_datetime_are_recognised_when_their_record_is_lost() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    let flags = ["--set-exif-datetime", "--xmp-sidecar"];
    env.sync(&photos, &flags).expect_code(0);
    let before = files_on_disk(&photos);
    let stranger = expected_tree(&env, &[])
        .into_keys()
        .find(|p| p.ends_with(".JPG"))
        .expect("a JPEG");
    let strange_bytes = b"another file, not from this library";
    std::fs::write(photos.join(&stranger), strange_bytes).unwrap();

    let data2 = env.folder("data2");
    let sync_anew = || {
        let dir = photos.display().to_string();
        let mut args = vec!["sync", "-d", dir.as_str(), "--no-progress-bar"];
        args.extend_from_slice(&flags);
        let out = env.command_in(&data2, &args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = sync_anew();
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{stranger} is in the way")),
        "{stderr}"
    );
    // Every file as it was (sidecars included), the stranger untouched, nothing left beside.
    let after = files_on_disk(&photos);
    assert_eq!(after.len(), before.len(), "{:?}", after.keys());
    for (path, sha) in &before {
        if *path == stranger {
            use sha2::{Digest, Sha256};
            assert_eq!(after[path], hex::encode(Sha256::digest(strange_bytes)));
        } else {
            assert_eq!(after.get(path), Some(sha), "{path}");
        }
    }
    // Recorded now: the next run downloads nothing but the stranger's comparison.
    let (code, stdout, _) = sync_anew();
    assert_eq!(code, Some(2));
    assert!(stdout.contains("0 downloaded"), "{stdout}");
    assert!(stdout.contains("1 failed"), "{stdout}");
}
