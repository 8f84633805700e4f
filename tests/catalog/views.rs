//! Queries for the views: smart folders, stable streaming order across pages, counts, sizes.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::catalog::{AssetFilter, SmartFolder};
use icloudpd_rs::model::{ItemKind, VersionKind};
use support::*;

#[test]
fn smart_folders_follow_flags_and_kinds() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let plain = photo("plain", 1);
    let mut fav = photo("fav", 2);
    fav.favorite = true;
    let mut video = photo("video", 3);
    video.kind = ItemKind::Movie;
    let mut live = photo("live", 4);
    live.versions
        .push(version(VersionKind::LiveOriginal, 3_000_000, "live"));
    live.subtype_v2 = 2;
    let mut shot = photo("shot", 5);
    shot.subtype_v2 = 3;
    let mut burst = photo("burst", 6);
    burst.burst_id = Some("B1".into());
    let mut empty_burst = photo("empty-burst", 7);
    empty_burst.burst_id = Some(String::new());
    let mut pano = photo("pano", 8);
    pano.subtype = 1;
    let mut slomo = photo("slomo", 9);
    slomo.subtype = 100;
    slomo.kind = ItemKind::Movie;
    let mut timelapse = photo("timelapse", 10);
    timelapse.subtype = 101;
    let mut hidden_fav = photo("hidden-fav", 11);
    hidden_fav.hidden = true;
    hidden_fav.favorite = true;
    let mut deleted_video = photo("deleted-video", 12);
    deleted_video.deleted = true;
    deleted_video.kind = ItemKind::Movie;
    let mut hidden_deleted = photo("hidden-deleted", 13);
    hidden_deleted.hidden = true;
    hidden_deleted.deleted = true;
    let mut live_movie = photo("live-movie", 14);
    live_movie.kind = ItemKind::Movie;
    live_movie
        .versions
        .push(version(VersionKind::LiveOriginal, 1, "x"));
    let mut gone_fav = photo("gone-fav", 15);
    gone_fav.favorite = true;

    let all = vec![
        plain,
        fav,
        video,
        live,
        shot,
        burst,
        empty_burst,
        pano,
        slomo,
        timelapse,
        hidden_fav,
        deleted_video,
        hidden_deleted,
        live_movie,
        gone_fav.clone(),
    ];
    full_refresh(&mut c, lib, &all);
    // gone-fav leaves iCloud.
    let rest: Vec<_> = all.iter().filter(|a| a.id != "gone-fav").cloned().collect();
    full_refresh(&mut c, lib, &rest);

    let ids =
        |filter| -> Vec<String> { c.assets(lib, filter).map(|a| a.unwrap().asset.id).collect() };
    let smart = |f| ids(AssetFilter::Smart(f));
    assert_eq!(smart(SmartFolder::Favorites), ["fav"]);
    // Slo-mo and time-lapse videos are in their own folders only, as on the server.
    assert_eq!(smart(SmartFolder::Videos), ["video", "live-movie"]);
    assert_eq!(smart(SmartFolder::LivePhotos), ["live"]);
    assert_eq!(smart(SmartFolder::Screenshots), ["shot"]);
    assert_eq!(smart(SmartFolder::Bursts), ["burst"]);
    assert_eq!(smart(SmartFolder::Panoramas), ["pano"]);
    assert_eq!(smart(SmartFolder::SloMo), ["slomo"]);
    assert_eq!(smart(SmartFolder::TimeLapse), ["timelapse"]);
    assert_eq!(smart(SmartFolder::Hidden), ["hidden-fav"]);
    assert_eq!(
        smart(SmartFolder::RecentlyDeleted),
        ["deleted-video", "hidden-deleted"]
    );
    assert_eq!(ids(AssetFilter::AllPhotos).len(), 11);
    assert_eq!(ids(AssetFilter::InICloud).len(), 14);
    for f in SmartFolder::ALL {
        assert_eq!(
            c.count_assets(lib, AssetFilter::Smart(f)).unwrap() as usize,
            smart(f).len(),
            "{f:?}"
        );
    }
}

#[test]
fn streaming_is_ordered_complete_and_stable_across_pages() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    // 1,000 assets (several iterator pages), many sharing an added date so the record id
    // breaks ties, inserted in an order unrelated to the listing order.
    let mut assets: Vec<_> = (0..1000)
        .map(|i| {
            let mut a = photo(&format!("M{:04}", (i * 7919) % 1000), i);
            a.added_date_ms = 1_600_000_000_000 + (i % 10) * 1000;
            a
        })
        .collect();
    assets.reverse();
    full_refresh(&mut c, lib, &assets);

    let listed: Vec<_> = c
        .assets(lib, AssetFilter::AllPhotos)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(listed.len(), 1000);
    let order: Vec<(i64, &str)> = listed
        .iter()
        .map(|a| (a.asset.added_date_ms, a.asset.id.as_str()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "ordered by (added date, id)");
    let unique: HashSet<_> = listed.iter().map(|a| a.key).collect();
    assert_eq!(unique.len(), 1000);
    for a in &listed {
        assert_eq!(a.asset.versions.len(), 3);
        assert_eq!(a.version_keys.len(), 3);
    }

    // Keys and order survive a reopen and another refresh.
    drop(c);
    let (mut c, lib) = writer(&s.db());
    full_refresh(&mut c, lib, &assets);
    let again: Vec<_> = c
        .assets(lib, AssetFilter::AllPhotos)
        .map(|a| {
            let a = a.unwrap();
            (a.key, a.version_keys)
        })
        .collect();
    let before: Vec<_> = listed
        .into_iter()
        .map(|a| (a.key, a.version_keys))
        .collect();
    assert_eq!(again, before);
}

#[test]
fn totals_count_versions_of_assets_still_in_icloud() {
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let a = photo("A", 1);
    let b = photo("B", 2);
    let bytes = |x: &icloudpd_rs::model::Asset| x.versions.iter().map(|v| v.size).sum::<u64>();
    full_refresh(&mut c, lib, &[a.clone(), b.clone()]);
    assert_eq!(c.total_bytes(Some(lib)).unwrap(), bytes(&a) + bytes(&b));
    full_refresh(&mut c, lib, std::slice::from_ref(&a));
    assert_eq!(c.total_bytes(None).unwrap(), bytes(&a));
    assert_eq!(
        c.total_bytes(Some(icloudpd_rs::catalog::LibraryId(42)))
            .unwrap(),
        0
    );
}

#[test]
fn a_reader_streams_a_view_while_the_writer_records_downloads() {
    // The sync engine's pattern: iterate through a read-only handle, write through the writer.
    let s = Scratch::new();
    let (mut c, lib) = writer(&s.db());
    let assets: Vec<_> = (0..700).map(|i| photo(&format!("M{i:03}"), i)).collect();
    full_refresh(&mut c, lib, &assets);
    let root = c.register_root(&s.path("photos")).unwrap();

    let reader = icloudpd_rs::catalog::Catalog::open_read_only(s.db()).unwrap();
    let mut done = 0;
    for a in reader.assets(lib, AssetFilter::AllPhotos) {
        let a = a.unwrap();
        let key = a.version_key(VersionKind::Original).unwrap();
        c.mark_downloaded(key, root, &format!("{}.HEIC", a.asset.id), 1, &[0; 32])
            .unwrap();
        done += 1;
    }
    assert_eq!(done, 700);
    assert_eq!(reader.status(Some(root)).unwrap().downloaded, 700);
}

#[test]
fn a_catalog_handle_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<icloudpd_rs::catalog::Catalog>();
}
