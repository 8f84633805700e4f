//! Download URLs: CloudKit access for the run (re-authenticating when the session expires),
//! batched `records/lookup` calls that give planned files fresh URLs ahead of the workers, and
//! the [`UrlProvider`] a worker hands to `fetch::download` (asked again when a URL expired).
//!
//! A page's URLs are used while they are fresh (the listing streams them to the workers);
//! everything planned later gets its URL here, many assets per call, a few calls in flight,
//! so workers do not wait on lookups.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::auth::{AccountSession, AuthError};
use crate::cloudkit::{CloudKitClient, CloudKitError, ListedAsset};
use crate::fetch::{FetchError, UrlProvider};
use crate::model::Library;

use super::engine::RunContext;
use super::worker::Job;

/// Assets per lookup call (two records each).
pub const LOOKUP_BATCH: usize = 100;
/// Lookup calls in flight at once.
pub const LOOKUPS_IN_FLIGHT: usize = 3;
/// How long a small batch waits for more planned files before its lookup is sent.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Re-authentications in a row (without a successful call between) before giving up.
const MAX_CONSECUTIVE_REAUTHS: u32 = 3;

/// Why CloudKit access failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Signing in again failed: the run cannot continue.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The call failed (after the client's retries).
    #[error(transparent)]
    CloudKit(#[from] CloudKitError),
}

/// Signed-in CloudKit access shared by the tasks of a run.
pub struct Api {
    session: AccountSession,
    client: RwLock<CloudKitClient>,
    consecutive_reauths: AtomicU32,
    /// One more than the newest session generation counted in `consecutive_reauths`: the
    /// lookups in flight all see one expiry, and it counts once.
    counted_generation: AtomicU64,
}

impl Api {
    /// Access for `session`.
    pub fn new(session: &AccountSession) -> Result<Api, CloudKitError> {
        Ok(Api {
            session: session.clone(),
            client: RwLock::new(CloudKitClient::for_session(session)?),
            consecutive_reauths: AtomicU32::new(0),
            counted_generation: AtomicU64::new(0),
        })
    }

    /// The session (its HTTP client carries the cookies the CDN wants).
    pub fn session(&self) -> &AccountSession {
        &self.session
    }

    fn client(&self) -> CloudKitClient {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sign in again after a refusal seen at `generation` (shared by every task: one sign-in
    /// runs, the others wait for it). Fails after too many in a row.
    pub async fn reauthenticate(&self, generation: u64) -> Result<(), AuthError> {
        let first_to_see_it = self
            .counted_generation
            .fetch_max(generation + 1, Ordering::AcqRel)
            <= generation;
        let n = if first_to_see_it {
            self.consecutive_reauths.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            self.consecutive_reauths.load(Ordering::Acquire)
        };
        if n > MAX_CONSECUTIVE_REAUTHS {
            return Err(AuthError::Setup(format!(
                "iCloud refused the session {n} times in a row after signing in again"
            )));
        }
        tracing::info!("session expired; signing in again");
        self.session.reauthenticate(generation).await?;
        match CloudKitClient::for_session(&self.session) {
            Ok(c) => *self.client.write().unwrap_or_else(|e| e.into_inner()) = c,
            Err(e) => return Err(AuthError::Setup(e.to_string())),
        }
        Ok(())
    }

    /// A call succeeded: the session works.
    pub fn session_works(&self) {
        self.consecutive_reauths.store(0, Ordering::Relaxed);
    }

    /// The current records of some assets, by (master record name, asset record name).
    pub async fn lookup(
        &self,
        library: &Library,
        pairs: &[(String, String)],
    ) -> Result<HashMap<String, ListedAsset>, ApiError> {
        loop {
            let seen = self.session.generation();
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(m, a)| (m.as_str(), a.as_str()))
                .collect();
            match self.client().refresh_assets(library, &refs).await {
                Ok(found) => {
                    self.session_works();
                    return Ok(found
                        .assets
                        .into_iter()
                        .map(|a| (a.asset.id.clone(), a))
                        .collect());
                }
                Err(e) if e.needs_reauthentication() => self.reauthenticate(seen).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Api {
    /// Move an asset to Recently Deleted (`records/modify` of its CPLAsset).
    pub async fn move_to_recently_deleted(
        &self,
        library: &Library,
        asset_record: &str,
        change_tag: Option<&str>,
    ) -> Result<(), ApiError> {
        loop {
            let seen = self.session.generation();
            match self
                .client()
                .move_to_recently_deleted(library, asset_record, change_tag)
                .await
            {
                Ok(_) => {
                    self.session_works();
                    return Ok(());
                }
                Err(e) if e.needs_reauthentication() => self.reauthenticate(seen).await?,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Gives planned files their URLs: reads jobs from `rx` in batches, looks their assets up
/// (a few lookups in flight), and passes each job on to the workers, or fails it when iCloud
/// no longer has it.
pub(super) async fn resolve(ctx: Arc<RunContext>, rx: mpsc::Receiver<Job>, tx: mpsc::Sender<Job>) {
    let batches = futures_util::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut batch = vec![first];
        let deadline = Instant::now() + BATCH_WAIT;
        while batch.len() < LOOKUP_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, rx.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        Some((batch, rx))
    });
    let ctx2 = ctx.clone();
    let resolved = batches
        .map(move |batch| lookup_batch(ctx2.clone(), batch))
        .buffered(LOOKUPS_IN_FLIGHT);
    let mut resolved = std::pin::pin!(resolved);
    while let Some(jobs) = resolved.next().await {
        for job in jobs {
            if ctx.stop.is_cancelled() {
                return;
            }
            if tx.send(job).await.is_err() {
                return;
            }
        }
    }
}

/// Look up the assets of `batch` and attach each job's URL; jobs that cannot get one are
/// recorded as failed here.
async fn lookup_batch(ctx: Arc<RunContext>, batch: Vec<Job>) -> Vec<Job> {
    if ctx.stop.is_cancelled() {
        return Vec::new();
    }
    let mut by_library: HashMap<String, Vec<Job>> = HashMap::new();
    for job in batch {
        by_library
            .entry(job.library.zone.clone())
            .or_default()
            .push(job);
    }
    let mut ready = Vec::new();
    for (_, jobs) in by_library {
        let library = jobs[0].library.clone();
        let mut pairs: Vec<(String, String)> = jobs
            .iter()
            .map(|j| (j.asset.asset.id.clone(), j.asset.asset.asset_record.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        match ctx.api.lookup(&library, &pairs).await {
            Ok(found) => {
                for mut job in jobs {
                    match job_url(&job, found.get(&job.asset.asset.id)) {
                        Ok(url) => {
                            job.url = Some(url);
                            ready.push(job);
                        }
                        Err(error) => ctx.fail(job, error, false),
                    }
                }
            }
            Err(ApiError::Auth(e)) => {
                ctx.fatal(super::MirrorError::Auth(e));
                return Vec::new();
            }
            Err(ApiError::CloudKit(e)) => {
                let error = format!("could not get a download URL: {e}");
                for job in jobs {
                    ctx.fail(job, error.clone(), true);
                }
            }
        }
    }
    ready
}

/// The URL of the job's version in a fresh listing of its asset.
fn job_url(job: &Job, listed: Option<&ListedAsset>) -> Result<String, String> {
    let Some(listed) = listed else {
        return Err("the photo is no longer in iCloud".into());
    };
    let Some(d) = listed.downloads.iter().find(|d| d.version.kind == job.kind) else {
        return Err(format!(
            "iCloud no longer lists a {} version of this photo",
            job.kind.as_str()
        ));
    };
    if d.version.checksum != job.checksum || d.version.size != job.size {
        return Err("the photo changed in iCloud during the run; the next run fetches it".into());
    }
    Ok(d.download_url.clone())
}

/// The URLs of one job for `fetch::download`: the one it came with, then fresh lookups.
pub(super) struct JobUrls<'a> {
    pub ctx: &'a RunContext,
    pub job: &'a Job,
    pub first: Mutex<Option<String>>,
}

impl UrlProvider for JobUrls<'_> {
    fn url(&self, refresh: bool) -> BoxFuture<'_, Result<String, FetchError>> {
        Box::pin(async move {
            if !refresh
                && let Some(url) = self.first.lock().unwrap_or_else(|e| e.into_inner()).take()
            {
                return Ok(url);
            }
            let asset = &self.job.asset.asset;
            let pairs = [(asset.id.clone(), asset.asset_record.clone())];
            match self.ctx.api.lookup(&self.job.library, &pairs).await {
                Ok(found) => job_url(self.job, found.get(&asset.id)).map_err(FetchError::NoUrl),
                Err(ApiError::Auth(e)) => {
                    Err(FetchError::NoUrl(format!("signing in again failed: {e}")))
                }
                Err(ApiError::CloudKit(e)) => Err(FetchError::Network(format!(
                    "could not get a fresh download URL: {e}"
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthOptions, Authenticator, Domain, Endpoints, PasswordSources};
    use crate::sim::{Sim, SimConfig};

    /// The lookups in flight when a session expires all see that one expiry: it is one sign-in
    /// again, not one per lookup (three lookups used up the allowance of re-authentications in a
    /// row, and a run stopped at the next expiry with most files never tried).
    #[tokio::test]
    async fn one_expiry_seen_by_several_calls_counts_once() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sim = Sim::start(SimConfig {
            assets: 1,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let account = sim.account();
        let mut opts = AuthOptions::new(
            &account.username,
            PasswordSources::literal(&account.password),
            data.path().to_path_buf(),
        );
        opts.endpoints = Endpoints::custom(sim.endpoint(), Domain::Com).unwrap();
        let session = Authenticator::resume(opts).await.unwrap();
        let api = Api::new(&session).unwrap();

        let seen = session.generation();
        for _ in 0..LOOKUPS_IN_FLIGHT {
            api.reauthenticate(seen).await.unwrap();
        }
        assert_eq!(session.generation(), seen + 1, "one sign-in for one expiry");
        // Later expiries, with no call working in between, still count up to the limit.
        for _ in 1..MAX_CONSECUTIVE_REAUTHS {
            api.reauthenticate(session.generation()).await.unwrap();
        }
        let refused = api.reauthenticate(session.generation()).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}
