//! Tests of `parse` (helpers shared with the pairing tests).

use super::*;
use serde_json::{Value, json};

/// A record from its JSON.
pub(crate) fn record(v: Value) -> Record {
    serde_json::from_value(v).expect("record")
}

/// A resource field of `size` bytes.
pub(crate) fn res(size: u64) -> Value {
    json!({"value": {"fileChecksum": "AQID", "size": size, "downloadURL": "https://cvws.icloud-content.com/B/x/${f}"}, "type": "ASSETID"})
}

/// A CPLMaster with an original, a thumbnail and a video rendition.
pub(crate) fn master(name: &str, item_type: &str) -> Record {
    record(
        json!({"recordName": name, "recordType": "CPLMaster", "fields": {
            "itemType": {"value": item_type, "type": "STRING"},
            "filenameEnc": {"value": "SU1HXzc0MDkuSlBH", "type": "ENCRYPTED_BYTES"},
            "resOriginalRes": res(100), "resOriginalFileType": {"value": item_type, "type": "STRING"},
            "resJPEGThumbRes": res(10), "resJPEGThumbFileType": {"value": "public.jpeg", "type": "STRING"},
            "resVidMedRes": res(50), "resVidMedFileType": {"value": "com.apple.quicktime-movie", "type": "STRING"},
        }}),
    )
}

/// A favourite CPLAsset of `master`.
pub(crate) fn asset(name: &str, master: &str) -> Record {
    record(
        json!({"recordName": name, "recordType": "CPLAsset", "recordChangeTag": "t1", "fields": {
            "masterRef": {"value": {"recordName": master, "action": "DELETE_SELF"}, "type": "REFERENCE"},
            "assetDate": {"value": 1000, "type": "TIMESTAMP"},
            "isFavorite": {"value": 1, "type": "INT64"},
        }}),
    )
}

#[test]
fn unusable_dates_and_sizes_and_a_missing_original_are_told() {
    let with = |fields: Value| {
        record(json!({"recordName": "A", "recordType": "CPLAsset", "fields": fields}))
    };
    let mut fields = json!({"masterRef": {"value": {"recordName": "M"}, "type": "REFERENCE"},
        "assetDate": {"value": 1.0e16, "type": "TIMESTAMP"},
        "addedDate": {"value": "yesterday", "type": "STRING"}});
    let mut skipped = Vec::new();
    let built = build_asset(
        &master("M", "public.jpeg"),
        &with(fields.clone()),
        "Z",
        &mut skipped,
    );
    assert_eq!(
        (built.asset.asset_date_ms, built.asset.added_date_ms),
        (0, 0)
    );
    assert!(skipped.is_empty(), "{skipped:?}");

    // Size 0, an absurd size, no original at all: each a skip with its reason.
    fields["assetDate"] = json!({"value": 1000, "type": "TIMESTAMP"});
    for (res_field, expected) in [
        (Some(res(0)), "implausible size 0"),
        (Some(res(1 << 50)), "implausible size"),
        (None, "no original version"),
    ] {
        let mut m = json!({"recordName": "M", "recordType": "CPLMaster", "fields": {
            "itemType": {"value": "public.jpeg", "type": "STRING"},
            "filenameEnc": {"value": "SU1HXzc0MDkuSlBH", "type": "ENCRYPTED_BYTES"},
            "resOriginalFileType": {"value": "public.jpeg", "type": "STRING"}}});
        match res_field {
            Some(r) => m["fields"]["resOriginalRes"] = r,
            None => {
                m["fields"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resOriginalRes");
            }
        }
        let mut skipped = Vec::new();
        let built = build_asset(&record(m), &with(fields.clone()), "Z", &mut skipped);
        assert!(
            !built
                .asset
                .versions
                .iter()
                .any(|v| v.kind == VersionKind::Original)
        );
        assert!(
            skipped.iter().any(|s| s.reason.contains(expected)),
            "{expected}: {skipped:?}"
        );
    }
}

#[test]
fn image_table_vs_movie_table() {
    let mut skipped = Vec::new();
    let img = build_asset(
        &master("M", "public.jpeg"),
        &asset("A", "M"),
        "PrimarySync",
        &mut skipped,
    );
    let kinds: Vec<_> = img.asset.versions.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        vec![
            VersionKind::Original,
            VersionKind::Thumb,
            VersionKind::LiveMedium
        ]
    );
    let mov = build_asset(
        &master("M", "com.apple.quicktime-movie"),
        &asset("A", "M"),
        "PrimarySync",
        &mut skipped,
    );
    let kinds: Vec<_> = mov.asset.versions.iter().map(|v| v.kind).collect();
    // The JPEG thumb of a movie is its poster frame, not a version; VidMed is the medium.
    assert_eq!(kinds, vec![VersionKind::Original, VersionKind::Medium]);
    assert!(skipped.is_empty());
    assert!(img.asset.favorite && !img.asset.deleted);
    assert_eq!(img.asset.filename.as_deref(), Some("IMG_7409.JPG"));
    assert_eq!(
        img.url(VersionKind::Original),
        Some("https://cvws.icloud-content.com/B/x/${f}")
    );
}

#[test]
fn dropping_urls_keeps_the_same_asset_and_skips() {
    let broken = record(
        json!({"recordName": "M", "recordType": "CPLMaster", "fields": {
            "itemType": {"value": "public.jpeg"},
            "filenameEnc": {"value": "SU1HXzc0MDkuSlBH", "type": "ENCRYPTED_BYTES"},
            "resOriginalRes": {"value": {"fileChecksum": "AQID", "size": 5}},
            "resOriginalFileType": {"value": "public.jpeg"},
            "resJPEGThumbRes": res(3),
            "resJPEGThumbFileType": {"value": "public.jpeg"},
        }}),
    );
    for m in [master("M", "public.jpeg"), broken] {
        let (mut kept_skips, mut dropped_skips) = (Vec::new(), Vec::new());
        let kept = build_asset_with(&m, &asset("A", "M"), "Z", &mut kept_skips, Urls::Keep);
        let dropped = build_asset_with(&m, &asset("A", "M"), "Z", &mut dropped_skips, Urls::Drop);
        assert_eq!(kept.asset, dropped.asset);
        assert_eq!(kept_skips, dropped_skips);
        assert_eq!(kept.downloads.len(), kept.asset.versions.len());
        assert!(dropped.downloads.is_empty());
    }
}

#[test]
fn unknown_item_type_follows_the_filename_heuristic() {
    assert_eq!(
        item_kind(Some("public.weird"), Some("a.JPG")),
        ItemKind::Image
    );
    assert_eq!(
        item_kind(Some("public.weird"), Some("a.avi")),
        ItemKind::Movie
    );
    assert_eq!(item_kind(None, Some("a.avi")), ItemKind::Unknown);
}

#[test]
fn unusable_rendition_is_skipped_but_asset_kept() {
    let m = record(
        json!({"recordName": "M", "recordType": "CPLMaster", "fields": {
            "itemType": {"value": "public.jpeg"},
            "resOriginalRes": {"value": {"fileChecksum": "AQID", "size": 5}},
            "resOriginalFileType": {"value": "public.jpeg"},
            "resJPEGThumbRes": res(3),
        }}),
    );
    let mut skipped = Vec::new();
    let a = build_asset(&m, &asset("A", "M"), "Z", &mut skipped);
    assert!(a.asset.versions.is_empty());
    assert_eq!(skipped.len(), 2);
    assert!(skipped[0].reason.contains("no downloadURL"));
    assert!(skipped[1].reason.contains("no resJPEGThumbFileType"));
    assert_eq!(a.asset.filename, None);
    assert!(a.asset.filename_problem.is_some());
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn metadata_fields_decode() {
    use crate::cloudkit::plist::tests::{ascii, write};
    let keywords = write(&[vec![0xA2, 1, 2], ascii("beach"), ascii("2019")], 0);
    let a = record(
        json!({"recordName": "A", "recordType": "CPLAsset", "fields": {
            "masterRef": {"value": {"recordName": "M"}, "type": "REFERENCE"},
            "assetDate": {"value": 1000.0, "type": "TIMESTAMP"},
            "addedDate": {"value": 2000, "type": "TIMESTAMP"},
            "timeZoneOffset": {"value": -25200, "type": "INT64"},
            "captionEnc": {"value": b64("Été".as_bytes()), "type": "ENCRYPTED_BYTES"},
            "extendedDescEnc": {"value": b64(b"long text"), "type": "ENCRYPTED_BYTES"},
            "keywordsEnc": {"value": b64(&keywords), "type": "ENCRYPTED_BYTES"},
            "locationEnc": {"value": "not a plist", "type": "ENCRYPTED_BYTES"},
            "locationLatitude": {"value": 48.85, "type": "DOUBLE"},
            "locationLongitude": {"value": 2.35, "type": "DOUBLE"},
            "burstId": {"value": "B-1", "type": "STRING"},
            "assetSubtype": {"value": 1, "type": "INT64"},
            "assetSubtypeV2": {"value": 3, "type": "INT64"},
            "adjustmentType": {"value": "com.apple.photo", "type": "STRING"},
            "isHidden": {"value": true},
            "isDeleted": {"value": null},
            "dateExpunged": {"value": 5000, "type": "TIMESTAMP"},
            "duration": {"value": 6472, "type": "INT64"},
        }}),
    );
    let m = record(
        json!({"recordName": "M", "recordType": "CPLMaster", "fields": {
            "itemType": {"value": "public.heic", "type": "STRING"},
            "filenameEnc": {"value": "IMG 1.HEIC", "type": "STRING"},
            "originalOrientation": {"value": 6, "type": "INT64"},
            "resOriginalRes": res(9), "resOriginalFileType": {"value": "public.heic"},
        }}),
    );
    let mut skipped = Vec::new();
    let got = build_asset(&m, &a, "Z", &mut skipped).asset;
    assert!(skipped.is_empty());
    assert_eq!(got.filename.as_deref(), Some("IMG 1.HEIC"));
    assert_eq!(got.filename_problem, None);
    assert_eq!((got.asset_date_ms, got.added_date_ms), (1000, 2000));
    assert_eq!(got.tz_offset_s, Some(-25200));
    assert_eq!(got.caption.as_deref(), Some("Été"));
    assert_eq!(got.description.as_deref(), Some("long text"));
    assert_eq!(got.keywords, vec!["beach".to_string(), "2019".to_string()]);
    let loc = got.location.expect("fallback location");
    assert_eq!(
        (loc.latitude, loc.longitude, loc.altitude),
        (48.85, 2.35, None)
    );
    assert_eq!((loc.speed, loc.gps_time_ms), (None, None));
    assert_eq!(got.burst_id.as_deref(), Some("B-1"));
    assert_eq!((got.subtype, got.subtype_v2), (1, 3));
    assert_eq!(got.adjustment_type.as_deref(), Some("com.apple.photo"));
    assert!(got.hidden && !got.deleted && !got.favorite);
    assert_eq!(got.date_expunged_ms, Some(5000));
    assert_eq!(
        got.orientation,
        Some(6),
        "falls back to the master's orientation"
    );
    assert_eq!(got.duration, Some(6472));
}

#[test]
fn location_keeps_speed_and_gps_time() {
    // Written by Python's plistlib (lat 48.85, lon 2.35, alt 35.5, speed 4.25, timestamp
    // 2019-04-16 10:28:06.5 UTC), as icloudpd reads it.
    let written = "YnBsaXN0MDDVAQIDBAUGBwgJClNhbHRTbGF0U2xvblVzcGVlZFl0aW1lc3RhbXAjQEHAAAAAAAAjQEhszMzMzM0jQALMzMzMzM0jQBEAAAAAAAAzQcEy8ttAAAAIExcbHyUvOEFKUwAAAAAAAAEBAAAAAAAAAAsAAAAAAAAAAAAAAAAAAABc";
    // Recorded from Apple (icloudpd's cassettes): speed 0, timestamp at the plist epoch.
    let recorded = "YnBsaXN0MDDYAQIDBAUGBwgJCQoLCQwNCVZjb3Vyc2VVc3BlZWRTYWx0U2xvbld2ZXJ0QWNjU2xhdFl0aW1lc3RhbXBXaG9yekFjYyMAAAAAAAAAACNAdG9H6P0fpCNAWL2oZnRhiiNAMtKmTC+DezMAAAAAAAAAAAgZICYqLjY6RExVXmdwAAAAAAAAAQEAAAAAAAAADgAAAAAAAAAAAAAAAAAAAHk=";
    let parsed = |enc: &str| {
        let a = record(
            json!({"recordName": "A", "recordType": "CPLAsset", "fields": {
                "locationEnc": {"value": enc, "type": "ENCRYPTED_BYTES"},
            }}),
        );
        location(&a, "A").expect("location")
    };
    let loc = parsed(written);
    assert_eq!(
        (loc.latitude, loc.longitude, loc.altitude),
        (48.85, 2.35, Some(35.5))
    );
    assert_eq!(loc.speed, Some(4.25));
    assert_eq!(loc.gps_time_ms, Some(1_555_410_486_500));
    let loc = parsed(recorded);
    assert_eq!(loc.speed, Some(0.0));
    assert_eq!(loc.gps_time_ms, Some(978_307_200_000));

    assert_eq!(plist_date_ms(&Plist::Real(1.0)), None, "not a date");
    assert_eq!(plist_date_ms(&Plist::Date(f64::NAN)), None);
    assert_eq!(plist_date_ms(&Plist::Date(1e300)), None);
}

#[test]
fn undecodable_filenames_keep_the_asset_and_say_why() {
    for (value, ty, problem) in [
        (json!("%%%"), json!("ENCRYPTED_BYTES"), "not valid base64"),
        (
            json!(b64(&[0xff, 0xfe])),
            json!("ENCRYPTED_BYTES"),
            "not valid UTF-8",
        ),
        (json!(""), json!("STRING"), "empty"),
        (json!(42), json!("ENCRYPTED_BYTES"), "not a string"),
    ] {
        let m = record(
            json!({"recordName": "M", "recordType": "CPLMaster", "fields": {
                "itemType": {"value": "public.jpeg"},
                "filenameEnc": {"value": value, "type": ty},
                "resOriginalRes": res(9), "resOriginalFileType": {"value": "public.jpeg"},
            }}),
        );
        let p = crate::cloudkit::pairing::parse_records(vec![m, asset("A", "M")], "Z");
        assert_eq!(p.assets.len(), 1, "asset kept");
        let a = &p.assets[0].asset;
        assert_eq!(a.filename, None);
        let why = a.filename_problem.as_deref().expect("problem");
        assert!(why.contains(problem), "{why}");
    }
}
