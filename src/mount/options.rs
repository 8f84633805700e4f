//! How to mount: the options of [`super::mount`] and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::core::CoreConfig;

/// Kernel readahead asked for, in KiB: a sequential reader's requests arrive in 1 MiB pieces
/// (the FUSE maximum) instead of 128 KiB ones, an eighth of the round trips through the
/// daemon. Peeks are unaffected (the first readahead of a file stays small, see `read`).
pub const READ_AHEAD_KB: u32 = 1024;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Where (an existing, empty directory).
    pub mountpoint: PathBuf,
    /// Let other users (and root) in (`allow_other`); non-root users need `user_allow_other`
    /// in `/etc/fuse.conf`. Off: the mount is private to the mounting user.
    pub allow_other: bool,
    /// Source name shown by `mount` and `df`.
    pub fs_name: String,
    /// Filesystem subtype (shown as `fuse.<subtype>`).
    pub subtype: String,
    /// FUSE worker threads (at least 4).
    pub threads: usize,
    /// How long the kernel trusts attributes.
    pub attr_ttl: Duration,
    /// How long the kernel trusts names.
    pub entry_ttl: Duration,
    /// How long the kernel remembers that a name does not exist.
    pub negative_ttl: Duration,
    /// Use kernel passthrough for mirrored files when the kernel and privileges allow it.
    pub passthrough: bool,
    /// Open files not yet complete in the block cache with `FOPEN_DIRECT_IO` (when the kernel
    /// allows shared `mmap` of such files): each reply goes straight into the reader's buffer
    /// instead of through the page cache, one copy fewer, and the daemon sees the reader's own
    /// reads instead of the kernel's 1 MiB readahead (which left it idle about a third of a
    /// cold read, see `fuse.rs`). Complete files keep the page cache (and passthrough).
    /// On by default. (It once let concurrent readers fetch the rest of a block twice, through
    /// a stale head in the memory tier; both paths are fixed, and the whole mount suite soaks
    /// clean with it on.)
    pub direct_io_cold: bool,
    /// Kernel readahead of the mount in KiB (the kernel's default is 128), set when the
    /// daemon may (root): larger reads mean fewer round trips through the daemon.
    pub read_ahead_kb: Option<u32>,
    /// Core settings (owner, read-ahead).
    pub core: CoreConfig,
    /// Runtime for reads that wait for the network; `None` starts a private one.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The FUSE device (only tests change it).
    pub fuse_device: PathBuf,
}

impl MountOptions {
    /// Defaults for mounting at `mountpoint`.
    pub fn new(mountpoint: impl Into<PathBuf>) -> Self {
        MountOptions {
            mountpoint: mountpoint.into(),
            allow_other: false,
            fs_name: "icloudpd-rs".into(),
            subtype: "icloudpd-rs".into(),
            threads: 8,
            // The catalog is authoritative and every change is pushed as an invalidation, so
            // the kernel may keep what it learnt for long.
            attr_ttl: Duration::from_secs(24 * 3600),
            entry_ttl: Duration::from_secs(24 * 3600),
            negative_ttl: Duration::from_secs(3600),
            passthrough: true,
            direct_io_cold: true,
            read_ahead_kb: Some(READ_AHEAD_KB),
            core: CoreConfig::default(),
            runtime: None,
            fuse_device: PathBuf::from("/dev/fuse"),
        }
    }
}
