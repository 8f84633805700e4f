//! Every CloudKit record in every recorded cassette parses: each CPLMaster and CPLAsset becomes
//! part of an asset or an explicit skip with a reason, and the edge cases land where they should.

use crate::support;

use std::collections::HashSet;

use icloudpd_rs::cloudkit::{ListedAsset, Record, parse_album_records, parse_records};
use icloudpd_rs::model::{ItemKind, VersionKind};
use serde_json::Value;
use support::{cassette_names, load_cassette};

/// The record lists of every CloudKit answer of a cassette, with the answer's zone.
fn record_answers(cassette: &str) -> Vec<(String, Vec<Record>)> {
    let mut out = Vec::new();
    for it in load_cassette(cassette) {
        if it.cloudkit_call().is_none() {
            continue;
        }
        let Some(json) = it.response_json() else {
            continue;
        };
        let zone = it
            .request_json()
            .and_then(|b| b["zoneID"]["zoneName"].as_str().map(str::to_string))
            .unwrap_or_else(|| "PrimarySync".into());
        if let Some(records) = json.get("records") {
            let records: Vec<Record> =
                serde_json::from_value(records.clone()).expect("records parse");
            out.push((zone.clone(), records));
        }
        if let Some(batch) = json.get("batch").and_then(Value::as_array) {
            for b in batch {
                let records: Vec<Record> =
                    serde_json::from_value(b["records"].clone()).expect("batch records parse");
                out.push((zone.clone(), records));
            }
        }
    }
    out
}

/// Parsed assets of every listing answer of a cassette.
fn assets_of(cassette: &str) -> Vec<ListedAsset> {
    let mut all = Vec::new();
    for (zone, records) in record_answers(cassette) {
        if records
            .iter()
            .any(|r| r.kind() == "CPLMaster" || r.kind() == "CPLAsset")
        {
            all.extend(parse_records(records, &zone).assets);
        }
    }
    all
}

fn asset<'a>(assets: &'a [ListedAsset], id: &str) -> &'a ListedAsset {
    assets
        .iter()
        .find(|a| a.asset.id == id)
        .unwrap_or_else(|| panic!("asset {id} not parsed"))
}

#[test]
fn every_master_and_asset_becomes_an_asset_or_an_explicit_skip() {
    let mut total_assets = 0usize;
    let mut total_records = 0usize;
    for name in cassette_names() {
        for (zone, records) in record_answers(&name) {
            let masters: HashSet<String> = records
                .iter()
                .filter(|r| r.kind() == "CPLMaster")
                .map(|r| r.name().to_string())
                .collect();
            let asset_records: HashSet<String> = records
                .iter()
                .filter(|r| r.kind() == "CPLAsset")
                .map(|r| r.name().to_string())
                .collect();
            let listing = !masters.is_empty();
            total_records += masters.len() + asset_records.len();
            let parsed = parse_records(records, &zone);
            let skipped: HashSet<&str> = parsed
                .skipped
                .iter()
                .map(|s| s.record_name.as_str())
                .collect();
            for s in &parsed.skipped {
                assert!(!s.reason.is_empty(), "{name}: skip without reason");
            }
            if !listing {
                // e.g. the records/modify answer: a lone CPLAsset must be reported, not lost.
                for a in &asset_records {
                    assert!(
                        skipped.contains(a.as_str()),
                        "{name}: lone CPLAsset {a} dropped silently"
                    );
                }
                continue;
            }
            let ids: HashSet<&str> = parsed.assets.iter().map(|a| a.asset.id.as_str()).collect();
            let paired_assets: HashSet<&str> = parsed
                .assets
                .iter()
                .map(|a| a.asset.asset_record.as_str())
                .collect();
            for m in &masters {
                assert!(
                    ids.contains(m.as_str()) || skipped.contains(m.as_str()),
                    "{name}: master {m} dropped silently"
                );
            }
            for a in &asset_records {
                assert!(
                    paired_assets.contains(a.as_str()) || skipped.contains(a.as_str()),
                    "{name}: CPLAsset {a} dropped silently"
                );
            }
            for a in &parsed.assets {
                assert_eq!(a.asset.zone, zone, "{name}: zone of {}", a.asset.id);
                assert_eq!(a.asset.versions.len(), a.downloads.len());
                assert!(
                    a.asset.version(VersionKind::Original).is_some(),
                    "{name}: {} has no original",
                    a.asset.id
                );
                assert!(
                    a.asset.filename.is_some(),
                    "{name}: {} lost its filename",
                    a.asset.id
                );
                assert!(
                    a.asset.asset_date_ms > 1_000_000_000_000,
                    "{name}: {} has no capture date",
                    a.asset.id
                );
                for d in &a.downloads {
                    assert!(
                        d.download_url
                            .starts_with("https://cvws.icloud-content.com/B/")
                    );
                    assert!(d.version.size > 0);
                    assert!(!d.version.file_type.is_empty() && !d.version.checksum.is_empty());
                }
            }
            total_assets += parsed.assets.len();
        }
    }
    assert!(
        total_assets >= 600,
        "only {total_assets} assets parsed from {total_records} records"
    );
}

#[test]
fn raw_plus_jpeg_with_an_edit() {
    let assets = assets_of("listing_photos_raw_alt_adj.yml");
    let a = asset(&assets, "AY6c+BsE0jjaXx9tmVGJM1D2VcEO");
    assert_eq!(a.asset.filename.as_deref(), Some("IMG_7409.CR2"));
    assert_eq!(a.asset.kind, ItemKind::Image);
    let original = a.asset.version(VersionKind::Original).expect("original");
    assert_eq!(original.file_type, "com.canon.cr2-raw-image");
    assert_eq!(original.size, 1_884_695);
    let alt = a
        .asset
        .version(VersionKind::Alternative)
        .expect("alternative");
    assert_eq!(alt.file_type, "public.jpeg");
    // The edit lives on the CPLAsset.
    let adjusted = a.asset.version(VersionKind::Adjusted).expect("adjusted");
    assert_eq!(adjusted.file_type, "public.jpeg");
    assert_eq!(adjusted.size, 233_944);
    assert_eq!(adjusted.checksum, "AWVEK9dYDTb0xxl5AWRyAREZo6RL");
    assert!(
        a.url(VersionKind::Adjusted)
            .expect("url")
            .contains("/B/AWVEK9dYDTb0xxl5AWRyAREZo6RL")
    );
    assert_eq!(a.asset.asset_record, "F2A23C38-0020-42FE-A273-2923ADE3CAED");
}

#[test]
fn two_sizes_and_live_photos() {
    let assets = assets_of("listing_photos_two_sizes.yml");
    let a = asset(&assets, "AY6c+BsE0jjaXx9tmVGJM1D2VcEO");
    assert_eq!(a.asset.filename.as_deref(), Some("IMG_7409.JPG"));
    let thumb = a.asset.version(VersionKind::Thumb).expect("thumb");
    assert_eq!(thumb.file_type, "public.jpeg");
    assert!(a.asset.version(VersionKind::Medium).is_some());
    // IMG_7409 is a live photo: its motion part in three sizes.
    assert!(a.asset.is_live());
    let live = a
        .asset
        .version(VersionKind::LiveOriginal)
        .expect("live original");
    assert_eq!(live.file_type, "com.apple.quicktime-movie");
    assert_eq!(live.size, 3_294_075);
    assert!(a.asset.version(VersionKind::LiveMedium).is_some());
    assert!(a.asset.version(VersionKind::LiveThumb).is_some());
    assert_eq!(a.asset.subtype_v2, 2);
    assert_eq!(a.asset.tz_offset_s, Some(25200));
    assert_eq!(a.asset.orientation, Some(6));
    let loc = a.asset.location.expect("location from locationEnc");
    assert!(loc.latitude.abs() > 0.0 && loc.longitude.abs() > 0.0);
}

#[test]
fn videos_use_the_movie_table() {
    let assets = assets_of("listing_videos.yml");
    let movies: Vec<&ListedAsset> = assets
        .iter()
        .filter(|a| a.asset.kind == ItemKind::Movie)
        .collect();
    assert!(!movies.is_empty());
    for m in &movies {
        assert!(!m.asset.is_live());
        assert_eq!(
            m.asset
                .version(VersionKind::Original)
                .expect("original")
                .file_type,
            "com.apple.quicktime-movie"
        );
        assert!(m.asset.versions.iter().all(|v| !v.kind.is_live()));
        if let Some(medium) = m.asset.version(VersionKind::Medium) {
            assert_eq!(
                medium.file_type, "public.mpeg-4",
                "medium of a video is VidMed"
            );
        }
    }
    assert!(movies.iter().any(|m| {
        m.asset
            .version(VersionKind::Thumb)
            .is_some_and(|t| t.file_type == "public.mpeg-4")
    }));
    assert!(
        movies
            .iter()
            .any(|m| m.asset.duration.is_some_and(|d| d > 0))
    );
}

#[test]
fn recently_deleted_assets_carry_the_flag_and_expunge_date() {
    let assets = assets_of("autodelete_photos.yml");
    assert_eq!(assets.len(), 16);
    for a in &assets {
        assert!(a.asset.deleted, "{} not deleted", a.asset.id);
        let expunged = a.asset.date_expunged_ms.expect("dateExpunged");
        assert!(expunged > a.asset.asset_date_ms);
    }
    // Assets of the whole-library listing are not deleted: absent isDeleted means live.
    let live = assets_of("listing_photos.yml");
    assert!(
        live.iter()
            .filter(|a| a.asset.zone == "PrimarySync")
            .all(|a| !a.asset.deleted)
    );
}

#[test]
fn shared_library_records_parse_in_their_zone() {
    let assets = assets_of("listing_photos.yml");
    let shared: Vec<&ListedAsset> = assets
        .iter()
        .filter(|a| a.asset.zone.starts_with("SharedSync-"))
        .collect();
    assert_eq!(shared.len(), 1);
    let s = shared[0];
    assert!(s.asset.filename.is_some());
    assert!(!s.asset.keywords.iter().any(String::is_empty));
    assert_eq!(
        assets
            .iter()
            .filter(|a| a.asset.zone == "PrimarySync")
            .count(),
        100
    );
}

#[test]
fn album_list_has_sixteen_albums_without_the_root_sentinel() {
    let answers = record_answers("listing_albums.yml");
    let (zone, records) = answers
        .into_iter()
        .find(|(_, r)| r.iter().any(|x| x.kind() == "CPLAlbum"))
        .expect("album answer");
    assert_eq!(records.len(), 17);
    let listing = parse_album_records(&records, &zone);
    assert!(listing.skipped.is_empty());
    assert_eq!(listing.albums.len(), 16);
    let names: Vec<&str> = listing.albums.iter().map(|a| a.name.as_str()).collect();
    // Apple sends this name decomposed (o + U+0308, as macOS stores it); it is kept as sent.
    assert!(names.contains(&"Jo\u{308}rg"), "{names:?}");
    assert!(names.contains(&"Garage vorher/nachher"));
    assert!(names.contains(&"Bilderrahmen"));
    assert!(!names.iter().any(|n| n.contains("Root-Folder")));
    assert!(
        listing
            .albums
            .iter()
            .all(|a| !a.is_folder && !a.deleted && a.parent_id.is_none())
    );
    let positions: Vec<i64> = listing.albums.iter().map(|a| a.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn counts_and_indexing_state_records_read() {
    let mut counts = Vec::new();
    let mut states = Vec::new();
    for name in cassette_names() {
        for (_, records) in record_answers(&name) {
            for r in records {
                match r.kind() {
                    "IndexCountResult" => counts.push(r.int("itemCount").expect("itemCount")),
                    "CheckIndexingState" => {
                        states.push(r.string("state").expect("state").to_string())
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(counts.contains(&33161));
    assert!(counts.contains(&1));
    assert!(!states.is_empty() && states.iter().all(|s| s == "FINISHED"));
}
