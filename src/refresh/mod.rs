//! Bringing the catalog up to date with iCloud: the one place where `cloudkit` meets `catalog`.
//!
//! A first refresh of a library lists it in full (All Photos, Hidden and Recently Deleted, which
//! together hold every asset once, then the album tree and each album's members). Later ones ask
//! `changes/database` whether the zone changed at all (one call when nothing did), then follow
//! `changes/zone` from the stored token. A rejected token falls back to a full listing with a
//! warning. Tokens only advance in the same transaction as the pages they cover.
//!
//! Selecting more than the personal library takes a listing of the account's zones. A refresher
//! lists them on its first refresh; its later ones (a mount's polls, a watching sync, through
//! clones of the same [`RefreshOptions`]) list them again only when the private `changes/database` names a change, so that a poll which finds
//! nothing costs that one call. A library new to the account is such a change: iCloud lists
//! `SharedSync-*` zones in the private database (kei's live observation). One listed only in
//! the shared database, as icloudpd's older recordings show, is found at the next change of
//! the private database or the next start.
//!
//! Pages are stored as they arrive and handed to a [`PageSink`] right after, so a sync can start
//! downloading while the listing is still running (the URLs in a page are fresh).
//!
//! A session that expires mid-refresh is renewed once per failure (no two-factor while the trust
//! token is good) and the interrupted step is repeated; nothing already stored is lost.

mod full;
mod incremental;
mod progress;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::auth::{AccountSession, AuthError};
use crate::catalog::{Catalog, CatalogError, LibraryId};
use crate::cloudkit::{CloudKitClient, CloudKitError, Database, ListedAsset};
use crate::model::Library;

pub use progress::Progress;

/// Which libraries to refresh (`--library`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySelector {
    /// The personal library (`PrimarySync`).
    Primary,
    /// Every shared library (`SharedSync-*`).
    Shared,
    /// The personal library and every shared library.
    All,
    /// One zone by name.
    Zone(String),
}

impl LibrarySelector {
    /// Parse `--library`: `primary`, `shared`, `all`, or a zone name.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "" | "primary" | "PrimarySync" => LibrarySelector::Primary,
            "shared" => LibrarySelector::Shared,
            "all" => LibrarySelector::All,
            zone => LibrarySelector::Zone(zone.to_string()),
        }
    }
}

/// What a refresh should do.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    pub libraries: LibrarySelector,
    /// List in full even when a sync token is stored (`--full`, `--no-incremental`).
    pub full: bool,
    /// Forget stored tokens first (`--reset-sync-token`).
    pub reset_sync_token: bool,
    /// Show a progress line on stderr when it is a terminal.
    pub progress: bool,
    /// The libraries the last zone listing made with these options selected, shared by their
    /// clones (a mount's polls, a watching sync's cycles).
    pub listed: ListedLibraries,
}

/// What the last zone listing of a refresher selected, and for which catalog. Kept in memory,
/// not in the catalog: a catalog that a `sync` of the personal library filled has a database
/// token but not the shared libraries, so only a listing made by this refresher for the same
/// selection vouches that the known libraries are all there is.
#[derive(Debug, Clone, Default)]
pub struct ListedLibraries(Arc<Mutex<Option<Listing>>>);

/// A catalog and the libraries a zone listing selected for it.
type Listing = (PathBuf, Vec<Library>);

impl ListedLibraries {
    fn get(&self, catalog: &Path) -> Option<Vec<Library>> {
        let listed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        listed
            .as_ref()
            .filter(|(c, _)| c == catalog)
            .map(|(_, libraries)| libraries.clone())
    }

    fn set(&self, catalog: &Path, libraries: &[Library]) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((catalog.to_path_buf(), libraries.to_vec()));
    }
}

impl Default for RefreshOptions {
    fn default() -> Self {
        RefreshOptions {
            libraries: LibrarySelector::Primary,
            full: false,
            reset_sync_token: false,
            progress: false,
            listed: ListedLibraries::default(),
        }
    }
}

/// Receives the assets of each page right after the page is stored in the catalog.
/// `assets` carry fresh download URLs ([`ListedAsset::downloads`]).
pub trait PageSink: Send {
    /// Called for every stored page (full listing) or batch of changed assets (incremental).
    fn assets(&mut self, library: &Library, assets: &[ListedAsset]);

    /// False when the sink never reads download URLs: a full listing then leaves
    /// [`ListedAsset::downloads`] empty (less to build and copy for every version).
    fn wants_urls(&self) -> bool {
        true
    }

    /// True when the sink reads the catalog while the listing runs (it looks up each page's
    /// assets as they arrive), so every page must be committed at once. False lets a full
    /// listing store its pages in fewer, larger transactions
    /// ([`crate::catalog::Catalog::upsert_page_batched`]), and a first one go without the
    /// record-id index until it ends.
    fn reads_catalog_while_listing(&self) -> bool {
        true
    }
}

/// A sink that drops everything (a plain `refresh`).
pub struct NoSink;

impl PageSink for NoSink {
    fn assets(&mut self, _library: &Library, _assets: &[ListedAsset]) {}

    fn wants_urls(&self) -> bool {
        false
    }

    fn reads_catalog_while_listing(&self) -> bool {
        false
    }
}

/// How a library was brought up to date. In JSON, `"mode"` is always a string, with a
/// `"reason"` beside it for a full listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RefreshMode {
    /// Listed in full (first refresh, `--full`, or a fallback: see `reason`).
    Full { reason: String },
    /// Followed the change feed.
    Incremental,
    /// `changes/database` said the zone did not change.
    Unchanged,
}

/// The outcome for one library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LibraryReport {
    pub library: Library,
    #[serde(skip)]
    pub library_id: LibraryId,
    #[serde(flatten)]
    pub mode: RefreshMode,
    /// Assets listed (full) or changed records applied (incremental).
    pub seen: u64,
    pub added: u64,
    pub changed: u64,
    /// Assets that left iCloud (purged, or not seen by a complete full listing).
    pub removed: u64,
    /// Records that could not become assets (each stored with its reason).
    pub skipped: u64,
    /// Albums listed (full), or albums created, changed or removed (incremental).
    pub albums: u64,
    /// Album memberships added or removed (incremental).
    pub memberships: u64,
    /// In reports as `elapsed_secs`, a number of seconds, as the sync's own `elapsed_secs`.
    #[serde(rename = "elapsed_secs", serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(elapsed: &Duration, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_f64(elapsed.as_secs_f64())
}

/// The outcome of a refresh.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RefreshReport {
    pub libraries: Vec<LibraryReport>,
}

/// Why a refresh failed. Nothing stored before the failure is lost.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    CloudKit(#[from] CloudKitError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no library matches --library {0:?} (run `icloudpd-rs list libraries`)")]
    NoSuchLibrary(String),
}

impl RefreshError {
    /// True when the user must sign in again.
    pub fn is_authentication_problem(&self) -> bool {
        match self {
            RefreshError::Auth(e) => e.is_authentication_problem(),
            _ => false,
        }
    }

    /// True when the command exits with code 3 ([`AuthError::exits_as_sign_in_failure`]).
    pub fn exits_as_sign_in_failure(&self) -> bool {
        match self {
            RefreshError::Auth(e) => e.exits_as_sign_in_failure(),
            _ => false,
        }
    }
}

/// Signed-in CloudKit access that renews itself when the session expires.
pub struct Connection<'a> {
    session: &'a AccountSession,
    client: CloudKitClient,
    reauths: u32,
}

/// Re-authentications in a row (no call answered under the renewed session between them)
/// before giving up: a long listing may see the session expire several times, a refused
/// sign-in loops here.
const MAX_REAUTHS: u32 = 3;

impl<'a> Connection<'a> {
    /// A client for the session's current CloudKit URL.
    pub fn new(session: &'a AccountSession) -> Result<Self, RefreshError> {
        Ok(Connection {
            session,
            client: CloudKitClient::for_session(session)?,
            reauths: 0,
        })
    }

    /// The current client (rebuilt after each re-authentication).
    pub fn client(&self) -> &CloudKitClient {
        &self.client
    }

    /// Run `op`; when the session expired, sign in again (once per failure, bounded) and repeat.
    pub async fn call<T, F, Fut>(&mut self, mut op: F) -> Result<T, RefreshError>
    where
        F: FnMut(CloudKitClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudKitError>>,
    {
        loop {
            let seen = self.session.generation();
            match op(self.client.clone()).await {
                Err(e) if e.needs_reauthentication() => self.renew(seen, e).await?,
                other => {
                    if other.is_ok() {
                        self.session_works();
                    }
                    return other.map_err(RefreshError::from);
                }
            }
        }
    }

    /// Sign in again after `error` (a session-expired answer seen at `generation`).
    pub async fn renew(
        &mut self,
        generation: u64,
        error: CloudKitError,
    ) -> Result<(), RefreshError> {
        if self.session.generation() != generation {
            // Someone else already signed in again since that call started (a walk started
            // before the renewal): only the client needs to be current.
            self.client = CloudKitClient::for_session(self.session)?;
            return Ok(());
        }
        if self.client.answered() > 0 {
            // This session answered calls (walks running ahead report theirs late): a new
            // expiry, not a sign-in that never works.
            self.reauths = 0;
        }
        if self.reauths >= MAX_REAUTHS {
            return Err(error.into());
        }
        self.reauths += 1;
        tracing::info!(error = %error, "session expired; signing in again");
        self.session.reauthenticate(generation).await?;
        self.client = CloudKitClient::for_session(self.session)?;
        Ok(())
    }

    /// A call succeeded after the last renewal: renewals count from zero again.
    pub fn session_works(&mut self) {
        self.reauths = 0;
    }

    /// The session.
    pub fn session(&self) -> &AccountSession {
        self.session
    }
}

/// Bring the catalog up to date for the selected libraries, feeding `sink` as pages are stored.
pub async fn refresh(
    session: &AccountSession,
    catalog: &mut Catalog,
    options: &RefreshOptions,
    sink: &mut dyn PageSink,
) -> Result<RefreshReport, RefreshError> {
    let mut conn = Connection::new(session)?;
    // One `changes/database` call per database: which zones changed since the stored token,
    // and the token to store once every library of that database is up to date. It is taken
    // before any listing, so changes made meanwhile are seen by the next refresh.
    let mut databases: Vec<DatabaseState> = Vec::new();
    let private = Database::Private.as_str();
    let libraries = match options.listed.get(catalog.path()) {
        Some(known) => {
            let state = database_state(&mut conn, catalog, private, options).await?;
            let quiet = state.changed_zones.as_ref().is_some_and(Vec::is_empty);
            databases.push(state);
            if quiet {
                known
            } else {
                select_libraries(&mut conn, catalog.path(), options).await?
            }
        }
        None => select_libraries(&mut conn, catalog.path(), options).await?,
    };
    for library in &libraries {
        if databases.iter().any(|d| d.name == library.database) {
            continue;
        }
        databases.push(database_state(&mut conn, catalog, &library.database, options).await?);
    }
    let mut report = RefreshReport::default();
    for library in libraries {
        let id = catalog.upsert_library(&library)?;
        if options.reset_sync_token {
            catalog.set_zone_token(id, None)?;
        }
        let token = catalog.zone_token(id)?;
        let db = databases
            .iter()
            .find(|d| d.name == library.database)
            .expect("a state per database");
        let unchanged = db
            .changed_zones
            .as_ref()
            .is_some_and(|zones| !zones.contains(&library.zone));
        let lib_report = match (options.full, token) {
            (true, _) => {
                full::run(
                    &mut conn,
                    catalog,
                    &library,
                    id,
                    "asked for a full listing",
                    options,
                    sink,
                )
                .await?
            }
            (false, None) => {
                full::run(
                    &mut conn,
                    catalog,
                    &library,
                    id,
                    "first listing",
                    options,
                    sink,
                )
                .await?
            }
            (false, Some(_)) if unchanged => unchanged_report(catalog, &library, id)?,
            (false, Some(token)) => {
                match incremental::run(&mut conn, catalog, &library, id, &token, sink).await? {
                    incremental::Outcome::Done(r) => r,
                    incremental::Outcome::NeedsFull(reason) => {
                        tracing::warn!(zone = %library.zone, %reason, "change feed unusable; listing the library in full");
                        full::run(&mut conn, catalog, &library, id, &reason, options, sink).await?
                    }
                }
            }
        };
        if lib_report.skipped > 0 {
            tracing::warn!(zone = %library.zone, records = lib_report.skipped, "records iCloud sent could not become files (`icloudpd-rs status` says which and why)");
        }
        report.libraries.push(lib_report);
    }
    for db in &databases {
        if let Some(token) = &db.next_token {
            catalog.set_database_token(&db.name, Some(token))?;
        }
    }
    let _ = session.persist().await;
    Ok(report)
}

/// What `changes/database` said about one database.
struct DatabaseState {
    name: String,
    /// Zones changed since the stored token; `None` when unknown (no usable token).
    changed_zones: Option<Vec<String>>,
    /// Token to store after a successful refresh.
    next_token: Option<String>,
}

async fn database_state(
    conn: &mut Connection<'_>,
    catalog: &Catalog,
    name: &str,
    options: &RefreshOptions,
) -> Result<DatabaseState, RefreshError> {
    let Some(database) = Database::parse(name) else {
        return Ok(DatabaseState {
            name: name.to_string(),
            changed_zones: None,
            next_token: None,
        });
    };
    let stored = if options.full || options.reset_sync_token {
        None
    } else {
        catalog.database_token(name)?
    };
    let answer = conn
        .call(|c| {
            let stored = stored.clone();
            async move { c.database_changes(database, stored.as_deref()).await }
        })
        .await;
    let changes = match answer {
        Ok(changes) => changes,
        Err(RefreshError::CloudKit(e)) => {
            // A refused database token only costs the shortcut: the zone feeds still work.
            tracing::warn!(database = name, error = %e, "changes/database failed; checking each library");
            return Ok(DatabaseState {
                name: name.to_string(),
                changed_zones: None,
                next_token: None,
            });
        }
        Err(e) => return Err(e),
    };
    let changed_zones = match (&stored, changes.more_coming) {
        (Some(_), false) => Some(
            changes
                .zones
                .iter()
                .map(|z| z.library.zone.clone())
                .collect(),
        ),
        _ => None,
    };
    Ok(DatabaseState {
        name: name.to_string(),
        changed_zones,
        next_token: changes.sync_token,
    })
}

/// Record that `library` was confirmed unchanged.
fn unchanged_report(
    catalog: &mut Catalog,
    library: &Library,
    id: LibraryId,
) -> Result<LibraryReport, RefreshError> {
    let run = catalog.begin_run(id, crate::catalog::RunKind::Incremental, Some(0))?;
    catalog.finish_run(run, crate::catalog::RunStatus::Completed, None)?;
    Ok(LibraryReport {
        library: library.clone(),
        library_id: id,
        mode: RefreshMode::Unchanged,
        seen: 0,
        added: 0,
        changed: 0,
        removed: 0,
        skipped: 0,
        albums: 0,
        memberships: 0,
        elapsed: Duration::ZERO,
    })
}

/// The libraries the options select (remembered in `options.listed` when it took a zone
/// listing).
async fn select_libraries(
    conn: &mut Connection<'_>,
    catalog: &Path,
    options: &RefreshOptions,
) -> Result<Vec<Library>, RefreshError> {
    let selector = &options.libraries;
    if *selector == LibrarySelector::Primary {
        return Ok(vec![Library::primary()]);
    }
    let all = conn
        .call(|c| async move { c.list_libraries().await })
        .await?;
    let usable = |l: &Library| l.zone == "PrimarySync" || l.zone.starts_with("SharedSync-");
    let picked: Vec<Library> = match selector {
        LibrarySelector::Primary => unreachable!("handled above"),
        LibrarySelector::All => all.into_iter().filter(usable).collect(),
        LibrarySelector::Shared => all
            .into_iter()
            .filter(|l| l.zone.starts_with("SharedSync-"))
            .collect(),
        LibrarySelector::Zone(z) => all.into_iter().filter(|l| &l.zone == z).collect(),
    };
    if picked.is_empty() {
        let name = match selector {
            LibrarySelector::Zone(z) => z.clone(),
            LibrarySelector::Shared => "shared".into(),
            _ => "all".into(),
        };
        return Err(RefreshError::NoSuchLibrary(name));
    }
    options.listed.set(catalog, &picked);
    Ok(picked)
}
