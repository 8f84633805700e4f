//! Inode numbers, stable for the life of the mount and never reused.
//!
//! - `1`: the root.
//! - Files: `FILE_INO_BASE + key`, where `key` is the caller's stable key (a catalog row id,
//!   below 2^61). Several paths with the same key are hard links of one inode (`nlink` = number
//!   of paths). If a key comes back with a different size, mtime or [`FileId`], it gets a fresh
//!   number from a counter in the remapped range, so an inode number always means the same bytes
//!   (the kernel keeps page cache per inode across opens).
//! - Directories: from the path: the first 8 bytes of SHA-256 of the path, in the directory
//!   range (top bits `10`); a collision with another directory probes the next number. A path
//!   keeps its number for the life of the mount, even if it disappears and comes back.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::namespace::FileId;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;
/// File inodes are `FILE_INO_BASE + key`.
pub const FILE_INO_BASE: u64 = 2;
/// Keys must be below this.
pub const MAX_INODE_KEY: u64 = 1 << 61;
/// Start of the range of files whose key changed content while mounted.
const REMAP_INO_BASE: u64 = (1 << 63) | (1 << 62);
/// Directory inodes: top bits `10`.
pub(crate) const DIR_INO_BASE: u64 = 1 << 63;
const DIR_INO_MASK: u64 = (1 << 62) - 1;

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
pub(super) struct InodeAlloc {
    dirs: HashMap<String, u64>,
    dir_inos: HashSet<u64>,
    files: HashMap<u64, FileIdentity>,
    next_remap: u64,
}

impl InodeAlloc {
    /// The inode of the directory `path` (`""` is the root).
    pub(super) fn dir_ino(&mut self, path: &str) -> u64 {
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

    /// The inode of the file with `key` and this identity (a fresh one if the identity
    /// changed).
    pub(super) fn file_ino(&mut self, key: u64, size: u64, mtime: SystemTime, file: FileId) -> u64 {
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
