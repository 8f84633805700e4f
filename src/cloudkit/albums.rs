//! The album tree (`CPLAlbumByPositionLive`): top-level albums and folders, then each folder's
//! children through the `parentId` filter, recursively, following `continuationMarker`.

use std::collections::{HashSet, VecDeque};

use crate::model::{Album, Library};

use super::calls::{RecordsAnswer, database_of};
use super::client::{CallInfo, CloudKitClient};
use super::error::CloudKitError;
use super::parse::{Skipped, server_error_skip, skip_entry};
use super::records::Record;
use super::requests;

/// Record names of the sentinel folders that are not user albums.
const SENTINELS: [&str; 2] = ["----Root-Folder----", "----Project-Root-Folder----"];
/// `albumType` of a folder.
const FOLDER_TYPE: i64 = 3;
/// Bound on folders visited, against a server that loops.
const MAX_FOLDERS: usize = 10_000;
/// Bound on continuation pages of one query.
const MAX_PAGES_PER_QUERY: usize = 10_000;

/// Every album and folder of a library.
#[derive(Debug, Default)]
pub struct AlbumListing {
    /// Albums and folders, parents before their children, each once.
    pub albums: Vec<Album>,
    /// Records of the listing that are not albums, with the reason.
    pub skipped: Vec<Skipped>,
    pub sync_token: Option<String>,
}

/// What one CPLAlbum-listing record is.
pub(crate) enum AlbumRecord {
    Album(Album),
    Sentinel,
    NotAnAlbum(Skipped),
}

/// Parse one record of an album listing. `parent` is the folder that was queried, if any.
pub(crate) fn parse_album(r: &Record, parent: Option<&str>, zone: &str) -> AlbumRecord {
    if let Some(skipped) = server_error_skip(r) {
        return AlbumRecord::NotAnAlbum(skipped);
    }
    if r.kind() != "CPLAlbum" {
        let reason = format!("unexpected record type {:?} in the album list", r.kind());
        return AlbumRecord::NotAnAlbum(skip_entry(r.name(), reason));
    }
    let id = r.name();
    if SENTINELS.contains(&id) {
        return AlbumRecord::Sentinel;
    }
    if id.is_empty() {
        return AlbumRecord::NotAnAlbum(skip_entry("", "CPLAlbum without recordName"));
    }
    let name = match r.text("albumNameEnc") {
        Ok(Some(n)) if !n.is_empty() => n,
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                _ => "no albumNameEnc".into(),
            };
            tracing::warn!(album = %id, problem = %why, "album without a usable name; using its record name");
            id.to_string()
        }
    };
    AlbumRecord::Album(Album {
        id: id.to_string(),
        zone: r.zone_name.clone().unwrap_or_else(|| zone.to_string()),
        name,
        parent_id: r
            .string("parentId")
            .or_else(|| r.reference("parentId"))
            .map(str::to_string)
            .or_else(|| parent.map(str::to_string))
            .filter(|p| !SENTINELS.contains(&p.as_str())),
        is_folder: r.int("albumType") == Some(FOLDER_TYPE),
        deleted: r.flag("isDeleted") || r.deleted,
        position: r.int("position").unwrap_or(0),
    })
}

/// The albums of one standalone album-list answer (e.g. a recorded one), sentinels left out.
pub fn parse_album_records(records: &[Record], zone: &str) -> AlbumListing {
    let mut listing = AlbumListing::default();
    for r in records {
        match parse_album(r, None, zone) {
            AlbumRecord::Album(a) => listing.albums.push(a),
            AlbumRecord::Sentinel => {}
            AlbumRecord::NotAnAlbum(s) => listing.skipped.push(s),
        }
    }
    listing
}

impl CloudKitClient {
    /// The album tree of a library. Shared libraries without an album index give an empty list.
    pub async fn list_albums(&self, library: &Library) -> Result<AlbumListing, CloudKitError> {
        let mut listing = AlbumListing::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut folders: VecDeque<Option<String>> = VecDeque::from([None]);
        let mut visited_folders = 0usize;
        while let Some(parent) = folders.pop_front() {
            visited_folders += 1;
            if visited_folders > MAX_FOLDERS {
                return Err(CloudKitError::Protocol {
                    call: format!("album list ({})", library.zone),
                    detail: format!("more than {MAX_FOLDERS} folders; giving up"),
                });
            }
            let records = match self
                .album_query(library, parent.as_deref(), &mut listing.sync_token)
                .await
            {
                Ok(r) => r,
                Err(CloudKitError::Server { code, reason, .. })
                    if parent.is_none()
                        && library.zone != "PrimarySync"
                        && code == "BAD_REQUEST"
                        && reason.contains("Index has invalid data") =>
                {
                    tracing::info!(zone = %library.zone, "this library has no album index; no albums");
                    return Ok(listing);
                }
                Err(e) => return Err(e),
            };
            for r in &records {
                match parse_album(r, parent.as_deref(), &library.zone) {
                    AlbumRecord::Album(album) => {
                        if !seen.insert(album.id.clone()) {
                            continue;
                        }
                        if album.is_folder {
                            folders.push_back(Some(album.id.clone()));
                        }
                        listing.albums.push(album);
                    }
                    AlbumRecord::Sentinel => {}
                    AlbumRecord::NotAnAlbum(s) => listing.skipped.push(s),
                }
            }
        }
        Ok(listing)
    }

    /// Every page of one album-list query.
    async fn album_query(
        &self,
        library: &Library,
        parent: Option<&str>,
        token: &mut Option<String>,
    ) -> Result<Vec<Record>, CloudKitError> {
        let name = match parent {
            None => format!("album list ({})", library.zone),
            Some(p) => format!("album list of folder {p} ({})", library.zone),
        };
        let db = database_of(&name, library)?;
        let info = CallInfo::new(name.clone(), Some(&library.zone));
        let mut records = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES_PER_QUERY {
            let body = requests::album_list_body(library, parent, marker.as_deref());
            let answer: RecordsAnswer = self.post(&info, db, "records/query", &body).await?;
            records.extend(answer.records);
            if token.is_none() {
                *token = answer.sync_token;
            }
            match answer.continuation_marker {
                Some(next) if Some(&next) == marker.as_ref() => {
                    return Err(CloudKitError::Protocol {
                        call: name,
                        detail: "the server repeated a continuationMarker".into(),
                    });
                }
                Some(next) => marker = Some(next),
                None => return Ok(records),
            }
        }
        Err(CloudKitError::Protocol {
            call: name,
            detail: format!("more than {MAX_PAGES_PER_QUERY} continuation pages"),
        })
    }
}
