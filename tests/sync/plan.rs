//! The engine's plan, built directory by directory in bounded memory, is exactly
//! `layout::plan_tree` of the selected assets (names, collisions, order-independence), for
//! several policies; `--recent` and `--until-found` take the right assets.

use crate::catalog_support;

use std::collections::BTreeMap;

use catalog_support::*;
use icloudpd_rs::catalog::{AssetFilter, Catalog, LibraryId, VersionKey};
use icloudpd_rs::layout::{self, FileMatchPolicy, FolderTemplate, LayoutPolicy};
use icloudpd_rs::mirror::{Selection, TreeIndex};
use icloudpd_rs::model::Asset;

/// A library where names collide: 60 photos over 3 days, every name used by 3 assets of
/// different sizes, added in an order unrelated to their dates.
fn colliding_library() -> Vec<Asset> {
    (0..60)
        .map(|i| {
            let mut a = photo(&format!("A{i:03}"), i);
            a.filename = Some(format!("IMG_{:04}.HEIC", i % 20));
            a.asset_date_ms = 1_700_000_000_000 + (i % 3) * 86_400_000 + i * 1000;
            a.added_date_ms = 1_700_000_000_000 + ((i * 37) % 60) * 1000;
            a
        })
        .collect()
}

fn planned_by_engine(
    catalog: &Catalog,
    policy: &LayoutPolicy,
    selection: &Selection,
) -> BTreeMap<String, (String, String)> {
    let sources = selection.sources(catalog).unwrap();
    let index = TreeIndex::build(catalog, policy, selection, &sources, None).unwrap();
    let mut out = BTreeMap::new();
    for g in 0..index.directories() {
        for item in index.plan_directory(g, catalog, policy, selection).unwrap() {
            let previous = out.insert(
                item.file.rel_path(),
                (
                    item.file.asset_id.clone(),
                    item.file.version.as_str().to_string(),
                ),
            );
            assert!(previous.is_none(), "{} planned twice", item.file.rel_path());
        }
    }
    out
}

fn planned_by_layout(
    catalog: &Catalog,
    lib: LibraryId,
    policy: &LayoutPolicy,
) -> BTreeMap<String, (String, String)> {
    let assets: Vec<Asset> = catalog
        .assets(lib, AssetFilter::AllPhotos)
        .map(|a| a.unwrap().asset)
        .collect();
    layout::plan_tree(&assets, policy, None)
        .into_iter()
        .map(|f| {
            (
                f.rel_path(),
                (f.asset_id.clone(), f.version.as_str().to_string()),
            )
        })
        .collect()
}

#[test]
fn the_plan_is_plan_tree_for_every_policy() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &colliding_library());
    let policies = [
        LayoutPolicy::default(),
        LayoutPolicy {
            folder: FolderTemplate::parse("none").unwrap(),
            ..LayoutPolicy::default()
        },
        LayoutPolicy {
            folder: FolderTemplate::parse("%Y").unwrap(),
            sizes: vec![layout::PrimarySize::Medium, layout::PrimarySize::Original],
            ..LayoutPolicy::default()
        },
        LayoutPolicy {
            folder: FolderTemplate::parse("none").unwrap(),
            file_match: FileMatchPolicy::NameId7,
            ..LayoutPolicy::default()
        },
    ];
    for policy in &policies {
        let engine = planned_by_engine(&c, policy, &Selection::default());
        let reference = planned_by_layout(&c, lib, policy);
        assert_eq!(engine, reference, "{}", policy.folder.as_str());
        if policy.file_match == FileMatchPolicy::NameSizeDedupWithSuffix && policy.folder.is_flat()
        {
            assert!(
                engine.keys().any(|p| p.contains('-')),
                "the library really collides"
            );
        }
    }
}

#[test]
fn recent_and_until_found_take_the_newest_assets() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let assets = colliding_library();
    full_refresh(&mut c, lib, &assets);
    let policy = LayoutPolicy::default();
    let mut by_date: Vec<&Asset> = assets.iter().collect();
    by_date.sort_by_key(|a| std::cmp::Reverse(a.asset_date_ms));

    let mut recent = Selection::default();
    recent.recent = Some(7);
    let planned = planned_by_engine(&c, &policy, &recent);
    let ids: std::collections::BTreeSet<&str> = planned.values().map(|(a, _)| a.as_str()).collect();
    let newest: std::collections::BTreeSet<&str> =
        by_date.iter().take(7).map(|a| a.id.as_str()).collect();
    assert_eq!(ids, newest);

    // Mark the 4th to 8th newest as downloaded: --until-found 3 stops after the third of
    // them, so the 6 newest are planned and nothing older.
    let root = c.register_root(&s.path("photos")).unwrap();
    for a in &by_date[3..8] {
        let stored = c.asset_by_id(lib, &a.id).unwrap().unwrap();
        let v: VersionKey = stored
            .version_key(icloudpd_rs::model::VersionKind::Original)
            .unwrap();
        c.mark_downloaded(v, root, &format!("x/{}", a.id), 1, &[0; 32])
            .unwrap();
    }
    let mut until = Selection::default();
    until.until_found = Some(3);
    let sources = until.sources(&c).unwrap();
    let index = TreeIndex::build(&c, &policy, &until, &sources, Some(root)).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for g in 0..index.directories() {
        for item in index.plan_directory(g, &c, &policy, &until).unwrap() {
            ids.insert(item.file.asset_id.clone());
        }
    }
    let expected: std::collections::BTreeSet<String> =
        by_date.iter().take(6).map(|a| a.id.clone()).collect();
    assert_eq!(ids, expected);
}
