//! Why mounting or unmounting failed, with messages that name the fix.

use std::io;
use std::path::PathBuf;

/// Why mounting or unmounting failed. Messages name the fix.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {0} does not exist: create it first (mkdir -p {0})")]
    MissingMountpoint(PathBuf),
    #[error("mountpoint {0} is not a directory: mount on an empty directory")]
    NotADirectory(PathBuf),
    #[error(
        "mountpoint {0} is not empty: mount on an empty directory \
         (the mount would hide what is there)"
    )]
    NotEmpty(PathBuf),
    #[error(
        "{path} is already a mount point ({fstype}): unmount it first \
         (fusermount3 -u {path}) or choose another directory"
    )]
    AlreadyMounted { path: PathBuf, fstype: String },
    #[error(
        "{0} is a stale FUSE mount (Transport endpoint is not connected): a previous mount \
         ended without unmounting; clear it with `fusermount3 -u {0}` (as root: umount -l {0}) \
         and mount again"
    )]
    StaleMount(PathBuf),
    #[error("no permission to mount on {0}: use a directory you own")]
    NoPermission(PathBuf),
    #[error(
        "{0} does not exist: FUSE is not available; load it (modprobe fuse) or, in a container, \
         run with --device /dev/fuse --cap-add SYS_ADMIN"
    )]
    NoFuseDevice(PathBuf),
    #[error(
        "no permission to open {0}: FUSE access is restricted on this system \
         (check the device's group and mode, or ask your administrator)"
    )]
    FuseDeviceDenied(PathBuf),
    #[error("fusermount3 is not installed: install the fuse3 package (apt install fuse3)")]
    NoFusermount,
    #[error(
        "--allow-other needs `user_allow_other` in /etc/fuse.conf for non-root users: add that \
         line (as root) or mount without --allow-other"
    )]
    AllowOtherNotPermitted,
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("mounting on {path} failed: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {path} failed: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    #[error("the filesystem session ended with an error: {0}")]
    Session(io::Error),
    /// A second signal stopped the mount without waiting for the programs that used it.
    #[error(
        "stopped at once by a second signal: programs that still used the mount got errors \
         (transport endpoint is not connected)"
    )]
    ForcedStop,
}
