//! Where the bytes of a mount file come from: [`CatalogLocator`] resolves a version's file id
//! through the catalog (content identity, type, the mirror's complete copy if the download
//! state says there is one, a URL source), and [`LibrarySource`] puts it together with the
//! sidecars (rendered from the catalog, served from memory) and the background mirror (a read
//! of a file the mirror is fetching waits for that transfer instead of starting another, and
//! reads that wait for the network hold the mirror back).

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::ids::{self, FileKind};
use super::neighbours::NeighbourOrder;
use super::urls::{BatchHint, UrlBroker, VersionUrls};
use crate::cache::ContentKey;
use crate::catalog::{
    AssetKey, Catalog, CatalogError, DownloadState, LibraryId, RootId, StoredAsset,
};
use crate::mirror::{ForegroundGuard, Mirror, PriorityGate, TransferState};
use crate::model::Library;
use crate::mount::{
    CachedSource, ContentSource, FileId, FileLocator, FileSpec, LocalContent, OpenContent,
    ReadError, ReadPlan, Xattrs,
};

/// Read-only catalog handles kept for locating files (one per concurrent opener at most).
const POOL_SIZE: usize = 8;
/// A reader waits for the mirror's transfer of a file only when the file is this small (a
/// video being mirrored is read from the CDN in parallel instead).
const WAIT_FOR_MIRROR_MAX: u64 = 32 << 20;
/// Longest a reader waits for the mirror's transfer before fetching on its own.
const WAIT_FOR_MIRROR: Duration = Duration::from_secs(10);

/// The mirror's download folder as the catalog knows it.
#[derive(Debug, Clone)]
pub struct MirrorRoot {
    pub id: RootId,
    pub path: PathBuf,
}

/// Resolves files through the catalog.
pub struct CatalogLocator {
    catalog_path: PathBuf,
    pool: Mutex<Vec<Catalog>>,
    libraries: Mutex<HashMap<LibraryId, Library>>,
    broker: Arc<UrlBroker>,
    mirror: Option<MirrorRoot>,
    neighbours: RwLock<Arc<NeighbourOrder>>,
}

fn unavailable(file: FileId, e: impl std::fmt::Display) -> ReadError {
    ReadError::Unavailable(file, e.to_string())
}

impl CatalogLocator {
    /// A locator reading the catalog at `catalog_path` (read-only handles, opened on demand).
    pub fn new(catalog_path: PathBuf, broker: Arc<UrlBroker>, mirror: Option<MirrorRoot>) -> Self {
        CatalogLocator {
            catalog_path,
            pool: Mutex::new(Vec::new()),
            libraries: Mutex::new(HashMap::new()),
            broker,
            mirror,
            neighbours: RwLock::default(),
        }
    }

    /// The listing order of the current tree (URL lookups take the next photos along).
    pub fn set_neighbours(&self, order: NeighbourOrder) {
        *self.neighbours.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(order);
    }

    /// Run `f` with a pooled read-only catalog handle.
    pub(super) fn with_catalog<R>(
        &self,
        f: impl FnOnce(&Catalog) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let catalog = match pooled {
            Some(c) => c,
            None => Catalog::open_read_only(&self.catalog_path)?,
        };
        let result = f(&catalog);
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_SIZE {
            pool.push(catalog);
        }
        result
    }

    fn library(&self, catalog: &Catalog, id: LibraryId) -> Result<Library, CatalogError> {
        if let Some(l) = self
            .libraries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(l.clone());
        }
        let lib = catalog.library(id)?.library;
        self.libraries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, lib.clone());
        Ok(lib)
    }

    /// One asset, for its sidecar.
    fn asset(&self, key: AssetKey) -> Result<Option<StoredAsset>, CatalogError> {
        self.with_catalog(|c| c.asset(key))
    }
}

impl BatchHint for CatalogLocator {
    fn companions(&self, asset: AssetKey, n: usize) -> Vec<(String, String)> {
        let order = self
            .neighbours
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let keys = order.after(asset, n);
        if keys.is_empty() {
            return Vec::new();
        }
        let found = self.with_catalog(|c| {
            let library = c.asset(asset)?.map(|a| a.library);
            Ok(c.assets_by_keys(&keys)?
                .into_iter()
                .filter(|a| Some(a.library) == library && a.gone_ms.is_none())
                .map(|a| (a.asset.id, a.asset.asset_record))
                .collect())
        });
        found.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "no companions for a URL lookup");
            Vec::new()
        })
    }
}

impl FileLocator for Arc<CatalogLocator> {
    fn locate(&self, file: FileId) -> Result<FileSpec, ReadError> {
        let hint: Arc<dyn BatchHint> = self.clone();
        let FileKind::Version(key) = ids::kind_of(file) else {
            return Err(unavailable(file, "not a version"));
        };
        self.with_catalog(|c| {
            let Some(stored) = c.version(key)? else {
                return Ok(Err(unavailable(file, "no longer in the catalog")));
            };
            let Some(asset) = c.asset(stored.asset)? else {
                return Ok(Err(unavailable(
                    file,
                    "its asset is no longer in the catalog",
                )));
            };
            let library = self.library(c, asset.library)?;
            let v = stored.version;
            let local = match &self.mirror {
                Some(root) => match c.download_state(key, root.id)? {
                    Some(DownloadState::Downloaded { rel_path, size, .. }) if size == v.size => {
                        // A symbolic link put in the file's place is never followed (the
                        // mirror reports it in the way): the bytes come from iCloud.
                        let path = root.path.join(rel_path);
                        std::fs::symlink_metadata(&path)
                            .is_ok_and(|m| m.is_file())
                            .then_some(path)
                    }
                    _ => None,
                },
                None => None,
            };
            Ok(Ok(FileSpec {
                content: ContentKey::new(&v.checksum, v.size),
                size: v.size,
                uti: v.file_type.clone(),
                local,
                urls: Arc::new(VersionUrls {
                    broker: self.broker.clone(),
                    library,
                    master: asset.asset.id.clone(),
                    asset_record: asset.asset.asset_record.clone(),
                    kind: v.kind,
                    checksum: v.checksum,
                    size: v.size,
                    asset: asset.key,
                    hint: Some(hint),
                }),
            }))
        })
        .map_err(|e| unavailable(file, e))?
    }
}

/// The background mirror as readers see it.
#[derive(Clone)]
pub struct MirrorLink {
    pub mirror: Arc<Mirror>,
    pub root: PathBuf,
}

/// Extended attributes looked up lately are kept this long (`getfattr -d` asks for the list,
/// then for each value).
const XATTR_FRESH: Duration = Duration::from_secs(5);
/// At most this many kept.
const XATTR_KEPT: usize = 1024;

/// The content source of a library mount.
pub struct LibrarySource {
    files: CachedSource<Arc<CatalogLocator>>,
    mirror: Option<MirrorLink>,
    xattrs: Mutex<HashMap<FileId, (Instant, Xattrs)>>,
}

impl LibrarySource {
    /// Files through `files`; with a mirror, reads cooperate with it.
    pub fn new(files: CachedSource<Arc<CatalogLocator>>, mirror: Option<MirrorLink>) -> Self {
        LibrarySource {
            files,
            mirror,
            xattrs: Mutex::new(HashMap::new()),
        }
    }

    /// The attributes of a version's asset, from the catalog.
    fn version_xattrs(&self, version: crate::catalog::VersionKey) -> Xattrs {
        let found = self.files.locator().with_catalog(|c| {
            let Some(v) = c.version(version)? else {
                return Ok(None);
            };
            c.asset(v.asset)
        });
        match found {
            Ok(Some(asset)) => Arc::new(
                crate::metadata::xattrs_for(&asset.asset)
                    .into_iter()
                    .collect(),
            ),
            Ok(None) => Xattrs::default(),
            Err(e) => {
                tracing::debug!(error = %e, "extended attributes unavailable");
                Xattrs::default()
            }
        }
    }

    /// The block fetcher (statistics).
    pub fn fetcher(&self) -> &Arc<crate::mount::BlockFetcher> {
        self.files.fetcher()
    }

    fn sidecar(&self, file: FileId, asset: AssetKey, size: u64) -> Result<Bytes, ReadError> {
        let locator = self.files.locator();
        let stored = locator
            .asset(asset)
            .map_err(|e| unavailable(file, e))?
            .ok_or_else(|| unavailable(file, "the photo is no longer in the catalog"))?;
        let text = crate::metadata::render_xmp(&stored.asset);
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if text.len() as u64 != size
            || ids::fingerprint_of(&digest) != ids::sidecar_fingerprint(file)
        {
            return Err(unavailable(
                file,
                "the photo's metadata changed; the new sidecar appears after the next refresh",
            ));
        }
        Ok(Bytes::from(text.into_bytes()))
    }
}

impl ContentSource for LibrarySource {
    fn xattrs(&self, file: FileId) -> Option<Xattrs> {
        let FileKind::Version(version) = ids::kind_of(file) else {
            return Some(Xattrs::default());
        };
        let mut kept = self.xattrs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, x)) = kept.get(&file)
            && at.elapsed() < XATTR_FRESH
        {
            return Some(x.clone());
        }
        drop(kept);
        let x = self.version_xattrs(version);
        kept = self.xattrs.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= XATTR_KEPT {
            kept.clear();
        }
        kept.insert(file, (Instant::now(), x.clone()));
        Some(x)
    }

    fn open(&self, file: FileId, size: u64) -> Result<Arc<dyn OpenContent>, ReadError> {
        let version = match ids::kind_of(file) {
            FileKind::Sidecar(asset) => {
                return Ok(Arc::new(MemoryContent(self.sidecar(file, asset, size)?)));
            }
            FileKind::Version(v) => v,
        };
        let inner = self.files.open(file, size)?;
        let Some(link) = &self.mirror else {
            return Ok(inner);
        };
        if inner.local_file().is_some() {
            return Ok(inner);
        }
        Ok(Arc::new(MirroredContent {
            inner,
            gate: link.mirror.gate().clone(),
            link: link.clone(),
            version,
            size,
            local: Arc::default(),
        }))
    }
}

/// Bytes held in memory (a sidecar).
struct MemoryContent(Bytes);

impl OpenContent for MemoryContent {
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>> {
        let len = self.0.len() as u64;
        let start = plan.offset.min(len);
        let end = (plan.offset + plan.len).min(len);
        let out = self.0.slice(start as usize..end as usize);
        Box::pin(std::future::ready(Ok(out)))
    }
}

/// A file read from the CDN while a mirror runs: waits for the mirror's own transfer of the
/// same file when there is one (then reads the finished copy), and holds the mirror back while
/// it waits for the network.
struct MirroredContent {
    inner: Arc<dyn OpenContent>,
    gate: PriorityGate,
    link: MirrorLink,
    version: crate::catalog::VersionKey,
    size: u64,
    /// The mirror's finished copy, once a wait for it succeeded.
    local: Arc<OnceLock<Arc<LocalContent>>>,
}

impl OpenContent for MirroredContent {
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>> {
        if let Some(local) = self.local.get() {
            return local.read(plan);
        }
        let running = (self.size <= WAIT_FOR_MIRROR_MAX)
            .then(|| self.link.mirror.transfers().watch(self.version))
            .flatten();
        let Some(mut watch) = running else {
            return Box::pin(Foreground {
                inner: self.inner.read(plan),
                gate: self.gate.clone(),
                guard: None,
            });
        };
        // The mirror is fetching this very file: wait for it (bounded), then read its copy.
        let inner = self.inner.clone();
        let plan = *plan;
        let root = self.link.root.clone();
        let size = self.size;
        let gate = self.gate.clone();
        let slot = self.local.clone();
        Box::pin(async move {
            let waited = tokio::time::timeout(
                WAIT_FOR_MIRROR,
                watch.wait_for(|s| {
                    matches!(s, TransferState::Done { .. } | TransferState::Failed { .. })
                }),
            )
            .await
            .ok()
            .and_then(|r| r.ok().map(|state| state.clone()));
            if let Some(TransferState::Done { rel_path }) = waited
                && let Ok(Some(local)) = LocalContent::open(root.join(rel_path), size)
            {
                let local = slot.get_or_init(|| Arc::new(local));
                return local.read(&plan).await;
            }
            Foreground {
                inner: inner.read(&plan),
                gate,
                guard: None,
            }
            .await
        })
    }
}

/// A read that raises the mirror's priority gate while (and only while) it waits.
struct Foreground {
    inner: BoxFuture<'static, Result<Bytes, ReadError>>,
    gate: PriorityGate,
    guard: Option<ForegroundGuard>,
}

impl std::future::Future for Foreground {
    type Output = Result<Bytes, ReadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.inner.as_mut().poll(cx) {
            Poll::Ready(r) => {
                this.guard = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.guard.is_none() {
                    this.guard = Some(this.gate.foreground());
                }
                Poll::Pending
            }
        }
    }
}
