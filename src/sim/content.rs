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
