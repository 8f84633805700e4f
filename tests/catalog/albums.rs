//! Albums, folders and membership.

use crate::support;

use icloudpd_rs::catalog::{AlbumTreeCounts, AssetFilter, CatalogError};
use support::*;

#[test]
fn the_album_tree_is_replaced_with_stable_keys_and_folder_paths() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let tree = vec![
        album("F-TRIPS", "Trips", Some("----Root-Folder----"), true, 10),
        album("F-2019", "2019", Some("F-TRIPS"), true, 20),
        album("A-ROME", "Rome", Some("F-2019"), false, 30),
        album("A-SLASH", "Garage vorher/nachher", None, false, 5),
        album("A-JORG", "Jörg", None, false, 40),
    ];
    let counts = c.replace_albums(lib, &tree).unwrap();
    assert_eq!(
        counts,
        AlbumTreeCounts {
            added: 5,
            ..AlbumTreeCounts::default()
        }
    );
    let listed = c.albums(lib).unwrap();
    let got: Vec<(&str, Vec<&str>, bool)> = listed
        .iter()
        .map(|e| {
            (
                e.album.id.as_str(),
                e.path.iter().map(String::as_str).collect(),
                e.album.is_folder,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("A-SLASH", vec!["Garage vorher/nachher"], false),
            ("F-TRIPS", vec!["Trips"], true),
            ("F-2019", vec!["Trips", "2019"], true),
            ("A-ROME", vec!["Trips", "2019", "Rome"], false),
            ("A-JORG", vec!["Jörg"], false),
        ]
    );
    for (e, original) in listed
        .iter()
        .map(|e| (e, tree.iter().find(|t| t.id == e.album.id)))
    {
        assert_eq!(Some(&e.album), original);
    }
    let rome_key = listed[3].key;

    // Same tree again: nothing changes. Then Rome is renamed, Jörg removed, one added.
    assert_eq!(
        c.replace_albums(lib, &tree).unwrap(),
        AlbumTreeCounts::default()
    );
    let mut next = tree.clone();
    next[2].name = "Roma".into();
    next.remove(4);
    next.push(album("A-NEW", "New", None, false, 50));
    c.set_album_members(lib, "A-JORG", &["X"]).unwrap();
    let counts = c.replace_albums(lib, &next).unwrap();
    assert_eq!(
        counts,
        AlbumTreeCounts {
            added: 1,
            changed: 1,
            removed: 1
        }
    );
    let listed = c.albums(lib).unwrap();
    let rome = listed.iter().find(|e| e.album.id == "A-ROME").unwrap();
    assert_eq!(rome.key, rome_key);
    assert_eq!(rome.path, ["Trips", "2019", "Roma"]);
    assert!(listed.iter().all(|e| e.album.id != "A-JORG"));
    assert!(c.album_member_ids(lib, "A-JORG").unwrap().is_empty());
    let new = listed.iter().find(|e| e.album.id == "A-NEW").unwrap();
    assert!(new.key > rome_key);
}

#[test]
fn a_parent_cycle_does_not_hang_path_building() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    c.replace_albums(
        lib,
        &[
            album("X", "x", Some("Y"), true, 1),
            album("Y", "y", Some("X"), true, 2),
        ],
    )
    .unwrap();
    let listed = c.albums(lib).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|e| !e.path.is_empty() && e.path.len() <= 64)
    );
}

#[test]
fn album_members_are_set_and_listed_as_visible_assets() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let mut hidden = photo("H", 3);
    hidden.hidden = true;
    let mut deleted = photo("D", 4);
    deleted.deleted = true;
    full_refresh(
        &mut c,
        lib,
        &[photo("A", 1), photo("B", 2), hidden, deleted, photo("C", 5)],
    );
    c.replace_albums(lib, &[album("ALB", "Holiday", None, false, 1)])
        .unwrap();
    c.set_album_members(lib, "ALB", &["A", "C", "H", "D", "NOT-YET-STORED"])
        .unwrap();

    let entry = &c.albums(lib).unwrap()[0];
    assert_eq!(c.album_member_counts(lib).unwrap()["ALB"], 2);
    let members: Vec<String> = c
        .assets(lib, AssetFilter::Album(entry.key))
        .map(|a| a.unwrap().asset.id)
        .collect();
    assert_eq!(members, ["A", "C"]);
    assert_eq!(
        c.count_assets(lib, AssetFilter::Album(entry.key)).unwrap(),
        2
    );

    // A member stored before its asset arrives joins once the asset is stored.
    let run = c
        .begin_run(lib, icloudpd_rs::catalog::RunKind::Full, None)
        .unwrap();
    c.upsert_page(run, &[photo("NOT-YET-STORED", 6)], &[])
        .unwrap();
    assert_eq!(
        c.count_assets(lib, AssetFilter::Album(entry.key)).unwrap(),
        3
    );

    // Replacing the members drops the old visible ones; the hidden and recently deleted ones
    // stay (an album's listing cannot show them), for when they are shown again.
    c.set_album_members(lib, "ALB", &["B"]).unwrap();
    let mut ids = c.album_member_ids(lib, "ALB").unwrap();
    ids.sort();
    assert_eq!(ids, ["B", "D", "H"]);
    assert!(matches!(
        c.set_album_members(lib, "NO-SUCH-ALBUM", &["A"]),
        Err(CatalogError::UnknownAlbumId { .. })
    ));
}

#[test]
fn albums_of_another_zone_are_refused() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let mut foreign = album("Z", "z", None, false, 1);
    foreign.zone = "SharedSync-1".into();
    assert!(matches!(
        c.replace_albums(lib, &[album("OK", "ok", None, false, 0), foreign]),
        Err(CatalogError::ZoneMismatch { .. })
    ));
    assert!(c.albums(lib).unwrap().is_empty(), "all or nothing");
}
