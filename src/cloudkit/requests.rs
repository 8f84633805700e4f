//! Request vocabulary: databases, zone ids, the catalogue of asset indexes (so callers never
//! build record-type strings), and the JSON bodies of each call.

use serde_json::{Value, json};

use crate::model::Library;

/// Records asked per `records/query` page: CloudKit counts records, two per asset.
pub const RESULTS_LIMIT: u64 = 200;
/// Assets (ranks) covered by one full page.
pub const PAGE_ASSETS: u64 = RESULTS_LIMIT / 2;

/// The two CloudKit databases a Photos library can live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Database {
    Private,
    Shared,
}

impl Database {
    /// Path segment and `model::Library::database` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Private => "private",
            Database::Shared => "shared",
        }
    }

    /// Inverse of [`Database::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Database::Private),
            "shared" => Some(Database::Shared),
            _ => None,
        }
    }
}

/// The `zoneID` object sent with a request: the name, plus the owner when known.
pub(crate) fn zone_id_json(library: &Library) -> Value {
    match &library.owner {
        Some(owner) => json!({"zoneName": library.zone, "ownerRecordName": owner}),
        None => json!({"zoneName": library.zone}),
    }
}

/// A smart album served by `CPLAssetAndMasterInSmartAlbumByAssetDate` with a `smartAlbum` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmartAlbum {
    Timelapse,
    Video,
    Slomo,
    Favorite,
    Panorama,
    Screenshot,
    Live,
    /// Portrait (rclone's name for the `DEPTH` filter).
    Depth,
    /// Long Exposure.
    Exposure,
    /// Animated (GIFs).
    Animated,
}

impl SmartAlbum {
    /// Every smart album the web API is known to serve.
    pub const ALL: [SmartAlbum; 10] = [
        SmartAlbum::Timelapse,
        SmartAlbum::Video,
        SmartAlbum::Slomo,
        SmartAlbum::Favorite,
        SmartAlbum::Panorama,
        SmartAlbum::Screenshot,
        SmartAlbum::Live,
        SmartAlbum::Depth,
        SmartAlbum::Exposure,
        SmartAlbum::Animated,
    ];

    /// The `smartAlbum` filter value.
    pub fn filter_value(self) -> &'static str {
        match self {
            SmartAlbum::Timelapse => "TIMELAPSE",
            SmartAlbum::Video => "VIDEO",
            SmartAlbum::Slomo => "SLOMO",
            SmartAlbum::Favorite => "FAVORITE",
            SmartAlbum::Panorama => "PANORAMA",
            SmartAlbum::Screenshot => "SCREENSHOT",
            SmartAlbum::Live => "LIVE",
            SmartAlbum::Depth => "DEPTH",
            SmartAlbum::Exposure => "EXPOSURE",
            SmartAlbum::Animated => "ANIMATED",
        }
    }

    /// Suffix of the count id (`CPLAssetInSmartAlbumByAssetDate:<suffix>`).
    fn count_suffix(self) -> &'static str {
        match self {
            SmartAlbum::Timelapse => "Timelapse",
            SmartAlbum::Video => "Video",
            SmartAlbum::Slomo => "Slomo",
            SmartAlbum::Favorite => "Favorite",
            SmartAlbum::Panorama => "Panorama",
            SmartAlbum::Screenshot => "Screenshot",
            SmartAlbum::Live => "Live",
            SmartAlbum::Depth => "Depth",
            SmartAlbum::Exposure => "Exposure",
            SmartAlbum::Animated => "Animated",
        }
    }

    /// The name Photos shows.
    pub fn display_name(self) -> &'static str {
        match self {
            SmartAlbum::Timelapse => "Time-lapse",
            SmartAlbum::Video => "Videos",
            SmartAlbum::Slomo => "Slo-mo",
            SmartAlbum::Favorite => "Favorites",
            SmartAlbum::Panorama => "Panoramas",
            SmartAlbum::Screenshot => "Screenshots",
            SmartAlbum::Live => "Live",
            SmartAlbum::Depth => "Portrait",
            SmartAlbum::Exposure => "Long Exposure",
            SmartAlbum::Animated => "Animated",
        }
    }
}

/// One list of assets the server keeps an index for (section 3.3 of the protocol notes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Index {
    /// The whole library without hidden and recently deleted assets, by capture date.
    AllPhotos,
    /// The legacy whole-library index by date added (what the recordings use).
    AllPhotosByAddedDate,
    /// A smart album.
    Smart(SmartAlbum),
    /// Burst stacks.
    Bursts,
    /// Hidden assets.
    Hidden,
    /// Recently Deleted.
    RecentlyDeleted,
    /// The contents of a user album, by its CPLAlbum recordName.
    Album(String),
}

impl Index {
    /// The `recordType` sent to `records/query`.
    pub fn list_type(&self) -> &'static str {
        match self {
            Index::AllPhotos => "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted",
            Index::AllPhotosByAddedDate => "CPLAssetAndMasterByAddedDate",
            Index::Smart(_) => "CPLAssetAndMasterInSmartAlbumByAssetDate",
            Index::Bursts => "CPLBurstStackAssetAndMasterByAssetDate",
            Index::Hidden => "CPLAssetAndMasterHiddenByAssetDate",
            Index::RecentlyDeleted => "CPLAssetAndMasterDeletedByExpungedDate",
            Index::Album(_) => "CPLContainerRelationLiveByAssetDate",
        }
    }

    /// The `indexCountID` of the count call.
    pub fn count_id(&self) -> String {
        match self {
            Index::AllPhotos => "CPLAssetByAssetDateWithoutHiddenOrDeleted".into(),
            Index::AllPhotosByAddedDate => "CPLAssetByAddedDate".into(),
            Index::Smart(s) => format!("CPLAssetInSmartAlbumByAssetDate:{}", s.count_suffix()),
            Index::Bursts => "CPLAssetBurstStackAssetByAssetDate".into(),
            Index::Hidden => "CPLAssetHiddenByAssetDate".into(),
            Index::RecentlyDeleted => "CPLAssetDeletedByExpungedDate".into(),
            Index::Album(id) => format!("CPLContainerRelationNotDeletedByAssetDate:{id}"),
        }
    }

    /// A short human name, for logs and error messages.
    pub fn describe(&self) -> String {
        match self {
            Index::AllPhotos => "All Photos".into(),
            Index::AllPhotosByAddedDate => "All Photos (by date added)".into(),
            Index::Smart(s) => s.display_name().into(),
            Index::Bursts => "Bursts".into(),
            Index::Hidden => "Hidden".into(),
            Index::RecentlyDeleted => "Recently Deleted".into(),
            Index::Album(id) => format!("album {id}"),
        }
    }

    /// Filters appended after `startRank` and `direction`.
    fn extra_filters(&self) -> Option<Value> {
        match self {
            Index::Smart(s) => Some(string_filter("smartAlbum", s.filter_value())),
            Index::Album(id) => Some(string_filter("parentId", id)),
            _ => None,
        }
    }
}

fn string_filter(field: &str, value: &str) -> Value {
    json!({"fieldName": field, "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": value}})
}

/// Rendition prefixes whose fields an asset listing asks for.
pub(crate) const RENDITION_PREFIXES: [&str; 10] = [
    "resOriginal",
    "resOriginalAlt",
    "resOriginalVidCompl",
    "resJPEGFull",
    "resJPEGMed",
    "resJPEGThumb",
    "resVidFull",
    "resVidMed",
    "resVidSmall",
    "resSidecar",
];

/// Non-rendition fields the parser reads from CPLMaster and CPLAsset records.
pub(crate) const ASSET_FIELDS: [&str; 31] = [
    "itemType",
    "dataClassType",
    "filenameEnc",
    "originalOrientation",
    "isDeleted",
    "isExpunged",
    "dateExpunged",
    "masterRef",
    "adjustmentType",
    "adjustmentRenderType",
    "assetDate",
    "addedDate",
    "isFavorite",
    "isHidden",
    "orientation",
    "duration",
    "assetSubtype",
    "assetSubtypeV2",
    "burstId",
    "captionEnc",
    "extendedDescEnc",
    "keywordsEnc",
    "locationEnc",
    "locationLatitude",
    "locationLongitude",
    "timeZoneOffset",
    "recordName",
    "recordType",
    "recordChangeTag",
    "parentId",
    "containerId",
];

/// The `desiredKeys` of asset listings, lookups and change feeds: exactly what the parser reads,
/// which keeps pages small.
pub fn asset_desired_keys() -> Vec<String> {
    let mut keys: Vec<String> =
        Vec::with_capacity(RENDITION_PREFIXES.len() * 4 + ASSET_FIELDS.len());
    for p in RENDITION_PREFIXES {
        for suffix in ["Res", "FileType", "Width", "Height"] {
            keys.push(format!("{p}{suffix}"));
        }
    }
    keys.extend(ASSET_FIELDS.iter().map(|s| s.to_string()));
    keys.push("itemId".into());
    keys
}

/// The `desiredKeys` of a walk that only needs which assets an index holds: the CPLAsset's
/// `masterRef` pairs it with its CPLMaster (record names and types always come). About a
/// tenth of an album's full page, for the server to send and for us to parse.
pub fn membership_desired_keys() -> Vec<String> {
    vec!["masterRef".to_string()]
}

/// Body of one asset-listing page.
pub(crate) fn query_page_body(
    library: &Library,
    index: &Index,
    start_rank: u64,
    desired_keys: &[String],
) -> Value {
    let mut filters = vec![
        json!({"fieldName": "startRank", "comparator": "EQUALS", "fieldValue": {"type": "INT64", "value": start_rank}}),
        json!({"fieldName": "direction", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": "ASCENDING"}}),
    ];
    if let Some(f) = index.extra_filters() {
        filters.push(f);
    }
    json!({
        "query": {"filterBy": filters, "recordType": index.list_type()},
        "resultsLimit": RESULTS_LIMIT,
        "desiredKeys": desired_keys,
        "zoneID": zone_id_json(library),
    })
}

/// The body of one index's listing pages, serialised once per walk: only the start rank
/// differs between pages (building the JSON of ~100 desired keys for every page showed in
/// profiles of a large listing).
#[derive(Debug, Clone)]
pub(crate) struct PageBodies {
    /// The serialised body around the rank: `before` + rank + `after`.
    around_rank: Option<(String, String)>,
    /// The body with a placeholder rank, for the (unexpected) case it could not be split.
    template: Value,
}

/// Stands for the rank in [`PageBodies`]; no other number of a listing body has 20 digits.
const RANK_PLACEHOLDER: u64 = u64::MAX;

impl PageBodies {
    pub fn new(library: &Library, index: &Index, desired_keys: &[String]) -> Self {
        let template = query_page_body(library, index, RANK_PLACEHOLDER, desired_keys);
        let text = template.to_string();
        let placeholder = RANK_PLACEHOLDER.to_string();
        let around_rank = match text.matches(&placeholder).count() {
            1 => text
                .split_once(&placeholder)
                .map(|(b, a)| (b.to_string(), a.to_string())),
            _ => None,
        };
        PageBodies {
            around_rank,
            template,
        }
    }

    /// The serialised body of the page at `start_rank`.
    pub fn body(&self, start_rank: u64) -> Vec<u8> {
        match &self.around_rank {
            Some((before, after)) => {
                let rank = start_rank.to_string();
                let mut out = Vec::with_capacity(before.len() + rank.len() + after.len());
                out.extend_from_slice(before.as_bytes());
                out.extend_from_slice(rank.as_bytes());
                out.extend_from_slice(after.as_bytes());
                out
            }
            None => {
                let mut body = self.template.clone();
                body["query"]["filterBy"][0]["fieldValue"]["value"] = json!(start_rank);
                body.to_string().into_bytes()
            }
        }
    }
}

/// Body of the count batch: one element per index, answers come back in this order.
pub(crate) fn count_batch_body(library: &Library, indexes: &[Index]) -> Value {
    let batch: Vec<Value> = indexes
        .iter()
        .map(|index| {
            json!({
                "resultsLimit": 1,
                "query": {
                    "filterBy": {
                        "fieldName": "indexCountID",
                        "comparator": "IN",
                        "fieldValue": {"type": "STRING_LIST", "value": [index.count_id()]},
                    },
                    "recordType": "HyperionIndexCountLookup",
                },
                "zoneWide": true,
                "zoneID": zone_id_json(library),
            })
        })
        .collect();
    json!({ "batch": batch })
}

/// Body of an album-list query, top level or the children of one folder.
pub(crate) fn album_list_body(
    library: &Library,
    parent: Option<&str>,
    continuation: Option<&str>,
) -> Value {
    let mut query = json!({"recordType": "CPLAlbumByPositionLive"});
    if let Some(parent) = parent {
        query["filterBy"] = json!([string_filter("parentId", parent)]);
    }
    let mut body = json!({
        "query": query,
        "zoneID": zone_id_json(library),
        "desiredKeys": ["albumNameEnc", "albumType", "parentId", "isDeleted", "position", "recordModificationDate"],
    });
    if let Some(marker) = continuation {
        body["continuationMarker"] = json!(marker);
    }
    body
}

/// Body of `CheckIndexingState`.
pub(crate) fn indexing_state_body(library: &Library) -> Value {
    json!({"query": {"recordType": "CheckIndexingState"}, "zoneID": zone_id_json(library)})
}

/// Body of `records/modify` moving one CPLAsset to Recently Deleted.
pub(crate) fn soft_delete_body(
    library: &Library,
    asset_record: &str,
    change_tag: Option<&str>,
) -> Value {
    let mut record = json!({
        "fields": {"isDeleted": {"value": 1}},
        "recordName": asset_record,
        "recordType": "CPLAsset",
    });
    if let Some(tag) = change_tag {
        record["recordChangeTag"] = json!(tag);
    }
    json!({
        "atomic": true,
        "desiredKeys": ["isDeleted"],
        "operations": [{"operationType": "update", "record": record}],
        "zoneID": zone_id_json(library),
    })
}

/// Body of `records/lookup` for some record names.
pub(crate) fn lookup_body(
    library: &Library,
    record_names: &[&str],
    desired_keys: &[String],
) -> Value {
    let records: Vec<Value> = record_names
        .iter()
        .map(|n| json!({"recordName": n}))
        .collect();
    json!({"records": records, "zoneID": zone_id_json(library), "desiredKeys": desired_keys})
}

/// Body of `changes/zone` for one zone.
pub(crate) fn zone_changes_body(
    library: &Library,
    sync_token: Option<&str>,
    desired_keys: &[String],
) -> Value {
    let mut zone = json!({
        "zoneID": zone_id_json(library),
        "resultsLimit": RESULTS_LIMIT,
        "desiredKeys": desired_keys,
    });
    if let Some(token) = sync_token {
        zone["syncToken"] = json!(token);
    }
    json!({ "zones": [zone] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bodies_equal_the_body_built_for_each_rank() {
        let keys = asset_desired_keys();
        for index in [
            Index::AllPhotos,
            Index::Album("A B \"C\"".into()),
            Index::Smart(SmartAlbum::Depth),
        ] {
            let bodies = PageBodies::new(&Library::primary(), &index, &keys);
            assert!(bodies.around_rank.is_some(), "{index:?}");
            for rank in [0, 7, 200, 1_000_000, u64::MAX - 1] {
                let want = query_page_body(&Library::primary(), &index, rank, &keys).to_string();
                assert_eq!(String::from_utf8(bodies.body(rank)).ok(), Some(want));
            }
            let fallback = PageBodies {
                around_rank: None,
                ..bodies
            };
            let want = query_page_body(&Library::primary(), &index, 300, &keys).to_string();
            assert_eq!(String::from_utf8(fallback.body(300)).ok(), Some(want));
        }
    }

    #[test]
    fn catalogue_names_match_the_protocol_notes() {
        assert_eq!(
            Index::AllPhotos.count_id(),
            "CPLAssetByAssetDateWithoutHiddenOrDeleted"
        );
        assert_eq!(
            Index::Smart(SmartAlbum::Depth).count_id(),
            "CPLAssetInSmartAlbumByAssetDate:Depth"
        );
        assert_eq!(
            Index::Album("A1".into()).count_id(),
            "CPLContainerRelationNotDeletedByAssetDate:A1"
        );
        assert_eq!(
            Index::RecentlyDeleted.list_type(),
            "CPLAssetAndMasterDeletedByExpungedDate"
        );
    }

    #[test]
    fn page_body_carries_rank_direction_and_filters_in_order() {
        let lib = Library::primary();
        let body = query_page_body(&lib, &Index::Smart(SmartAlbum::Live), 300, &[]);
        let filters = body["query"]["filterBy"].as_array().expect("array");
        assert_eq!(filters[0]["fieldName"], "startRank");
        assert_eq!(filters[0]["fieldValue"]["value"], 300);
        assert_eq!(filters[1]["fieldValue"]["value"], "ASCENDING");
        assert_eq!(filters[2]["fieldValue"]["value"], "LIVE");
        assert_eq!(body["resultsLimit"], 200);
        assert_eq!(body["zoneID"], json!({"zoneName": "PrimarySync"}));
    }

    #[test]
    fn count_body_keeps_request_order_and_single_object_filter() {
        let lib = Library::primary();
        let body = count_batch_body(&lib, &[Index::Hidden, Index::AllPhotos]);
        let batch = body["batch"].as_array().expect("array");
        assert_eq!(batch.len(), 2);
        assert!(batch[0]["query"]["filterBy"].is_object());
        assert_eq!(
            batch[1]["query"]["filterBy"]["fieldValue"]["value"][0],
            "CPLAssetByAssetDateWithoutHiddenOrDeleted"
        );
    }

    #[test]
    fn desired_keys_cover_every_rendition_field_the_parser_reads() {
        let keys = asset_desired_keys();
        for k in [
            "resJPEGFullRes",
            "resVidSmallFileType",
            "filenameEnc",
            "masterRef",
            "locationEnc",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing");
        }
    }
}
