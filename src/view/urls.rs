//! Download URLs for the mount's reads: `records/lookup` of the asset, one call per asset at a
//! time however many readers want it (single flight), answers cached until the URL's own
//! expiry (`e=` parameter) minus a margin, a session refused by iCloud renewed once per call,
//! and the fresh URLs of every page a refresh lists taken for free ([`UrlSink`]).
//!
//! The CDN is never trusted with a stale URL for long: the fetcher asks again with
//! `refresh = true` when one is refused, which always makes a new lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::auth::AccountSession;
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

type LookupResult = Result<Arc<Option<ListedAsset>>, Arc<String>>;
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
    session: AccountSession,
    client: RwLock<CloudKitClient>,
    cache: Mutex<HashMap<CacheKey, CachedUrl>>,
    inflight: Mutex<InFlight>,
    lookups: AtomicU64,
    hits: AtomicU64,
    reauths: AtomicU64,
}

impl UrlBroker {
    /// A broker for a signed-in session.
    pub fn new(session: &AccountSession) -> Result<Arc<UrlBroker>, CloudKitError> {
        Ok(Arc::new(UrlBroker {
            session: session.clone(),
            client: RwLock::new(CloudKitClient::for_session(session)?),
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            reauths: AtomicU64::new(0),
        }))
    }

    /// Current counters.
    pub fn stats(&self) -> UrlBrokerStats {
        UrlBrokerStats {
            lookups: self.lookups.load(Ordering::Relaxed),
            cache_hits: self.hits.load(Ordering::Relaxed),
            reauthentications: self.reauths.load(Ordering::Relaxed),
        }
    }

    fn client(&self) -> CloudKitClient {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// The current record of one asset, one lookup at a time per asset.
    async fn lookup(
        self: &Arc<Self>,
        library: &Library,
        master: &str,
        asset_record: &str,
    ) -> LookupResult {
        let key = (library.zone.clone(), master.to_string());
        let flight = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            inflight
                .entry(key.clone())
                .or_insert_with(|| {
                    let this = self.clone();
                    let library = library.clone();
                    let (master, record) = (master.to_string(), asset_record.to_string());
                    let key = key.clone();
                    async move {
                        let res = this.lookup_now(&library, &master, &record).await;
                        this.inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                        res
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        flight.await
    }

    async fn lookup_now(&self, library: &Library, master: &str, record: &str) -> LookupResult {
        let mut renewed = false;
        loop {
            let seen = self.session.generation();
            self.lookups.fetch_add(1, Ordering::Relaxed);
            match self.client().refresh_asset(library, master, record).await {
                Ok(found) => {
                    if let Some(listed) = &found {
                        self.remember(library, std::slice::from_ref(listed));
                    }
                    return Ok(Arc::new(found));
                }
                Err(e) if e.needs_reauthentication() && !renewed => {
                    renewed = true;
                    self.reauths.fetch_add(1, Ordering::Relaxed);
                    if let Err(auth) = self.session.reauthenticate(seen).await {
                        return Err(Arc::new(format!(
                            "iCloud refused the session and signing in again failed ({auth}); \
                             run `icloudpd-rs login`"
                        )));
                    }
                    match CloudKitClient::for_session(&self.session) {
                        Ok(c) => *self.client.write().unwrap_or_else(|e| e.into_inner()) = c,
                        Err(e) => return Err(Arc::new(e.to_string())),
                    }
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
            let found = self
                .broker
                .lookup(&self.library, &self.master, &self.asset_record)
                .await
                .map_err(|e| FetchError::NoUrl(format!("records/lookup: {e}")))?;
            let Some(listed) = found.as_ref() else {
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
