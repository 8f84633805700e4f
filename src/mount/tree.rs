//! One immutable version of the file tree, and how it is built from a list of entries:
//! implicit directories, byte-sorted children, name clashes, hard links, directory mtimes.

use std::collections::HashMap;
use std::time::SystemTime;

use super::cookies::assign_cookies;
use super::inodes::{InodeAlloc, MAX_INODE_KEY, ROOT_INO};
use super::namespace::{Entry, FileId, Kind, NAME_MAX, SkipReason, Skipped, Xattrs};

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

/// The tree of `entries` + `extra_dirs`, taking inodes from `alloc` and keeping the readdir
/// cookies of `old`; also the entries refused.
pub(super) fn build(
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
