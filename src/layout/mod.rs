//! Where each file of the library goes: a catalog asset and its versions become relative
//! paths, names, sizes and mtimes.
//!
//! One layout, three consumers: `sync -d X`, the background mirror and the FUSE mount all
//! call this module, so for the same flags and catalog they produce the same tree
//! (`rsync -a MOUNT/ X/` and `sync -d X` agree). To make that hold, the module is pure and
//! deterministic: no I/O, no clock, no randomness; the only outside input is the time zone of
//! the date folders, which the policy names ([`DateZone`]).
//!
//! The rules are icloudpd's (section 6 of the protocol notes), with a few deliberate
//! departures, each documented where it is made:
//! * collisions are resolved from the catalog, not from files found on disk: the
//!   earliest-added asset keeps the plain name, and a same-name same-size file of another
//!   asset still gets `-<size>` (icloudpd would take it for the first and skip it);
//! * names that differ only in case collide (the tree survives a case-insensitive disk);
//! * every file's sidecar name (`NAME.xmp`) counts as taken, sidecars on or off, so a file
//!   named like another's sidecar gets a collision suffix;
//! * folder names are capped at 255 bytes, file names at 251 so that a sidecar's `.xmp`
//!   always fits (stem cut, suffixes and extension kept), control
//!   characters become `_`, a leading `.` becomes `_`, album and library folder names lose
//!   the spaces at their ends, file names the whitespace at their end, a year past 9999 in a
//!   date folder is plain digits (chrono writes `+10000`), a name left blank by cleaning takes the
//!   id-based fallback stem, and text after the last `.` counts as an extension only when it
//!   is short and alphanumeric;
//! * a live photo's motion file is always MOV-named, and gets `.MOV` even when the still's
//!   name has no extension; a `/` in an id7 becomes `_`.
//!
//! Entry points:
//! * [`plan_asset`]: the files of one asset in its folder, names before collision handling.
//! * [`resolve_collisions`]: make names unique within each directory, deterministically.
//! * [`plan_tree`]: both, for a whole set of assets (the sync target, the mount's date tree).
//! * [`plan_flat`]: a set of assets listed in one given directory (album and smart-folder
//!   views of the mount), collisions resolved within that listing.

mod dedup;
mod filename;
mod policy;
mod sanitize;
mod template;
mod versions;

use std::borrow::Borrow;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, Local, Utc};

pub use dedup::resolve_collisions;
use filename::NameParts;
pub use filename::{FILE_NAME_MAX_BYTES, SIDECAR_SUFFIX, extension_for_uti, id7};
pub use policy::{
    AlignRaw, DateZone, FileMatchPolicy, LayoutPolicy, LiveSize, MovNamePolicy, PolicyError,
    PrimarySize,
};
pub use sanitize::NAME_MAX_BYTES;
pub use template::{DEFAULT_FOLDER_STRUCTURE, FolderTemplate, TemplateError};
pub use versions::skipped_sizes;

use crate::model::{Asset, VersionKind};

/// A directory relative to the top of the tree: `/`-separated components, none empty, `.`
/// or `..`, never absolute. The empty path is the top directory itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelDir(String);

impl RelDir {
    /// The top directory.
    pub fn root() -> RelDir {
        RelDir(String::new())
    }

    /// A directory from components, each made safe (see [`folder_name`] for remote names).
    pub fn from_components<I, S>(components: I) -> RelDir
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parts: Vec<String> = components
            .into_iter()
            .map(|c| sanitize::component(c.as_ref()))
            .collect();
        RelDir(parts.join("/"))
    }

    /// The path as text, `""` for the top directory.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// True for the top directory.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The relative path of an entry named `name` in this directory.
    pub fn join(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.0, name)
        }
    }

    /// The directory as a relative path.
    pub fn to_path_buf(&self) -> PathBuf {
        self.components().collect()
    }
}

impl fmt::Display for RelDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of the laid-out library.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    /// The asset (CPLMaster recordName).
    pub asset_id: String,
    /// The asset's added date (ms since the epoch): ranks files for collision handling.
    pub added_date_ms: i64,
    /// The size the file serves (`Adjusted` may hold the original's bytes when unedited).
    pub role: VersionKind,
    /// The catalog version whose bytes the file holds.
    pub version: VersionKind,
    /// Directory of the file.
    pub dir: RelDir,
    /// File name: at most [`FILE_NAME_MAX_BYTES`] bytes, no `/`, NUL or control characters, not
    /// hidden.
    pub name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Modification time: the asset's date, ms since the epoch.
    pub mtime_ms: i64,
    /// The name's parts, kept so collision suffixes go before the extension.
    parts: NameParts,
}

impl PlannedFile {
    /// Path relative to the top of the tree (`2024/03/07/IMG_0001.JPG`).
    pub fn rel_path(&self) -> String {
        self.dir.join(&self.name)
    }

    /// The modification time as a `SystemTime` (dates before 1970 included).
    pub fn mtime(&self) -> SystemTime {
        let magnitude = Duration::from_millis(self.mtime_ms.unsigned_abs());
        if self.mtime_ms >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

/// A remote name (album, folder) as a safe, visible directory name (non-ASCII kept).
pub fn folder_name(name: &str) -> String {
    sanitize::remote_component(name)
}

/// Unique, safe names for sibling folders (albums of one folder, libraries) from
/// `(stable id, remote name)` pairs, aligned with `entries`. Colliding names (ignoring case)
/// are told apart by `-2`, `-3`, ... in id order, independent of the order of `entries`.
pub fn folder_names(entries: &[(&str, &str)]) -> Vec<String> {
    dedup::unique_folder_names(entries)
}

/// The asset's date in the policy's zone; an out-of-range date counts as the epoch (as
/// icloudpd does when it cannot convert one).
fn folder_date(asset: &Asset, zone: DateZone) -> DateTime<FixedOffset> {
    let utc: DateTime<Utc> =
        DateTime::from_timestamp_millis(asset.asset_date_ms).unwrap_or(DateTime::UNIX_EPOCH);
    match zone {
        DateZone::Local => utc.with_timezone(&Local).fixed_offset(),
        DateZone::Fixed(offset) => utc.with_timezone(&offset),
    }
}

/// The directory the folder template gives an asset, optionally for an album (the path of
/// folder and album names, outermost first).
pub fn asset_dir(asset: &Asset, policy: &LayoutPolicy, album: Option<&[&str]>) -> RelDir {
    if policy.folder.is_flat() {
        return RelDir::root();
    }
    let album: Option<Vec<String>> =
        album.map(|names| names.iter().map(|n| folder_name(n)).collect());
    let library = folder_name(&asset.zone);
    let values = template::TemplateValues {
        album: album.as_deref(),
        library: &library,
    };
    let components = policy
        .folder
        .render(&folder_date(asset, policy.zone), values);
    RelDir(components.join("/"))
}

/// The files of one asset in `dir`, names before collision handling.
fn files_in(asset: &Asset, policy: &LayoutPolicy, dir: &RelDir) -> Vec<PlannedFile> {
    versions::select(asset, policy)
        .into_iter()
        .map(|selected| PlannedFile {
            asset_id: asset.id.clone(),
            added_date_ms: asset.added_date_ms,
            role: selected.role,
            version: selected.source.kind,
            dir: dir.clone(),
            name: selected.name.render(),
            size: selected.source.size,
            mtime_ms: asset.asset_date_ms,
            parts: selected.name,
        })
        .collect()
}

/// The files of one asset in its folder (no album), before collision handling: which
/// versions, under which names (section 6). Run [`resolve_collisions`] over every file of a
/// directory before using the names.
pub fn plan_asset(asset: &Asset, policy: &LayoutPolicy) -> Vec<PlannedFile> {
    files_in(asset, policy, &asset_dir(asset, policy, None))
}

/// Like [`plan_asset`], laid out for an album whose folder path is `album` (outermost first);
/// only templates with `{album}` differ.
pub fn plan_asset_in_album(
    asset: &Asset,
    policy: &LayoutPolicy,
    album: &[&str],
) -> Vec<PlannedFile> {
    files_in(asset, policy, &asset_dir(asset, policy, Some(album)))
}

/// Plan a set of assets through the folder template (optionally for an album) and resolve
/// collisions in every directory. The result is sorted by path and does not depend on the
/// order of `assets`.
pub fn plan_tree<I, A>(assets: I, policy: &LayoutPolicy, album: Option<&[&str]>) -> Vec<PlannedFile>
where
    I: IntoIterator<Item = A>,
    A: Borrow<Asset>,
{
    let planned = assets
        .into_iter()
        .flat_map(|a| {
            let asset = a.borrow();
            files_in(asset, policy, &asset_dir(asset, policy, album))
        })
        .collect();
    sorted_by_path(resolve_collisions(planned, policy.file_match))
}

/// List a set of assets flat in `dir` (an album or smart-folder view), with the same names
/// as everywhere else and collisions resolved within the listing. Sorted by name; does not
/// depend on the order of `assets`.
pub fn plan_flat<I, A>(assets: I, policy: &LayoutPolicy, dir: &RelDir) -> Vec<PlannedFile>
where
    I: IntoIterator<Item = A>,
    A: Borrow<Asset>,
{
    let planned = assets
        .into_iter()
        .flat_map(|a| files_in(a.borrow(), policy, dir))
        .collect();
    sorted_by_path(resolve_collisions(planned, policy.file_match))
}

fn sorted_by_path(mut files: Vec<PlannedFile>) -> Vec<PlannedFile> {
    files.sort_by(|a, b| (&a.dir, &a.name).cmp(&(&b.dir, &b.name)));
    files
}
