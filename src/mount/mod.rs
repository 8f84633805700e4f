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
//! - [`namespace`]: the entries shown and their live updates, over `tree` (one immutable
//!   version: sorted directories, hard links), `inodes` (stable numbering), `cookies`
//!   (readdir resume points) and `tree_diff` (the invalidations an update needs);
//! - [`attr`]: `stat` / `statfs` answers;
//! - [`core`]: every operation as plain Rust ([`FsCore`]), driven directly by tests;
//! - [`read`]: read-ahead planning per open handle;
//! - [`fetcher`]: single-flight block transfers from the CDN into the cache;
//! - [`source`]: the content-source trait and the cached implementation;
//! - `fuse`: the thin fuser adapter (errno mapping happens there only);
//! - [`options`]: how to mount; [`error`]: why mounting failed;
//! - [`preflight`](mod@preflight): mountpoint and FUSE checks that explain what is wrong
//!   before mounting;
//! - [`session`]: mounting, the session threads, signals, unmounting;
//! - [`updater`]: live updates and the kernel invalidations they need.
//!
//! The behaviour contract is `docs/SEMANTICS.md`.

pub mod attr;
mod cookies;
pub mod core;
pub mod error;
pub mod fetcher;
mod fuse;
mod inodes;
pub mod namespace;
pub mod options;
pub mod preflight;
pub mod read;
pub mod session;
pub mod source;
mod tree;
mod tree_diff;
pub mod updater;

pub use self::attr::{Attr, Owner, StatFs};
pub use self::core::{CoreConfig, DirEntry, FsCore, FsError, Opened, XattrReply};
pub use self::error::MountError;
pub use self::fetcher::{BlockFetcher, FetcherConfig, FetcherStats, RemoteFile};
pub use self::namespace::{
    Entry, FileId, Invalidation, Kind, Namespace, ROOT_INO, SkipReason, Skipped, Update, Xattrs,
};
pub use self::options::MountOptions;
pub use self::preflight::{check_mountpoint, preflight};
pub use self::read::{PrefetchConfig, ReadPlan, ReadPlanner};
pub use self::session::{MountHandle, MountStats, mount};
pub use self::source::{
    CachedSource, ContentSource, FileLocator, FileSpec, LocalContent, OpenContent, ReadError,
};
pub use self::updater::Updater;
