//! Deterministic file content for the CDN: bytes are a pure function of (seed, resource, offset),
//! start with the right magic bytes for their type and have exactly the declared size. Nothing
//! is stored per byte, so any library size and any `Range` are cheap.
//!
//! Each format is structurally valid so that real tools accept the files:
//!
//! | format | structure | smallest complete size |
//! |---|---|---|
//! | JPEG | SOI, JFIF APP0, `COM` padding segments, a tiny 8×8 grey baseline image, EOI; no EXIF | 163 |
//! | PNG | signature, IHDR (1×1 grey), `paDd` padding chunks, IDAT, IEND | 82 |
//! | HEIC | `ftyp` (heic; mif1, heic), `mdat` to the end | 32 |
//! | MOV | `ftyp` (qt), `wide`, `mdat` to the end | 36 |
//! | MP4 | `ftyp` (isom; isom, iso2, mp41), `mdat` to the end | 36 |
//! | DNG, CR2 | little-endian TIFF (Canon's CR2 header), IFD0 of a 1×1 strip, padding | 225, 203 |
//!
//! `mdat` switches to a 64-bit size above 4 GiB. A file smaller than its format's minimum
//! ([`min_size`]) keeps only the leading magic bytes. The padding is keyed noise
//! (`noise`), written first; the structural bytes of a window are then written over it
//! (`layout`), so generation runs at memory speed and costs the same anywhere in the file.

mod crc32;
mod formats;
mod layout;
mod noise;

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

/// The byte source of one file: its noise key and its structure, computed once and reused for
/// every window (the CDN builds one per response).
#[derive(Debug, Clone)]
pub struct FileBytes {
    key: u64,
    size: u64,
    layout: layout::Layout,
}

impl FileBytes {
    /// The bytes of `res` in the library generated from `seed`.
    pub fn new(seed: u64, res: &Resource) -> Self {
        let key = noise::key(&[
            seed,
            res.asset_key,
            u64::from(res.rendition),
            u64::from(res.generation),
            u64::from(res.format.code()),
            res.size,
        ]);
        FileBytes {
            key,
            size: res.size,
            layout: formats::layout(res.format, res.size),
        }
    }

    /// Exact size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fill `buf` with the bytes starting at `offset`; returns how many were written (fewer
    /// than `buf.len()` only at the end of the file).
    pub fn fill(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.size {
            return 0;
        }
        let n = (self.size - offset).min(buf.len() as u64) as usize;
        let window = &mut buf[..n];
        noise::fill(self.key, offset, window);
        self.layout.overlay(self.key, offset, window);
        n
    }
}

/// Fill `buf` with the bytes of `res` starting at `offset` (bytes past the end are left alone).
pub fn fill(seed: u64, res: &Resource, offset: u64, buf: &mut [u8]) {
    FileBytes::new(seed, res).fill(offset, buf);
}

/// SHA-256 of the whole content of `res`.
pub fn sha256(seed: u64, res: &Resource) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let bytes = FileBytes::new(seed, res);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    loop {
        let n = bytes.fill(off, &mut buf);
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().into()
}

/// The smallest size from which every file of `format` is structurally complete (see the
/// module docs); smaller files keep only their leading magic bytes.
pub fn min_size(format: Format) -> u64 {
    formats::min_size(format)
}

#[cfg(test)]
mod tests;
