//! Flags shared by `sync` and `mount`: what to select, which versions, how to lay files out.
//! Names follow the Python icloudpd where it has the flag, so its users' habits carry over.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Which assets to take.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Selection")]
pub struct SelectionArgs {
    /// Library to use: a zone name (PrimarySync, SharedSync-...), "primary", "shared" or "all".
    #[arg(long, value_name = "NAME", default_value = "primary")]
    pub library: String,
    /// Album, album folder (every album in it) or smart folder to take (repeatable); "all" for
    /// every album; "!NAME" excludes an album or folder.
    #[arg(short = 'a', long = "album", value_name = "NAME")]
    pub albums: Vec<String>,
    /// Skip videos.
    #[arg(long)]
    pub skip_videos: bool,
    /// Skip photos (still images).
    #[arg(long)]
    pub skip_photos: bool,
    /// Skip the video part of live photos.
    #[arg(long)]
    pub skip_live_photos: bool,
    /// Skip assets created before DATE (YYYY-MM-DD, an RFC 3339 time, or Nd for N days ago).
    #[arg(long, value_name = "DATE")]
    pub skip_created_before: Option<String>,
    /// Skip assets created after DATE (YYYY-MM-DD, an RFC 3339 time, or Nd for N days ago).
    #[arg(long, value_name = "DATE")]
    pub skip_created_after: Option<String>,
    /// Only the N most recent assets.
    #[arg(long, value_name = "N")]
    pub recent: Option<usize>,
    /// Stop after N consecutive assets that are already downloaded (mount: needs --mirror).
    #[arg(long, value_name = "N")]
    pub until_found: Option<usize>,
    /// Skip files whose name matches GLOB (repeatable), e.g. "*.AAE".
    #[arg(long, value_name = "GLOB")]
    pub filename_exclude: Vec<String>,
}

/// Sizes of a version (`--size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizeArg {
    Original,
    Medium,
    Thumb,
    Adjusted,
    Alternative,
}

/// Sizes of the motion part of live photos (`--live-photo-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LiveSizeArg {
    Original,
    Medium,
    Thumb,
}

/// `--live-photo-mov-filename-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MovPolicyArg {
    /// `IMG_1234.HEIC` -> `IMG_1234_HEVC.MOV`.
    Suffix,
    /// `IMG_1234.HEIC` -> `IMG_1234.MOV`.
    Original,
}

/// `--align-raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlignRawArg {
    #[value(name = "as-is")]
    AsIs,
    Original,
    Alternative,
}

/// `--file-match-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileMatchArg {
    /// Same name and size = same file; a different size gets `-<size>` before the extension.
    #[value(name = "name-size-dedup-with-suffix")]
    NameSizeDedupWithSuffix,
    /// Every name carries the first 7 characters of the asset id.
    #[value(name = "name-id7")]
    NameId7,
}

/// Which versions of each asset, and how files are named and placed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Versions and layout")]
pub struct LayoutArgs {
    /// Version to download (repeatable).
    #[arg(long = "size", value_enum, value_name = "SIZE")]
    pub sizes: Vec<SizeArg>,
    /// A missing medium or thumb is skipped instead of replaced by the original; adjusted and
    /// alternative still fall back to the original, as in icloudpd.
    #[arg(long)]
    pub force_size: bool,
    /// Size of the video part of live photos.
    #[arg(long, value_enum, default_value = "original")]
    pub live_photo_size: LiveSizeArg,
    /// How the video of a live photo is named.
    #[arg(long, value_enum, default_value = "suffix")]
    pub live_photo_mov_filename_policy: MovPolicyArg,
    /// Which of a RAW+JPEG pair counts as the original.
    #[arg(long, value_enum, default_value = "as-is")]
    pub align_raw: AlignRawArg,
    /// Folder template: "{:%Y/%m/%d}" (default), any strftime form, or "none"; it may hold
    /// {album} (the album's folder path, with --album) and {library} (the library's zone name).
    #[arg(long, value_name = "TEMPLATE", default_value = "{:%Y/%m/%d}")]
    pub folder_structure: String,
    /// How name collisions are resolved.
    #[arg(long, value_enum, default_value = "name-size-dedup-with-suffix")]
    pub file_match_policy: FileMatchArg,
    /// Keep non-ASCII characters in file names (album and library folder names always keep them).
    #[arg(long)]
    pub keep_unicode_in_filenames: bool,
}

/// Metadata written with files, and deletions.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Metadata and deletion")]
pub struct MetadataArgs {
    /// Write the asset date into JPEG/HEIC files that have none (EXIF DateTimeOriginal).
    #[arg(long)]
    pub set_exif_datetime: bool,
    /// Write an XMP sidecar beside each file (merged with an existing one), files downloaded
    /// before included; rewritten when the photo's metadata changes in iCloud.
    #[arg(long)]
    pub xmp_sidecar: bool,
}

/// Options of `mount` only.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mount")]
pub struct MountOnlyArgs {
    /// Where to mount the library (an empty directory).
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,
    /// Let other users (and root) see the mount; needs user_allow_other in /etc/fuse.conf.
    #[arg(long)]
    pub allow_other: bool,
    /// Where read bytes are cached (default: a cache folder in the data dir).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Upper bound of the byte cache, in bytes (suffixes K, M, G, T accepted).
    #[arg(long, value_name = "BYTES", default_value = "10G")]
    pub cache_size: String,
    /// Download everything in the background into DIR (same layout as `sync -d DIR`).
    #[arg(long, value_name = "DIR")]
    pub mirror: Option<PathBuf>,
    /// Seconds between catalog refreshes (new and deleted photos appear).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub poll_interval: u64,
}

impl SelectionArgs {
    /// The checked selection (relative dates count back from now).
    pub fn selection(&self) -> Result<crate::mirror::Selection, crate::mirror::SelectionError> {
        crate::mirror::Selection::from_flags(
            &crate::mirror::SelectionFlags {
                library: &self.library,
                albums: &self.albums,
                skip_videos: self.skip_videos,
                skip_photos: self.skip_photos,
                skip_created_before: self.skip_created_before.as_deref(),
                skip_created_after: self.skip_created_after.as_deref(),
                recent: self.recent,
                until_found: self.until_found,
                filename_exclude: &self.filename_exclude,
            },
            chrono::Utc::now(),
        )
    }
}

impl LayoutArgs {
    /// The layout policy these flags (and `--skip-live-photos` of the selection) describe;
    /// dates pick their folders in the local time zone, as icloudpd does.
    pub fn policy(
        &self,
        selection: &SelectionArgs,
    ) -> Result<crate::layout::LayoutPolicy, crate::layout::PolicyError> {
        use crate::layout::{
            AlignRaw, DateZone, FileMatchPolicy, FolderTemplate, LiveSize, MovNamePolicy,
            PrimarySize,
        };
        Ok(crate::layout::LayoutPolicy {
            folder: FolderTemplate::parse(&self.folder_structure)?,
            sizes: self
                .sizes
                .iter()
                .map(|s| match s {
                    SizeArg::Original => PrimarySize::Original,
                    SizeArg::Medium => PrimarySize::Medium,
                    SizeArg::Thumb => PrimarySize::Thumb,
                    SizeArg::Adjusted => PrimarySize::Adjusted,
                    SizeArg::Alternative => PrimarySize::Alternative,
                })
                .collect(),
            force_size: self.force_size,
            live_size: match self.live_photo_size {
                LiveSizeArg::Original => LiveSize::Original,
                LiveSizeArg::Medium => LiveSize::Medium,
                LiveSizeArg::Thumb => LiveSize::Thumb,
            },
            mov_names: match self.live_photo_mov_filename_policy {
                MovPolicyArg::Suffix => MovNamePolicy::Suffix,
                MovPolicyArg::Original => MovNamePolicy::Original,
            },
            skip_live_photos: selection.skip_live_photos,
            align_raw: match self.align_raw {
                AlignRawArg::AsIs => AlignRaw::AsIs,
                AlignRawArg::Original => AlignRaw::Original,
                AlignRawArg::Alternative => AlignRaw::Alternative,
            },
            file_match: match self.file_match_policy {
                FileMatchArg::NameSizeDedupWithSuffix => FileMatchPolicy::NameSizeDedupWithSuffix,
                FileMatchArg::NameId7 => FileMatchPolicy::NameId7,
            },
            keep_unicode: self.keep_unicode_in_filenames,
            zone: DateZone::Local,
        })
    }
}

impl MetadataArgs {
    /// The metadata written after each download.
    pub fn options(&self) -> crate::mirror::MetadataOptions {
        crate::mirror::MetadataOptions {
            set_exif_datetime: self.set_exif_datetime,
            xmp_sidecar: self.xmp_sidecar,
        }
    }
}

/// A byte count: `1073741824`, `500M`, `10G`, `10GB`, `10 GiB`, `1.5T` (K, M, G, T are powers
/// of 1024 with or without `B`/`iB`, as the help says).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .map_err(|e| format!("{s:?} is not a size ({e}; examples: 500M, 10G, 1073741824)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("10G").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("10Q").is_err());
        assert!(parse_bytes("-1").is_err());
        // What people type: a B, an iB, a space.
        assert_eq!(parse_bytes("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("10 GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("500mb").unwrap(), 500 << 20);
    }
}
