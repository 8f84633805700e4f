//! The typed client of the iCloud Photos CloudKit database (`ckdatabasews`): requests, retries
//! and error classification, record parsing into [`crate::model`] types, streaming enumeration
//! of asset indexes, album trees, change feeds, deletes and URL refreshes.
//!
//! It never touches disk or SQLite: callers receive parsed pages and store them. Download URLs
//! travel beside the model ([`ListedAsset::downloads`]), never inside it.
//!
//! # Using it
//!
//! Build a client with [`CloudKitClient::for_session`]. Transient failures are retried inside;
//! a [`CloudKitError::SessionExpired`] is returned for the caller to sign in again
//! (`AccountSession::reauthenticate` with the generation read before the call), rebuild the
//! client (the service URL may change) and repeat the call or restart the walk.
//!
//! A full listing: [`CloudKitClient::walk`] an index, store each page as it arrives, then
//! [`IndexWalk::finish`]; only an `Ok` summary means the listing is complete, and its
//! `sync_token` (taken before the first page) is the token to keep for
//! [`CloudKitClient::zone_changes`]. Assets whose download URL has expired are fetched again
//! with [`CloudKitClient::refresh_assets`].
//!
//! Layout:
//! - [`client`]: the transport (one POST, classification, bounded retries with backoff);
//! - [`requests`]: databases, the catalogue of indexes ([`Index`]) and the request bodies;
//! - [`records`]: the record envelope and lenient field access;
//! - [`fields`]: compact decoding of the fields the client reads (the hot path);
//! - [`plist`]: the binary property lists inside `locationEnc` / `keywordsEnc`;
//! - [`parse`]: a CPLMaster + CPLAsset pair into an asset with its versions and metadata;
//! - [`pairing`]: pairing the two records within an answer and across a walk's pages, skips;
//! - [`calls`]: zones, indexing state, counts, one page, delete, lookup;
//! - [`albums`]: the album and folder tree;
//! - [`enumerate`]: parallel, streaming walks of an index;
//! - [`changes`]: `changes/database` and `changes/zone`;
//! - [`error`]: the error type.

pub mod albums;
pub mod calls;
pub mod changes;
pub mod client;
pub mod enumerate;
pub mod error;
mod field_names;
pub mod fields;
pub mod pairing;
pub mod parse;
pub mod plist;
pub mod records;
pub mod requests;

pub use albums::{AlbumListing, parse_album_records};
pub use calls::{IndexCount, IndexingState, Modified, Page, Refreshed};
pub use changes::{
    AssetRecordChange, Change, ChangedZone, DatabaseChanges, ZoneChangePage, ZoneChanges,
};
pub use client::{ClientParams, CloudKitClient, RetryPolicy};
pub use enumerate::{IndexWalk, WalkOptions, WalkProgress, WalkSummary};
pub use error::CloudKitError;
pub use pairing::{ParsedRecords, parse_records};
pub use parse::{ListedAsset, Skipped, Urls};
pub use records::Record;
pub use requests::{Database, Index, SmartAlbum};
