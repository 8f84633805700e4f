//! Whole trees: folder templates and time zones, collision resolution, flat listings, and
//! determinism (same catalog and flags in any order give the same tree).

use crate::support;

use chrono::{TimeZone, Utc};
use icloudpd_rs::layout::{
    FileMatchPolicy, FolderTemplate, LayoutPolicy, PrimarySize, RelDir, asset_dir, id7, plan_asset,
    plan_asset_in_album, plan_flat, plan_tree, resolve_collisions,
};
use icloudpd_rs::model::{Asset, ItemKind, VersionKind as K};
use support::*;

fn with_template(template: &str) -> LayoutPolicy {
    LayoutPolicy {
        folder: template.parse().unwrap(),
        ..utc_policy()
    }
}

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

/// A JPEG named `filename` of `size` bytes, added at `added` (minutes after a fixed start).
fn added(id: &str, filename: &str, size: u64, added: i64) -> Asset {
    let mut a = jpeg_photo(id, filename, size);
    a.added_date_ms = ms(2024, 1, 1, 0, 0) + added * 60_000;
    a
}

#[test]
fn default_and_strftime_templates_give_date_folders() {
    let photo = jpeg_photo("id", "IMG_0001.JPG", 10);
    for template in ["{:%Y/%m/%d}", "%Y/%m/%d"] {
        assert_eq!(
            paths(&plan_asset(&photo, &with_template(template))),
            ["2024/03/07/IMG_0001.JPG"],
            "{template}"
        );
    }
    assert_eq!(
        paths(&plan_asset(
            &photo,
            &LayoutPolicy {
                zone: zone(0),
                ..Default::default()
            }
        )),
        ["2024/03/07/IMG_0001.JPG"]
    );
    assert_eq!(
        paths(&plan_asset(&photo, &with_template("none"))),
        ["IMG_0001.JPG"]
    );
    assert_eq!(
        paths(&plan_asset(&photo, &with_template("{:%Y}/{:%B}"))),
        ["2024/March/IMG_0001.JPG"]
    );
}

#[test]
fn the_zone_decides_the_day_folder_near_midnight() {
    // 2024-03-07 23:30 UTC.
    let photo = jpeg_photo("id", "IMG_0001.JPG", 10);
    let cases = [
        (0, "2024/03/07"),
        (3600, "2024/03/08"),
        (-5 * 3600, "2024/03/07"),
        (30 * 60, "2024/03/08"),
        (29 * 60, "2024/03/07"),
    ];
    for (offset, dir) in cases {
        let policy = LayoutPolicy {
            zone: zone(offset),
            ..utc_policy()
        };
        assert_eq!(asset_dir(&photo, &policy, None).as_str(), dir, "{offset}");
    }
    // New Year's Eve: the year folder changes too.
    let mut nye = photo.clone();
    nye.asset_date_ms = ms(2023, 12, 31, 23, 59);
    let east = LayoutPolicy {
        zone: zone(60),
        ..utc_policy()
    };
    assert_eq!(asset_dir(&nye, &east, None).as_str(), "2024/01/01");
    // The mtime is the instant itself, whatever the zone.
    assert_eq!(plan_asset(&nye, &east)[0].mtime_ms, nye.asset_date_ms);
}

#[test]
fn dates_before_1970_and_out_of_range_are_handled() {
    let mut old = jpeg_photo("id", "IMG_0001.JPG", 10);
    old.asset_date_ms = ms(1969, 7, 20, 20, 17);
    let files = plan_asset(&old, &utc_policy());
    assert_eq!(paths(&files), ["1969/07/20/IMG_0001.JPG"]);
    assert!(files[0].mtime() < std::time::UNIX_EPOCH);
    // Beyond chrono's range: the epoch, as icloudpd does for unconvertible dates.
    old.asset_date_ms = i64::MAX;
    assert_eq!(asset_dir(&old, &utc_policy(), None).as_str(), "1970/01/01");
}

#[test]
fn album_and_library_tokens() {
    let photo = jpeg_photo("id", "IMG_0001.JPG", 10);
    let policy = with_template("{album}/{:%Y}");
    assert_eq!(
        paths(&plan_asset_in_album(&photo, &policy, &["Trips", "Rome"])),
        ["Trips/Rome/2024/IMG_0001.JPG"]
    );
    // Album names are remote text: made safe like filenames, but non-ASCII is kept (the
    // ASCII-only default is icloudpd's, for file names).
    assert_eq!(
        paths(&plan_asset_in_album(
            &photo,
            &policy,
            &["..", "a/b", "Köln", ".x"]
        )),
        ["_./a_b/Köln/_x/2024/IMG_0001.JPG"]
    );
    // Without an album the token renders nothing.
    assert_eq!(paths(&plan_asset(&photo, &policy)), ["2024/IMG_0001.JPG"]);
    let mut shared = photo.clone();
    shared.zone = "SharedSync-1234".into();
    assert_eq!(
        paths(&plan_asset(&shared, &with_template("{library}/%Y"))),
        ["SharedSync-1234/2024/IMG_0001.JPG"]
    );
}

#[test]
fn same_names_in_one_folder_get_icloudpds_size_suffix() {
    let older = added("A1", "IMG_0001.JPG", 1000, 0);
    let newer = added("B2", "IMG_0001.JPG", 2000, 5);
    let tree = plan_tree([&newer, &older], &utc_policy(), None);
    assert_eq!(
        paths(&tree),
        ["2024/03/07/IMG_0001-2000.JPG", "2024/03/07/IMG_0001.JPG"]
    );
    assert_eq!(tree[0].asset_id, "B2");
    // Equal sizes: still two files (icloudpd would take the second for the first).
    let twin = added("C3", "IMG_0001.JPG", 1000, 9);
    let tree = plan_tree([&twin, &older], &utc_policy(), None);
    assert_eq!(
        paths(&tree),
        ["2024/03/07/IMG_0001-1000.JPG", "2024/03/07/IMG_0001.JPG"]
    );
    assert_eq!(tree[0].asset_id, "C3");
    // In different folders there is no collision.
    let mut elsewhere = newer.clone();
    elsewhere.asset_date_ms = ms(2020, 5, 5, 12, 0);
    assert_eq!(
        paths(&plan_tree([&older, &elsewhere], &utc_policy(), None)),
        ["2020/05/05/IMG_0001.JPG", "2024/03/07/IMG_0001.JPG"]
    );
}

#[test]
fn suffix_chain_size_then_id7_then_counter() {
    // C and D share their id7 (the 7th base64 character only sees two bits of byte 6).
    assert_eq!(id7("AbcdeC1"), id7("AbcdeD2"));
    let a = added("A0", "IMG_0001.JPG", 100, 0);
    let b = added("B0", "IMG_0001.JPG", 200, 1);
    let c = added("AbcdeC1", "IMG_0001.JPG", 200, 2);
    let d = added("AbcdeD2", "IMG_0001.JPG", 200, 3);
    let policy = with_template("none");
    let tree = plan_tree([&d, &c, &b, &a], &policy, None);
    let by_id = |id: &str| tree.iter().find(|f| f.asset_id == id).unwrap().name.clone();
    assert_eq!(by_id("A0"), "IMG_0001.JPG");
    assert_eq!(by_id("B0"), "IMG_0001-200.JPG");
    assert_eq!(by_id("AbcdeC1"), format!("IMG_0001-{}.JPG", id7("AbcdeC1")));
    assert_eq!(by_id("AbcdeD2"), "IMG_0001-2.JPG");
}

#[test]
fn names_differing_only_in_case_collide() {
    let upper = added("A", "IMG_0001.JPG", 10, 0);
    let lower = added("B", "img_0001.jpg", 20, 1);
    let names = names(&plan_tree([&lower, &upper], &with_template("none"), None));
    assert_eq!(names, ["IMG_0001.JPG", "img_0001-20.JPG"]);
}

#[test]
fn name_id7_collisions_still_keep_every_file() {
    let policy = LayoutPolicy {
        file_match: FileMatchPolicy::NameId7,
        ..with_template("none")
    };
    let c = added("AbcdeC1", "IMG_0001.JPG", 100, 0);
    let d = added("AbcdeD2", "IMG_0001.JPG", 200, 1);
    let suffix = id7("AbcdeC1");
    assert_eq!(
        names(&plan_tree([&d, &c], &policy, None)),
        [
            format!("IMG_0001_{suffix}-200.JPG"),
            format!("IMG_0001_{suffix}.JPG")
        ]
    );
}

#[test]
fn adding_a_newer_asset_never_renames_an_existing_file() {
    let mut library: Vec<Asset> = (0..40)
        .map(|i| {
            added(
                &format!("id{i:02}"),
                &format!("IMG_{:04}.JPG", i % 7),
                100 + i % 3,
                i as i64,
            )
        })
        .collect();
    let policy = with_template("none");
    let before = plan_tree(&library, &policy, None);
    library.push(added("zz-new", "IMG_0003.JPG", 100, 1000));
    library.push(added("aa-new", "IMG_0003.JPG", 101, 1001));
    let after = plan_tree(&library, &policy, None);
    for file in &before {
        let same = after
            .iter()
            .find(|f| f.asset_id == file.asset_id && f.role == file.role)
            .unwrap();
        assert_eq!(same.rel_path(), file.rel_path());
    }
    assert_eq!(after.len(), before.len() + 2);
}

/// A small deterministic shuffle (xorshift), enough to try many input orders.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut state = seed | 1;
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}

fn mixed_library() -> Vec<Asset> {
    let mut library = Vec::new();
    for i in 0..30u64 {
        let mut a = added(
            &format!("m{i:02}"),
            &format!("IMG_{:04}.JPG", i % 4),
            100 + i % 2,
            (i % 5) as i64,
        );
        a.asset_date_ms = ms(2024, 3, 7 + (i % 3) as u32, 12, 0);
        if i % 6 == 0 {
            a.versions.push(version(K::LiveOriginal, MOV, 500 + i));
        }
        library.push(a);
    }
    library
}

#[test]
fn same_catalog_in_any_order_gives_the_same_tree() {
    let library = mixed_library();
    let policy = LayoutPolicy {
        sizes: vec![PrimarySize::Original, PrimarySize::Medium],
        ..utc_policy()
    };
    let reference = plan_tree(&library, &policy, None);
    assert!(reference.len() > library.len());
    for seed in 1..20 {
        assert_eq!(
            plan_tree(shuffled(&library, seed), &policy, None),
            reference
        );
    }
    // Every path unique, ignoring case.
    let mut lower: Vec<String> = paths(&reference).iter().map(|p| p.to_lowercase()).collect();
    lower.sort();
    lower.dedup();
    assert_eq!(lower.len(), reference.len());
}

#[test]
fn resolving_per_directory_equals_resolving_the_whole_set() {
    let library = mixed_library();
    let policy = utc_policy();
    let all: Vec<_> = library
        .iter()
        .flat_map(|a| plan_asset(a, &policy))
        .collect();
    let whole = resolve_collisions(all.clone(), policy.file_match);
    let mut dirs: Vec<RelDir> = all.iter().map(|f| f.dir.clone()).collect();
    dirs.sort();
    dirs.dedup();
    let mut per_dir: Vec<_> = dirs
        .iter()
        .flat_map(|d| {
            let files = all.iter().filter(|f| &f.dir == d).cloned().collect();
            resolve_collisions(files, policy.file_match)
        })
        .collect();
    let key = |f: &icloudpd_rs::layout::PlannedFile| f.rel_path();
    per_dir.sort_by_key(key);
    let mut whole_sorted = whole;
    whole_sorted.sort_by_key(key);
    assert_eq!(per_dir, whole_sorted);
}

#[test]
fn flat_listings_dedup_across_days_and_ignore_repeats() {
    let library = mixed_library();
    let dir = RelDir::from_components(["Favorites"]);
    let mut with_repeat = library.clone();
    with_repeat.push(library[3].clone());
    let listing = plan_flat(&with_repeat, &utc_policy(), &dir);
    let reference = plan_flat(shuffled(&library, 7), &utc_policy(), &dir);
    assert_eq!(listing, reference);
    assert!(
        listing
            .iter()
            .all(|f| f.dir == dir && f.rel_path().starts_with("Favorites/"))
    );
    let mut lower: Vec<String> = names(&listing).iter().map(|n| n.to_lowercase()).collect();
    lower.sort();
    lower.dedup();
    assert_eq!(lower.len(), listing.len());
    // The first-added asset keeps the plain name in the listing too.
    assert!(names(&listing).contains(&"IMG_0000.JPG".to_string()));
}

#[test]
fn live_companion_and_a_video_of_the_same_name() {
    let still = asset(
        "still",
        Some("IMG_0005.JPG"),
        ItemKind::Image,
        vec![
            version(K::Original, JPEG, 10),
            version(K::LiveOriginal, MOV, 20),
        ],
    );
    let mut video = asset(
        "video",
        Some("IMG_0005.MOV"),
        ItemKind::Movie,
        vec![version(K::Original, MOV, 30)],
    );
    video.added_date_ms += 1;
    let tree = plan_tree([&video, &still], &with_template("none"), None);
    assert_eq!(
        summary(&tree),
        vec![
            ("IMG_0005-30.MOV".to_string(), K::Original, K::Original),
            ("IMG_0005.JPG".to_string(), K::Original, K::Original),
            ("IMG_0005.MOV".to_string(), K::LiveOriginal, K::LiveOriginal),
        ]
    );
}

#[test]
fn templates_print_back_as_written() {
    let t: FolderTemplate = "{:%Y}/{album}".parse().unwrap();
    assert_eq!(t.to_string(), "{:%Y}/{album}");
    assert_eq!(FolderTemplate::default().as_str(), "{:%Y/%m/%d}");
}

/// An asset whose type keeps its name's extension (`public.data` is unmapped), added at
/// `added` minutes, on the same day as the photos of [`added`].
fn data_file(id: &str, filename: &str, size: u64, added_min: i64) -> Asset {
    let mut a = asset(
        id,
        Some(filename),
        ItemKind::Unknown,
        vec![version(K::Original, "public.data", size)],
    );
    a.added_date_ms = ms(2024, 1, 1, 0, 0) + added_min * 60_000;
    a
}

/// No file of `files` has the name of another's sidecar (`NAME.xmp`), ignoring case.
fn assert_no_name_is_a_sidecar_name(files: &[icloudpd_rs::layout::PlannedFile]) {
    let sidecars: Vec<String> = files
        .iter()
        .map(|f| format!("{}.xmp", f.rel_path()).to_lowercase())
        .collect();
    for f in files {
        assert!(
            !sidecars.contains(&f.rel_path().to_lowercase()),
            "{} is another file's sidecar name",
            f.rel_path()
        );
    }
}

#[test]
fn a_name_equal_to_another_files_sidecar_name_collides() {
    let photo = added("photo", "Case.JPG", 100, 0);
    // Added later than the photo: it yields, with the usual size suffix.
    let data = data_file("data", "Case.JPG.xmp", 7, 1);
    let tree = plan_tree([&data, &photo], &with_template("none"), None);
    assert_eq!(names(&tree), ["Case.JPG", "Case.JPG-7.xmp"]);
    assert_eq!(tree[1].asset_id, "data");
    assert_no_name_is_a_sidecar_name(&tree);
    // Compared ignoring case, like every collision.
    let upper = data_file("data", "CASE.jpg.XMP", 7, 1);
    let tree = plan_tree([&upper, &photo], &with_template("none"), None);
    assert_eq!(names(&tree), ["CASE.jpg-7.XMP", "Case.JPG"]);
    // Added earlier: it keeps its name, and the photo takes the suffix, so that the photo's
    // sidecar has a path of its own (the earliest-added asset keeps the plain name).
    let older = data_file("data", "Case.JPG.xmp", 7, -1);
    let tree = plan_tree([&photo, &older], &with_template("none"), None);
    assert_eq!(names(&tree), ["Case-100.JPG", "Case.JPG.xmp"]);
    assert_eq!(tree[0].asset_id, "photo");
    assert_no_name_is_a_sidecar_name(&tree);
    // A suffixed name's sidecar is taken too: `Case-100.JPG.xmp` is not free for a third.
    let third = data_file("third", "Case-100.JPG.xmp", 9, 2);
    let tree = plan_tree([&photo, &older, &third], &with_template("none"), None);
    assert_eq!(
        names(&tree),
        ["Case-100.JPG", "Case-100.JPG-9.xmp", "Case.JPG.xmp"]
    );
    assert_no_name_is_a_sidecar_name(&tree);
    // A sidecar of a sidecar-named file: `Case.JPG.xmp.xmp` would be the sidecar of the data
    // file, so it is not free either.
    let nested = data_file("nested", "Case.JPG.xmp.xmp", 5, 3);
    let tree = plan_tree([&photo, &older, &nested], &with_template("none"), None);
    assert_eq!(
        names(&tree),
        ["Case-100.JPG", "Case.JPG.xmp", "Case.JPG.xmp-5.xmp"]
    );
    // Flat listings (the mount's views) follow the same rule, and in any order.
    let dir = RelDir::from_components(["Favorites"]);
    let listing = plan_flat([&data, &photo], &utc_policy(), &dir);
    assert_eq!(names(&listing), ["Case.JPG", "Case.JPG-7.xmp"]);
    assert_eq!(plan_flat([&photo, &data], &utc_policy(), &dir), listing);
    // Names that do not collide are left alone: an `.xmp` beside another photo, or the
    // same name on another day.
    let other = data_file("other", "Other.JPG.xmp", 7, 1);
    let tree = plan_tree([&other, &photo], &with_template("none"), None);
    assert_eq!(names(&tree), ["Case.JPG", "Other.JPG.xmp"]);
    let mut elsewhere = data.clone();
    elsewhere.asset_date_ms = ms(2020, 5, 5, 12, 0);
    assert_eq!(
        paths(&plan_tree([&elsewhere, &photo], &utc_policy(), None)),
        ["2020/05/05/Case.JPG.xmp", "2024/03/07/Case.JPG"]
    );
}

#[test]
fn every_files_sidecar_name_is_free_in_a_mixed_library() {
    let mut library = mixed_library();
    for (i, a) in mixed_library().iter().enumerate().step_by(4) {
        // The sidecar names of the library's own names, as other assets' names.
        let name = format!("{}.xmp", a.filename.as_deref().unwrap());
        let mut data = data_file(&format!("x{i:02}"), &name, 40 + i as u64, (i % 5) as i64);
        data.asset_date_ms = a.asset_date_ms;
        library.push(data);
    }
    let policy = LayoutPolicy {
        sizes: vec![PrimarySize::Original, PrimarySize::Medium],
        ..utc_policy()
    };
    let tree = plan_tree(&library, &policy, None);
    assert_no_name_is_a_sidecar_name(&tree);
    assert_eq!(plan_tree(shuffled(&library, 3), &policy, None), tree);
    assert_no_name_is_a_sidecar_name(&plan_flat(&library, &policy, &RelDir::root()));
}

#[test]
fn years_past_9999_are_plain_digits() {
    let mut photo = jpeg_photo("id", "IMG_0001.JPG", 10);
    // 9999-12-31 23:59:59 UTC is 10000-01-01 east of UTC.
    photo.asset_date_ms = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .unwrap()
        .timestamp_millis();
    let east = LayoutPolicy {
        zone: zone(3600),
        ..utc_policy()
    };
    assert_eq!(asset_dir(&photo, &east, None).as_str(), "10000/01/01");
    assert_eq!(
        asset_dir(&photo, &utc_policy(), None).as_str(),
        "9999/12/31"
    );
    for (template, dir) in [
        ("%Y", "10000"),
        ("%-Y", "10000"),
        ("%_Y", "10000"),
        ("{:%Y-%m}", "10000-01"),
        ("%F", "10000-01-01"),
        ("%C/%y", "100/00"),
        ("%G", "9999"),
    ] {
        let policy = LayoutPolicy {
            folder: template.parse().unwrap(),
            ..east.clone()
        };
        assert_eq!(asset_dir(&photo, &policy, None).as_str(), dir, "{template}");
    }
    // Years 0 to 9999 print as they always have.
    for (year, dir) in [(1, "0001"), (999, "0999"), (1938, "1938"), (9999, "9999")] {
        photo.asset_date_ms = ms(year, 6, 15, 12, 0);
        assert_eq!(
            asset_dir(&photo, &with_template("%Y"), None).as_str(),
            dir,
            "{year}"
        );
    }
}
