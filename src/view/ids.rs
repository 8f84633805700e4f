//! How catalog rows become the mount's [`FileId`]s and inode keys.
//!
//! - A photo or video file: file id and inode key are the catalog's [`VersionKey`] (stable and
//!   never reused), so the same version shown in the date tree, an album and a smart folder is
//!   one inode with several names (hard links), and keeps its inode number across mounts.
//! - An XMP sidecar: inode key `XMP_KEY_BASE + asset key` (the sidecars of one asset are hard
//!   links of each other); its file id also carries a fingerprint of the sidecar's bytes, so
//!   when the asset's metadata changes the namespace sees a new file and gives it a fresh inode
//!   (the kernel's cached pages of the old text can never be served for the new one).

use crate::catalog::{AssetKey, VersionKey};
use crate::mount::FileId;

/// Inode keys of sidecars start here (version keys stay below it).
pub const XMP_KEY_BASE: u64 = 1 << 60;
/// Sidecar file ids have this bit set.
const XMP_FILE_FLAG: u64 = 1 << 62;
/// Bits of the asset key in a sidecar file id.
const ASSET_BITS: u32 = 40;
/// Bits of the content fingerprint in a sidecar file id.
const FINGERPRINT_BITS: u32 = 20;

/// What a file id stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The bytes of a catalog version.
    Version(VersionKey),
    /// The XMP sidecar of an asset (rendered from the catalog).
    Sidecar(AssetKey),
}

/// The file id and inode key of a version's file; `None` for keys out of range.
pub fn version_ids(version: VersionKey) -> Option<(FileId, u64)> {
    let k = u64::try_from(version.0)
        .ok()
        .filter(|k| *k < XMP_KEY_BASE)?;
    Some((FileId(k), k))
}

/// The file id and inode key of an asset's sidecar whose bytes hash to `digest`.
pub fn sidecar_ids(asset: AssetKey, digest: &[u8; 32]) -> Option<(FileId, u64)> {
    let k = u64::try_from(asset.0)
        .ok()
        .filter(|k| *k < (1 << ASSET_BITS))?;
    let fp = u64::from_be_bytes(digest[..8].try_into().ok()?) & ((1 << FINGERPRINT_BITS) - 1);
    Some((
        FileId(XMP_FILE_FLAG | (fp << ASSET_BITS) | k),
        XMP_KEY_BASE + k,
    ))
}

/// What `id` stands for.
pub fn kind_of(id: FileId) -> FileKind {
    if id.0 & XMP_FILE_FLAG != 0 {
        FileKind::Sidecar(AssetKey((id.0 & ((1 << ASSET_BITS) - 1)) as i64))
    } else {
        FileKind::Version(VersionKey(id.0 as i64))
    }
}

/// The fingerprint part of a sidecar's file id (to check rendered bytes against).
pub fn sidecar_fingerprint(id: FileId) -> u64 {
    (id.0 >> ASSET_BITS) & ((1 << FINGERPRINT_BITS) - 1)
}

/// The fingerprint of sidecar bytes with this digest.
pub fn fingerprint_of(digest: &[u8; 32]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8])) & ((1 << FINGERPRINT_BITS) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::namespace::MAX_INODE_KEY;

    #[test]
    fn ids_round_trip_and_stay_in_range() {
        let (f, k) = version_ids(VersionKey(42)).unwrap();
        assert_eq!((f, k), (FileId(42), 42));
        assert_eq!(kind_of(f), FileKind::Version(VersionKey(42)));
        let digest = [0xAB; 32];
        let (f, k) = sidecar_ids(AssetKey(7), &digest).unwrap();
        assert_eq!(kind_of(f), FileKind::Sidecar(AssetKey(7)));
        assert_eq!(sidecar_fingerprint(f), fingerprint_of(&digest));
        assert!((XMP_KEY_BASE..MAX_INODE_KEY).contains(&k));
        assert!(version_ids(VersionKey(-1)).is_none());
        assert!(version_ids(VersionKey(XMP_KEY_BASE as i64)).is_none());
        assert!(sidecar_ids(AssetKey(1 << 41), &digest).is_none());
    }

    #[test]
    fn a_changed_sidecar_is_a_different_file_with_the_same_inode_key() {
        let (a, ka) = sidecar_ids(AssetKey(7), &[1; 32]).unwrap();
        let (b, kb) = sidecar_ids(AssetKey(7), &[2; 32]).unwrap();
        assert_ne!(a, b);
        assert_eq!(ka, kb);
    }
}
