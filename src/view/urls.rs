//! Download URLs for the mount's reads: `records/lookup` of the asset together with the assets
//! listed after it ([`BatchHint`]: a directory walk costs one lookup per few dozen photos), one
//! call in flight per asset however many readers want it (single flight), answers cached
//! until the URL's own expiry (`e=` parameter) minus a margin, a session refused by iCloud
//! renewed once per call, and the fresh URLs of every page a refresh lists taken for free
//! ([`UrlSink`]).
//!
//! The CDN is never trusted with a stale URL for long: the fetcher asks again with
//! `refresh = true` when one is refused, which always makes a new lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::session_slot::SessionSlot;
use crate::auth::AccountSession;
use crate::catalog::AssetKey;
use crate::cloudkit::{CloudKitClient, CloudKitError, ListedAsset};
use crate::fetch::{FetchError, UrlProvider};
use crate::model::{Library, VersionKind};
use crate::refresh::PageSink;

/// A URL is used until this long before the expiry it carries.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);
/// Lifetime assumed for a URL whose expiry cannot be read.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(20 * 60);
/// Cached URLs kept at most (about 300 bytes each).
const MAX_CACHED: usize = 100_000;

/// (zone, CPLMaster record name, version kind).
type CacheKey = (String, String, VersionKind);

#[derive(Clone)]
struct CachedUrl {
    checksum: String,
    size: u64,
    url: String,
    good_until: SystemTime,
}

/// Assets looked up in one call, by CPLMaster record name.
type LookupResult = Result<Arc<HashMap<String, ListedAsset>>, Arc<String>>;
/// Assets looked up along with the one a reader needs, at most.
const BATCH: usize = 48;

/// Suggests other assets to look up along with one (those a reader is likely to open next).
pub trait BatchHint: Send + Sync {
    /// Up to `n` (CPLMaster, CPLAsset) record names of assets of the same library.
    fn companions(&self, asset: AssetKey, n: usize) -> Vec<(String, String)>;
}
/// Lookups in flight, by (zone, CPLMaster record name).
type InFlight = HashMap<(String, String), Shared<BoxFuture<'static, LookupResult>>>;

/// Counters for tests and the status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlBrokerStats {
    /// `records/lookup` calls made.
    pub lookups: u64,
    /// URLs answered from the cache.
    pub cache_hits: u64,
    /// Times the session was renewed.
    pub reauthentications: u64,
}

/// Gives download URLs for versions, shared by every reader of a mount.
pub struct UrlBroker {
    session: SessionSlot,
    /// The CloudKit client of the current session (made when first needed).
    client: RwLock<Option<CloudKitClient>>,
    cache: Mutex<HashMap<CacheKey, CachedUrl>>,
    inflight: Mutex<InFlight>,
    lookups: AtomicU64,
    hits: AtomicU64,
    reauths: AtomicU64,
}

impl UrlBroker {
    /// A broker using the session of `session` (signing in when a lookup needs it).
    pub fn new(session: SessionSlot) -> Arc<UrlBroker> {
        Arc::new(UrlBroker {
            session,
            client: RwLock::new(None),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            reauths: AtomicU64::new(0),
        })
    }

    /// Current counters.
    pub fn stats(&self) -> UrlBrokerStats {
        UrlBrokerStats {
            lookups: self.lookups.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
            reauthentications: self.reauths.load(Ordering::Relaxed),
        }
    }

    /// The CloudKit client of `session`, made once.
    fn client(&self, session: &AccountSession) -> Result<CloudKitClient, CloudKitError> {
        if let Some(c) = self
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(c);
        }
        let c = CloudKitClient::for_session(session)?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }

    /// Remember the URLs of freshly listed assets.
    pub fn remember(&self, library: &Library, assets: &[ListedAsset]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + assets.len() * 2 > MAX_CACHED {
            let now = SystemTime::now();
            cache.retain(|_, u| u.good_until > now);
            if cache.len() + assets.len() * 2 > MAX_CACHED {
                cache.clear();
            }
        }
        for listed in assets {
            for d in &listed.downloads {
                cache.insert(
                    (
                        library.zone.clone(),
                        listed.asset.id.clone(),
                        d.version.kind,
                    ),
                    CachedUrl {
                        checksum: d.version.checksum.clone(),
                        size: d.version.size,
                        url: d.download_url.clone(),
                        good_until: good_until(&d.download_url),
                    },
                );
            }
        }
    }

    fn cached(&self, key: &CacheKey) -> Option<CachedUrl> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|u| u.good_until > SystemTime::now())
            .cloned()
    }

    /// Whether some URL of this asset is cached and fresh.
    fn has_fresh(&self, zone: &str, master: &str) -> bool {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        VersionKind::ALL.iter().any(|k| {
            cache
                .get(&(zone.to_string(), master.to_string(), *k))
                .is_some_and(|u| u.good_until > now)
        })
    }

    /// The current record of `wanted` (looked up with `companions` that have no fresh URL
    /// and no lookup in flight), one lookup in flight per asset.
    async fn lookup(
        self: &Arc<Self>,
        library: &Library,
        wanted: (&str, &str),
        companions: Vec<(String, String)>,
    ) -> LookupResult {
        let zone = library.zone.clone();
        let flight = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(&(zone.clone(), wanted.0.to_string())) {
                Some(f) => f.clone(),
                None => {
                    let mut pairs = vec![(wanted.0.to_string(), wanted.1.to_string())];
                    for (m, r) in companions {
                        if m != wanted.0
                            && !inflight.contains_key(&(zone.clone(), m.clone()))
                            && !self.has_fresh(&zone, &m)
                        {
                            pairs.push((m, r));
                        }
                    }
                    let this = self.clone();
                    let library = library.clone();
                    let keys: Vec<(String, String)> = pairs
                        .iter()
                        .map(|(m, _)| (zone.clone(), m.clone()))
                        .collect();
                    let keys2 = keys.clone();
                    let flight = async move {
                        let res = this.lookup_now(&library, &pairs).await;
                        let mut inflight = this.inflight.lock().unwrap_or_else(|e| e.into_inner());
                        for k in &keys2 {
                            inflight.remove(k);
                        }
                        res
                    }
                    .boxed()
                    .shared();
                    for k in keys {
                        inflight.insert(k, flight.clone());
                    }
                    flight
                }
            }
        };
        flight.await
    }

    async fn lookup_now(&self, library: &Library, pairs: &[(String, String)]) -> LookupResult {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(m, r)| (m.as_str(), r.as_str()))
            .collect();
        let session = self
            .session
            .get()
            .await
            .map_err(|e| Arc::new(e.to_string()))?;
        let mut renewed = false;
        loop {
            let seen = session.generation();
            let client = self.client(&session).map_err(|e| Arc::new(e.to_string()))?;
            self.lookups.fetch_add(1, Ordering::Relaxed);
            match client.refresh_assets(library, &refs).await {
                Ok(found) => {
                    self.remember(library, &found.assets);
                    return Ok(Arc::new(
                        found
                            .assets
                            .into_iter()
                            .map(|a| (a.asset.id.clone(), a))
                            .collect(),
                    ));
                }
                Err(e) if e.needs_reauthentication() && !renewed => {
                    renewed = true;
                    self.reauths.fetch_add(1, Ordering::Relaxed);
                    if let Err(auth) = session.reauthenticate(seen).await {
                        return Err(Arc::new(format!(
                            "iCloud refused the session and signing in again failed ({auth}); \
                             run `icloudpd-rs login`"
                        )));
                    }
                    // A client for the renewed session.
                    *self.client.write().unwrap_or_else(|e| e.into_inner()) = None;
                }
                Err(e) => return Err(Arc::new(e.to_string())),
            }
        }
    }
}

/// When a URL stops being used: its `e=` expiry (epoch seconds) minus a margin, or a default
/// lifetime when it carries none.
fn good_until(url: &str) -> SystemTime {
    let now = SystemTime::now();
    let expiry = url
        .split_once('?')
        .map(|(_, q)| q)
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("e="))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    match expiry {
        Some(t) => t.checked_sub(EXPIRY_MARGIN).unwrap_or(UNIX_EPOCH),
        None => now + DEFAULT_LIFETIME,
    }
}

/// The URL source of one version, for the block fetcher.
pub struct VersionUrls {
    pub broker: Arc<UrlBroker>,
    pub library: Library,
    /// CPLMaster record name.
    pub master: String,
    /// CPLAsset record name.
    pub asset_record: String,
    pub kind: VersionKind,
    /// The catalog's checksum and size: a URL for other content is refused.
    pub checksum: String,
    pub size: u64,
    /// The asset's catalog key and who suggests companions for its lookup.
    pub asset: AssetKey,
    pub hint: Option<Arc<dyn BatchHint>>,
}

impl VersionUrls {
    fn check(&self, checksum: &str, size: u64) -> Result<(), FetchError> {
        if checksum != self.checksum || size != self.size {
            return Err(FetchError::NoUrl(
                "the photo changed in iCloud; it appears under its new size after the next \
                 catalog refresh"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl UrlProvider for VersionUrls {
    fn url(&self, refresh: bool) -> BoxFuture<'_, Result<String, FetchError>> {
        Box::pin(async move {
            let key = (self.library.zone.clone(), self.master.clone(), self.kind);
            if !refresh && let Some(u) = self.broker.cached(&key) {
                self.broker.hits.fetch_add(1, Ordering::Relaxed);
                self.check(&u.checksum, u.size)?;
                return Ok(u.url);
            }
            // Companions only for a first URL: a refused one is about this asset alone.
            let companions = match (&self.hint, refresh) {
                (Some(hint), false) => hint.companions(self.asset, BATCH),
                _ => Vec::new(),
            };
            let found = self
                .broker
                .lookup(
                    &self.library,
                    (&self.master, &self.asset_record),
                    companions,
                )
                .await
                .map_err(|e| FetchError::NoUrl(format!("records/lookup: {e}")))?;
            let Some(listed) = found.get(&self.master) else {
                return Err(FetchError::NoUrl("the photo is no longer in iCloud".into()));
            };
            let d = listed
                .downloads
                .iter()
                .find(|d| d.version.kind == self.kind)
                .ok_or_else(|| {
                    FetchError::NoUrl(format!(
                        "iCloud no longer lists a {} version of this photo",
                        self.kind.as_str()
                    ))
                })?;
            self.check(&d.version.checksum, d.version.size)?;
            Ok(d.download_url.clone())
        })
    }
}

/// A refresh page sink that keeps the listed URLs for the mount's first reads.
pub struct UrlSink(pub Arc<UrlBroker>);

impl PageSink for UrlSink {
    fn assets(&mut self, library: &Library, assets: &[ListedAsset]) {
        self.0.remember(library, assets);
    }

    /// The URLs are kept here, not looked up in the catalog.
    fn reads_catalog_while_listing(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_lifetime_comes_from_its_expiry() {
        let t = good_until("https://cdn/B/x?o=1&e=2000000000&s=abc");
        assert_eq!(
            t,
            UNIX_EPOCH + Duration::from_secs(2_000_000_000) - EXPIRY_MARGIN
        );
        let soon = good_until("https://cdn/B/x?o=1");
        let d = soon.duration_since(SystemTime::now()).unwrap();
        assert!(d <= DEFAULT_LIFETIME && d > DEFAULT_LIFETIME - Duration::from_secs(60));
        assert!(good_until("https://cdn/B/x?e=10") < SystemTime::now());
    }
}
