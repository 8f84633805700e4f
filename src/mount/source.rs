//! Where file bytes come from: the [`ContentSource`] trait the filesystem core reads through,
//! and [`CachedSource`], the real implementation (a fully mirrored local file when there is
//! one, otherwise the block cache filled from the CDN by [`BlockFetcher`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::fetcher::{BlockFetcher, RemoteFile};
use super::namespace::{FileId, Xattrs};
use super::read::ReadPlan;
use crate::cache::{CompleteFile, ContentKey};
use crate::fetch::{FetchError, UrlProvider};

/// Gives the bytes of files. Opening is cheap and never touches the network.
pub trait ContentSource: Send + Sync + 'static {
    /// Prepare to read `file`, whose size the namespace says is `size`.
    fn open(&self, file: FileId, size: u64) -> Result<Arc<dyn OpenContent>, ReadError>;

    /// The extended attributes of `file`, when the source keeps them (looked up when asked,
    /// so the tree need not hold them); `None` means those of the namespace entry. Must not
    /// touch the network.
    fn xattrs(&self, _file: FileId) -> Option<Xattrs> {
        None
    }
}

/// One opened file.
pub trait OpenContent: Send + Sync {
    /// Exactly the bytes `[plan.offset, plan.offset + plan.len)` (the caller clamps `len` at
    /// the end of the file), fetching ahead up to `plan.fetch_to` if the source fetches at
    /// all. A future that is ready at its first poll when no network wait is needed.
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>>;

    /// The local file holding the complete content, if there is one (lets the adapter use
    /// kernel passthrough).
    fn local_file(&self) -> Option<&File> {
        None
    }
}

/// Why bytes could not be read. Maps to `EIO` at the FUSE edge.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bounded wait for the network ran out.
    #[error("no answer from the CDN within {0:?}")]
    Timeout(Duration),
    /// The CDN refused or failed.
    #[error("CDN: {0}")]
    Fetch(#[from] FetchError),
    /// A local file failed.
    #[error("{op} {path}: {source}")]
    Local {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The source does not know how to get this file.
    #[error("file {0:?} is not available: {1}")]
    Unavailable(FileId, String),
    /// A transfer shared with other readers failed.
    #[error(transparent)]
    Shared(Arc<ReadError>),
    /// A bug: a shared transfer vanished without an answer, a size did not add up.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What [`CachedSource`] needs to know about one file.
#[derive(Clone)]
pub struct FileSpec {
    /// Identity of the content (checksum + size) for the block cache.
    pub content: ContentKey,
    /// Exact size in bytes.
    pub size: u64,
    /// UTI of the content (`public.jpeg`...): the first bytes fetched are checked against it.
    pub uti: String,
    /// The fully mirrored file, if the mirror has it (used only when its size matches).
    pub local: Option<PathBuf>,
    /// A (fresh on request) download URL.
    pub urls: Arc<dyn UrlProvider>,
}

impl std::fmt::Debug for FileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpec")
            .field("content", &self.content)
            .field("size", &self.size)
            .field("uti", &self.uti)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Resolves a [`FileId`] to what is needed to read it (the integrator implements it over the
/// catalog, the layout and the CloudKit client).
pub trait FileLocator: Send + Sync + 'static {
    /// The spec of `file`.
    fn locate(&self, file: FileId) -> Result<FileSpec, ReadError>;
}

/// The real content source: mirrored files from disk, everything else through the block cache
/// and the CDN.
pub struct CachedSource<L> {
    locator: L,
    fetcher: Arc<BlockFetcher>,
}

impl<L: FileLocator> CachedSource<L> {
    /// A source resolving files with `locator` and fetching through `fetcher`.
    pub fn new(locator: L, fetcher: Arc<BlockFetcher>) -> Self {
        CachedSource { locator, fetcher }
    }

    /// The locator.
    pub fn locator(&self) -> &L {
        &self.locator
    }

    /// The fetcher (the mirror shares its transfers through [`BlockFetcher::ensure`]).
    pub fn fetcher(&self) -> &Arc<BlockFetcher> {
        &self.fetcher
    }
}

impl<L: FileLocator> ContentSource for CachedSource<L> {
    fn open(&self, file: FileId, size: u64) -> Result<Arc<dyn OpenContent>, ReadError> {
        let spec = self.locator.locate(file)?;
        if spec.size != size {
            return Err(ReadError::Unavailable(
                file,
                format!(
                    "the mount says {size} bytes but the source says {}",
                    spec.size
                ),
            ));
        }
        if let Some(path) = &spec.local {
            match LocalContent::open(path.clone(), size) {
                Ok(Some(local)) => return Ok(Arc::new(local)),
                Ok(None) => {
                    tracing::debug!(path = %path.display(), "mirrored file has the wrong size; reading from the CDN")
                }
                Err(e) => {
                    tracing::debug!(error = %e, "mirrored file unusable; reading from the CDN")
                }
            }
        }
        // Every block cached and verified: the cache's block file is the file.
        let cache = self.fetcher.cache();
        if let Some(complete) = cache.open_complete(&spec.content, size) {
            return Ok(Arc::new(CachedComplete { complete, size }));
        }
        if cache.is_complete(&spec.content, size) {
            self.fetcher.verify_later(spec.content.clone(), size);
        }
        Ok(Arc::new(RemoteContent {
            file: Arc::new(RemoteFile {
                content: spec.content,
                size,
                uti: spec.uti,
                urls: spec.urls,
            }),
            fetcher: self.fetcher.clone(),
        }))
    }
}

/// A complete local copy.
pub struct LocalContent {
    path: PathBuf,
    file: File,
    size: u64,
}

impl LocalContent {
    /// Open `path` if it holds exactly `size` bytes (`Ok(None)` otherwise).
    pub fn open(path: PathBuf, size: u64) -> Result<Option<LocalContent>, ReadError> {
        let file = File::open(&path).map_err(|source| ReadError::Local {
            op: "open",
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| ReadError::Local {
                op: "stat",
                path: path.clone(),
                source,
            })?
            .len();
        Ok((len == size).then_some(LocalContent { path, file, size }))
    }
}

impl OpenContent for LocalContent {
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>> {
        let offset = plan.offset;
        let len = plan.len.min(self.size.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; len];
        let res = self
            .file
            .read_exact_at(&mut buf, offset)
            .map(|()| Bytes::from(buf))
            .map_err(|source| ReadError::Local {
                op: "read",
                path: self.path.clone(),
                source,
            });
        Box::pin(std::future::ready(res))
    }

    fn local_file(&self) -> Option<&File> {
        Some(&self.file)
    }
}

/// A file whose every block is cached and verified, read straight from its block file (and
/// by the kernel, through passthrough, when available).
struct CachedComplete {
    complete: CompleteFile,
    size: u64,
}

impl OpenContent for CachedComplete {
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>> {
        let offset = plan.offset;
        let len = plan.len.min(self.size.saturating_sub(offset)) as usize;
        let mut buf = vec![0u8; len];
        let res = self
            .complete
            .file()
            .read_exact_at(&mut buf, offset)
            .map(|()| Bytes::from(buf))
            .map_err(|source| ReadError::Local {
                op: "read cached",
                path: PathBuf::from("(block cache)"),
                source,
            });
        Box::pin(std::future::ready(res))
    }

    fn local_file(&self) -> Option<&File> {
        Some(self.complete.file())
    }
}

/// A file read through the block cache.
struct RemoteContent {
    file: Arc<RemoteFile>,
    fetcher: Arc<BlockFetcher>,
}

impl OpenContent for RemoteContent {
    fn read(&self, plan: &ReadPlan) -> BoxFuture<'static, Result<Bytes, ReadError>> {
        let fetcher = self.fetcher.clone();
        let file = self.file.clone();
        let plan = *plan;
        Box::pin(async move { fetcher.read(&file, &plan).await })
    }
}
