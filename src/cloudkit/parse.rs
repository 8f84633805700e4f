//! A CPLMaster + CPLAsset pair into `model::Asset` with its versions (section 6.1 of the
//! protocol notes) and metadata. Pairing the two records is [`super::pairing`]'s job.
//!
//! Nothing is dropped silently: a record that cannot become an asset, or a rendition that cannot
//! become a version, is reported as a [`Skipped`] with the reason.

use crate::model::{Asset, ItemKind, ListedVersion, Location, Version, VersionKind};

use super::fields::RecordText;
use super::plist::{self, Plist};
use super::records::Record;

/// An asset as listed: the catalog data plus the short-lived download URL of each version.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedAsset {
    /// The asset; `asset.versions` holds the same versions without URLs.
    pub asset: Asset,
    /// Every version with its download URL, in the order of `asset.versions`.
    pub downloads: Vec<ListedVersion>,
}

impl ListedAsset {
    /// The download URL of one version, if listed.
    pub fn url(&self, kind: VersionKind) -> Option<&str> {
        self.downloads
            .iter()
            .find(|d| d.version.kind == kind)
            .map(|d| d.download_url.as_str())
    }
}

/// A record (or one rendition of it) that did not become part of an asset, and why: the
/// catalog stores these with the run.
pub use crate::model::Skipped;

/// A [`Skipped`] entry.
pub(crate) fn skip_entry(record_name: &str, reason: impl Into<String>) -> Skipped {
    Skipped {
        record_name: record_name.to_string(),
        reason: reason.into(),
    }
}

/// The skip entry of a record the server answered with an error in its place, if it is one.
pub(crate) fn server_error_skip<S: RecordText>(r: &Record<S>) -> Option<Skipped> {
    let code: &str = r.server_error_code.as_deref()?;
    let reason = format!("server error {code}: {}", r.reason.as_deref().unwrap_or(""));
    Some(skip_entry(r.name(), reason))
}

/// The versions of an image (or an asset of unknown kind): version kind and rendition prefix.
const IMAGE_TABLE: [(VersionKind, &str); 9] = [
    (VersionKind::Original, "resOriginal"),
    (VersionKind::Alternative, "resOriginalAlt"),
    (VersionKind::Medium, "resJPEGMed"),
    (VersionKind::Thumb, "resJPEGThumb"),
    (VersionKind::Adjusted, "resJPEGFull"),
    (VersionKind::LiveOriginal, "resOriginalVidCompl"),
    (VersionKind::LiveMedium, "resVidMed"),
    (VersionKind::LiveThumb, "resVidSmall"),
    (VersionKind::LiveAdjusted, "resVidFull"),
];

/// The versions of a movie.
const MOVIE_TABLE: [(VersionKind, &str); 4] = [
    (VersionKind::Original, "resOriginal"),
    (VersionKind::Medium, "resVidMed"),
    (VersionKind::Thumb, "resVidSmall"),
    (VersionKind::Adjusted, "resVidFull"),
];

/// Image or movie from the master's `itemType` (section 4.3), with icloudpd's filename
/// heuristic for UTIs outside the table.
pub fn item_kind(item_type: Option<&str>, filename: Option<&str>) -> ItemKind {
    let Some(uti) = item_type else {
        return ItemKind::Unknown;
    };
    match uti {
        "public.heic"
        | "public.heif"
        | "public.jpeg"
        | "public.png"
        | "org.webmproject.webp"
        | "public.tiff"
        | "com.compuserve.gif"
        | "com.adobe.raw-image"
        | "com.canon.cr2-raw-image"
        | "com.canon.crw-raw-image"
        | "com.canon.cr3-raw-image"
        | "com.sony.arw-raw-image"
        | "com.fuji.raw-image"
        | "com.panasonic.rw2-raw-image"
        | "com.nikon.nrw-raw-image"
        | "com.nikon.raw-image"
        | "com.pentax.raw-image"
        | "com.olympus.raw-image"
        | "com.olympus.or-raw-image" => ItemKind::Image,
        "com.apple.quicktime-movie" | "public.mpeg-4" | "com.apple.m4v-video" => ItemKind::Movie,
        _ => {
            let ext = filename
                .and_then(|f| f.rsplit_once('.'))
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            if matches!(ext.as_str(), "heic" | "png" | "jpg" | "jpeg" | "webp") {
                ItemKind::Image
            } else {
                ItemKind::Movie
            }
        }
    }
}

/// Build the asset of a master/asset pair. Unusable renditions are reported in `skipped`.
pub(crate) fn build_asset(
    master: &Record,
    asset: &Record,
    zone: &str,
    skipped: &mut Vec<Skipped>,
) -> ListedAsset {
    build_asset_with(master, asset, zone, skipped, Urls::Keep)
}

/// Whether a listing keeps the download URLs of its versions ([`ListedAsset::downloads`]).
/// A listing nobody downloads from drops them: a copy of every URL and version (three
/// allocations per version) was a tenth of a large listing's parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urls {
    Keep,
    Drop,
    /// A walk that asked only which assets an index holds (`desiredKeys` `masterRef`): its
    /// records carry no rendition, so none is looked for (nor reported missing).
    Membership,
}

/// [`build_asset`]; with [`Urls::Drop`] the asset's `downloads` stay empty (a version without
/// a usable URL is still reported and left out, exactly as with [`Urls::Keep`]).
pub(crate) fn build_asset_with<S: RecordText>(
    master: &Record<S>,
    asset: &Record<S>,
    zone: &str,
    skipped: &mut Vec<Skipped>,
    urls: Urls,
) -> ListedAsset {
    let id = master.name().to_string();
    let (filename, filename_problem) = decode_filename(master);
    let item_type = master.string("itemType").map(str::to_string);
    let kind = item_kind(item_type.as_deref(), filename.as_deref());
    let table: &[(VersionKind, &str)] = if kind == ItemKind::Movie {
        &MOVIE_TABLE
    } else {
        &IMAGE_TABLE
    };
    let mut versions = Vec::with_capacity(table.len());
    let mut downloads = Vec::with_capacity(if urls == Urls::Keep { table.len() } else { 0 });
    let table = if urls == Urls::Membership { &[] } else { table };
    for &(version_kind, prefix) in table {
        match rendition(master, asset, version_kind, prefix) {
            Ok(Some((version, url))) => {
                if urls == Urls::Keep {
                    downloads.push(ListedVersion {
                        version: version.clone(),
                        download_url: url.to_string(),
                    });
                }
                versions.push(version);
            }
            // Every asset has an original: without one there is nothing to download or show.
            Ok(None) if version_kind == VersionKind::Original => skipped.push(skip_entry(
                &id,
                format!("no original version ({prefix}Res on neither record)"),
            )),
            Ok(None) => {}
            Err(reason) => skipped.push(skip_entry(&id, reason)),
        }
    }
    let text = |name: &str| match asset.text(name) {
        Ok(t) => t.filter(|s| !s.is_empty()),
        Err(e) => {
            tracing::debug!(asset = %id, field = name, problem = %e, "undecodable text field ignored");
            None
        }
    };
    let asset_model = Asset {
        id: id.clone(),
        asset_record: asset.name().to_string(),
        asset_change_tag: asset.change_tag.as_deref().map(str::to_string),
        zone: asset
            .zone_name
            .as_deref()
            .or(master.zone_name.as_deref())
            .unwrap_or(zone)
            .to_string(),
        filename,
        filename_problem,
        item_type,
        kind,
        asset_date_ms: timestamp(asset, "assetDate", &id, urls),
        added_date_ms: timestamp(asset, "addedDate", &id, urls),
        tz_offset_s: asset
            .int("timeZoneOffset")
            .and_then(|v| i32::try_from(v).ok()),
        favorite: asset.flag("isFavorite"),
        hidden: asset.flag("isHidden"),
        deleted: asset.flag("isDeleted"),
        date_expunged_ms: asset
            .int("dateExpunged")
            .or_else(|| master.int("dateExpunged")),
        burst_id: asset.string("burstId").map(str::to_string),
        subtype: asset.int("assetSubtype").unwrap_or(0),
        subtype_v2: asset.int("assetSubtypeV2").unwrap_or(0),
        orientation: asset
            .int("orientation")
            .or_else(|| master.int("originalOrientation"))
            .and_then(|v| i32::try_from(v).ok()),
        duration: asset.int("duration"),
        adjustment_type: asset.string("adjustmentType").map(str::to_string),
        caption: text("captionEnc"),
        description: text("extendedDescEnc"),
        keywords: keywords(asset, &id),
        location: location(asset, &id),
        versions,
    };
    ListedAsset {
        asset: asset_model,
        downloads,
    }
}

/// `filenameEnc` decoded, or why there is no usable name.
fn decode_filename<S: RecordText>(master: &Record<S>) -> (Option<String>, Option<String>) {
    if !master.has("filenameEnc") {
        return (None, Some("no filenameEnc on the CPLMaster".into()));
    }
    let declared = master.field_type("filenameEnc");
    match master.text("filenameEnc") {
        Ok(Some(name)) if name.is_empty() => (None, Some("filenameEnc is empty".into())),
        Ok(Some(name)) => {
            let note = match declared {
                None | Some("STRING") | Some("ENCRYPTED_BYTES") => None,
                Some(other) => Some(format!("filenameEnc has type {other}; decoded as base64")),
            };
            (Some(name), note)
        }
        Ok(None) => (None, Some("no filenameEnc on the CPLMaster".into())),
        Err(e) => (None, Some(format!("filenameEnc undecodable: {e}"))),
    }
}

/// One version from the asset's rendition if it has one, else the master's, with its
/// download URL. `Ok(None)`: neither record has this rendition. `Err`: it exists but cannot
/// be used.
/// A date field in milliseconds since the epoch. A missing or unreadable one, or one no
/// calendar can show, is the epoch (as icloudpd takes it), said in the log: the photo lands in
/// `1970/01/01`, with the same date as its file's time.
fn timestamp<S: RecordText>(asset: &Record<S>, field: &str, id: &str, urls: Urls) -> i64 {
    match asset.int(field) {
        Some(ms) if chrono::DateTime::from_timestamp_millis(ms).is_some() => ms,
        // A membership walk asks for no date.
        _ if urls == Urls::Membership => 0,
        found => {
            tracing::warn!(asset = %id, field, value = ?found, "no usable date; taking 1970-01-01 (as icloudpd does)");
            0
        }
    }
}

/// The largest file iCloud stores is 1 TB; a declared size beyond it is not believed.
const MAX_PLAUSIBLE_SIZE: u64 = 1 << 40;

fn rendition<'r, S: RecordText>(
    master: &'r Record<S>,
    asset: &'r Record<S>,
    kind: VersionKind,
    prefix: &str,
) -> Result<Option<(Version, &'r str)>, String> {
    let Some(&[res_field, type_field, width_field, height_field]) =
        super::fields::rendition_names(prefix)
    else {
        return Ok(None);
    };
    let source = if asset.has(res_field) {
        asset
    } else if master.has(res_field) {
        master
    } else {
        return Ok(None);
    };
    let what = || {
        format!(
            "{} version ({res_field} on {})",
            kind.as_str(),
            source.kind()
        )
    };
    let Some(res) = source.resource(res_field) else {
        return Err(format!("{}: not a resource dictionary", what()));
    };
    let url = res
        .download_url
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: no downloadURL", what()))?;
    let size = res
        .size
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| format!("{}: no valid size", what()))?;
    // A declared size is what a mount shows before a byte is fetched: an empty or absurd one
    // would be an empty photo or a petabyte in `du`, so such a version is not used.
    if size == 0 || size > MAX_PLAUSIBLE_SIZE {
        return Err(format!("{}: implausible size {size}", what()));
    }
    let checksum = res
        .file_checksum
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: no fileChecksum", what()))?;
    let file_type = source
        .string(type_field)
        .ok_or_else(|| format!("{}: no {type_field}", what()))?;
    let dim = |field: &str| source.int(field).and_then(|v| u32::try_from(v).ok());
    Ok(Some((
        Version {
            kind,
            size,
            file_type: file_type.to_string(),
            checksum: checksum.to_string(),
            width: dim(width_field),
            height: dim(height_field),
        },
        url,
    )))
}

fn keywords<S: RecordText>(asset: &Record<S>, id: &str) -> Vec<String> {
    let bytes = match asset.bytes("keywordsEnc") {
        Ok(Some(b)) => b,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::debug!(asset = %id, problem = %e, "keywordsEnc ignored");
            return Vec::new();
        }
    };
    match plist::parse(&bytes) {
        Ok(Plist::Array(items)) => items
            .into_iter()
            .filter_map(|p| match p {
                Plist::String(s) if !s.is_empty() => Some(s),
                _ => None,
            })
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::debug!(asset = %id, problem = %e, "keywordsEnc ignored");
            Vec::new()
        }
    }
}

fn location<S: RecordText>(asset: &Record<S>, id: &str) -> Option<Location> {
    let from_plist = match asset.bytes("locationEnc") {
        Ok(Some(b)) => match plist::parse(&b) {
            Ok(Plist::Dict(d)) => {
                let get = |k: &str| d.get(k).and_then(Plist::as_f64).filter(|f| f.is_finite());
                match (get("lat"), get("lon").or_else(|| get("lng"))) {
                    (Some(latitude), Some(longitude)) => Some(Location {
                        latitude,
                        longitude,
                        altitude: get("alt"),
                        speed: get("speed"),
                        gps_time_ms: d.get("timestamp").and_then(plist_date_ms),
                    }),
                    _ => None,
                }
            }
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(asset = %id, problem = %e, "locationEnc ignored");
                None
            }
        },
        _ => None,
    };
    from_plist
        .or_else(|| {
            Some(Location {
                latitude: asset.double("locationLatitude")?,
                longitude: asset.double("locationLongitude")?,
                altitude: None,
                speed: None,
                gps_time_ms: None,
            })
        })
        .filter(|l| (-90.0..=90.0).contains(&l.latitude) && (-180.0..=180.0).contains(&l.longitude))
}

/// Seconds from the Unix epoch to the plist epoch (2001-01-01T00:00:00Z).
const PLIST_EPOCH_UNIX_SECS: f64 = 978_307_200.0;

/// A plist date as Unix milliseconds; `None` for another type or a time no calendar holds
/// (years beyond ±262,000 are what chrono can show, far past any GPS fix).
fn plist_date_ms(value: &Plist) -> Option<i64> {
    let Plist::Date(secs) = value else {
        return None;
    };
    let ms = ((secs + PLIST_EPOCH_UNIX_SECS) * 1000.0).round();
    // A float cast saturates rather than failing: check the range before it.
    (ms.is_finite() && ms.abs() < 8e15).then_some(ms as i64)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
pub(crate) mod tests;
