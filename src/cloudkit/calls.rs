//! The single-request calls: zones, indexing state, counts, one listing page, delete (move to
//! Recently Deleted) and record lookup (fresh download URLs).

use std::borrow::Cow;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::model::Library;

use super::client::{CallInfo, CloudKitClient, TopError};
use super::error::CloudKitError;
use super::fields::TextFrom;
use super::pairing::{CarryOver, pair_page};
use super::parse::{ListedAsset, Skipped, Urls};
use super::records::{Record, ServerError, ZoneIdRecord, lenient_string};
use super::requests::{self, Database, Index};

/// Records per `records/lookup` request (two per asset).
const LOOKUP_CHUNK: usize = 200;
/// Count ids per `internal/records/query/batch` request.
const COUNT_CHUNK: usize = 100;

/// A `records/query`-shaped answer; its records borrow their strings when `S` does.
#[derive(Debug, Default, Deserialize)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub(crate) struct RecordsAnswer<S = String> {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub records: Vec<Record<S>>,
    #[serde(rename = "syncToken", default, deserialize_with = "lenient_string")]
    pub sync_token: Option<String>,
    #[serde(
        rename = "continuationMarker",
        default,
        deserialize_with = "lenient_string"
    )]
    pub continuation_marker: Option<String>,
    #[serde(flatten)]
    error: ServerError,
}

impl<S> TopError for RecordsAnswer<S> {
    fn top_error(&self) -> Option<(String, String)> {
        self.error.code_and_reason()
    }
}

pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
struct ZonesAnswer {
    #[serde(default, deserialize_with = "null_as_empty")]
    zones: Vec<ZoneEntry>,
    #[serde(flatten)]
    error: ServerError,
}

impl TopError for ZonesAnswer {
    fn top_error(&self) -> Option<(String, String)> {
        self.error.code_and_reason()
    }
}

#[derive(Debug, Default, Deserialize)]
struct ZoneEntry {
    #[serde(rename = "zoneID", default)]
    zone_id: Option<ZoneIdRecord>,
    #[serde(default)]
    deleted: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct CountAnswer {
    #[serde(default, deserialize_with = "null_as_empty")]
    batch: Vec<RecordsAnswer>,
    #[serde(flatten)]
    error: ServerError,
}

impl TopError for CountAnswer {
    fn top_error(&self) -> Option<(String, String)> {
        self.error.code_and_reason()
    }
}

/// Whether the server finished indexing a library (`CheckIndexingState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexingState {
    /// `FINISHED` when ready; `None` when the answer had no state.
    pub state: Option<String>,
    pub progress: Option<i64>,
}

impl IndexingState {
    /// True when listings of this library are complete.
    pub fn is_finished(&self) -> bool {
        self.state.as_deref() == Some("FINISHED")
    }
}

/// The item count of one index, and the zone's sync token at the time of counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCount {
    pub index: Index,
    /// `None` when the server gave no usable count.
    pub count: Option<u64>,
    pub sync_token: Option<String>,
}

/// One page of an asset listing, parsed and paired.
#[derive(Debug)]
pub struct Page {
    /// Rank of the page's first asset.
    pub start_rank: u64,
    /// Records in the answer (all types).
    pub records: usize,
    pub assets: Vec<ListedAsset>,
    pub skipped: Vec<Skipped>,
    /// The zone's change-feed position when the page was served.
    pub sync_token: Option<String>,
}

/// A listing page's answer, paired while it is parsed unless it is an error (or a short
/// answer where a full one was required).
enum PageAnswer {
    Failed(String, String),
    Paired(Page),
    Short(usize),
}

impl TopError for PageAnswer {
    fn top_error(&self) -> Option<(String, String)> {
        match self {
            PageAnswer::Failed(code, reason) => Some((code.clone(), reason.clone())),
            PageAnswer::Paired(_) | PageAnswer::Short(_) => None,
        }
    }
}

/// A listing page, or the size of a short answer that was not used.
pub(crate) enum Fetched {
    Page(Page),
    /// Fewer records than asked, where a full page was required: nothing was paired (the
    /// carry-over did not see it).
    Short {
        records: usize,
    },
}

impl Page {
    /// A page with fewer records than asked: the index ends here (at the time of the request).
    pub fn is_short(&self) -> bool {
        (self.records as u64) < requests::RESULTS_LIMIT
    }
}

/// Assets fetched again by record name, with fresh download URLs.
#[derive(Debug, Default)]
pub struct Refreshed {
    pub assets: Vec<ListedAsset>,
    /// Records not found or not usable, with the reason.
    pub skipped: Vec<Skipped>,
}

/// The state of a CPLAsset after `records/modify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modified {
    /// The record's new change tag, when the server returned the record.
    pub change_tag: Option<String>,
    pub sync_token: Option<String>,
}

pub(crate) fn database_of(call: &str, library: &Library) -> Result<Database, CloudKitError> {
    Database::parse(&library.database).ok_or_else(|| CloudKitError::InvalidRequest {
        call: call.to_string(),
        detail: format!(
            "unknown database {:?} (expected private or shared)",
            library.database
        ),
    })
}

impl CloudKitClient {
    /// The libraries (zones) of one database, without deleted zones and share-link containers.
    pub async fn list_zones(&self, database: Database) -> Result<Vec<Library>, CloudKitError> {
        let mut info = CallInfo::new(format!("{}/zones/list", database.as_str()), None);
        info.with_query = false;
        let answer: ZonesAnswer = self
            .post(&info, database, "zones/list", &serde_json::json!({}))
            .await?;
        let mut out = Vec::new();
        for z in answer.zones {
            let Some(id) = z.zone_id else { continue };
            let Some(name) = id.zone_name else { continue };
            if z.deleted
                .as_ref()
                .and_then(super::records::as_int)
                .unwrap_or(0)
                != 0
            {
                tracing::debug!(zone = %name, "skipping deleted zone");
                continue;
            }
            if name.starts_with("CMM-") || name.starts_with("AppLibrarySync-") {
                tracing::debug!(zone = %name, "skipping a zone that is not a photo library");
                continue;
            }
            out.push(Library {
                database: database.as_str().to_string(),
                zone: name,
                owner: id.owner_record_name,
            });
        }
        Ok(out)
    }

    /// Every library of the account: the private zones, then shared zones not already listed.
    pub async fn list_libraries(&self) -> Result<Vec<Library>, CloudKitError> {
        let mut all = self.list_zones(Database::Private).await?;
        for lib in self.list_zones(Database::Shared).await? {
            if all.iter().any(|l| l.zone == lib.zone) {
                tracing::warn!(zone = %lib.zone, "zone listed in both databases; using the private one");
                continue;
            }
            all.push(lib);
        }
        Ok(all)
    }

    /// `CheckIndexingState` of a library.
    pub async fn indexing_state(&self, library: &Library) -> Result<IndexingState, CloudKitError> {
        let name = format!("CheckIndexingState ({})", library.zone);
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name, Some(&library.zone));
        let answer: RecordsAnswer = self
            .post(
                &info,
                db,
                "records/query",
                &requests::indexing_state_body(library),
            )
            .await?;
        let record = answer.records.first();
        Ok(IndexingState {
            state: record.and_then(|r| r.string("state")).map(str::to_string),
            progress: record.and_then(|r| r.int("progress")),
        })
    }

    /// Item counts of several indexes of one library, in the order asked.
    pub async fn counts(
        &self,
        library: &Library,
        indexes: &[Index],
    ) -> Result<Vec<IndexCount>, CloudKitError> {
        let mut out = Vec::with_capacity(indexes.len());
        for chunk in indexes.chunks(COUNT_CHUNK) {
            let name = format!("count of {} index(es) ({})", chunk.len(), library.zone);
            let db = database_of(&name, library)?;
            let info = CallInfo::new(name, Some(&library.zone));
            let answer: CountAnswer = self
                .post(
                    &info,
                    db,
                    "internal/records/query/batch",
                    &requests::count_batch_body(library, chunk),
                )
                .await?;
            for (i, index) in chunk.iter().enumerate() {
                let element = answer.batch.get(i);
                let count = element
                    .and_then(|b| b.records.first())
                    .and_then(|r| r.int("itemCount"))
                    .and_then(|c| u64::try_from(c).ok());
                if count.is_none() {
                    let why = element
                        .and_then(|b| b.top_error())
                        .map(|(c, r)| format!("{c}: {r}"))
                        .unwrap_or_else(|| "no itemCount in the answer".into());
                    tracing::warn!(index = %index.describe(), zone = %library.zone, %why, "no count for index");
                }
                out.push(IndexCount {
                    index: index.clone(),
                    count,
                    sync_token: element.and_then(|b| b.sync_token.clone()),
                });
            }
        }
        Ok(out)
    }

    /// The count of one index.
    pub async fn count(
        &self,
        library: &Library,
        index: &Index,
    ) -> Result<IndexCount, CloudKitError> {
        let mut all = self.counts(library, std::slice::from_ref(index)).await?;
        all.pop().ok_or_else(|| CloudKitError::Protocol {
            call: format!("count of {}", index.describe()),
            detail: "empty batch answer".into(),
        })
    }

    /// One page of an index, starting at `start_rank`. Unpaired records go to `carry` when
    /// given (a walk), else they are reported as skipped. With `require_full`, an answer with
    /// fewer records than asked is not paired but reported as [`Fetched::Short`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn query_page(
        &self,
        library: &Library,
        index: &Index,
        start_rank: u64,
        bodies: &requests::PageBodies,
        carry: Option<&Mutex<CarryOver>>,
        urls: Urls,
        require_full: bool,
    ) -> Result<Fetched, CloudKitError> {
        let name = format!(
            "records/query {} at rank {start_rank} ({})",
            index.describe(),
            library.zone
        );
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name, Some(&library.zone));
        let body = bodies.body(start_rank);
        // Parsed with strings borrowed from the answer: only what the page keeps is copied.
        // An error answer is not paired (the carry-over must see each page once).
        let decode = |text: &str| -> serde_json::Result<PageAnswer> {
            let answer: RecordsAnswer<Cow<str>> = serde_json::from_str(text)?;
            if let Some((code, reason)) = answer.top_error() {
                return Ok(PageAnswer::Failed(code, reason));
            }
            let records = answer.records.len();
            if require_full && (records as u64) < requests::RESULTS_LIMIT {
                return Ok(PageAnswer::Short(records));
            }
            let paired = pair_page(answer.records, &library.zone, carry, urls);
            Ok(PageAnswer::Paired(Page {
                start_rank,
                records,
                assets: paired.assets,
                skipped: paired.skipped,
                sync_token: answer.sync_token,
            }))
        };
        match self
            .post_decoded(&info, db, "records/query", &body, &decode)
            .await?
        {
            PageAnswer::Paired(page) => Ok(Fetched::Page(page)),
            PageAnswer::Short(records) => Ok(Fetched::Short { records }),
            PageAnswer::Failed(code, reason) => Err(CloudKitError::Protocol {
                call: info.name.clone(),
                detail: format!("error answer {code}: {reason}"),
            }),
        }
    }

    /// One listing page on its own (no carry-over: unpaired records are reported as skipped).
    pub async fn page(
        &self,
        library: &Library,
        index: &Index,
        start_rank: u64,
    ) -> Result<Page, CloudKitError> {
        let fetched = self
            .query_page(
                library,
                index,
                start_rank,
                &requests::PageBodies::new(library, index, &requests::asset_desired_keys()),
                None,
                Urls::Keep,
                false,
            )
            .await?;
        match fetched {
            Fetched::Page(page) => Ok(page),
            Fetched::Short { records } => Err(CloudKitError::Protocol {
                call: format!("records/query {} at rank {start_rank}", index.describe()),
                detail: format!("a short answer of {records} records was not used"),
            }),
        }
    }

    /// Move an asset to Recently Deleted (`records/modify` of its CPLAsset with its change tag).
    pub async fn move_to_recently_deleted(
        &self,
        library: &Library,
        asset_record: &str,
        change_tag: Option<&str>,
    ) -> Result<Modified, CloudKitError> {
        let name = format!("records/modify delete {asset_record} ({})", library.zone);
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name.clone(), Some(&library.zone));
        let body = requests::soft_delete_body(library, asset_record, change_tag);
        let answer: RecordsAnswer = self.post(&info, db, "records/modify", &body).await?;
        match answer
            .records
            .into_iter()
            .find(|r| r.name() == asset_record || r.server_error_code.is_some())
        {
            Some(r) if r.server_error_code.is_some() => Err(CloudKitError::Server {
                call: name,
                code: r.server_error_code.unwrap_or_default(),
                reason: r.reason.unwrap_or_default(),
            }),
            Some(r) => Ok(Modified {
                change_tag: r.change_tag,
                sync_token: answer.sync_token,
            }),
            None => Ok(Modified {
                change_tag: None,
                sync_token: answer.sync_token,
            }),
        }
    }

    /// Fetch assets again by (master recordName, CPLAsset recordName): current metadata and
    /// freshly signed download URLs (the way an expired URL is replaced).
    pub async fn refresh_assets(
        &self,
        library: &Library,
        pairs: &[(&str, &str)],
    ) -> Result<Refreshed, CloudKitError> {
        let keys = requests::asset_desired_keys();
        let mut out = Refreshed::default();
        for chunk in pairs.chunks(LOOKUP_CHUNK / 2) {
            let names: Vec<&str> = chunk.iter().flat_map(|(m, a)| [*m, *a]).collect();
            let records = self.lookup(library, &names, &keys).await?;
            let paired = pair_page(records, &library.zone, None, Urls::Keep);
            out.assets.extend(paired.assets);
            out.skipped.extend(paired.skipped);
        }
        Ok(out)
    }

    /// Fetch one asset again; `Ok(None)` (with the reasons logged) when it no longer exists.
    pub async fn refresh_asset(
        &self,
        library: &Library,
        master_id: &str,
        asset_record: &str,
    ) -> Result<Option<ListedAsset>, CloudKitError> {
        let mut r = self
            .refresh_assets(library, &[(master_id, asset_record)])
            .await?;
        for s in &r.skipped {
            tracing::debug!(record = %s.record_name, reason = %s.reason, "lookup skipped a record");
        }
        Ok(r.assets.pop())
    }

    /// `records/lookup` of some record names.
    pub(crate) async fn lookup(
        &self,
        library: &Library,
        names: &[&str],
        desired_keys: &[String],
    ) -> Result<Vec<Record>, CloudKitError> {
        let name = format!(
            "records/lookup of {} record(s) ({})",
            names.len(),
            library.zone
        );
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name, Some(&library.zone));
        let body = requests::lookup_body(library, names, desired_keys);
        let answer: RecordsAnswer = self.post(&info, db, "records/lookup", &body).await?;
        Ok(answer.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_read_their_payload_and_their_top_level_error() {
        let ok: RecordsAnswer = serde_json::from_value(json!({
            "records": [{"recordName": "A", "recordType": "CPLAsset"}],
            "syncToken": "T",
            "continuationMarker": 7,
            "somethingNew": {"x": [1, 2]}
        }))
        .expect("answer");
        assert_eq!(ok.records.len(), 1);
        assert_eq!(ok.sync_token.as_deref(), Some("T"));
        assert_eq!(ok.continuation_marker, None, "not a string: ignored");
        assert_eq!(ok.top_error(), None);

        let failed: RecordsAnswer = serde_json::from_value(json!({
            "records": null, "serverErrorCode": "ZONE_NOT_FOUND", "reason": "gone"
        }))
        .expect("answer");
        assert!(failed.records.is_empty());
        assert_eq!(
            failed.top_error(),
            Some(("ZONE_NOT_FOUND".into(), "gone".into()))
        );

        let counts: CountAnswer = serde_json::from_value(json!({
            "batch": [{"records": [], "serverErrorCode": "BAD_REQUEST", "reason": 3}, {"records": []}]
        }))
        .expect("answer");
        assert_eq!(counts.top_error(), None);
        assert_eq!(
            counts.batch[0].top_error(),
            Some(("BAD_REQUEST".into(), String::new()))
        );
        assert_eq!(counts.batch[1].top_error(), None);

        let zones: ZonesAnswer = serde_json::from_value(json!({
            "zones": [{"zoneID": {"zoneName": "PrimarySync"}}],
            "serverErrorCode": "ACCESS_DENIED"
        }))
        .expect("answer");
        assert_eq!(zones.zones.len(), 1);
        assert_eq!(
            zones.top_error(),
            Some(("ACCESS_DENIED".into(), String::new()))
        );
    }
}
