//! Change feeds: `changes/database` (which zones changed) and `changes/zone` (what changed in a
//! zone since a token), with token errors as typed outcomes rather than failures.
//!
//! Chain `changes/zone` pages by passing each page's `sync_token` to the next call while
//! `more_coming` is true; an empty page with `more_coming` is not the end. Store the token only
//! after the changes of the pages it covers are committed.

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::{Album, Library};

use super::albums::{AlbumRecord, parse_album};
use super::calls::{database_of, null_as_empty};
use super::client::{CallInfo, CloudKitClient, TopError};
use super::error::{CloudKitError, is_transient_code, is_web_access_refusal};
use super::parse::{ListedAsset, Skipped, build_asset, server_error_skip, skip_entry};
use super::records::{Record, ServerError, ZoneIdRecord, as_int, lenient_string};
use super::requests::{self, Database};

/// Zones that changed in one database since a token.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseChanges {
    /// The database token to pass next time (a different namespace from zone tokens).
    pub sync_token: Option<String>,
    pub more_coming: bool,
    pub zones: Vec<ChangedZone>,
}

/// A zone named by `changes/database`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedZone {
    pub library: Library,
    /// The zone's current token, when given.
    pub sync_token: Option<String>,
}

/// The answer of one `changes/zone` request.
#[derive(Debug)]
pub enum ZoneChanges {
    /// A page of changes.
    Page(ZoneChangePage),
    /// The token was refused (`BAD_REQUEST`: garbage, truncated, expired, or a database token).
    /// Forget it and list the library in full.
    TokenRejected {
        code: String,
        reason: String,
        /// A token the server offered in the error entry, if any.
        sync_token: Option<String>,
    },
    /// The zone no longer exists.
    ZoneNotFound {
        reason: String,
        sync_token: Option<String>,
    },
}

/// One page of a zone's change feed.
#[derive(Debug, Default)]
pub struct ZoneChangePage {
    pub changes: Vec<Change>,
    pub skipped: Vec<Skipped>,
    /// Token after this page; pass it to the next call.
    pub sync_token: Option<String>,
    pub more_coming: bool,
    /// Records in the answer, of every type.
    pub records: usize,
    /// Records of types that carry nothing for photos (library info, memories, faces, ...).
    pub ignored: usize,
}

/// One change in a zone.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Both records of an asset were in the page: the asset as it now is (new or modified,
    /// including moved to Recently Deleted or hidden: see its flags).
    Asset(Box<ListedAsset>),
    /// A CPLAsset without its CPLMaster in the page (a flag change or an edit). Its flags are
    /// current; call `refresh_asset` for the full asset when versions may have changed.
    AssetRecord(AssetRecordChange),
    /// A CPLMaster without its CPLAsset in the page.
    MasterRecord { id: String },
    /// A purged record; its type is not given, so the name may be an asset id (CPLMaster), an
    /// asset record (CPLAsset), an album, or another record.
    Removed { record_name: String },
    /// An album membership was removed (`<asset record>-IN-<album id>` purged).
    MembershipRemoved {
        asset_record: String,
        album_id: String,
    },
    /// An album membership exists (`CPLContainerRelation`); `deleted` when flagged as removed.
    Membership {
        asset_record: String,
        album_id: String,
        deleted: bool,
    },
    /// An album or folder was created or changed.
    Album(Album),
}

/// The state a lone CPLAsset record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRecordChange {
    pub asset_record: String,
    /// The asset id (CPLMaster recordName) from `masterRef`.
    pub master_id: String,
    pub change_tag: Option<String>,
    pub deleted: bool,
    pub hidden: bool,
    pub favorite: bool,
    pub date_expunged_ms: Option<i64>,
    /// Set when the asset carries an edit.
    pub adjustment_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DatabaseAnswer {
    #[serde(rename = "syncToken", default, deserialize_with = "lenient_string")]
    sync_token: Option<String>,
    #[serde(rename = "moreComing", default)]
    more_coming: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    zones: Vec<DatabaseZone>,
    #[serde(flatten)]
    error: ServerError,
}

impl TopError for DatabaseAnswer {
    fn top_error(&self) -> Option<(String, String)> {
        self.error.code_and_reason()
    }
}

#[derive(Debug, Default, Deserialize)]
struct DatabaseZone {
    #[serde(rename = "zoneID", default)]
    zone_id: Option<ZoneIdRecord>,
    #[serde(rename = "syncToken", default, deserialize_with = "lenient_string")]
    sync_token: Option<String>,
    #[serde(default)]
    deleted: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ZoneAnswer {
    #[serde(default, deserialize_with = "null_as_empty")]
    zones: Vec<ZoneEntry>,
    #[serde(flatten)]
    error: ServerError,
}

#[derive(Debug, Default, Deserialize)]
struct ZoneEntry {
    #[serde(default, deserialize_with = "null_as_empty")]
    records: Vec<Record>,
    #[serde(rename = "syncToken", default, deserialize_with = "lenient_string")]
    sync_token: Option<String>,
    #[serde(rename = "moreComing", default)]
    more_coming: Option<serde_json::Value>,
    #[serde(flatten)]
    error: ServerError,
}

impl TopError for ZoneAnswer {
    fn top_error(&self) -> Option<(String, String)> {
        if let Some(top) = self.error.code_and_reason() {
            return Some(top);
        }
        // A transient error inside the zone entry is retried like a top-level one.
        self.zones
            .first()?
            .error
            .code_and_reason()
            .filter(|(code, _)| is_transient_code(code))
    }
}

fn truthy(v: &Option<serde_json::Value>) -> bool {
    v.as_ref().and_then(as_int).unwrap_or(0) != 0
}

impl CloudKitClient {
    /// Zones of one database changed since `sync_token` (all zones without a token).
    pub async fn database_changes(
        &self,
        database: Database,
        sync_token: Option<&str>,
    ) -> Result<DatabaseChanges, CloudKitError> {
        let info = CallInfo::new(format!("{}/changes/database", database.as_str()), None);
        let body = match sync_token {
            Some(t) => serde_json::json!({ "syncToken": t }),
            None => serde_json::json!({}),
        };
        let answer: DatabaseAnswer = self
            .post(&info, database, "changes/database", &body)
            .await?;
        let zones = answer
            .zones
            .into_iter()
            .filter(|z| !truthy(&z.deleted))
            .filter_map(|z| {
                let id = z.zone_id?;
                Some(ChangedZone {
                    library: Library {
                        database: database.as_str().to_string(),
                        zone: id.zone_name?,
                        owner: id.owner_record_name,
                    },
                    sync_token: z.sync_token,
                })
            })
            .collect();
        Ok(DatabaseChanges {
            sync_token: answer.sync_token,
            more_coming: truthy(&answer.more_coming),
            zones,
        })
    }

    /// One page of a zone's change feed after `sync_token` (`None`: from the beginning).
    pub async fn zone_changes(
        &self,
        library: &Library,
        sync_token: Option<&str>,
    ) -> Result<ZoneChanges, CloudKitError> {
        let name = format!("changes/zone ({})", library.zone);
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name.clone(), Some(&library.zone));
        let body = requests::zone_changes_body(library, sync_token, &change_desired_keys());
        let answer: ZoneAnswer = self.post(&info, db, "changes/zone", &body).await?;
        let entry = answer
            .zones
            .into_iter()
            .next()
            .ok_or_else(|| CloudKitError::Protocol {
                call: name.clone(),
                detail: "no zone entry in the answer".into(),
            })?;
        if let Some(code) = entry.error.code {
            let reason = entry.error.reason.unwrap_or_default();
            return match code.as_str() {
                "BAD_REQUEST" => Ok(ZoneChanges::TokenRejected {
                    code,
                    reason,
                    sync_token: entry.sync_token.filter(|t| !t.is_empty()),
                }),
                "ZONE_NOT_FOUND" => Ok(ZoneChanges::ZoneNotFound {
                    reason,
                    sync_token: entry.sync_token.filter(|t| !t.is_empty()),
                }),
                _ if is_web_access_refusal(&code, &reason) => {
                    Err(CloudKitError::WebAccessDisabled {
                        call: name,
                        code,
                        reason,
                    })
                }
                _ => Err(CloudKitError::Server {
                    call: name,
                    code,
                    reason,
                }),
            };
        }
        let mut page = classify_changes(entry.records, &library.zone);
        page.sync_token = entry.sync_token;
        page.more_coming = truthy(&entry.more_coming);
        Ok(ZoneChanges::Page(page))
    }
}

/// Keys a change feed needs: asset fields plus album and membership fields.
fn change_desired_keys() -> Vec<String> {
    let mut keys = requests::asset_desired_keys();
    keys.extend(["albumNameEnc", "albumType", "position"].map(String::from));
    keys
}

/// Turn the records of one change page into changes.
fn classify_changes(records: Vec<Record>, zone: &str) -> ZoneChangePage {
    let mut page = ZoneChangePage {
        records: records.len(),
        ..ZoneChangePage::default()
    };
    let mut masters: HashMap<String, (Record, bool)> = HashMap::new();
    let mut master_order = Vec::new();
    let mut assets = Vec::new();
    for r in records {
        if let Some(skipped) = server_error_skip(&r) {
            page.skipped.push(skipped);
            continue;
        }
        if r.deleted {
            let name = r.name().to_string();
            page.changes.push(match name.split_once("-IN-") {
                Some((asset, album)) => Change::MembershipRemoved {
                    asset_record: asset.to_string(),
                    album_id: album.to_string(),
                },
                None => Change::Removed { record_name: name },
            });
            continue;
        }
        match r.kind() {
            "CPLMaster" => {
                let name = r.name().to_string();
                if masters.insert(name.clone(), (r, false)).is_none() {
                    master_order.push(name);
                }
            }
            "CPLAsset" if r.reference("masterRef").is_some() => assets.push(r),
            "CPLAsset" => page
                .skipped
                .push(skip_entry(r.name(), "CPLAsset without masterRef")),
            "CPLAlbum" => match parse_album(&r, None, zone) {
                AlbumRecord::Album(a) => page.changes.push(Change::Album(a)),
                AlbumRecord::Sentinel => page.ignored += 1,
                AlbumRecord::NotAnAlbum(s) => page.skipped.push(s),
            },
            "CPLContainerRelation" => {
                let (item, container) = relation_ends(&r);
                match (item, container) {
                    (Some(asset_record), Some(album_id)) => page.changes.push(Change::Membership {
                        asset_record,
                        album_id,
                        deleted: r.flag("isDeleted"),
                    }),
                    _ => page.skipped.push(skip_entry(
                        r.name(),
                        "album membership without item or album",
                    )),
                }
            }
            "" => page
                .skipped
                .push(skip_entry(r.name(), "record without recordType")),
            _ => page.ignored += 1,
        }
    }
    for a in assets {
        let master_name = a.reference("masterRef").unwrap_or_default().to_string();
        match masters.get_mut(&master_name) {
            Some((m, used)) => {
                *used = true;
                let built = build_asset(m, &a, zone, &mut page.skipped);
                page.changes.push(Change::Asset(Box::new(built)));
            }
            None => page.changes.push(Change::AssetRecord(AssetRecordChange {
                asset_record: a.name().to_string(),
                master_id: master_name,
                change_tag: a.change_tag.clone(),
                deleted: a.flag("isDeleted"),
                hidden: a.flag("isHidden"),
                favorite: a.flag("isFavorite"),
                date_expunged_ms: a.int("dateExpunged"),
                adjustment_type: a.string("adjustmentType").map(str::to_string),
            })),
        }
    }
    for name in master_order {
        if let Some((_, false)) = masters.get(&name) {
            page.changes.push(Change::MasterRecord { id: name });
        }
    }
    page
}

/// `(asset record, album id)` of a CPLContainerRelation, from its fields or its name.
fn relation_ends(r: &Record) -> (Option<String>, Option<String>) {
    let field = |name: &str| {
        r.string(name)
            .or_else(|| r.reference(name))
            .map(str::to_string)
    };
    let from_name = r.name().split_once("-IN-");
    (
        field("itemId").or_else(|| from_name.map(|(a, _)| a.to_string())),
        field("containerId").or_else(|| from_name.map(|(_, b)| b.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: serde_json::Value) -> Record {
        serde_json::from_value(v).expect("record")
    }

    #[test]
    fn feed_records_become_typed_changes() {
        let records = vec![
            rec(json!({"recordName": "GHI789", "recordType": null, "deleted": true})),
            rec(json!({"recordName": "AAA-IN-BBB", "recordType": null, "deleted": true})),
            rec(
                json!({"recordName": "A1", "recordType": "CPLAsset", "recordChangeTag": "t", "fields": {
                    "masterRef": {"value": {"recordName": "M1"}, "type": "REFERENCE"},
                    "isHidden": {"value": 1, "type": "INT64"},
                    "isDeleted": {"value": null}
                }}),
            ),
            rec(
                json!({"recordName": "PrimarySync-0000-LI", "recordType": "CPLLibraryInfo", "fields": {}}),
            ),
            rec(
                json!({"recordName": "X-IN-ALB", "recordType": "CPLContainerRelation", "fields": {
                    "containerId": {"value": "ALB", "type": "STRING"}, "itemId": {"value": "X", "type": "STRING"}
                }}),
            ),
            rec(
                json!({"recordName": "ALB", "recordType": "CPLAlbum", "fields": {
                    "albumNameEnc": {"value": "SsO2cmc=", "type": "ENCRYPTED_BYTES"}, "albumType": {"value": 0}
                }}),
            ),
            rec(json!({"recordName": "M9", "recordType": "CPLMaster", "fields": {}})),
        ];
        let page = classify_changes(records, "PrimarySync");
        assert_eq!(page.ignored, 1);
        assert!(page.skipped.is_empty());
        assert_eq!(
            page.changes[0],
            Change::Removed {
                record_name: "GHI789".into()
            }
        );
        assert_eq!(
            page.changes[1],
            Change::MembershipRemoved {
                asset_record: "AAA".into(),
                album_id: "BBB".into()
            }
        );
        assert!(
            matches!(&page.changes[2], Change::Membership { asset_record, album_id, deleted: false } if asset_record == "X" && album_id == "ALB")
        );
        assert!(matches!(&page.changes[3], Change::Album(a) if a.name == "Jörg"));
        assert!(
            matches!(&page.changes[4], Change::AssetRecord(c) if c.hidden && !c.deleted && c.master_id == "M1")
        );
        assert_eq!(page.changes[5], Change::MasterRecord { id: "M9".into() });
    }

    #[test]
    fn zone_answers_retry_transient_entry_errors_only() {
        let answer = |v: serde_json::Value| -> ZoneAnswer { serde_json::from_value(v).unwrap() };
        let top = answer(json!({"serverErrorCode": "THROTTLED", "reason": "slow down"}));
        assert_eq!(
            top.top_error(),
            Some(("THROTTLED".into(), "slow down".into()))
        );
        let transient = answer(json!({"zones": [
            {"serverErrorCode": "ZONE_BUSY", "reason": "busy", "records": null}
        ]}));
        assert_eq!(
            transient.top_error(),
            Some(("ZONE_BUSY".into(), "busy".into()))
        );
        let token = answer(json!({"zones": [
            {"serverErrorCode": "BAD_REQUEST", "reason": "bad token", "syncToken": "S"}
        ]}));
        assert_eq!(token.top_error(), None, "handled as a typed outcome");
        assert_eq!(token.zones[0].error.code.as_deref(), Some("BAD_REQUEST"));
        assert_eq!(token.zones[0].sync_token.as_deref(), Some("S"));
        let page = answer(json!({"zones": [{"records": [{"recordName": "A"}], "moreComing": 1}]}));
        assert_eq!(page.top_error(), None);
        assert_eq!(page.zones[0].records.len(), 1);
        assert!(truthy(&page.zones[0].more_coming));
    }
}
