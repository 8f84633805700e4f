//! The file tree the mount shows: inode numbers, directories, sorted entries, readdir cookies,
//! and live updates as diffs with the kernel invalidations they require.
//!
//! The tree is immutable once built; [`Namespace::apply`] builds a new one next to it and swaps
//! it in, so a lookup never waits for an update and never sees half of one.
//!
//! # Inode numbers (stable for the life of the mount, never reused)
//! - `1`: the root.
//! - Files: `FILE_INO_BASE + key`, where `key` is the caller's stable key (a catalog row id,
//!   below 2^61). Several paths with the same key are hard links of one inode (`nlink` = number
//!   of paths). If a key comes back with a different size, mtime or [`FileId`], it gets a fresh
//!   number from a counter in the remapped range, so an inode number always means the same bytes
//!   (the kernel keeps page cache per inode across opens).
//! - Directories: from the path: the first 8 bytes of SHA-256 of the path, in the directory
//!   range (top bits `10`); a collision with another directory probes the next number. A path
//!   keeps its number for the life of the mount, even if it disappears and comes back.
//!
//! # Readdir cookies
//! `.` is cookie 1, `..` is 2, and every child has a cookie strictly increasing in name order,
//! assigned once and kept across updates (new names get a value between their neighbours).
//! Reading "after cookie c" is a binary search for the first child whose cookie is greater than
//! c, so any cookie ever returned is a valid resume point, even if its entry has gone, and a
//! page costs O(log n + page) in any directory size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;
/// File inodes are `FILE_INO_BASE + key`.
pub const FILE_INO_BASE: u64 = 2;
/// Keys must be below this.
pub const MAX_INODE_KEY: u64 = 1 << 61;
/// Start of the range of files whose key changed content while mounted.
const REMAP_INO_BASE: u64 = (1 << 63) | (1 << 62);
/// Directory inodes: top bits `10`.
const DIR_INO_BASE: u64 = 1 << 63;
const DIR_INO_MASK: u64 = (1 << 62) - 1;

/// Cookie of `.`.
pub(crate) const COOKIE_DOT: u64 = 1;
/// Cookie of `..`.
pub(crate) const COOKIE_DOTDOT: u64 = 2;
/// Spacing of fresh cookies (room for 2^32 insertions between two neighbours... halving).
const COOKIE_STEP: u64 = 1 << 32;
/// Cookies stay positive as a signed 64-bit `d_off`.
const COOKIE_MAX: u64 = i64::MAX as u64;

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

#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub name: Box<[u8]>,
    pub ino: u64,
    pub kind: Kind,
    pub cookie: u64,
}

#[derive(Debug)]
pub(crate) struct DirNode {
    pub parent: u64,
    /// Sorted by name bytes; cookies strictly increasing.
    pub children: Vec<Child>,
    pub subdirs: u32,
    pub mtime: SystemTime,
}

#[derive(Debug, Clone)]
pub(crate) struct FileNode {
    pub size: u64,
    pub mtime: SystemTime,
    pub file: FileId,
    pub nlink: u32,
    pub xattrs: Xattrs,
}

/// One immutable version of the tree.
#[derive(Debug)]
pub(crate) struct Tree {
    pub dirs: HashMap<u64, DirNode>,
    pub files: HashMap<u64, FileNode>,
    pub total_bytes: u64,
}

impl Tree {
    /// The child `name` of directory `parent`.
    pub fn lookup<'a>(&self, parent: &'a DirNode, name: &[u8]) -> Option<&'a Child> {
        parent
            .children
            .binary_search_by(|c| (*c.name).cmp(name))
            .ok()
            .map(|i| &parent.children[i])
    }

    /// Children of `dir` after cookie `cookie` (all of them for cookies below 3).
    pub fn children_after(dir: &DirNode, cookie: u64) -> &[Child] {
        let start = dir.children.partition_point(|c| c.cookie <= cookie);
        &dir.children[start..]
    }
}

/// The identity a key's inode stands for.
#[derive(Debug, Clone, PartialEq)]
struct FileIdentity {
    ino: u64,
    size: u64,
    mtime: SystemTime,
    file: FileId,
}

/// Inode numbers handed out so far (kept for the life of the mount).
#[derive(Debug, Default)]
struct InodeAlloc {
    dirs: HashMap<String, u64>,
    dir_inos: HashSet<u64>,
    files: HashMap<u64, FileIdentity>,
    next_remap: u64,
}

impl InodeAlloc {
    fn dir_ino(&mut self, path: &str) -> u64 {
        if path.is_empty() {
            return ROOT_INO;
        }
        if let Some(&ino) = self.dirs.get(path) {
            return ino;
        }
        let digest = Sha256::digest(path.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let mut ino = DIR_INO_BASE | (u64::from_be_bytes(first) & DIR_INO_MASK);
        while self.dir_inos.contains(&ino) {
            ino = DIR_INO_BASE | (ino.wrapping_add(1) & DIR_INO_MASK);
        }
        self.dir_inos.insert(ino);
        self.dirs.insert(path.to_string(), ino);
        ino
    }

    fn file_ino(&mut self, key: u64, size: u64, mtime: SystemTime, file: FileId) -> u64 {
        match self.files.get(&key) {
            Some(cur) if cur.size == size && cur.mtime == mtime && cur.file == file => cur.ino,
            previous => {
                let ino = if previous.is_none() {
                    FILE_INO_BASE + key
                } else {
                    self.next_remap += 1;
                    REMAP_INO_BASE + self.next_remap
                };
                self.files.insert(
                    key,
                    FileIdentity {
                        ino,
                        size,
                        mtime,
                        file,
                    },
                );
                ino
            }
        }
    }
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
    /// directories get the current time as mtime.
    pub fn new(entries: Vec<Entry>, extra_dirs: &[String]) -> (Namespace, Vec<Skipped>) {
        Self::with_epoch(entries, extra_dirs, SystemTime::now())
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

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= NAME_MAX)
}

/// (name, inode, kind) of a child after sorting.
type SortedChild = (Box<[u8]>, u64, Kind);

/// Children gathered for one directory before sorting.
#[derive(Default)]
struct DirBuild {
    ino: u64,
    parent: u64,
    /// (name, child inode, kind, input order)
    children: Vec<(Box<[u8]>, u64, Kind, usize)>,
}

fn build(
    entries: Vec<Entry>,
    extra_dirs: &[String],
    alloc: &mut InodeAlloc,
    old: Option<&Tree>,
    epoch: SystemTime,
) -> (Tree, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut dirs: HashMap<String, DirBuild> = HashMap::new();
    dirs.insert(
        String::new(),
        DirBuild {
            ino: ROOT_INO,
            parent: ROOT_INO,
            ..DirBuild::default()
        },
    );
    // Make sure `path` and its ancestors exist; returns its inode.
    fn ensure_dir(dirs: &mut HashMap<String, DirBuild>, alloc: &mut InodeAlloc, path: &str) -> u64 {
        if let Some(d) = dirs.get(path) {
            return d.ino;
        }
        let (parent_path, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", path),
        };
        let parent = ensure_dir(dirs, alloc, parent_path);
        let ino = alloc.dir_ino(path);
        if let Some(p) = dirs.get_mut(parent_path) {
            p.children.push((name.as_bytes().into(), ino, Kind::Dir, 0));
        }
        dirs.insert(
            path.to_string(),
            DirBuild {
                ino,
                parent,
                children: Vec::new(),
            },
        );
        ino
    }

    for d in extra_dirs {
        if valid_path(d) {
            ensure_dir(&mut dirs, alloc, d);
        } else {
            skipped.push(Skipped {
                path: d.clone(),
                reason: SkipReason::InvalidPath,
            });
        }
    }

    // Entries in input order (None once refused); the first entry of each key gives the
    // inode's attributes.
    let mut pending: Vec<Option<Entry>> = Vec::with_capacity(entries.len());
    let mut first_of_key: HashMap<u64, (usize, u64)> = HashMap::new();
    for (order, e) in entries.into_iter().enumerate() {
        let refused = if !valid_path(&e.path) {
            Some(SkipReason::InvalidPath)
        } else if e.inode_key >= MAX_INODE_KEY {
            Some(SkipReason::KeyOutOfRange)
        } else if let Some(&(first, _)) = first_of_key.get(&e.inode_key) {
            let same = pending[first]
                .as_ref()
                .is_some_and(|f| f.size == e.size && f.mtime == e.mtime && f.file == e.file);
            (!same).then_some(SkipReason::ConflictingHardLink)
        } else {
            None
        };
        if let Some(reason) = refused {
            skipped.push(Skipped {
                path: e.path,
                reason,
            });
            pending.push(None);
            continue;
        }
        let ino = match first_of_key.get(&e.inode_key) {
            Some(&(_, ino)) => ino,
            None => {
                let ino = alloc.file_ino(e.inode_key, e.size, e.mtime, e.file);
                first_of_key.insert(e.inode_key, (order, ino));
                ino
            }
        };
        let (parent_path, name) = match e.path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), e.path.clone()),
        };
        ensure_dir(&mut dirs, alloc, &parent_path);
        if let Some(p) = dirs.get_mut(&parent_path) {
            p.children
                .push((name.into_bytes().into(), ino, Kind::File, 1 + order));
        }
        pending.push(Some(e));
    }

    // Sort each directory and resolve name clashes: a directory beats a file, the first file
    // in input order beats later ones. Count the links of each file inode.
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut sorted: HashMap<u64, (u64, Vec<SortedChild>)> = HashMap::with_capacity(dirs.len());
    for (_, d) in dirs {
        let mut ch = d.children;
        // Tags: 0 for directories, 1 + input index for files.
        ch.sort_by(|a, b| a.0.cmp(&b.0).then(a.3.cmp(&b.3)));
        let mut out: Vec<SortedChild> = Vec::with_capacity(ch.len());
        for (name, ino, kind, tag) in ch {
            if let Some(last) = out.last()
                && last.0 == name
            {
                if kind == Kind::File {
                    let path = pending[tag - 1]
                        .as_ref()
                        .map(|e| e.path.clone())
                        .unwrap_or_default();
                    let reason = if last.2 == Kind::Dir {
                        SkipReason::ShadowedByDirectory
                    } else {
                        SkipReason::DuplicatePath
                    };
                    skipped.push(Skipped { path, reason });
                }
                continue;
            }
            if kind == Kind::File {
                *links.entry(ino).or_insert(0) += 1;
            }
            out.push((name, ino, kind));
        }
        sorted.insert(d.ino, (d.parent, out));
    }

    // One node per linked file inode. Every entry of a key has the same size, mtime and file
    // (others were refused), so the first one describes it even if its own path lost a clash.
    let mut files: HashMap<u64, FileNode> = HashMap::with_capacity(first_of_key.len());
    for (first, ino) in first_of_key.into_values() {
        let (Some(&nlink), Some(e)) = (links.get(&ino), pending[first].as_ref()) else {
            continue;
        };
        files.insert(
            ino,
            FileNode {
                size: e.size,
                mtime: e.mtime,
                file: e.file,
                nlink,
                xattrs: e.xattrs.clone(),
            },
        );
    }

    let total_bytes = files.values().map(|f| f.size).sum();
    let mut tree_dirs: HashMap<u64, DirNode> = HashMap::with_capacity(sorted.len());
    for (ino, (parent, children)) in sorted {
        let old_children = old
            .and_then(|t| t.dirs.get(&ino))
            .map(|d| d.children.as_slice());
        let names: Vec<&[u8]> = children.iter().map(|c| &*c.0).collect();
        let cookies = assign_cookies(&names, old_children);
        let subdirs = children.iter().filter(|c| c.2 == Kind::Dir).count() as u32;
        let children = children
            .into_iter()
            .zip(cookies)
            .map(|((name, ino, kind), cookie)| Child {
                name,
                ino,
                kind,
                cookie,
            })
            .collect();
        tree_dirs.insert(
            ino,
            DirNode {
                parent,
                children,
                subdirs,
                mtime: epoch,
            },
        );
    }
    set_dir_mtimes(&mut tree_dirs, &files, epoch);
    (
        Tree {
            dirs: tree_dirs,
            files,
            total_bytes,
        },
        skipped,
    )
}

/// A directory's mtime is the newest mtime of the files below it (so it moves when photos
/// are added), or `epoch` when it holds no file.
fn set_dir_mtimes(
    dirs: &mut HashMap<u64, DirNode>,
    files: &HashMap<u64, FileNode>,
    epoch: SystemTime,
) {
    fn newest(
        ino: u64,
        dirs: &HashMap<u64, DirNode>,
        files: &HashMap<u64, FileNode>,
        memo: &mut HashMap<u64, Option<SystemTime>>,
    ) -> Option<SystemTime> {
        if let Some(m) = memo.get(&ino) {
            return *m;
        }
        let mut best: Option<SystemTime> = None;
        // Iterative over files, recursive over directories (depth = path depth, small).
        if let Some(d) = dirs.get(&ino) {
            for c in &d.children {
                let t = match c.kind {
                    Kind::File => files.get(&c.ino).map(|f| f.mtime),
                    Kind::Dir => newest(c.ino, dirs, files, memo),
                };
                best = match (best, t) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        memo.insert(ino, best);
        best
    }
    let mut memo = HashMap::with_capacity(dirs.len());
    let inos: Vec<u64> = dirs.keys().copied().collect();
    for ino in &inos {
        newest(*ino, dirs, files, &mut memo);
    }
    for (ino, d) in dirs.iter_mut() {
        d.mtime = memo.get(ino).copied().flatten().unwrap_or(epoch);
    }
}

/// Cookies for the sorted `names`, keeping the cookie of every name already in `old`.
///
/// A new name gets a cookie between those of its nearest old neighbours, counting removed old
/// names too: resuming after the cookie of a removed entry then still shows the new names that
/// sort after it.
pub(crate) fn assign_cookies(names: &[&[u8]], old: Option<&[Child]>) -> Vec<u64> {
    let fresh = |n: usize| (1..=n as u64).map(|i| i * COOKIE_STEP).collect();
    let Some(old) = old else {
        return fresh(names.len());
    };
    let mut out = Vec::with_capacity(names.len());
    let mut j = 0;
    let mut i = 0;
    while i < names.len() {
        while j < old.len() && &*old[j].name < names[i] {
            j += 1;
        }
        if j < old.len() && &*old[j].name == names[i] {
            out.push(old[j].cookie);
            i += 1;
            continue;
        }
        // A run of new names between old[j - 1] and old[j].
        let low = if j > 0 {
            old[j - 1].cookie
        } else {
            COOKIE_DOTDOT
        };
        let high = old.get(j).map_or(COOKIE_MAX, |c| c.cookie);
        let run_start = i;
        while i < names.len() && old.get(j).is_none_or(|c| names[i] < &*c.name) {
            i += 1;
        }
        let run = (i - run_start) as u64;
        let step = if high == COOKIE_MAX && low.saturating_add(COOKIE_STEP * run) < COOKIE_MAX {
            // Appending: keep the usual spacing so later appends have room too.
            COOKIE_STEP
        } else {
            (high - low) / (run + 1)
        };
        if step == 0 {
            // No room left between two neighbours: renumber the directory. Old cookies may
            // then resume at a slightly wrong place; the update invalidates the listing anyway.
            return fresh(names.len());
        }
        for k in 1..=run {
            out.push(low + step * k);
        }
    }
    out
}

/// Invalidations turning the kernel's view of `old` into `new`.
fn diff(old: &Tree, new: &Tree) -> Vec<Invalidation> {
    let mut names = Vec::new();
    let mut inodes = Vec::new();
    for (&ino, nd) in &new.dirs {
        let Some(od) = old.dirs.get(&ino) else {
            continue;
        };
        let mut changed = false;
        let (mut i, mut j) = (0, 0);
        let gone = |c: &Child, names: &mut Vec<Invalidation>| {
            names.push(match c.kind {
                Kind::File => Invalidation::Delete {
                    parent: ino,
                    child: c.ino,
                    name: c.name.to_vec(),
                },
                Kind::Dir => Invalidation::Entry {
                    parent: ino,
                    name: c.name.to_vec(),
                },
            })
        };
        while i < od.children.len() || j < nd.children.len() {
            let o = od.children.get(i);
            let n = nd.children.get(j);
            match (o, n) {
                (Some(o), Some(n)) if o.name == n.name => {
                    if o.ino != n.ino || o.kind != n.kind {
                        changed = true;
                        names.push(Invalidation::Entry {
                            parent: ino,
                            name: n.name.to_vec(),
                        });
                    }
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(n)) if o.name < n.name => {
                    changed = true;
                    gone(o, &mut names);
                    i += 1;
                }
                (Some(o), None) => {
                    changed = true;
                    gone(o, &mut names);
                    i += 1;
                }
                (_, Some(n)) => {
                    changed = true;
                    names.push(Invalidation::Entry {
                        parent: ino,
                        name: n.name.to_vec(),
                    });
                    j += 1;
                }
                (None, None) => break,
            }
        }
        if changed || od.mtime != nd.mtime || od.subdirs != nd.subdirs {
            inodes.push(Invalidation::Inode { ino });
        }
    }
    for (&ino, nf) in &new.files {
        if let Some(of) = old.files.get(&ino)
            && of.nlink != nf.nlink
        {
            inodes.push(Invalidation::Inode { ino });
        }
    }
    names.extend(inodes);
    names
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
