//! Where block bytes live: one sparse file per content, block `i` at byte `i * BLOCK_SIZE`.
//!
//! Why sparse files rather than one file per block: a 300,000-photo library with a few blocks
//! per photo would otherwise mean a million tiny files (slow to list, to delete, to back up,
//! and costly in inodes), and a photo's blocks are usually read together. Evicting one block
//! punches a hole (`fallocate(PUNCH_HOLE)`); the file is unlinked when its last block goes.
//! Files are `0600` in `0700` fan-out directories (`blocks/ab/abcdef...`): personal photos.

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The block files under one cache directory.
#[derive(Debug)]
pub(crate) struct BlockFiles {
    root: PathBuf,
}

impl BlockFiles {
    pub fn new(root: PathBuf) -> Self {
        BlockFiles { root }
    }

    /// Path of the sparse file holding the blocks of `key` (a hex string).
    pub fn path(&self, key: &str) -> PathBuf {
        let fan = key.get(..2).unwrap_or("00");
        self.root.join(fan).join(key)
    }

    /// Write `data` at `offset` of the file of `key`, creating it (and its directory) if needed.
    /// Returns the file's metadata just before and just after the write: the caller can tell
    /// whether anyone else wrote the file since its own previous write.
    pub fn write(&self, key: &str, offset: u64, data: &[u8]) -> io::Result<(Metadata, Metadata)> {
        let path = self.path(key);
        let file = match open_rw(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)?;
                }
                open_rw(&path)?
            }
            other => other?,
        };
        let before = file.metadata()?;
        file.write_all_at(data, offset)?;
        Ok((before, file.metadata()?))
    }

    /// Read exactly `len` bytes at `offset` of the file of `key` into `buf` (emptied first);
    /// `Ok(false)` when the file does not exist or is too short (a block lost to a crash or an
    /// external deletion).
    pub fn read(&self, key: &str, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = match File::open(self.path(key)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            other => other?,
        };
        file.seek(SeekFrom::Start(offset))?;
        // `read_to_end` into reserved capacity: no zero-filling of a buffer about to be
        // overwritten.
        buf.clear();
        buf.reserve_exact(len);
        file.take(len as u64).read_to_end(buf)?;
        Ok(buf.len() == len)
    }

    /// Give back the disk space of `[offset, offset + len)` of the file of `key`.
    pub fn punch(&self, key: &str, offset: u64, len: u64) -> io::Result<()> {
        let file = match OpenOptions::new().write(true).open(self.path(key)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other?,
        };
        punch_hole(&file, offset, len)
    }

    /// Delete the file of `key` (its last block was evicted).
    pub fn remove(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Delete the block files whose key `indexed` does not know: blocks written but never
    /// indexed (a crash before the index's commit, a store refused for want of room while
    /// another block of the file was in flight) would otherwise hold their space, outside the
    /// budget, for good. Returns how many went. Run at open, before any block is stored.
    pub fn remove_unindexed(&self, indexed: impl Fn(&str) -> bool) -> usize {
        let mut removed = 0;
        let Ok(fans) = fs::read_dir(&self.root) else {
            return 0;
        };
        for fan in fans.flatten() {
            if !fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(files) = fs::read_dir(fan.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name();
                let Some(key) = name.to_str() else { continue };
                if file.file_type().is_ok_and(|t| t.is_file())
                    && !indexed(key)
                    && fs::remove_file(file.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Delete every block file (the index was rebuilt, so they are unreferenced).
    pub fn clear(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    /// Whether this filesystem can punch holes (probed once at open; without it evicted blocks
    /// keep their space until their whole file goes). The probe runs in the root, created first:
    /// a fresh cache has no block file yet.
    pub fn probe_punch(&self) -> bool {
        let probe = self.root.join(".punch-probe");
        let tried = (|| -> io::Result<()> {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)?;
            let f = open_rw(&probe)?;
            f.write_all_at(&[1u8; 8192], 0)?;
            punch_hole(&f, 0, 4096)
        })();
        let _ = fs::remove_file(&probe);
        if let Err(e) = &tried {
            tracing::debug!(error = %e, root = %self.root.display(), "hole punching probe failed");
        }
        tried.is_ok()
    }
}

/// Open (or create, `0600`) a file for reading and writing, keeping its contents.
pub(super) fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

pub(super) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid, owned descriptor.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
