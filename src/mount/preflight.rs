//! Checks that explain what is wrong before anything is mounted: the mountpoint (exists,
//! empty directory, not already or stale-mounted, ours), the FUSE device, the mount helper,
//! `allow_other`; and what this process may ask of the kernel (root, passthrough).

use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::MountError;
use super::options::MountOptions;

/// Check that `path` can be mounted on: exists, is an empty directory, is not already (or
/// stale-) mounted, and is ours to use. Returns its canonical form.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let p = path.to_path_buf();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => MountError::MissingMountpoint(p),
                Some(libc::ENOTCONN) => MountError::StaleMount(stale_mount_holding(&p)),
                Some(libc::EACCES) | Some(libc::EPERM) => MountError::NoPermission(p),
                _ => MountError::Io {
                    op: "stat",
                    path: p,
                    source: e,
                },
            });
        }
    };
    if !meta.is_dir() {
        return Err(MountError::NotADirectory(p));
    }
    let canonical = path.canonicalize().map_err(|source| MountError::Io {
        op: "resolve",
        path: p.clone(),
        source,
    })?;
    if let Some(fstype) = mounted_fstype(&canonical) {
        // A FUSE mount whose process died (killed, crashed) still answers `stat` from the
        // kernel's attribute cache; listing it asks the gone process and fails.
        let gone = fstype.starts_with("fuse")
            && std::fs::read_dir(&canonical)
                .is_err_and(|e| e.raw_os_error() == Some(libc::ENOTCONN));
        return Err(if gone {
            MountError::StaleMount(canonical)
        } else {
            MountError::AlreadyMounted {
                path: canonical,
                fstype,
            }
        });
    }
    let mut listing = std::fs::read_dir(&canonical).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => MountError::NoPermission(canonical.clone()),
        _ => MountError::Io {
            op: "list",
            path: canonical.clone(),
            source: e,
        },
    })?;
    if listing.next().is_some() {
        return Err(MountError::NotEmpty(canonical));
    }
    if !is_root() && !may_write(&canonical) {
        return Err(MountError::NoPermission(canonical));
    }
    Ok(canonical)
}

/// Every check [`super::mount`] makes before mounting (mountpoint, FUSE device, mount helper,
/// `allow_other`), so a command can refuse bad input before it does anything slow. Returns the
/// canonical mountpoint.
pub fn preflight(opts: &MountOptions) -> Result<PathBuf, MountError> {
    let mountpoint = check_mountpoint(&opts.mountpoint)?;
    check_fuse(opts)?;
    Ok(mountpoint)
}

/// Check the FUSE device, the mount helper and `allow_other` permission.
fn check_fuse(opts: &MountOptions) -> Result<(), MountError> {
    let dev = &opts.fuse_device;
    match OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => {}
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    MountError::NoFuseDevice(dev.clone())
                }
                Some(libc::EACCES) | Some(libc::EPERM) => MountError::FuseDeviceDenied(dev.clone()),
                _ => MountError::Io {
                    op: "open",
                    path: dev.clone(),
                    source: e,
                },
            });
        }
    }
    if !is_root() {
        if !in_path("fusermount3") && !in_path("fusermount") {
            return Err(MountError::NoFusermount);
        }
        if opts.allow_other && !fuse_conf_allows_other(Path::new("/etc/fuse.conf")) {
            return Err(MountError::AllowOtherNotPermitted);
        }
    }
    Ok(())
}

/// Whether this process runs as root (may mount without the helper, tune the kernel).
pub(super) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn may_write(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

fn in_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
}

/// Whether `/etc/fuse.conf` (or `path`) has an uncommented `user_allow_other` line.
pub(crate) fn fuse_conf_allows_other(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

/// The filesystem type mounted exactly at `path`, from `/proc/self/mountinfo`.
/// The stale mount that makes `path` unreachable: `path` itself or the nearest folder above
/// it that is a FUSE mountpoint (what `fusermount3 -u` must be given).
fn stale_mount_holding(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    absolute
        .ancestors()
        .find(|a| mountinfo_fstype(&info, a).is_some_and(|t| t.starts_with("fuse")))
        .map(Path::to_path_buf)
        .unwrap_or(absolute)
}

pub(super) fn mounted_fstype(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo_fstype(&info, path)
}

pub(crate) fn mountinfo_fstype(info: &str, path: &Path) -> Option<String> {
    let want = path.as_os_str().as_bytes();
    info.lines().rev().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = unescape_mountinfo(fields.get(4)?);
        if mount_point != want {
            return None;
        }
        let dash = fields.iter().position(|f| *f == "-")?;
        fields.get(dash + 1).map(|s| s.to_string())
    })
}

/// Undo the octal escapes (`\040` for space...) of mountinfo paths.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Whether kernel passthrough may be used: it needs CAP_SYS_ADMIN in the initial user
/// namespace (the kernel checks it when a backing file is registered).
pub(super) fn passthrough_allowed() -> bool {
    is_root()
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing_handles_escapes_and_finds_the_type() {
        let info = "22 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n\
                    40 22 0:35 / /tmp/my\\040photos rw,nosuid - fuse.icloudpd-rs icloudpd-rs rw\n";
        assert_eq!(
            mountinfo_fstype(info, Path::new("/tmp/my photos")).as_deref(),
            Some("fuse.icloudpd-rs")
        );
        assert_eq!(
            mountinfo_fstype(info, Path::new("/")).as_deref(),
            Some("ext4")
        );
        assert_eq!(mountinfo_fstype(info, Path::new("/tmp")), None);
    }

    #[test]
    fn fuse_conf_needs_an_uncommented_user_allow_other() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fuse.conf");
        std::fs::write(&p, "# user_allow_other\nmount_max = 1000\n").unwrap();
        assert!(!fuse_conf_allows_other(&p));
        std::fs::write(&p, "mount_max = 1000\n  user_allow_other  \n").unwrap();
        assert!(fuse_conf_allows_other(&p));
        assert!(!fuse_conf_allows_other(&dir.path().join("missing")));
    }

    #[test]
    fn mountpoint_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            check_mountpoint(&missing),
            Err(MountError::MissingMountpoint(_))
        ));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&file),
            Err(MountError::NotADirectory(_))
        ));
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("a"), b"x").unwrap();
        assert!(matches!(
            check_mountpoint(&full),
            Err(MountError::NotEmpty(_))
        ));
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(
            check_mountpoint(&empty).unwrap(),
            empty.canonicalize().unwrap()
        );
        assert!(matches!(
            check_mountpoint(Path::new("/proc")),
            Err(MountError::AlreadyMounted { .. })
        ));
        let msg = MountError::StaleMount(PathBuf::from("/m")).to_string();
        assert!(msg.contains("fusermount3 -u /m"), "{msg}");
    }

    #[test]
    fn missing_fuse_device_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = MountOptions::new(dir.path());
        opts.fuse_device = dir.path().join("no-such-device");
        let err = check_fuse(&opts).unwrap_err();
        assert!(matches!(err, MountError::NoFuseDevice(_)));
        assert!(err.to_string().contains("modprobe fuse"));
    }
}
