//! Deterministic file content for the CDN: bytes are a pure function of (seed, resource, offset),
//! start with the right magic bytes for their type and have exactly the declared size. Nothing
//! is stored per byte, so any library size and any `Range` are cheap.

use serde::{Deserialize, Serialize};

/// File formats the CDN can synthesise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    Jpeg,
    Heic,
    Png,
    /// QuickTime movie (`com.apple.quicktime-movie`).
    Mov,
    /// MPEG-4 (`public.mpeg-4`).
    Mp4,
    /// Adobe DNG (`com.adobe.raw-image`).
    Dng,
    /// Canon CR2 (`com.canon.cr2-raw-image`).
    Cr2,
}

impl Format {
    /// The UTI CloudKit reports for this format.
    pub fn uti(self) -> &'static str {
        match self {
            Format::Jpeg => "public.jpeg",
            Format::Heic => "public.heic",
            Format::Png => "public.png",
            Format::Mov => "com.apple.quicktime-movie",
            Format::Mp4 => "public.mpeg-4",
            Format::Dng => "com.adobe.raw-image",
            Format::Cr2 => "com.canon.cr2-raw-image",
        }
    }

    /// Wire code used inside signed URLs.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Format::code`].
    pub fn from_code(code: u8) -> Option<Format> {
        [
            Format::Jpeg,
            Format::Heic,
            Format::Png,
            Format::Mov,
            Format::Mp4,
            Format::Dng,
            Format::Cr2,
        ]
        .into_iter()
        .find(|f| f.code() == code)
    }
}

/// One downloadable file: everything the CDN needs to serve it without consulting the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// Stable number of the asset inside the simulator (never reused).
    pub asset_key: u64,
    /// Which rendition of the asset (the library's own numbering, e.g. 0 = original).
    pub rendition: u8,
    /// Bumped when the content of this rendition changes (an edit), so bytes differ.
    pub generation: u32,
    /// Exact size in bytes.
    pub size: u64,
    pub format: Format,
}

/// Fill `buf` with the bytes of `res` starting at `offset` (bytes past the end are left alone).
///
/// Placeholder generator: magic bytes, then keyed pseudo-random bytes. The CDN work refines
/// the structure per format; the contract (pure function of seed, resource, offset) stays.
pub fn fill(seed: u64, res: &Resource, offset: u64, buf: &mut [u8]) {
    let magic: &[u8] = match res.format {
        Format::Jpeg => &[0xFF, 0xD8, 0xFF, 0xE0],
        Format::Heic => b"\0\0\0\x18ftypheic",
        Format::Png => &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
        Format::Mov => b"\0\0\0\x14ftypqt  ",
        Format::Mp4 => b"\0\0\0\x18ftypisom",
        Format::Dng | Format::Cr2 => b"II*\0",
    };
    let key = seed
        ^ res.asset_key.rotate_left(20)
        ^ (u64::from(res.rendition) << 56)
        ^ u64::from(res.generation);
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        if pos >= res.size {
            break;
        }
        *b = if (pos as usize) < magic.len() {
            magic[pos as usize]
        } else {
            let mut x = key ^ (pos / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 33;
            x.to_le_bytes()[(pos % 8) as usize]
        };
    }
}

/// SHA-256 of the whole content of `res`.
pub fn sha256(seed: u64, res: &Resource) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < res.size {
        let n = ((res.size - off) as usize).min(buf.len());
        fill(seed, res, off, &mut buf[..n]);
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().into()
}
