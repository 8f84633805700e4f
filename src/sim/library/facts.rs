//! Facts derived on demand from (seed, asset key): sizes, dimensions, checksums and keys of
//! every rendition, and descriptive metadata (time zone, orientation, GPS, caption, keywords).
//! Nothing here is stored, so it costs no memory per asset and is the same on every call.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::ids::Rng;
use super::model::{Asset, AssetKind, Rendition, rendition_format};
use crate::sim::content::{Format, Resource};

/// Labels of independent random streams.
mod stream {
    pub const SIZE: u64 = 1;
    pub const DIMS: u64 = 2;
    pub const CHECKSUM: u64 = 3;
    pub const META: u64 = 4;
    pub const CREATED: u64 = 5;
}

/// Everything about one rendition that the JSON and the CDN need.
#[derive(Debug, Clone)]
pub struct RenditionFacts {
    pub rendition: Rendition,
    pub format: Format,
    /// Content generation (edit generation for asset-level renditions).
    pub generation: u32,
    pub size: u64,
    pub width: i64,
    pub height: i64,
    /// `fileChecksum` = `Fingerprint` (standard base64 of 21 bytes).
    pub file_checksum: String,
    pub reference_checksum: String,
    pub wrapping_key: String,
}

impl RenditionFacts {
    /// The CDN resource this rendition is served as.
    pub fn resource(&self, asset_key: u64) -> Resource {
        Resource {
            asset_key,
            rendition: self.rendition as u8,
            generation: self.generation,
            size: self.size,
            format: self.format,
        }
    }
}

/// Derives an asset's immutable facts from (seed, key).
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub seed: u64,
    pub size_scale: f64,
}

const MB: f64 = 1_000_000.0;

impl Facts {
    /// Byte size of a rendition (at least 1 KiB so file headers fit).
    pub fn size(&self, asset: &Asset, r: Rendition) -> u64 {
        let generation = if r.on_asset() {
            u64::from(asset.edit_gen)
        } else {
            0
        };
        let mut rng = Rng::new(
            self.seed,
            stream::SIZE,
            asset.key ^ ((r as u64) << 48) ^ (generation << 52),
        );
        let original = self.original_bytes(asset);
        let bytes = match r {
            Rendition::Original => original,
            Rendition::OriginalAlt => 1.0 * MB + rng.unit() * 5.0 * MB,
            Rendition::OriginalVidCompl => 1.0 * MB + rng.unit() * 3.0 * MB,
            Rendition::JpegMed => 100_000.0 + rng.unit() * 600_000.0,
            Rendition::JpegThumb | Rendition::AssetJpegThumb => 20_000.0 + rng.unit() * 60_000.0,
            Rendition::VidMed if asset.kind.is_live() => 500_000.0 + rng.unit() * 1.5 * MB,
            Rendition::VidSmall if asset.kind.is_live() => 100_000.0 + rng.unit() * 400_000.0,
            Rendition::VidMed => original * (0.1 + rng.unit() * 0.1),
            Rendition::VidSmall => original * (0.02 + rng.unit() * 0.03),
            Rendition::JpegFull => 1.0 * MB + rng.unit() * 5.0 * MB,
            Rendition::VidFull => original * (0.8 + rng.unit() * 0.2),
        };
        ((bytes * self.size_scale) as u64).max(1024)
    }

    /// Unscaled size of the original: photos 1-8 MB, videos 10 MB-2 GB (most under 200 MB).
    fn original_bytes(&self, asset: &Asset) -> f64 {
        let mut rng = Rng::new(self.seed, stream::SIZE, asset.key);
        if asset.kind.is_movie() {
            // 10 MB * 200^(u^3): median ~ 15 MB, long tail up to 2 GB.
            let u = rng.unit();
            10.0 * MB * 200f64.powf(u * u * u)
        } else {
            1.0 * MB + rng.unit() * 7.0 * MB
        }
    }

    /// Pixel dimensions of a rendition.
    pub fn dims(&self, asset: &Asset, r: Rendition) -> (i64, i64) {
        let mut rng = Rng::new(self.seed, stream::DIMS, asset.key);
        let portrait = rng.chance(0.3);
        let (w, h) = match asset.kind {
            AssetKind::Screenshot => {
                [(1170, 2532), (1284, 2778), (2532, 1170)][rng.below(3) as usize]
            }
            AssetKind::Panorama => (12_000 + rng.range(0, 4000), 3000 + rng.range(0, 600)),
            AssetKind::RawCr2 => (6000, 4000),
            k if k.is_movie() => [(1920, 1080), (3840, 2160), (1280, 720)][rng.below(3) as usize],
            _ => (4032, 3024),
        };
        let (w, h) = if portrait && asset.kind != AssetKind::Panorama {
            (h, w)
        } else {
            (w, h)
        };
        let long_side = match r {
            Rendition::Original
            | Rendition::OriginalAlt
            | Rendition::JpegFull
            | Rendition::VidFull => return (w, h),
            Rendition::JpegMed => 2048,
            Rendition::JpegThumb | Rendition::AssetJpegThumb => 480,
            Rendition::OriginalVidCompl => 1440,
            Rendition::VidMed => 1280,
            Rendition::VidSmall => 640,
        };
        scale_to(w, h, long_side)
    }

    /// Every fact of a rendition except its URL.
    pub fn rendition(&self, asset: &Asset, master_name: &str, r: Rendition) -> RenditionFacts {
        let generation = if r.on_asset() {
            u32::from(asset.edit_gen)
        } else {
            0
        };
        let mut rng = Rng::new(
            self.seed,
            stream::CHECKSUM,
            asset.key ^ ((r as u64) << 48) ^ (u64::from(generation) << 52),
        );
        let mut sig = [0u8; 21];
        sig[0] = 0x01;
        let file_checksum = if r == Rendition::Original {
            master_name.to_string()
        } else {
            rng.fill(&mut sig[1..]);
            STANDARD.encode(sig)
        };
        rng.fill(&mut sig[1..]);
        let reference_checksum = STANDARD.encode(sig);
        let mut key = [0u8; 16];
        rng.fill(&mut key);
        let (width, height) = self.dims(asset, r);
        RenditionFacts {
            rendition: r,
            format: rendition_format(asset.kind, r),
            generation,
            size: self.size(asset, r),
            width,
            height,
            file_checksum,
            reference_checksum,
            wrapping_key: STANDARD.encode(key),
        }
    }

    /// `created.timestamp` of an asset's records: shortly after it was added.
    pub fn created_ms(&self, asset: &Asset) -> i64 {
        asset.added_date + Rng::new(self.seed, stream::CREATED, asset.key).range(1_000, 60_000)
    }

    /// Descriptive metadata of an asset.
    pub fn meta(&self, asset: &Asset) -> AssetMeta {
        let mut rng = Rng::new(self.seed, stream::META, asset.key);
        let tz = TIME_ZONES[rng.below(TIME_ZONES.len() as u64) as usize];
        let orientation = if rng.chance(0.25) { 6 } else { 1 };
        let location =
            (!matches!(asset.kind, AssetKind::Screenshot) && rng.chance(0.6)).then(|| Location {
                lat: rng.unit() * 140.0 - 70.0,
                lon: rng.unit() * 360.0 - 180.0,
                alt: rng.unit() * 3000.0,
                speed: if rng.chance(0.8) {
                    0.0
                } else {
                    rng.unit() * 30.0
                },
                course: if rng.chance(0.5) {
                    -1.0
                } else {
                    rng.unit() * 360.0
                },
                horz_acc: 5.0 + rng.unit() * 60.0,
                vert_acc: 3.0 + rng.unit() * 20.0,
                timestamp_ms: asset.asset_date,
            });
        let caption = rng
            .chance(0.04)
            .then(|| CAPTIONS[rng.below(CAPTIONS.len() as u64) as usize]);
        let keywords: Vec<&'static str> = if rng.chance(0.04) {
            let n = 1 + rng.below(3) as usize;
            (0..n)
                .map(|_| KEYWORDS[rng.below(KEYWORDS.len() as u64) as usize])
                .collect()
        } else {
            Vec::new()
        };
        let duration_ms = if asset.kind.is_movie() {
            rng.range(2_000, 600_000)
        } else {
            0
        };
        let live_duration = rng.range(1_500_000_000, 3_000_000_000);
        let live_still = rng.range(0, live_duration);
        let created_ms = self.created_ms(asset);
        let hdr = i64::from(!asset.kind.is_movie() && rng.chance(0.2));
        AssetMeta {
            tz_offset_secs: tz,
            orientation,
            location,
            caption,
            keywords,
            duration_ms,
            live_duration_ns: live_duration,
            live_still_ns: live_still,
            created_ms,
            hdr,
        }
    }
}

/// `timeZoneOffset` values (seconds east of UTC), including half- and quarter-hour zones.
pub const TIME_ZONES: [i64; 14] = [
    -28_800, -25_200, -18_000, -14_400, -10_800, 0, 3600, 7200, 19_800, 20_700, 28_800, 32_400,
    34_200, 45_900,
];

const CAPTIONS: [&str; 5] = [
    "Sunset at the lake",
    "Grandma's 80th 🎂",
    "Première neige",
    "雪の日",
    "Line one\nline two \"quoted\"",
];

const KEYWORDS: [&str; 6] = ["family", "travel", "été", "猫", "work", "hiking"];

/// GPS fix of an asset (`locationEnc`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    pub alt: f64,
    pub speed: f64,
    pub course: f64,
    pub horz_acc: f64,
    pub vert_acc: f64,
    pub timestamp_ms: i64,
}

/// Derived descriptive metadata.
#[derive(Debug, Clone)]
pub struct AssetMeta {
    pub tz_offset_secs: i64,
    pub orientation: i64,
    pub location: Option<Location>,
    pub caption: Option<&'static str>,
    pub keywords: Vec<&'static str>,
    pub duration_ms: i64,
    pub live_duration_ns: i64,
    pub live_still_ns: i64,
    /// `created.timestamp` of both records.
    pub created_ms: i64,
    pub hdr: i64,
}

/// Scale (w, h) so the longer side is `long_side` (never up).
pub fn scale_to(w: i64, h: i64, long_side: i64) -> (i64, i64) {
    let long = w.max(h);
    if long <= long_side || long == 0 {
        return (w, h);
    }
    ((w * long_side / long).max(1), (h * long_side / long).max(1))
}

#[cfg(test)]
mod tests {
    use super::super::model::EDITED;
    use super::super::model::tests::asset;
    use super::*;

    #[test]
    fn sizes_scale_and_never_drop_below_a_kib() {
        let f = Facts {
            seed: 1,
            size_scale: 1.0,
        };
        let a = asset(AssetKind::HeicPhoto, 100);
        let s = f.size(&a, Rendition::Original);
        assert!((1_000_000..=8_000_000).contains(&s), "{s}");
        let tiny = Facts {
            seed: 1,
            size_scale: 1e-9,
        };
        assert_eq!(tiny.size(&a, Rendition::Original), 1024);
        let v = asset(AssetKind::MovVideo, 101);
        let vs = f.size(&v, Rendition::Original);
        assert!((10_000_000..=2_000_000_000).contains(&vs), "{vs}");
    }

    #[test]
    fn edits_change_only_asset_level_content() {
        let f = Facts {
            seed: 1,
            size_scale: 1.0,
        };
        let mut a = asset(AssetKind::JpegPhoto, 100);
        a.flags |= EDITED;
        a.edit_gen = 1;
        let name = "x";
        let before = f.rendition(&a, name, Rendition::JpegFull);
        let orig_before = f.rendition(&a, name, Rendition::Original);
        a.edit_gen = 2;
        let after = f.rendition(&a, name, Rendition::JpegFull);
        assert_ne!(before.file_checksum, after.file_checksum);
        assert_eq!(after.generation, 2);
        assert_eq!(
            f.rendition(&a, name, Rendition::Original).size,
            orig_before.size
        );
    }
}
