//! Deterministic collision resolution within a directory.
//!
//! Files are ranked by (asset added date, asset id, role, source version); the first keeps its
//! name. The files of one asset never compete here: `versions::select` has already told them
//! apart in the `--size` order (as icloudpd does), so the role only orders files whose
//! suffixed names happen to meet, and keeps repeats of one file adjacent. A later file whose
//! name is taken gets icloudpd's `<stem>-<size>.<ext>`, then
//! `<stem>-<id7>.<ext>` (not under `name-id7`, whose names carry it already), then
//! `<stem>-<n>.<ext>` for n = 2, 3, ... Because a newly added asset ranks after every asset
//! already in the library, adding photos never renames an existing file.
//!
//! Names are compared ignoring case (`IMG_1.JPG` and `img_1.jpg` collide): a tree copied to
//! a case-insensitive disk (macOS, exFAT, SMB) then keeps every file. Unicode normalisation
//! forms are not unified.
//!
//! A file's sidecar name (`NAME.xmp`, [`filename::SIDECAR_SUFFIX`]) is taken along with its
//! name, always, whether `--xmp-sidecar` is on or not: a file named like another file's
//! sidecar (an asset called `IMG_1.JPG.xmp` beside `IMG_1.JPG`) collides with it, by the same
//! rank and suffix rules, so that no sidecar ever lands on a photo's path and turning sidecars
//! on later renames nothing.

use std::collections::HashSet;

use super::PlannedFile;
use super::filename;
use super::policy::FileMatchPolicy;
use super::sanitize;
use crate::model::VersionKind;

/// Give every file a name no other file in its directory has (ignoring case), nor any other
/// file's sidecar name (`NAME.xmp`), and drop exact repeats (the same asset and role listed
/// twice in one directory). The result is ordered by directory, then rank, and does not depend
/// on the order of `files`.
pub fn resolve_collisions(
    mut files: Vec<PlannedFile>,
    policy: FileMatchPolicy,
) -> Vec<PlannedFile> {
    files.sort_by(|a, b| (&a.dir, rank(a)).cmp(&(&b.dir, rank(b))));
    files.dedup_by(|b, a| a.dir == b.dir && a.asset_id == b.asset_id && a.role == b.role);

    let mut taken: HashSet<String> = HashSet::new();
    for i in 0..files.len() {
        if i > 0 && files[i].dir != files[i - 1].dir {
            taken.clear();
        }
        let file = &mut files[i];
        let (renamed, name, key) = free_name(file, policy, &taken);
        taken.insert(sidecar_key(&name));
        taken.insert(key);
        if let Some(parts) = renamed {
            file.parts = parts;
        }
        file.name = name;
    }
    files
}

/// The order in which files of one directory get their names: oldest addition first. Within
/// one asset the role is only a tie-break (see the module notes): which of its files keeps a
/// shared name is decided in `versions::select`, by the requested `--size` order.
fn rank(file: &PlannedFile) -> (i64, &str, VersionKind, VersionKind, &str) {
    (
        file.added_date_ms,
        &file.asset_id,
        file.role,
        file.version,
        &file.name,
    )
}

/// The key under which the sidecar name of the file `name` is taken. Lowercased as a whole,
/// as every key is (a final `Σ` lowercases differently once `.xmp` follows it).
fn sidecar_key(name: &str) -> String {
    format!("{name}{}", filename::SIDECAR_SUFFIX).to_lowercase()
}

/// The first candidate name not yet taken in the directory: the file's own name (`None`: its
/// parts stay), else the parts of the first free alternative; with the name and its key in
/// `taken`. A name is free when neither it nor its sidecar name is taken. Alternatives are only
/// built when needed: most names are free.
fn free_name(
    file: &PlannedFile,
    policy: FileMatchPolicy,
    taken: &HashSet<String>,
) -> (Option<filename::NameParts>, String, String) {
    let free = |parts: &filename::NameParts| {
        let name = parts.render();
        let key = name.to_lowercase();
        (!taken.contains(&key) && !taken.contains(&sidecar_key(&name))).then_some((name, key))
    };
    let base = &file.parts;
    if let Some((name, key)) = free(base) {
        return (None, name, key);
    }
    let mut suffixes = vec![format!("-{}", file.size)];
    if policy == FileMatchPolicy::NameSizeDedupWithSuffix {
        suffixes.push(format!("-{}", filename::id7(&file.asset_id)));
    }
    for suffix in suffixes {
        let candidate = base.with_suffix(&suffix);
        if let Some((name, key)) = free(&candidate) {
            return (Some(candidate), name, key);
        }
    }
    // Each counter value yields a distinct name (only the stem is ever shortened), and each
    // taken key rules out at most two of them (as a name, or as its sidecar's), so this ends
    // after at most `2 * taken.len() + 1` tries.
    let mut n: u64 = 2;
    loop {
        let candidate = base.with_suffix(&format!("-{n}"));
        if let Some((name, key)) = free(&candidate) {
            return (Some(candidate), name, key);
        }
        n += 1;
    }
}

/// Unique, safe names for sibling folders from remote names (albums in one folder, libraries):
/// `entries` are `(stable id, name)`; the result is aligned with `entries`. Among names that
/// collide (ignoring case) the smallest id keeps the name and the others get `-2`, `-3`, ...
/// in id order, so the answer does not depend on the order of `entries` and renaming or
/// reordering other albums does not move a folder.
pub fn unique_folder_names(entries: &[(&str, &str)]) -> Vec<String> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].cmp(&entries[b]));
    let mut taken: HashSet<String> = HashSet::new();
    let mut names = vec![String::new(); entries.len()];
    for i in order {
        let base = sanitize::remote_component(entries[i].1);
        let mut name = base.clone();
        let mut n: u64 = 2;
        while taken.contains(&name.to_lowercase()) {
            let suffix = format!("-{n}");
            let stem = sanitize::truncate_bytes(&base, sanitize::NAME_MAX_BYTES - suffix.len());
            name = format!("{stem}{suffix}");
            n += 1;
        }
        taken.insert(name.to_lowercase());
        names[i] = name;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_folders_get_unique_stable_names() {
        let entries = [
            ("b", "Trip"),
            ("a", "trip"),
            ("c", "Trip"),
            ("d", "Köln"),
            ("e", ".."),
        ];
        let names = unique_folder_names(&entries);
        assert_eq!(names, ["Trip-2", "trip", "Trip-3", "Köln", "_."]);
        let mut reversed = entries;
        reversed.reverse();
        let mut again = unique_folder_names(&reversed);
        again.reverse();
        assert_eq!(again, names);
        let long = "ü".repeat(200);
        let names = unique_folder_names(&[("a", &long), ("b", &long)]);
        assert!(names[1].ends_with("-2") && names[1].len() <= sanitize::NAME_MAX_BYTES);
    }
}
