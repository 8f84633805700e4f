//! The file tree the mount shows, and its live updates.
//!
//! The tree is immutable once built (`tree`); [`Namespace::apply`] builds a new one next to it
//! and swaps it in, so a lookup never waits for an update and never sees half of one. The diff
//! of the two (`tree_diff`) gives the kernel invalidations the update requires. Inode numbers
//! are explained in `inodes`, readdir cookies in `cookies`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::inodes::InodeAlloc;
pub use super::inodes::{FILE_INO_BASE, MAX_INODE_KEY, ROOT_INO};
use super::tree::{Tree, build};
use super::tree_diff::diff;

/// The longest file name the mount accepts (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Caller-side identity of the content behind a file (the source resolves it), e.g. the row id
/// of an asset version in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

/// Extended attributes of a file: names (e.g. `user.icloud.asset_id`) to values.
pub type Xattrs = Arc<BTreeMap<String, Vec<u8>>>;

/// One file of the mount as the caller describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Relative path, `/`-separated, no empty, `.` or `..` component, names <= 255 bytes.
    pub path: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Modification time (also ctime).
    pub mtime: SystemTime,
    /// What the content source reads.
    pub file: FileId,
    /// Stable key of the inode (below [`MAX_INODE_KEY`]); equal keys are hard links.
    pub inode_key: u64,
    /// Extended attributes.
    pub xattrs: Xattrs,
}

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// An entry the namespace refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The path as given.
    pub path: String,
    /// Why it is not shown.
    pub reason: SkipReason,
}

/// Why an entry is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Empty, absolute, `.`/`..`/empty component, NUL byte or a name over 255 bytes.
    InvalidPath,
    /// Another file already has this path.
    DuplicatePath,
    /// A directory has this path.
    ShadowedByDirectory,
    /// The inode key is not below [`MAX_INODE_KEY`].
    KeyOutOfRange,
    /// Same inode key as another path but a different size, mtime or file.
    ConflictingHardLink,
}

/// A kernel cache entry to drop after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Forget the dentry `name` in `parent` (a new name, whose negative entry may be cached,
    /// or a removed directory, whose subtree goes with it).
    Entry { parent: u64, name: Vec<u8> },
    /// The file `child` named `name` in `parent` is gone (also tells inotify watchers).
    Delete {
        parent: u64,
        child: u64,
        name: Vec<u8>,
    },
    /// Attributes or the listing of inode `ino` changed.
    Inode { ino: u64 },
}

/// What an update changed.
#[derive(Debug, Default)]
pub struct Update {
    /// Kernel invalidations to send, names first.
    pub invalidations: Vec<Invalidation>,
    /// Entries refused.
    pub skipped: Vec<Skipped>,
}

/// The live namespace of a mount: the current tree plus the inode allocator behind updates.
pub struct Namespace {
    tree: RwLock<Arc<Tree>>,
    alloc: Mutex<InodeAlloc>,
    epoch: SystemTime,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tree = self.tree();
        f.debug_struct("Namespace")
            .field("dirs", &tree.dirs.len())
            .field("files", &tree.files.len())
            .finish()
    }
}

impl Namespace {
    /// A namespace of `entries` plus `extra_dirs` (directories shown even when empty). Empty
    /// directories get the newest file's mtime: the same on every mount of the same library,
    /// so `rsync -a` finds nothing to update on them (the mount time changed at each mount).
    pub fn new(entries: Vec<Entry>, extra_dirs: &[String]) -> (Namespace, Vec<Skipped>) {
        let newest = entries.iter().map(|e| e.mtime).max();
        Self::with_epoch(
            entries,
            extra_dirs,
            newest.unwrap_or(SystemTime::UNIX_EPOCH),
        )
    }

    /// As [`Namespace::new`], with `epoch` as the mtime of empty directories.
    pub fn with_epoch(
        entries: Vec<Entry>,
        extra_dirs: &[String],
        epoch: SystemTime,
    ) -> (Namespace, Vec<Skipped>) {
        let mut alloc = InodeAlloc::default();
        let (tree, skipped) = build(entries, extra_dirs, &mut alloc, None, epoch);
        let ns = Namespace {
            tree: RwLock::new(Arc::new(tree)),
            alloc: Mutex::new(alloc),
            epoch,
        };
        (ns, skipped)
    }

    /// The current tree.
    pub(crate) fn tree(&self) -> Arc<Tree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replace the contents with `entries` + `extra_dirs`: unchanged files keep their inode and
    /// attributes, new ones appear, missing ones disappear. Returns the kernel invalidations
    /// the change needs (to be sent from outside any filesystem request).
    pub fn apply(&self, entries: Vec<Entry>, extra_dirs: &[String]) -> Update {
        let mut alloc = self.alloc.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.tree();
        let (new, skipped) = build(entries, extra_dirs, &mut alloc, Some(&old), self.epoch);
        let invalidations = diff(&old, &new);
        *self.tree.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Update {
            invalidations,
            skipped,
        }
    }

    /// Number of files (inodes, not paths).
    pub fn file_count(&self) -> u64 {
        self.tree().files.len() as u64
    }

    /// Bytes of all files (each inode once).
    pub fn total_bytes(&self) -> u64 {
        self.tree().total_bytes
    }
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
