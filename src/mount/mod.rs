//! `icloudpd-rs mount`: the library as a read-only FUSE filesystem.
//!
//! The mount knows nothing of the catalog, the layout or CloudKit. The integrator gives it:
//! - a [`Namespace`]: a flat list of [`Entry`] (relative path, exact size, mtime, [`FileId`],
//!   stable inode key, extended attributes) plus directories to show even when empty; updated
//!   live with [`MountHandle::apply`];
//! - a [`ContentSource`]: the bytes of a [`FileId`]. [`CachedSource`] is the real one: fully
//!   mirrored files from disk, everything else through the on-disk block cache
//!   ([`crate::cache`]) filled by Range requests ([`BlockFetcher`]).
//!
//! Layers, each usable alone:
//! - [`namespace`]: inodes, sorted directories, readdir cookies, update diffs;
//! - [`attr`]: `stat` / `statfs` answers;
//! - [`core`]: every operation as plain Rust ([`FsCore`]), driven directly by tests;
//! - [`read`]: read-ahead planning per open handle;
//! - [`fetcher`]: single-flight block transfers from the CDN into the cache;
//! - [`source`]: the content-source trait and the cached implementation;
//! - `fuse`: the thin fuser adapter (errno mapping happens there only);
//! - [`session`]: mountpoint checks, mounting, invalidations, signals, unmounting.
//!
//! The behaviour contract is `docs/SEMANTICS.md`.

pub mod attr;
pub mod core;
pub mod fetcher;
mod fuse;
pub mod namespace;
pub mod read;
pub mod session;
pub mod source;

pub use self::attr::{Attr, Owner, StatFs};
pub use self::core::{CoreConfig, DirEntry, FsCore, FsError, Opened, XattrReply};
pub use self::fetcher::{BlockFetcher, FetcherConfig, FetcherStats, RemoteFile};
pub use self::namespace::{
    Entry, FileId, Invalidation, Kind, Namespace, ROOT_INO, SkipReason, Skipped, Update, Xattrs,
};
pub use self::read::{PrefetchConfig, ReadPlan, ReadPlanner};
pub use self::session::{
    MountError, MountHandle, MountOptions, MountStats, Updater, check_mountpoint, mount, preflight,
};
pub use self::source::{
    CachedSource, ContentSource, FileLocator, FileSpec, LocalContent, OpenContent, ReadError,
};
