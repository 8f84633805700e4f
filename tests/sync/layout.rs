//! Paths follow every template and policy: for each set of layout flags, a sync into its own
//! folder holds exactly what `layout::plan_tree` plans for those flags (hostile names, long
//! names, live photos, RAW pairs, edits included in the simulated library), every file with
//! the simulator's bytes and its asset's date as mtime. Selection flags take the right assets.

use crate::support;

use std::collections::BTreeMap;

use icloudpd_rs::catalog::{AlbumEntry, AlbumKey, AssetFilter, SmartFolder};
use icloudpd_rs::layout;
use serde_json::json;
use support::*;

const TABLE: &[&[&str]] = &[
    &[],
    &["--folder-structure", "none"],
    &["--folder-structure", "%Y/%m"],
    &["--folder-structure", "{:%Y}/{library}"],
    &["--file-match-policy", "name-id7"],
    &[
        "--size",
        "medium",
        "--size",
        "original",
        "--live-photo-size",
        "medium",
    ],
    &["--size", "adjusted", "--align-raw", "original"],
    &["--size", "alternative", "--align-raw", "alternative"],
    &[
        "--keep-unicode-in-filenames",
        "--live-photo-mov-filename-policy",
        "original",
    ],
    &["--skip-live-photos", "--size", "thumb", "--force-size"],
];

#[test]
fn every_layout_gives_the_planned_tree_with_the_right_bytes() {
    let env = Env::new(small(60));
    // Edits add adjusted versions to a few photos.
    let first = env.sync(&env.folder("warmup"), &["--dry-run"]);
    first.expect_code(0);
    let ids: Vec<String> = expected_tree(&env, &[])
        .values()
        .map(|(a, _)| a.clone())
        .take(5)
        .collect();
    env.mutate(json!({"op": "edit", "asset_ids": ids}));
    for (i, flags) in TABLE.iter().enumerate() {
        let folder = env.folder(&format!("t{i}"));
        let run = env.sync(&folder, flags);
        run.expect_code(0);
        let expected = expected_tree(&env, flags);
        let n = assert_tree(&env, &folder, &expected);
        assert_eq!(run.summary().3, n as u64, "{flags:?}: total");
        assert_recorded(&env, &folder);
    }
}

#[test]
fn files_get_their_asset_date_as_mtime() {
    let env = Env::new(small(15));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let config = config_for(&[]);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let assets: Vec<_> = catalog
        .assets(lib, AssetFilter::AllPhotos)
        .map(|a| a.unwrap().asset)
        .collect();
    for file in layout::plan_tree(&assets, &config.policy, None) {
        let meta = std::fs::metadata(photos.join(file.rel_path())).unwrap();
        assert_eq!(
            meta.modified().unwrap(),
            file.mtime(),
            "{}",
            file.rel_path()
        );
    }
}

/// The plan for the assets `keep` accepts, laid out as `sync` lays them out.
fn expected_of(
    env: &Env,
    flags: &[&str],
    filter: AssetFilter,
    keep: impl Fn(&icloudpd_rs::model::Asset) -> bool,
) -> BTreeMap<String, (String, String)> {
    let config = config_for(flags);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let assets: Vec<_> = catalog
        .assets(lib, filter)
        .map(|a| a.unwrap().asset)
        .filter(|a| keep(a))
        .collect();
    layout::plan_tree(&assets, &config.policy, None)
        .into_iter()
        .filter(|f| config.selection.keeps_file(&f.name))
        .map(|f| {
            (
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            )
        })
        .collect()
}

#[test]
fn selection_flags_take_the_right_assets() {
    use icloudpd_rs::model::ItemKind;
    let env = Env::new(small(80));
    env.sync(&env.folder("warmup"), &["--dry-run"])
        .expect_code(0);
    let all = |_: &icloudpd_rs::model::Asset| true;

    let f = env.folder("no-videos");
    env.sync(&f, &["--skip-videos"]).expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        a.kind != ItemKind::Movie
    });
    assert_tree(&env, &f, &exp);

    let f = env.folder("videos-only");
    env.sync(&f, &["--skip-photos"]).expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        a.kind == ItemKind::Movie
    });
    assert!(!exp.is_empty());
    assert_tree(&env, &f, &exp);

    let f = env.folder("favorites");
    env.sync(&f, &["--album", "Favorites"]).expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::Smart(SmartFolder::Favorites), all);
    assert!(!exp.is_empty());
    assert_tree(&env, &f, &exp);

    let f = env.folder("recent");
    env.sync(&f, &["--recent", "5"]).expect_code(0);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let mut dates: Vec<(i64, String)> = catalog
        .assets(lib, AssetFilter::AllPhotos)
        .map(|a| a.unwrap())
        .map(|a| (a.asset.asset_date_ms, a.asset.id))
        .collect();
    dates.sort();
    dates.reverse();
    let newest: Vec<String> = dates.iter().take(5).map(|(_, id)| id.clone()).collect();
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        newest.contains(&a.id)
    });
    assert_tree(&env, &f, &exp);

    let cutoff = dates[dates.len() / 2].0;
    let when = chrono::DateTime::from_timestamp_millis(cutoff)
        .unwrap()
        .to_rfc3339();
    let f = env.folder("after");
    env.sync(&f, &["--skip-created-before", &when])
        .expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        a.asset_date_ms >= cutoff
    });
    assert_tree(&env, &f, &exp);

    let f = env.folder("no-heic");
    env.sync(&f, &["--filename-exclude", "*.heic"])
        .expect_code(0);
    let exp = expected_of(
        &env,
        &["--filename-exclude", "*.heic"],
        AssetFilter::AllPhotos,
        all,
    );
    assert!(exp.keys().all(|p| !p.to_lowercase().ends_with(".heic")));
    assert_tree(&env, &f, &exp);
}

#[test]
fn albums_are_selected_by_name_and_laid_out_with_their_path() {
    let env = Env::new(small(80));
    env.sync(&env.folder("warmup"), &["--dry-run"])
        .expect_code(0);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let counts = catalog.album_member_counts(lib).unwrap();
    let album = catalog
        .albums(lib)
        .unwrap()
        .into_iter()
        .find(|a| {
            let n = counts.get(&a.album.id).copied().unwrap_or(0);
            !a.album.is_folder && n > 0 && n < 60
        })
        .expect("an album with members");
    let f = env.folder("album");
    env.sync(
        &f,
        &[
            "--album",
            &album.album.name,
            "--folder-structure",
            "{album}",
        ],
    )
    .expect_code(0);
    let config = config_for(&["--folder-structure", "{album}"]);
    let members: Vec<_> = catalog
        .assets(lib, AssetFilter::Album(album.key))
        .map(|a| a.unwrap().asset)
        .collect();
    let path: Vec<&str> = album.path.iter().map(String::as_str).collect();
    let exp: BTreeMap<_, _> = layout::plan_tree(&members, &config.policy, Some(&path))
        .into_iter()
        .map(|f| {
            (
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            )
        })
        .collect();
    assert!(!exp.is_empty());
    assert_tree(&env, &f, &exp);

    // Excluding the album from everything leaves its members out.
    let f = env.folder("without");
    let exclude = format!("!{}", album.album.name);
    env.sync(&f, &["--album", &exclude]).expect_code(0);
    let ids: Vec<String> = members.iter().map(|a| a.id.clone()).collect();
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| !ids.contains(&a.id));
    assert_tree(&env, &f, &exp);

    let run = env.sync(&env.folder("nope"), &["--album", "No Such Album"]);
    run.expect_code(1);
    assert!(run.stderr.contains("No Such Album"), "{}", run.stderr);
    // Excluding an album that does not exist is the same mistake, not a silent no-op.
    let run = env.sync(&env.folder("nope2"), &["--album", "!No Such Album"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("\"!No Such Album\": no album or folder named"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_folder_name_takes_or_excludes_every_album_in_it() {
    let env = Env::new(small(80));
    env.sync(&env.folder("warmup"), &["--dry-run"])
        .expect_code(0);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let entries = catalog.albums(lib).unwrap();
    // The folder with the most albums beneath it (at any depth).
    let beneath = |folder: &AlbumEntry| -> Vec<AlbumKey> {
        entries
            .iter()
            .filter(|e| {
                !e.album.is_folder
                    && !e.album.deleted
                    && e.path.len() > folder.path.len()
                    && e.path.starts_with(&folder.path)
            })
            .map(|e| e.key)
            .collect()
    };
    let folder = entries
        .iter()
        .filter(|e| e.album.is_folder && !e.album.deleted)
        .max_by_key(|e| beneath(e).len())
        .expect("the simulated library has album folders");
    let albums = beneath(folder);
    assert!(albums.len() >= 2, "{folder:?}");
    let mut members: BTreeMap<String, icloudpd_rs::model::Asset> = BTreeMap::new();
    for key in &albums {
        for a in catalog.assets(lib, AssetFilter::Album(*key)) {
            let a = a.unwrap().asset;
            members.insert(a.id.clone(), a);
        }
    }
    assert!(!members.is_empty());

    // `--album FOLDER` takes the albums beneath it, each under its own path with `{album}`.
    let f = env.folder("folder");
    env.sync(
        &f,
        &[
            "--album",
            &folder.album.name,
            "--folder-structure",
            "{album}",
        ],
    )
    .expect_code(0);
    let config = config_for(&["--folder-structure", "{album}"]);
    let mut exp = BTreeMap::new();
    for key in &albums {
        let e = entries.iter().find(|e| e.key == *key).unwrap();
        let assets: Vec<_> = catalog
            .assets(lib, AssetFilter::Album(*key))
            .map(|a| a.unwrap().asset)
            .collect();
        let path: Vec<&str> = e.path.iter().map(String::as_str).collect();
        for file in layout::plan_tree(&assets, &config.policy, Some(&path)) {
            exp.insert(
                file.rel_path(),
                (file.asset_id.clone(), file.version.as_str().to_string()),
            );
        }
    }
    assert_tree(&env, &f, &exp);

    // `--album '!FOLDER'` leaves out every member of every album beneath it.
    let f = env.folder("without");
    env.sync(&f, &["--album", &format!("!{}", folder.album.name)])
        .expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        !members.contains_key(&a.id)
    });
    assert!(!exp.is_empty());
    assert_tree(&env, &f, &exp);
}

#[test]
fn every_library_syncs_into_one_tree() {
    let mut config = small(30);
    config.shared_library = true;
    config.shared_assets = 20;
    let env = Env::new(config);
    let photos = env.folder("photos");
    let run = env.sync(&photos, &["--library", "all"]);
    run.expect_code(0);
    let catalog = env.catalog();
    let libraries = catalog.libraries().unwrap();
    assert_eq!(libraries.len(), 2, "{libraries:?}");
    let assets: Vec<_> = libraries
        .iter()
        .flat_map(|l| {
            catalog
                .assets(l.id, AssetFilter::AllPhotos)
                .map(|a| a.unwrap().asset)
                .collect::<Vec<_>>()
        })
        .collect();
    let policy = config_for(&[]).policy;
    let exp: BTreeMap<_, _> = layout::plan_tree(&assets, &policy, None)
        .into_iter()
        .map(|f| {
            (
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            )
        })
        .collect();
    assert!(
        exp.values()
            .any(|(a, _)| assets.iter().any(|x| x.id == *a && x.zone != "PrimarySync"))
    );
    assert_tree(&env, &photos, &exp);
}

#[test]
fn a_photo_in_several_album_folders_is_downloaded_once_and_linked() {
    let env = Env::new(small(40));
    let photos = env.folder("photos");
    let flags = ["--album", "all", "--folder-structure", "{album}"];
    let run = env.sync(&photos, &flags);
    run.expect_code(0);
    let exp = album_tree(&env, &[]);
    let distinct: std::collections::HashSet<_> = exp.values().collect();
    assert!(
        distinct.len() < exp.len(),
        "no photo is in two albums: the test proves little"
    );
    assert_tree(&env, &photos, &exp);
    let (downloaded, ..) = run.summary();
    assert_eq!(
        downloaded as usize,
        distinct.len(),
        "each version downloaded once"
    );
    let before = env.cdn();
    env.sync(&photos, &flags).expect_code(0);
    assert_eq!(env.cdn(), before);
    assert_tree(&env, &photos, &exp);
}

/// An edited JPEG without an alternative, asked for `--size adjusted --size alternative`: the
/// alternative falls back to the original, which has the edit's name. icloudpd writes the
/// sizes in the `--size` order, so the first requested keeps the plain name and the other
/// gets `-<size>`; a folder icloudpd wrote is then taken over as it is.
#[test]
fn the_size_requested_first_keeps_a_name_two_sizes_share() {
    let env = Env::new(small(30));
    let manifest = env.manifest();
    let id = manifest
        .values()
        .filter(|e| e.version == "original" && e.file_type == "public.jpeg")
        .filter(|e| e.zone == "PrimarySync" && !e.is_hidden && !e.is_deleted)
        .filter(|e| {
            e.filename.as_deref().is_some_and(|n| {
                n.strip_suffix(".JPG")
                    .is_some_and(|stem| stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            })
        })
        .map(|e| e.asset_id.clone())
        .filter(|id| {
            let versions: Vec<&str> = manifest
                .values()
                .filter(|e| &e.asset_id == id)
                .map(|e| e.version)
                .collect();
            versions
                .iter()
                .all(|v| ["original", "medium", "thumb"].contains(v))
        })
        .min()
        .expect("a plain JPEG photo");
    env.mutate(json!({"op": "edit", "asset_ids": [id]}));
    let manifest = env.manifest();
    let original = &manifest[&(id.clone(), "original".to_string())];
    let adjusted = &manifest[&(id.clone(), "adjusted".to_string())];
    let name = original.filename.clone().unwrap();
    let stem = name.trim_end_matches(".JPG");
    let cases = [
        (
            ["--size", "adjusted", "--size", "alternative"],
            adjusted,
            original,
        ),
        (
            ["--size", "alternative", "--size", "adjusted"],
            original,
            adjusted,
        ),
    ];
    for (i, (flags, first, second)) in cases.iter().enumerate() {
        let folder = env.folder(&format!("sizes{i}"));
        env.sync(&folder, flags).expect_code(0);
        assert_tree(&env, &folder, &expected_tree(&env, flags));
        let on_disk = files_on_disk(&folder);
        let name_of = |sha: &Option<String>| -> String {
            let (path, _) = on_disk
                .iter()
                .find(|(_, s)| Some(*s) == sha.as_ref())
                .unwrap_or_else(|| panic!("{flags:?}: no file with {sha:?}"));
            path.rsplit('/').next().unwrap().to_string()
        };
        assert_eq!(name_of(&first.sha256), format!("{stem}.JPG"), "{flags:?}");
        assert_eq!(
            name_of(&second.sha256),
            format!("{stem}-{}.JPG", second.size),
            "{flags:?}"
        );
    }
}

/// `--recent N` takes the N newest assets first and the other filters then drop some of them
/// (icloudpd slices its listing, then skips): `--recent N --skip-photos` gives only the videos
/// among the N newest, not the N newest videos. Within an album, the N newest of its members.
#[test]
fn recent_counts_the_newest_assets_before_the_other_filters() {
    use icloudpd_rs::model::ItemKind;
    let env = Env::new(small(80));
    env.sync(&env.folder("warmup"), &["--dry-run"])
        .expect_code(0);
    let catalog = env.catalog();
    let lib = catalog.libraries().unwrap()[0].id;
    let mut newest: Vec<(i64, String, bool)> = catalog
        .assets(lib, AssetFilter::AllPhotos)
        .map(|a| a.unwrap().asset)
        .map(|a| (a.asset_date_ms, a.id.clone(), a.kind == ItemKind::Movie))
        .collect();
    newest.sort();
    newest.reverse();
    // The fewest newest assets holding both a photo and a video.
    let n = (1..=newest.len())
        .find(|&n| {
            let head = &newest[..n];
            head.iter().any(|(_, _, movie)| *movie) && head.iter().any(|(_, _, movie)| !*movie)
        })
        .expect("photos and videos");
    let head: Vec<&(i64, String, bool)> = newest.iter().take(n).collect();
    let count = n.to_string();
    for (skip, movie) in [("--skip-photos", true), ("--skip-videos", false)] {
        let f = env.folder(&format!("recent{skip}"));
        let run = env.sync(&f, &["--recent", &count, skip]);
        run.expect_code(0);
        let ids: Vec<&str> = head
            .iter()
            .filter(|(_, _, m)| *m == movie)
            .map(|(_, id, _)| id.as_str())
            .collect();
        assert!(ids.len() < n, "{skip}: the filter drops one of the newest");
        let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
            ids.contains(&a.id.as_str())
        });
        assert!(!exp.is_empty());
        assert_tree(&env, &f, &exp);
    }

    // With an album, the newest of its members.
    let counts = catalog.album_member_counts(lib).unwrap();
    let album = catalog
        .albums(lib)
        .unwrap()
        .into_iter()
        .find(|a| !a.album.is_folder && counts.get(&a.album.id).copied().unwrap_or(0) > 3)
        .expect("an album with members");
    let mut members: Vec<(i64, String)> = catalog
        .assets(lib, AssetFilter::Album(album.key))
        .map(|a| a.unwrap().asset)
        .map(|a| (a.asset_date_ms, a.id.clone()))
        .collect();
    members.sort();
    members.reverse();
    let ids: Vec<&str> = members.iter().take(2).map(|(_, id)| id.as_str()).collect();
    let f = env.folder("recent-album");
    env.sync(&f, &["--album", &album.path.join("/"), "--recent", "2"])
        .expect_code(0);
    let exp = expected_of(&env, &[], AssetFilter::AllPhotos, |a| {
        ids.contains(&a.id.as_str())
    });
    assert!(!exp.is_empty());
    assert_tree(&env, &f, &exp);
}
