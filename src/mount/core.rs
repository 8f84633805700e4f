//! The filesystem core: every operation the mount supports, as plain Rust over the namespace
//! and a content source, without fuser types, so tests drive it without a kernel.
//!
//! Metadata operations answer from the in-memory tree (microseconds, never the network).
//! `read` returns a future: ready at once when the bytes are local or cached, otherwise it
//! waits (boundedly) for the CDN; the adapter polls it once inline and hands it to the async
//! runtime only if it is not ready.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::attr::{self, Attr, Owner, StatFs};
use super::cookies::{COOKIE_DOT, COOKIE_DOTDOT};
use super::namespace::{Kind, Namespace, ROOT_INO};
use super::read::{PrefetchConfig, ReadPlanner};
use super::source::{ContentSource, OpenContent, ReadError};
use super::tree::Tree;

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Owner reported for every inode.
    pub owner: Owner,
    /// Read-ahead tuning.
    pub prefetch: PrefetchConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            owner: Owner::current(),
            prefetch: PrefetchConfig::default(),
        }
    }
}

/// Why an operation failed; [`FsError::errno`] is its FUSE answer.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such inode or name.
    #[error("no such file or directory")]
    NotFound,
    /// A directory operation on a file.
    #[error("not a directory")]
    NotDir,
    /// A file operation on a directory.
    #[error("is a directory")]
    IsDir,
    /// Any attempt to modify.
    #[error("read-only file system")]
    ReadOnly,
    /// An unknown file handle.
    #[error("bad file handle")]
    BadHandle,
    /// No such extended attribute.
    #[error("no such attribute")]
    NoAttr,
    /// An extended attribute namespace the mount does not have (`security.`, `system.`,
    /// `trusted.`): only `user.` attributes exist.
    #[error("attribute namespace not supported")]
    NotSupported,
    /// The caller's buffer is too small for the answer.
    #[error("buffer too small: {needed} bytes needed")]
    Range { needed: usize },
    /// The bytes could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

impl FsError {
    /// The errno the kernel gets.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::NoAttr => libc::ENODATA,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::Range { .. } => libc::ERANGE,
            FsError::Read(_) => libc::EIO,
        }
    }
}

/// One directory entry handed to a `readdir` sink.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
    /// Inode number.
    pub ino: u64,
    /// Resume point after this entry.
    pub cookie: u64,
    /// File or directory (`d_type`).
    pub kind: Kind,
    /// Name bytes.
    pub name: &'a [u8],
    /// Attributes (for readdirplus).
    pub attr: Attr,
}

/// Answer of `getxattr` / `listxattr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrReply {
    /// The caller asked for the size only (size 0).
    Size(u32),
    /// The value, or the NUL-separated list of names.
    Data(Vec<u8>),
}

/// A file opened by [`FsCore::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Handle for `read` and `release`.
    pub fh: u64,
    /// The content is a complete local file (see [`FsCore::with_local_file`]).
    pub local: bool,
}

struct OpenHandle {
    attr: Attr,
    content: Arc<dyn OpenContent>,
    planner: Mutex<ReadPlanner>,
}

/// The filesystem core.
pub struct FsCore {
    ns: Arc<Namespace>,
    source: Arc<dyn ContentSource>,
    cfg: CoreConfig,
    handles: RwLock<HashMap<u64, Arc<OpenHandle>>>,
    next_fh: AtomicU64,
}

impl FsCore {
    /// A core over `ns`, reading through `source`.
    pub fn new(ns: Arc<Namespace>, source: Arc<dyn ContentSource>, cfg: CoreConfig) -> Self {
        FsCore {
            ns,
            source,
            cfg,
            handles: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// The namespace shown.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }

    fn attr_of(&self, tree: &Tree, ino: u64) -> Option<Attr> {
        if let Some(f) = tree.files.get(&ino) {
            return Some(attr::file_attr(ino, f, self.cfg.owner));
        }
        tree.dirs
            .get(&ino)
            .map(|d| attr::dir_attr(ino, d, self.cfg.owner))
    }

    /// The attributes of `name` in directory `parent`; `Ok(None)` when the directory exists but
    /// the name does not (a negative entry the kernel may cache).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Attr>, FsError> {
        let tree = self.ns.tree();
        let dir = match tree.dirs.get(&parent) {
            Some(d) => d,
            None if tree.files.contains_key(&parent) => return Err(FsError::NotDir),
            None => return Err(FsError::NotFound),
        };
        Ok(tree
            .lookup(dir, name)
            .and_then(|c| self.attr_of(&tree, c.ino)))
    }

    /// The attributes of `ino` (also of a removed file still open through `fh`).
    pub fn getattr(&self, ino: u64, fh: Option<u64>) -> Result<Attr, FsError> {
        if let Some(a) = self.attr_of(&self.ns.tree(), ino) {
            return Ok(a);
        }
        fh.and_then(|fh| self.handle(fh))
            .filter(|h| h.attr.ino == ino)
            .map(|h| h.attr)
            .ok_or(FsError::NotFound)
    }

    /// Check that `ino` is a directory that can be listed.
    pub fn opendir(&self, ino: u64, write: bool) -> Result<(), FsError> {
        let tree = self.ns.tree();
        if tree.dirs.contains_key(&ino) {
            if write {
                Err(FsError::ReadOnly)
            } else {
                Ok(())
            }
        } else if tree.files.contains_key(&ino) {
            Err(FsError::NotDir)
        } else {
            Err(FsError::NotFound)
        }
    }

    /// Entries of directory `ino` after `cookie` (0 = from the start, `.` and `..` first),
    /// handed to `add` until it returns `true` ("full": that entry was not taken).
    pub fn readdir(
        &self,
        ino: u64,
        cookie: u64,
        mut add: impl FnMut(DirEntry<'_>) -> bool,
    ) -> Result<(), FsError> {
        let tree = self.ns.tree();
        let dir = match tree.dirs.get(&ino) {
            Some(d) => d,
            None if tree.files.contains_key(&ino) => return Err(FsError::NotDir),
            None => return Err(FsError::NotFound),
        };
        let owner = self.cfg.owner;
        if cookie < COOKIE_DOT {
            let attr = attr::dir_attr(ino, dir, owner);
            if add(DirEntry {
                ino,
                cookie: COOKIE_DOT,
                kind: Kind::Dir,
                name: b".",
                attr,
            }) {
                return Ok(());
            }
        }
        if cookie < COOKIE_DOTDOT {
            let parent = if ino == ROOT_INO {
                ROOT_INO
            } else {
                dir.parent
            };
            let attr = tree
                .dirs
                .get(&parent)
                .map(|p| attr::dir_attr(parent, p, owner))
                .unwrap_or_else(|| attr::dir_attr(ino, dir, owner));
            if add(DirEntry {
                ino: attr.ino,
                cookie: COOKIE_DOTDOT,
                kind: Kind::Dir,
                name: b"..",
                attr,
            }) {
                return Ok(());
            }
        }
        for c in Tree::children_after(dir, cookie) {
            let Some(attr) = self.attr_of(&tree, c.ino) else {
                continue;
            };
            if add(DirEntry {
                ino: c.ino,
                cookie: c.cookie,
                kind: c.kind,
                name: &c.name,
                attr,
            }) {
                break;
            }
        }
        Ok(())
    }

    /// Open file `ino` for reading (`write` requests fail with EROFS).
    pub fn open(&self, ino: u64, write: bool) -> Result<Opened, FsError> {
        let tree = self.ns.tree();
        let Some(node) = tree.files.get(&ino) else {
            return Err(if tree.dirs.contains_key(&ino) {
                if write {
                    FsError::ReadOnly
                } else {
                    FsError::IsDir
                }
            } else {
                FsError::NotFound
            });
        };
        if write {
            return Err(FsError::ReadOnly);
        }
        let attr = attr::file_attr(ino, node, self.cfg.owner);
        let content = self.source.open(node.file, node.size)?;
        let local = content.local_file().is_some();
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(OpenHandle {
            attr,
            content,
            planner: Mutex::new(ReadPlanner::new(self.cfg.prefetch, node.size)),
        });
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, handle);
        Ok(Opened { fh, local })
    }

    fn handle(&self, fh: u64) -> Option<Arc<OpenHandle>> {
        self.handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }

    /// Run `f` on the complete local file behind handle `fh`, if it has one.
    pub fn with_local_file<R>(&self, fh: u64, f: impl FnOnce(&File) -> R) -> Option<R> {
        let h = self.handle(fh)?;
        h.content.local_file().map(f)
    }

    /// Read `size` bytes at `offset` through handle `fh`: exactly `size` bytes, fewer only at
    /// the end of the file, never wrong bytes.
    pub fn read(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> BoxFuture<'static, Result<Bytes, FsError>> {
        let Some(h) = self.handle(fh) else {
            return Box::pin(std::future::ready(Err(FsError::BadHandle)));
        };
        let plan = h
            .planner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plan(offset, size);
        if plan.len == 0 {
            return Box::pin(std::future::ready(Ok(Bytes::new())));
        }
        let mut fut = h.content.read(&plan);
        Box::pin(async move {
            // A read that has to wait tells the planner: the reader is starved, read-ahead
            // must reach further.
            let data = match futures_util::poll!(&mut fut) {
                std::task::Poll::Ready(r) => r?,
                std::task::Poll::Pending => {
                    h.planner
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .note_wait();
                    fut.await?
                }
            };
            if data.len() as u64 != plan.len {
                return Err(FsError::Read(ReadError::Internal(format!(
                    "source returned {} bytes for a read of {}",
                    data.len(),
                    plan.len
                ))));
            }
            Ok(data)
        })
    }

    /// Close handle `fh`.
    pub fn release(&self, fh: u64) {
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh);
    }

    /// Number of open file handles.
    pub fn open_handles(&self) -> usize {
        self.handles.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Filesystem statistics.
    pub fn statfs(&self) -> StatFs {
        attr::statfs(&self.ns.tree())
    }

    /// Extended attribute `name` of `ino`, honouring the size-0 probe and ERANGE. Names
    /// outside `user.` get EOPNOTSUPP (as on a filesystem without that namespace): tools such
    /// as `ls -l` then stop asking for SELinux labels and ACLs for the rest of the mount,
    /// where ENODATA would cost them a request per file.
    pub fn getxattr(&self, ino: u64, name: &[u8], size: u32) -> Result<XattrReply, FsError> {
        let tree = self.ns.tree();
        if !name.starts_with(b"user.") {
            return Err(
                if tree.files.contains_key(&ino) || tree.dirs.contains_key(&ino) {
                    FsError::NotSupported
                } else {
                    FsError::NotFound
                },
            );
        }
        let value = match tree.files.get(&ino) {
            Some(f) => {
                let attrs = self
                    .source
                    .xattrs(f.file)
                    .unwrap_or_else(|| f.xattrs.clone());
                std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| attrs.get(n))
                    .cloned()
                    .ok_or(FsError::NoAttr)?
            }
            None if tree.dirs.contains_key(&ino) => return Err(FsError::NoAttr),
            None => return Err(FsError::NotFound),
        };
        sized_reply(value, size)
    }

    /// NUL-terminated names of the extended attributes of `ino`.
    pub fn listxattr(&self, ino: u64, size: u32) -> Result<XattrReply, FsError> {
        let tree = self.ns.tree();
        let mut list = Vec::new();
        match tree.files.get(&ino) {
            Some(f) => {
                let attrs = self
                    .source
                    .xattrs(f.file)
                    .unwrap_or_else(|| f.xattrs.clone());
                for name in attrs.keys() {
                    list.extend_from_slice(name.as_bytes());
                    list.push(0);
                }
            }
            None if tree.dirs.contains_key(&ino) => {}
            None => return Err(FsError::NotFound),
        }
        sized_reply(list, size)
    }
}

fn sized_reply(data: Vec<u8>, size: u32) -> Result<XattrReply, FsError> {
    if size == 0 {
        Ok(XattrReply::Size(data.len() as u32))
    } else if (size as usize) < data.len() {
        Err(FsError::Range { needed: data.len() })
    } else {
        Ok(XattrReply::Data(data))
    }
}
