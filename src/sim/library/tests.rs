//! Unit tests of the library: generation, indexes under mutations, change feed and tokens.

use std::collections::HashSet;

use super::index::{IndexId, Indexes, Smart};
use super::model::{AssetKind, DELETED, EDITED, FAVORITE, HIDDEN, PURGED, filename};
use super::*;
use crate::sim::SimConfig;

fn config(assets: usize) -> SimConfig {
    SimConfig {
        assets,
        size_scale: 0.001,
        ..SimConfig::default()
    }
}

pub(super) fn library(assets: usize) -> LibraryState {
    LibraryState::generate(&config(assets))
}

pub(super) fn primary(lib: &LibraryState) -> &ZoneHandle {
    lib.zone(PRIMARY_ZONE).expect("primary zone")
}

/// Maintained indexes equal indexes rebuilt from scratch from the current state.
fn assert_indexes_consistent(zone: &ZoneHandle) {
    let z = zone.read();
    let members: Vec<Vec<u32>> = (0..z.albums.len() as u32)
        .map(|album| {
            let mut m: Vec<u32> = z
                .relations
                .iter()
                .filter(|((a, _), r)| *a == album && r.live)
                .map(|((_, i), _)| *i)
                .collect();
            m.sort_unstable();
            m
        })
        .collect();
    let fresh = Indexes::build(&z.assets, &members);
    assert_eq!(z.indexes.all, fresh.all, "all photos");
    assert_eq!(z.indexes.added, fresh.added, "added-date index");
    assert_eq!(z.indexes.smart, fresh.smart, "smart folders");
    assert_eq!(z.indexes.hidden, fresh.hidden, "hidden");
    assert_eq!(z.indexes.deleted, fresh.deleted, "recently deleted");
    for (i, v) in fresh.albums.iter().enumerate() {
        assert_eq!(
            z.indexes.albums.get(i).cloned().unwrap_or_default(),
            *v,
            "album {i}"
        );
    }
    for (&i, albums) in &z.asset_albums {
        for a in albums {
            assert!(
                z.relations[&(*a, i)].live,
                "asset_albums lists a dead relation"
            );
        }
    }
}

fn id_of(lib: &LibraryState, zone: &ZoneHandle, idx: u32) -> String {
    lib.ids.master_name(zone.read().assets[idx as usize].key)
}

/// Changes since log position `pos`, all pages.
fn changes_since(lib: &LibraryState, zone: &ZoneHandle, mut pos: u32) -> Vec<ChangeItem> {
    let mut out = Vec::new();
    loop {
        let page = lib.changes(zone, pos, 200);
        out.extend(page.items);
        pos = page.next_pos;
        if !page.more_coming {
            return out;
        }
    }
}

fn describe(items: &[ChangeItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            ChangeItem::Master(v) => {
                format!("master:{}", v.asset.flags & (DELETED | HIDDEN | FAVORITE))
            }
            ChangeItem::Asset(v) => {
                format!("asset:{}", v.asset.flags & (DELETED | HIDDEN | FAVORITE))
            }
            ChangeItem::Album(v) => format!("album:{}", v.album.name),
            ChangeItem::Relation { .. } => "relation".to_string(),
            ChangeItem::LibraryInfo { .. } => "info".to_string(),
            ChangeItem::Deleted { record_name, .. } if record_name.contains("-IN-") => {
                "gone-relation".to_string()
            }
            ChangeItem::Deleted { .. } => "gone".to_string(),
        })
        .collect()
}

#[test]
fn generation_is_deterministic_from_the_seed() {
    let a = library(500);
    let b = library(500);
    let c = LibraryState::generate(&SimConfig {
        seed: 2,
        ..config(500)
    });
    let (za, zb, zc) = (primary(&a).read(), primary(&b).read(), primary(&c).read());
    assert_eq!(za.assets, zb.assets);
    assert_eq!(za.indexes.all, zb.indexes.all);
    assert_eq!(
        za.albums.iter().map(|x| x.position).collect::<Vec<_>>(),
        zb.albums.iter().map(|x| x.position).collect::<Vec<_>>()
    );
    assert_eq!(a.zone_token(PRIMARY_ZONE), b.zone_token(PRIMARY_ZONE));
    assert_ne!(za.assets, zc.assets);
    assert_ne!(a.ids.master_name(1), c.ids.master_name(1));
}

#[test]
fn small_libraries_cover_every_kind_flag_and_special_name() {
    let lib = library(40);
    let z = primary(&lib).read();
    for kind in AssetKind::ALL {
        assert!(z.assets.iter().any(|a| a.kind == kind), "no {kind:?}");
    }
    for flag in [FAVORITE, HIDDEN, DELETED, EDITED] {
        assert!(
            z.assets.iter().any(|a| a.has(flag)),
            "no asset with flag {flag}"
        );
    }
    assert!(
        z.assets.iter().filter(|a| a.burst != 0).count() >= 3,
        "burst of several shots"
    );
    let names: Vec<Option<String>> = z.assets.iter().map(|a| filename(a).0).collect();
    assert!(names.contains(&Some("Été à Zürich.JPG".to_string())));
    assert!(names.contains(&Some("写真.HEIC".to_string())));
    assert!(names.contains(&None));
    assert!(names.iter().flatten().any(|n| n.len() > 255));
    for a in z.assets.iter() {
        assert!(a.added_date >= a.asset_date);
        assert_eq!(a.has(DELETED), a.date_expunged != 0);
    }
    // Albums: root first, folders with children, a deleted one, an empty one.
    assert_eq!(z.albums[0].name, generate::ROOT_FOLDER);
    assert!(z.albums.iter().any(|a| a.deleted));
    assert!(z.albums.iter().any(|a| a.parent.is_some()));
}

#[test]
fn big_libraries_spread_dates_and_collide_names() {
    let lib = library(30_000);
    let z = primary(&lib).read();
    let first = z.assets.iter().map(|a| a.asset_date).min().unwrap();
    let last = z.assets.iter().map(|a| a.asset_date).max().unwrap();
    assert!(
        last - first > 10 * 365 * model::DAY_MS,
        "dates span 10+ years"
    );
    let same_name: Vec<_> = z
        .assets
        .iter()
        .filter(|a| filename(a).0.as_deref() == Some("IMG_0100.HEIC"))
        .map(|a| lib.facts.size(a, model::Rendition::Original))
        .collect();
    let first_heic = z
        .assets
        .iter()
        .find(|a| a.kind == AssetKind::HeicPhoto)
        .unwrap();
    let common = filename(first_heic).0;
    let sizes: HashSet<u64> = z
        .assets
        .iter()
        .filter(|a| filename(a).0 == common)
        .map(|a| lib.facts.size(a, model::Rendition::Original))
        .collect();
    assert!(
        sizes.len() >= 2 || same_name.len() >= 2,
        "same name, different sizes: {common:?}"
    );
    let dup: usize = {
        let mut seen = HashSet::new();
        z.assets
            .iter()
            .filter(|a| !seen.insert(filename(a).0))
            .count()
    };
    assert!(dup > 5_000, "IMG_%04d counters wrap: {dup} repeated names");
    let big = z
        .albums
        .iter()
        .position(|a| a.name == "Everything")
        .unwrap();
    assert_eq!(
        z.indexes.albums[big].len() + hidden_or_deleted_members(&z, big as u32),
        5000
    );
    let offsets: HashSet<i64> = z
        .assets
        .iter()
        .map(|a| lib.facts.meta(a).tz_offset_secs)
        .collect();
    assert!(offsets.len() > 5);
}

fn hidden_or_deleted_members(z: &Zone, album: u32) -> usize {
    z.relations
        .iter()
        .filter(|((a, i), r)| *a == album && r.live && !z.assets[*i as usize].is_visible())
        .count()
}

#[test]
fn generated_indexes_follow_the_documented_membership_and_order() {
    let lib = library(3000);
    let zone = primary(&lib);
    assert_indexes_consistent(zone);
    let z = zone.read();
    let visible = z.assets.iter().filter(|a| a.is_visible()).count();
    assert_eq!(z.indexes.all.len(), visible);
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(visible));
    for w in z.indexes.all.windows(2) {
        assert!(z.assets[w[0] as usize].asset_date >= z.assets[w[1] as usize].asset_date);
    }
    for w in z.indexes.added.windows(2) {
        assert!(z.assets[w[0] as usize].added_date >= z.assets[w[1] as usize].added_date);
    }
    for w in z.indexes.deleted.windows(2) {
        assert!(z.assets[w[0] as usize].date_expunged >= z.assets[w[1] as usize].date_expunged);
    }
    let videos = z.indexes.get(IndexId::Smart(Smart::Video)).unwrap();
    assert!(!videos.is_empty());
    assert!(videos.iter().all(|&i| {
        let a = z.assets[i as usize];
        a.kind.is_movie() && a.kind.asset_subtype() == 0 && a.is_visible()
    }));
    assert!(
        z.indexes
            .hidden
            .iter()
            .all(|&i| z.assets[i as usize].has(HIDDEN))
    );
}

#[test]
fn every_mutation_keeps_indexes_counts_and_the_change_feed_right() {
    let lib = library(200);
    let zone = primary(&lib);
    let x = zone.read().indexes.all[0];
    let id = id_of(&lib, zone, x);
    let all_before = lib.count(PRIMARY_ZONE, IndexId::All).unwrap();
    let deleted_before = lib.count(PRIMARY_ZONE, IndexId::Deleted).unwrap();

    let step = |op: serde_json::Value, expect: &[&str]| {
        let pos = zone.read().log.len();
        let out = lib.mutate_json(&op).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert!(out.ok);
        assert_indexes_consistent(zone);
        assert_eq!(describe(&changes_since(&lib, zone, pos)), expect, "{op}");
        out
    };

    step(
        serde_json::json!({"op": "favorite", "asset_ids": [id]}),
        &["asset:1", "info"],
    );
    assert!(
        zone.read()
            .indexes
            .get(IndexId::Smart(Smart::Favorite))
            .unwrap()
            .contains(&x)
    );
    step(
        serde_json::json!({"op": "unfavorite", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    step(
        serde_json::json!({"op": "hide", "asset_ids": [id]}),
        &["asset:2", "info"],
    );
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(all_before - 1));
    assert!(zone.read().indexes.hidden.contains(&x));
    step(
        serde_json::json!({"op": "unhide", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    assert_eq!(zone.read().indexes.all[0], x, "back at rank 0");
    let gen_before = zone.read().assets[x as usize].edit_gen;
    step(
        serde_json::json!({"op": "edit", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    assert_eq!(zone.read().assets[x as usize].edit_gen, gen_before + 1);
    assert!(zone.read().assets[x as usize].has(EDITED));
    step(
        serde_json::json!({"op": "revert", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    assert!(!zone.read().assets[x as usize].has(EDITED));
    assert_eq!(
        zone.read().assets[x as usize].edit_gen,
        gen_before + 1,
        "a later edit gets content of its own"
    );
    let refused = lib
        .mutate_json(&serde_json::json!({"op": "revert", "asset_ids": [id]}))
        .expect_err("nothing to revert");
    assert!(refused.to_string().contains("no edit"), "{refused}");
    step(
        serde_json::json!({"op": "edit", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    step(
        serde_json::json!({"op": "delete", "asset_ids": [id]}),
        &["master:4", "asset:4", "info"],
    );
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(all_before - 1));
    assert_eq!(
        lib.count(PRIMARY_ZONE, IndexId::Deleted),
        Some(deleted_before + 1)
    );
    assert_eq!(
        zone.read().indexes.deleted[0],
        x,
        "most recently deleted first"
    );
    step(
        serde_json::json!({"op": "restore", "asset_ids": [id]}),
        &["master:0", "asset:0", "info"],
    );
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(all_before));

    let created = step(
        serde_json::json!({"op": "album_create", "name": "Nouvel album", "parent": "Trips"}),
        &["album:Nouvel album", "info"],
    );
    let album_id = created.album_ids[0].clone();
    step(
        serde_json::json!({"op": "album_add", "album": album_id, "asset_ids": [id]}),
        &["relation", "album:Nouvel album", "info"],
    );
    let album = lib.album_index(zone, &album_id).unwrap();
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::Album(album)), Some(1));
    step(
        serde_json::json!({"op": "hide", "asset_ids": [id]}),
        &["asset:2", "info"],
    );
    assert_eq!(
        lib.count(PRIMARY_ZONE, IndexId::Album(album)),
        Some(0),
        "albums hide hidden assets"
    );
    step(
        serde_json::json!({"op": "unhide", "asset_ids": [id]}),
        &["asset:0", "info"],
    );
    step(
        serde_json::json!({"op": "album_remove", "album": "Nouvel album", "asset_ids": [id]}),
        &["gone-relation", "info"],
    );
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::Album(album)), Some(0));
    step(
        serde_json::json!({"op": "album_add", "album": "Nouvel album", "asset_ids": [id]}),
        &["relation", "album:Nouvel album", "info"],
    );
    step(
        serde_json::json!({"op": "purge", "asset_ids": [id]}),
        &["gone-relation", "gone", "gone", "info"],
    );
    assert!(zone.read().assets[x as usize].has(PURGED));
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(all_before - 1));
    step(
        serde_json::json!({"op": "album_delete", "album": album_id}),
        &["album:Nouvel album", "info"],
    );

    let added = step(
        serde_json::json!({"op": "add", "count": 3, "album": "Jörg"}),
        &[
            "master:0",
            "asset:0",
            "master:0",
            "asset:0",
            "master:0",
            "asset:0",
            "relation",
            "relation",
            "relation",
            "album:Jörg",
            "info",
        ],
    );
    assert_eq!(added.asset_ids.len(), 3);
    let newest = zone.read().indexes.all[0];
    assert!(
        added.asset_ids.contains(&id_of(&lib, zone, newest)),
        "new assets are the newest"
    );
    assert_eq!(lib.count(PRIMARY_ZONE, IndexId::All), Some(all_before + 2));
}

#[test]
fn bad_mutations_are_refused_with_a_reason_and_change_nothing() {
    let lib = library(50);
    let zone = primary(&lib);
    let pos = zone.read().log.len();
    let id = id_of(&lib, zone, 0);
    for (op, needle) in [
        (serde_json::json!({"op": "explode"}), "unknown variant"),
        (serde_json::json!({"op": "delete"}), "asset_ids"),
        (
            serde_json::json!({"op": "delete", "asset_ids": ["nope"]}),
            "no asset",
        ),
        (
            serde_json::json!({"op": "restore", "asset_ids": [id]}),
            "not in Recently Deleted",
        ),
        (
            serde_json::json!({"op": "album_add", "album": "Nope", "asset_ids": [id]}),
            "no album",
        ),
        (
            serde_json::json!({"op": "album_add", "album": "Trips", "asset_ids": [id]}),
            "folder",
        ),
        (
            serde_json::json!({"op": "album_delete", "album": "Trips"}),
            "not empty",
        ),
        (
            serde_json::json!({"op": "hide", "asset_ids": [id], "zone": "Nowhere"}),
            "no zone",
        ),
        (serde_json::json!(42), "expected a JSON object"),
    ] {
        let err = lib.mutate_json(&op).expect_err(&op.to_string()).to_string();
        assert!(err.contains(needle), "{op}: {err}");
    }
    assert_eq!(zone.read().log.len(), pos);
    let err = lib
        .mutate_json(&serde_json::json!([{"op": "hide", "asset_ids": [id]}, {"op": "bogus"}]))
        .unwrap_err();
    assert!(err.to_string().contains("operation 1"), "{err}");
}

#[test]
fn full_history_lists_each_current_record_once_in_pages() {
    let lib = library(700);
    let zone = primary(&lib);
    let id = id_of(&lib, zone, 10);
    lib.mutate_json(&serde_json::json!({"op": "favorite", "asset_ids": [id]}))
        .unwrap();
    lib.mutate_json(&serde_json::json!({"op": "delete", "asset_ids": [id]}))
        .unwrap();
    let (assets, albums, relations) = {
        let z = zone.read();
        (z.assets.len(), z.albums.len(), z.relations.len())
    };
    let mut pos = 0;
    let mut seen = HashSet::new();
    let mut pages = 0;
    loop {
        let page = lib.changes(zone, pos, 200);
        assert!(page.items.len() <= 200);
        // Idempotent: the same token gives the same page.
        let again = lib.changes(zone, pos, 200);
        assert_eq!(describe(&again.items), describe(&page.items));
        assert_eq!(again.next_pos, page.next_pos);
        for item in &page.items {
            let key = match item {
                ChangeItem::Master(v) => format!("m{}", v.asset.key),
                ChangeItem::Asset(v) => format!("a{}", v.asset.key),
                ChangeItem::Album(v) => format!("al{}", v.idx),
                ChangeItem::Relation {
                    album_record,
                    asset,
                    ..
                } => format!("r{album_record}{}", asset.key),
                ChangeItem::LibraryInfo { .. } => "info".into(),
                ChangeItem::Deleted { record_name, .. } => record_name.clone(),
            };
            assert!(seen.insert(key.clone()), "{key} listed twice");
        }
        pages += 1;
        pos = page.next_pos;
        if !page.more_coming {
            break;
        }
    }
    assert_eq!(seen.len(), 2 * assets + albums + relations + 1);
    assert!(pages >= seen.len() / 200);
    // Caught up: same token, nothing more.
    let end = lib.changes(zone, pos, 200);
    assert!(end.items.is_empty() && !end.more_coming && end.next_pos == pos);
}

#[test]
fn zone_tokens_point_into_the_log() {
    let lib = library(20);
    let token = lib.zone_token(PRIMARY_ZONE).unwrap();
    let pos = lib.tokens.parse_zone_token(PRIMARY_ZONE, &token).unwrap();
    assert_eq!(pos, primary(&lib).read().log.len());
    let id = id_of(&lib, primary(&lib), 3);
    lib.mutate_json(&serde_json::json!({"op": "hide", "asset_ids": [id]}))
        .unwrap();
    assert_ne!(lib.zone_token(PRIMARY_ZONE).unwrap(), token);
    assert_eq!(lib.changes(primary(&lib), pos, 200).items.len(), 2);
    assert!(
        lib.tokens
            .parse_zone_token(PRIMARY_ZONE, &token[..30])
            .is_err()
    );
}

#[test]
fn shared_zone_is_generated_with_its_own_keys() {
    let lib = LibraryState::generate(&SimConfig {
        shared_library: true,
        shared_assets: 30,
        ..config(10)
    });
    let names = lib.zone_names();
    assert_eq!(names.len(), 2);
    assert!(names[1].starts_with("SharedSync-"));
    let shared = lib.zone(&names[1]).unwrap();
    assert!(shared.info.shared);
    assert_eq!(shared.read().assets.len(), 30);
    assert!(shared.read().albums.is_empty());
    let key = shared.read().assets[0].key;
    let id = lib.asset_id(key).unwrap();
    assert_eq!(lib.resolve_asset(&shared.info, &id), Some(0));
    assert_eq!(lib.resolve_asset(&primary(&lib).info, &id), None);
    assert_eq!(lib.asset_id(key + 1000), None);
}

#[test]
fn manifest_lists_every_version_with_real_hashes() {
    let lib = library(40);
    let m = lib
        .manifest(&ManifestOptions {
            zone: None,
            sha256: true,
        })
        .unwrap();
    let z = primary(&lib).read();
    let live = z
        .assets
        .iter()
        .find(|a| a.kind == AssetKind::LiveHeic)
        .unwrap();
    let live_id = lib.ids.master_name(live.key);
    let versions: Vec<&str> = m
        .iter()
        .filter(|e| e.asset_id == live_id)
        .map(|e| e.version)
        .collect();
    assert_eq!(
        versions,
        [
            "original",
            "medium",
            "thumb",
            "live_original",
            "live_medium",
            "live_thumb"
        ]
    );
    let raw = z
        .assets
        .iter()
        .find(|a| a.kind == AssetKind::RawCr2)
        .unwrap();
    let raw_id = lib.ids.master_name(raw.key);
    assert!(m.iter().any(|e| e.asset_id == raw_id
        && e.version == "alternative"
        && e.file_type == "public.jpeg"));
    let edited = z
        .assets
        .iter()
        .find(|a| a.has(EDITED) && !a.kind.is_movie())
        .unwrap();
    let edited_id = lib.ids.master_name(edited.key);
    assert!(
        m.iter()
            .any(|e| e.asset_id == edited_id && e.version == "adjusted")
    );
    for e in &m {
        let h = e.sha256.as_deref().unwrap();
        assert_eq!(h.len(), 64);
        assert!(e.size >= 1024);
    }
    let original = m.iter().find(|e| e.version == "original").unwrap();
    assert_eq!(original.file_checksum, original.asset_id);
    let unnamed = z.assets.iter().find(|a| filename(a).0.is_none()).unwrap();
    let unnamed = lib.ids.master_name(unnamed.key);
    assert!(
        m.iter()
            .any(|e| e.asset_id == unnamed && e.filename.is_none())
    );
    assert!(m.iter().any(|e| !e.albums.is_empty()));
    let without = lib
        .manifest(&ManifestOptions {
            zone: None,
            sha256: false,
        })
        .unwrap();
    assert_eq!(without.len(), m.len());
    assert!(without.iter().all(|e| e.sha256.is_none()));
    assert!(
        lib.manifest(&ManifestOptions {
            zone: Some("Nope".into()),
            sha256: false
        })
        .is_err()
    );
}

#[test]
fn empty_and_tiny_libraries_work() {
    for n in [0, 1, 3] {
        let lib = library(n);
        let zone = primary(&lib);
        assert_eq!(zone.read().assets.len(), n);
        assert_indexes_consistent(zone);
        let page = lib.page(zone, IndexId::All, 0, 100, false).unwrap();
        assert_eq!(page.total, lib.count(PRIMARY_ZONE, IndexId::All).unwrap());
        assert!(page.next_rank.is_none());
        let added = lib
            .mutate_json(&serde_json::json!({"op": "add", "count": 2, "album": "Jörg"}))
            .unwrap();
        assert_eq!(added.asset_ids.len(), 2);
        assert_indexes_consistent(zone);
        let album = lib
            .albums(zone, None)
            .into_iter()
            .find(|a| a.album.name == "Jörg")
            .unwrap();
        assert!(lib.count(PRIMARY_ZONE, IndexId::Album(album.idx)).unwrap() >= 2);
        let history = changes_since(&lib, zone, 0);
        assert!(history.len() >= 2 * (n + 2));
    }
}

#[test]
fn resources_stay_current_until_purged_or_re_edited() {
    let lib = library(40);
    let zone = primary(&lib);
    let asset = zone.read().assets[8]; // an edited JPEG (forced slot)
    assert!(asset.has(EDITED));
    let name = lib.ids.master_name(asset.key);
    let full = lib
        .facts
        .rendition(&asset, &name, model::Rendition::JpegFull)
        .resource(asset.key);
    let original = lib
        .facts
        .rendition(&asset, &name, model::Rendition::Original)
        .resource(asset.key);
    assert!(lib.is_current(&full) && lib.is_current(&original));
    assert!(!lib.is_current(&crate::sim::content::Resource {
        size: original.size + 1,
        ..original
    }));
    assert!(
        !lib.is_current(&crate::sim::content::Resource {
            rendition: 2,
            ..original
        }),
        "no live part"
    );
    lib.mutate_json(&serde_json::json!({"op": "edit", "asset_ids": [name]}))
        .unwrap();
    assert!(!lib.is_current(&full), "superseded edit");
    assert!(lib.is_current(&original));
    lib.mutate_json(&serde_json::json!({"op": "purge", "asset_ids": [name]}))
        .unwrap();
    assert!(!lib.is_current(&original));
    assert!(!lib.is_current(&crate::sim::content::Resource {
        asset_key: 999_999,
        ..original
    }));
}
