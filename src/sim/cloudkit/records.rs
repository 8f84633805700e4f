//! Rendering library snapshots as CloudKit records (envelope of protocol notes 2.2, fields of
//! section 4), written straight into the response body.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::json::{self, Desired, Fields};
use crate::sim::SimState;
use crate::sim::cdn::{UrlParts, download_url};
use crate::sim::library::bplist::{self, PLIST_EPOCH_UNIX_SECS};
use crate::sim::library::model::{
    AlbumKind, Asset, AssetKind, DAY_MS, DELETED, EDITED, FAVORITE, HIDDEN, NameEncoding,
    Rendition, asset_renditions, filename, master_renditions,
};
use crate::sim::library::{
    AlbumView, AssetView, ChangeItem, LibraryCounts, LibraryState, ZoneInfo, change_tag,
};

/// Renders records of one zone for one request.
pub struct Renderer<'a> {
    pub state: &'a SimState,
    pub zone: &'a ZoneInfo,
    pub desired: &'a Desired,
    /// Include `zoneID` in envelopes (the recorded `records/modify` answer has none).
    pub with_zone_id: bool,
}

/// Field names of a rendition: `res<P>Res`, `FileType`, `Width`, `Height`, `Fingerprint`.
fn rendition_names(r: Rendition) -> [&'static str; 5] {
    match r {
        Rendition::Original => [
            "resOriginalRes",
            "resOriginalFileType",
            "resOriginalWidth",
            "resOriginalHeight",
            "resOriginalFingerprint",
        ],
        Rendition::OriginalAlt => [
            "resOriginalAltRes",
            "resOriginalAltFileType",
            "resOriginalAltWidth",
            "resOriginalAltHeight",
            "resOriginalAltFingerprint",
        ],
        Rendition::OriginalVidCompl => [
            "resOriginalVidComplRes",
            "resOriginalVidComplFileType",
            "resOriginalVidComplWidth",
            "resOriginalVidComplHeight",
            "resOriginalVidComplFingerprint",
        ],
        Rendition::JpegMed => [
            "resJPEGMedRes",
            "resJPEGMedFileType",
            "resJPEGMedWidth",
            "resJPEGMedHeight",
            "resJPEGMedFingerprint",
        ],
        Rendition::JpegThumb | Rendition::AssetJpegThumb => [
            "resJPEGThumbRes",
            "resJPEGThumbFileType",
            "resJPEGThumbWidth",
            "resJPEGThumbHeight",
            "resJPEGThumbFingerprint",
        ],
        Rendition::VidMed => [
            "resVidMedRes",
            "resVidMedFileType",
            "resVidMedWidth",
            "resVidMedHeight",
            "resVidMedFingerprint",
        ],
        Rendition::VidSmall => [
            "resVidSmallRes",
            "resVidSmallFileType",
            "resVidSmallWidth",
            "resVidSmallHeight",
            "resVidSmallFingerprint",
        ],
        Rendition::JpegFull => [
            "resJPEGFullRes",
            "resJPEGFullFileType",
            "resJPEGFullWidth",
            "resJPEGFullHeight",
            "resJPEGFullFingerprint",
        ],
        Rendition::VidFull => [
            "resVidFullRes",
            "resVidFullFileType",
            "resVidFullWidth",
            "resVidFullHeight",
            "resVidFullFingerprint",
        ],
    }
}

/// Seconds a deleted record lingers after `dateExpunged` (`expirationTime` = delete + 40 days).
const EXPIRATION_AFTER_EXPUNGE_MS: i64 = 10 * DAY_MS;

impl Renderer<'_> {
    fn lib(&self) -> &LibraryState {
        &self.state.library
    }

    /// `{"zoneName":...,"ownerRecordName":...,"zoneType":"REGULAR_CUSTOM_ZONE"}`.
    pub fn zone_id(&self, out: &mut String) {
        zone_id(out, self.zone);
    }

    fn open(&self, out: &mut String, record_name: &str, record_type: &str) {
        out.push_str("{\"recordName\":");
        json::string(out, record_name);
        out.push_str(",\"recordType\":");
        json::string(out, record_type);
        out.push_str(",\"fields\":{");
    }

    fn close(
        &self,
        out: &mut String,
        seq: u32,
        created: i64,
        modified: i64,
        expiration: Option<i64>,
    ) {
        out.push_str("},\"pluginFields\":{},\"recordChangeTag\":");
        json::string(out, &change_tag(seq));
        self.stamp(out, "created", created);
        self.stamp(out, "modified", modified);
        out.push_str(",\"deleted\":false");
        if self.with_zone_id {
            out.push_str(",\"zoneID\":");
            self.zone_id(out);
        }
        if let Some(e) = expiration {
            let _ = write!(out, ",\"expirationTime\":{e}");
        }
        out.push('}');
    }

    fn stamp(&self, out: &mut String, name: &str, ms: i64) {
        let _ = write!(out, ",\"{name}\":{{\"timestamp\":{ms},\"userRecordName\":");
        json::string(out, &self.zone.owner);
        out.push_str(",\"deviceID\":");
        json::string(out, &self.lib().device_id);
        out.push('}');
    }

    fn expiration(asset: &Asset) -> Option<i64> {
        asset
            .has(DELETED)
            .then(|| (asset.date_expunged + EXPIRATION_AFTER_EXPUNGE_MS) / 1000)
    }

    fn reference(&self, out: &mut String, record_name: &str, action: &str) {
        out.push_str("{\"recordName\":");
        json::string(out, record_name);
        out.push_str(",\"action\":\"");
        out.push_str(action);
        out.push_str("\",\"zoneID\":");
        self.zone_id(out);
        out.push('}');
    }

    fn contributors(&self, f: &mut Fields<'_>) {
        if !self.zone.shared {
            return;
        }
        f.raw("contributors", "REFERENCE_LIST", |out| {
            out.push('[');
            for (i, c) in self.zone.contributors.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                self.reference(out, c, "NONE");
            }
            out.push(']');
        });
    }

    fn rendition(&self, f: &mut Fields<'_>, asset: &Asset, master_name: &str, r: Rendition) {
        let names = rendition_names(r);
        if !names.iter().any(|n| f.wants(n)) {
            return;
        }
        let facts = self.lib().facts.rendition(asset, master_name, r);
        if f.wants(names[0]) {
            let url = download_url(
                self.state,
                &facts.resource(asset.key),
                &UrlParts {
                    file_checksum: &facts.file_checksum,
                    reference_checksum: &facts.reference_checksum,
                    wrapping_key: &facts.wrapping_key,
                    zone: &self.zone.name,
                },
            );
            f.raw(names[0], "ASSETID", |out| {
                out.push_str("{\"fileChecksum\":");
                json::string(out, &facts.file_checksum);
                let _ = write!(out, ",\"size\":{},\"wrappingKey\":", facts.size);
                json::string(out, &facts.wrapping_key);
                out.push_str(",\"referenceChecksum\":");
                json::string(out, &facts.reference_checksum);
                out.push_str(",\"downloadURL\":");
                json::string(out, &url);
                out.push('}');
            });
        }
        f.string(names[1], facts.format.uti(), "STRING");
        f.int(names[2], facts.width, "INT64");
        f.int(names[3], facts.height, "INT64");
        f.string(names[4], &facts.file_checksum, "STRING");
    }

    /// A CPLMaster record.
    pub fn master(&self, out: &mut String, v: &AssetView) {
        let a = &v.asset;
        let name = self.lib().ids.master_name(a.key);
        self.open(out, &name, "CPLMaster");
        let mut f = Fields::new(out, self.desired);
        f.string("itemType", a.kind.original_format().uti(), "STRING");
        let (file, enc) = filename(a);
        match (file, enc) {
            (Some(n), NameEncoding::Base64) => {
                f.string("filenameEnc", &STANDARD.encode(n), "ENCRYPTED_BYTES")
            }
            (Some(n), NameEncoding::Plain) => f.string("filenameEnc", &n, "STRING"),
            _ => {}
        }
        f.int(
            "dataClassType",
            if a.kind.is_movie() { 2 } else { 1 },
            "INT64",
        );
        let meta_orientation = self.lib().facts.meta(a).orientation;
        f.int("originalOrientation", meta_orientation, "INT64");
        for &r in master_renditions(a.kind) {
            self.rendition(&mut f, a, &name, r);
        }
        if a.has(DELETED) {
            f.int("isDeleted", 1, "INT64");
            f.int("dateExpunged", a.date_expunged, "TIMESTAMP");
        }
        self.contributors(&mut f);
        let created = self.lib().facts.created_ms(a);
        self.close(
            out,
            a.master_seq,
            created,
            v.master_modified_ms,
            Self::expiration(a),
        );
    }

    /// A CPLAsset record.
    pub fn asset(&self, out: &mut String, v: &AssetView) {
        let a = &v.asset;
        let lib = self.lib();
        let master_name = lib.ids.master_name(a.key);
        let meta = lib.facts.meta(a);
        self.open(out, &lib.asset_record_name(a.key), "CPLAsset");
        let mut f = Fields::new(out, self.desired);
        f.raw("masterRef", "REFERENCE", |out| {
            self.reference(out, &master_name, "DELETE_SELF")
        });
        f.int("assetDate", a.asset_date, "TIMESTAMP");
        f.int("addedDate", a.added_date, "TIMESTAMP");
        f.int("timeZoneOffset", meta.tz_offset_secs, "INT64");
        f.int("orientation", meta.orientation, "INT64");
        f.int("assetSubtype", a.kind.asset_subtype(), "INT64");
        f.int("assetSubtypeV2", a.kind.asset_subtype_v2(), "INT64");
        f.int("assetHDRType", meta.hdr, "INT64");
        f.int("burstFlags", 0, "INT64");
        if a.burst != 0 {
            let id = lib.ids.uuid(
                crate::sim::library::ids::IdDomain::Burst,
                ((self.zone.number as u64) << 32) | u64::from(a.burst),
            );
            f.string("burstId", &id, "STRING");
        }
        f.int("isHidden", i64::from(a.has(HIDDEN)), "INT64");
        f.int("isFavorite", i64::from(a.has(FAVORITE)), "INT64");
        f.int("duration", meta.duration_ms, "INT64");
        f.int(
            "adjustmentRenderType",
            a.kind.adjustment_render_type(),
            "INT64",
        );
        f.int(
            "customRenderedValue",
            if a.has(EDITED) { 10 } else { 0 },
            "INT64",
        );
        let live = a.kind.is_live();
        f.int(
            "vidComplDurValue",
            if live { meta.live_duration_ns } else { 0 },
            "INT64",
        );
        f.int(
            "vidComplDurScale",
            if live { 1_000_000_000 } else { 0 },
            "INT64",
        );
        f.int(
            "vidComplDispValue",
            if live { meta.live_still_ns } else { 0 },
            "INT64",
        );
        f.int(
            "vidComplDispScale",
            if live { 1_000_000_000 } else { 0 },
            "INT64",
        );
        f.int("vidComplVisibilityState", 0, "INT64");
        if let Some(loc) = meta.location {
            if f.wants("locationEnc") {
                let plist = bplist::encode(&bplist::Value::Dict(vec![
                    ("lat", bplist::Value::Real(loc.lat)),
                    ("lon", bplist::Value::Real(loc.lon)),
                    ("alt", bplist::Value::Real(loc.alt)),
                    ("speed", bplist::Value::Real(loc.speed)),
                    ("course", bplist::Value::Real(loc.course)),
                    ("horzAcc", bplist::Value::Real(loc.horz_acc)),
                    ("vertAcc", bplist::Value::Real(loc.vert_acc)),
                    (
                        "timestamp",
                        bplist::Value::Date(
                            loc.timestamp_ms as f64 / 1000.0 - PLIST_EPOCH_UNIX_SECS,
                        ),
                    ),
                ]));
                f.string("locationEnc", &STANDARD.encode(plist), "ENCRYPTED_BYTES");
            }
            f.double("locationLatitude", loc.lat);
            f.double("locationLongitude", loc.lon);
        }
        if let Some(c) = meta.caption {
            f.string("captionEnc", &STANDARD.encode(c), "ENCRYPTED_BYTES");
        }
        if !meta.keywords.is_empty() && f.wants("keywordsEnc") {
            let words = meta
                .keywords
                .iter()
                .map(|k| bplist::Value::Str(k))
                .collect();
            let plist = bplist::encode(&bplist::Value::Array(words));
            f.string("keywordsEnc", &STANDARD.encode(plist), "ENCRYPTED_BYTES");
        }
        if a.has(DELETED) {
            f.int("isDeleted", 1, "INT64");
            f.int("isExpunged", 0, "INT64");
            f.int("dateExpunged", a.date_expunged, "TIMESTAMP");
        }
        if a.has(EDITED) {
            let kind = if a.kind == AssetKind::Screenshot {
                "ScreenshotServices"
            } else {
                "com.apple.photo"
            };
            f.string("adjustmentType", kind, "STRING");
            for &r in asset_renditions(a) {
                self.rendition(&mut f, a, &master_name, r);
            }
        }
        if self.zone.shared {
            self.contributors(&mut f);
            f.int("trashReason", 0, "INT64");
        }
        let created = lib.facts.created_ms(a);
        self.close(
            out,
            a.asset_seq,
            created,
            v.asset_modified_ms,
            Self::expiration(a),
        );
    }

    /// A CPLAlbum record.
    pub fn album(&self, out: &mut String, v: &AlbumView) {
        let name = self.lib().album_record_name(self.zone, v.idx);
        self.open(out, &name, "CPLAlbum");
        let mut f = Fields::new(out, self.desired);
        f.int("recordModificationDate", v.modified_ms, "TIMESTAMP");
        f.int("sortAscending", 1, "INT64");
        f.int("sortType", 0, "INT64");
        f.int("albumType", v.album.album_type(), "INT64");
        if v.album.kind != AlbumKind::Root {
            f.string(
                "albumNameEnc",
                &STANDARD.encode(&v.album.name),
                "ENCRYPTED_BYTES",
            );
        }
        f.int("position", v.album.position, "INT64");
        f.int("sortTypeExt", 0, "INT64");
        if let Some(parent) = &v.parent_record {
            f.string("parentId", parent, "STRING");
        }
        if v.album.deleted {
            f.int("isDeleted", 1, "INT64");
        }
        self.close(out, v.album.seq, v.album.created_ms, v.modified_ms, None);
    }

    /// A hard-deleted record, as the change feed shows it.
    pub fn deleted(&self, out: &mut String, record_name: &str, seq: u32) {
        out.push_str("{\"recordName\":");
        json::string(out, record_name);
        out.push_str(",\"recordType\":null,\"deleted\":true,\"recordChangeTag\":");
        json::string(out, &change_tag(seq));
        out.push_str(",\"zoneID\":");
        self.zone_id(out);
        out.push('}');
    }

    fn library_info(&self, out: &mut String, seq: u32, c: &LibraryCounts, modified: i64) {
        self.open(
            out,
            &format!("{}-0000-LI", self.zone.name),
            "CPLLibraryInfo",
        );
        let mut f = Fields::new(out, self.desired);
        f.int("photosCount", c.photos, "INT64");
        f.int("videosCount", c.videos, "INT64");
        f.int("hiddenPhotosCount", c.hidden_photos, "INT64");
        f.int("hiddenVideosCount", c.hidden_videos, "INT64");
        f.int("albumsCount", c.albums, "INT64");
        f.int("irisCount", c.iris, "INT64");
        self.close(out, seq, modified, modified, None);
    }

    /// Any change-feed item.
    pub fn change_item(&self, out: &mut String, item: &ChangeItem) {
        match item {
            ChangeItem::Master(v) => self.master(out, v),
            ChangeItem::Asset(v) => self.asset(out, v),
            ChangeItem::Album(v) => self.album(out, v),
            ChangeItem::Relation {
                album_record,
                asset,
                relation,
                modified_ms,
            } => {
                let asset_name = self.lib().asset_record_name(asset.key);
                self.open(
                    out,
                    &format!("{asset_name}-IN-{album_record}"),
                    "CPLContainerRelation",
                );
                let mut f = Fields::new(out, self.desired);
                f.string("containerId", album_record, "STRING");
                f.string("itemId", &asset_name, "STRING");
                f.int("position", relation.position, "INT64");
                f.int("isKeyAsset", i64::from(relation.key_asset), "INT64");
                f.int("recordModificationDate", *modified_ms, "TIMESTAMP");
                self.close(out, relation.seq, *modified_ms, *modified_ms, None);
            }
            ChangeItem::LibraryInfo {
                seq,
                counts,
                modified_ms,
            } => self.library_info(out, *seq, counts, *modified_ms),
            ChangeItem::Deleted { record_name, seq } => self.deleted(out, record_name, *seq),
        }
    }

    /// The `CheckIndexingState` record (a fresh `_<uuid>` name each call, as recorded).
    pub fn check_indexing_state(&self, out: &mut String, now_ms: i64) {
        let name = format!("_{}", uuid::Uuid::new_v4());
        self.open(out, &name, "CheckIndexingState");
        let mut f = Fields::new(out, self.desired);
        f.int("progress", 100, "INT64");
        f.string("state", "FINISHED", "STRING");
        self.server_close(out, now_ms);
    }

    /// An `IndexCountResult` record.
    pub fn index_count(&self, out: &mut String, id: &str, count: usize, now_ms: i64) {
        self.open(out, id, "IndexCountResult");
        let mut f = Fields::new(out, &None);
        f.int("itemCount", count as i64, "INT64");
        self.server_close(out, now_ms);
    }

    /// Envelope end of a server-computed record (tag `0`, system user `_10`, device `1`).
    fn server_close(&self, out: &mut String, now_ms: i64) {
        out.push_str("},\"pluginFields\":{},\"recordChangeTag\":\"0\"");
        for name in ["created", "modified"] {
            let _ = write!(
                out,
                ",\"{name}\":{{\"timestamp\":{now_ms},\"userRecordName\":\"_10\",\"deviceID\":\"1\"}}"
            );
        }
        out.push_str(",\"deleted\":false,\"zoneID\":");
        self.zone_id(out);
        out.push('}');
    }
}

/// `{"zoneName":...,"ownerRecordName":...,"zoneType":"REGULAR_CUSTOM_ZONE"}` of a zone.
pub fn zone_id(out: &mut String, zone: &ZoneInfo) {
    out.push_str("{\"zoneName\":");
    json::string(out, &zone.name);
    out.push_str(",\"ownerRecordName\":");
    json::string(out, &zone.owner);
    out.push_str(",\"zoneType\":\"REGULAR_CUSTOM_ZONE\"}");
}
