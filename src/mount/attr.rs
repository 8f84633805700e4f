//! What `stat` and `statfs` say about the mount: plain structs built from the tree, converted
//! to fuser types only in the adapter.

use std::time::SystemTime;

use super::namespace::{Kind, NAME_MAX};
use super::tree::{DirNode, FileNode, Tree};

/// `st_blksize`: the I/O size tools such as `cp` and stdio pick for their buffers. 128 KiB is
/// what the kernel sends us per buffered read, so a bigger buffer gains nothing per request.
pub const PREFERRED_IO_SIZE: u32 = 128 * 1024;
/// `f_bsize` / `f_frsize` of `statfs`.
pub const STATFS_BLOCK: u32 = 4096;

/// Owner of every inode of the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// The user running the process.
    pub fn current() -> Self {
        // SAFETY: getuid/getgid cannot fail.
        unsafe {
            Owner {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }
}

/// Attributes of one inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Exact size of a file; 0 for directories.
    pub size: u64,
    /// 512-byte blocks: `ceil(size / 512)`.
    pub blocks: u64,
    /// mtime, also reported as ctime, atime and crtime.
    pub mtime: SystemTime,
    /// 0444 for files, 0555 for directories.
    pub perm: u16,
    /// 1 per path for files, 2 + subdirectories for directories.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Preferred I/O size.
    pub blksize: u32,
}

pub(crate) fn file_attr(ino: u64, f: &FileNode, owner: Owner) -> Attr {
    Attr {
        ino,
        kind: Kind::File,
        size: f.size,
        blocks: f.size.div_ceil(512),
        mtime: f.mtime,
        perm: 0o444,
        nlink: f.nlink,
        uid: owner.uid,
        gid: owner.gid,
        blksize: PREFERRED_IO_SIZE,
    }
}

pub(crate) fn dir_attr(ino: u64, d: &DirNode, owner: Owner) -> Attr {
    Attr {
        ino,
        kind: Kind::Dir,
        size: 0,
        blocks: 0,
        mtime: d.mtime,
        perm: 0o555,
        nlink: 2 + d.subdirs,
        uid: owner.uid,
        gid: owner.gid,
        blksize: PREFERRED_IO_SIZE,
    }
}

/// Answer of `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Total blocks of `frsize` bytes: the library's bytes, rounded up.
    pub blocks: u64,
    /// Free blocks: 0 (read-only).
    pub bfree: u64,
    /// Blocks available to unprivileged users: 0.
    pub bavail: u64,
    /// Inodes: the number of files.
    pub files: u64,
    /// Free inodes: 0.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size (unit of `blocks`).
    pub frsize: u32,
}

pub(crate) fn statfs(tree: &Tree) -> StatFs {
    StatFs {
        blocks: tree.total_bytes.div_ceil(STATFS_BLOCK as u64),
        bfree: 0,
        bavail: 0,
        files: tree.files.len() as u64,
        ffree: 0,
        bsize: STATFS_BLOCK,
        namelen: NAME_MAX as u32,
        frsize: STATFS_BLOCK,
    }
}
