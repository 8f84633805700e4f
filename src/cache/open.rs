//! Opening a cache directory: created private, locked for this process, its index loaded
//! (or rebuilt empty, with a warning, when it is damaged or of another format).

use std::collections::{HashMap, HashSet};
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::index::{Index, IndexProblem, Journal, Row};
use super::memory::{BlockTable, HotTier, Meta};
use super::store::{self, BlockFiles};
use super::{BLOCK_SIZE, BlockCache, CacheConfig, CacheError, ContentKey};

impl BlockCache {
    /// Open the cache in `cfg.dir`, creating it, taking its lock, and rebuilding its index
    /// empty (with a warning) if it is damaged.
    pub fn open(cfg: &CacheConfig) -> Result<BlockCache, CacheError> {
        let dir = cfg.dir.clone();
        let io_err = |source| CacheError::Io {
            path: dir.clone(),
            source,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err)?;
        // An existing directory keeps its mode; tighten it (the cache holds personal photos).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        let lock_path = dir.join("lock");
        let Some(lock_file) = crate::lock_file::try_lock(&lock_path, 0o600).map_err(io_err)? else {
            return Err(CacheError::Locked {
                holder: crate::lock_file::holder_of_held(&lock_path),
                dir,
            });
        };
        let files = BlockFiles::new(dir.join("blocks"));
        let (index, rows) = open_index(&dir, &files)?;
        let indexed: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let strays = files.remove_unindexed(|key| indexed.contains(key));
        if strays > 0 {
            tracing::info!(
                files = strays,
                "removed cache files no block of the index is in"
            );
        }
        let mut table = BlockTable::default();
        for r in rows {
            let id = (ContentKey(r.key.into()), r.idx);
            table.insert(
                id,
                Meta {
                    len: r.len,
                    sum: r.sum,
                    last_use: r.last_use,
                    // Distinct, like `last_use` in the index; later stores tick above them.
                    copy: r.last_use,
                },
            );
        }
        let journal = Journal::start(index).map_err(io_err)?;
        let can_punch = files.probe_punch();
        if !can_punch {
            tracing::warn!(
                dir = %dir.display(),
                "the cache filesystem cannot punch holes: evicted blocks free their space only \
                 when every block of their file is evicted; prefer ext4, xfs or btrfs"
            );
        }
        let cache = BlockCache {
            dir,
            configured_bytes: cfg.max_bytes,
            max_bytes: AtomicU64::new(cfg.max_bytes),
            write_failure_reported: AtomicBool::new(false),
            files,
            table: Mutex::new(table),
            journal,
            pins: Mutex::new(HashMap::new()),
            content_pins: Mutex::new(HashMap::new()),
            complete: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            hot: Mutex::new(HotTier::new(cfg.memory_bytes)),
            buffers: Arc::default(),
            can_punch,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            _lock: lock_file,
        };
        cache.trim_to_budget();
        Ok(cache)
    }
}

/// Open the index and load its rows; a damaged or foreign index is replaced by an empty one
/// (and the block files it described are deleted).
fn open_index(dir: &Path, files: &BlockFiles) -> Result<(Index, Vec<Row>), CacheError> {
    let path = dir.join("index.sqlite");
    prepare_private_file(&path).map_err(|source| CacheError::Io {
        path: path.clone(),
        source,
    })?;
    let problem = match Index::open(&path, BLOCK_SIZE).and_then(|mut ix| {
        let rows = ix.load()?;
        Ok((ix, rows))
    }) {
        Ok(loaded) => return Ok(loaded),
        Err(problem) => problem,
    };
    if let IndexProblem::OtherFormat(_) = problem {
        tracing::info!(
            index = %path.display(),
            problem = %problem,
            "the cache was written in another format; starting with an empty cache"
        );
    } else {
        tracing::warn!(
            index = %path.display(),
            problem = %problem,
            "the cache index is unusable; starting with an empty cache"
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CacheError::Io { path: p, source: e });
            }
            _ => {}
        }
    }
    files.clear().map_err(|source| CacheError::Io {
        path: dir.join("blocks"),
        source,
    })?;
    prepare_private_file(&path).map_err(|source| CacheError::Io {
        path: path.clone(),
        source,
    })?;
    let index = Index::open(&path, BLOCK_SIZE).map_err(|problem| match problem {
        IndexProblem::Sqlite(source) => CacheError::Index { path, source },
        IndexProblem::Damaged(what) => CacheError::Index {
            path,
            source: rusqlite::Error::InvalidParameterName(what),
        },
        other @ IndexProblem::OtherFormat(_) => CacheError::Index {
            path,
            source: rusqlite::Error::InvalidParameterName(other.to_string()),
        },
    })?;
    Ok((index, Vec::new()))
}

/// Create the index file `0600` before SQLite does (SQLite would use the umask, and its
/// `-wal`/`-shm` files copy the main file's mode).
fn prepare_private_file(path: &Path) -> std::io::Result<()> {
    store::open_rw(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}
