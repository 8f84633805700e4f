//! Deterministic collision resolution within a directory.
//!
//! Files are ranked by (asset added date, asset id, role, source version); the first keeps its
//! name. A later file whose name is taken gets icloudpd's `<stem>-<size>.<ext>`, then
//! `<stem>-<id7>.<ext>` (not under `name-id7`, whose names carry it already), then
//! `<stem>-<n>.<ext>` for n = 2, 3, ... Because a newly added asset ranks after every asset
//! already in the library, adding photos never renames an existing file.
//!
//! Names are compared ignoring case (`IMG_1.JPG` and `img_1.jpg` collide): a tree copied to
//! a case-insensitive disk (macOS, exFAT, SMB) then keeps every file. Unicode normalisation
//! forms are not unified.

use std::collections::HashSet;

use super::PlannedFile;
use super::filename;
use super::policy::FileMatchPolicy;
use crate::model::VersionKind;

/// Give every file a name no other file in its directory has (ignoring case), and drop exact
/// repeats (the same asset and role listed twice in one directory). The result is ordered by
/// directory, then rank, and does not depend on the order of `files`.
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
        let (parts, name) = free_name(file, policy, &taken);
        taken.insert(name.to_lowercase());
        file.parts = parts;
        file.name = name;
    }
    files
}

/// The order in which files of one directory get their names: oldest addition first.
fn rank(file: &PlannedFile) -> (i64, &str, VersionKind, VersionKind, &str) {
    (
        file.added_date_ms,
        &file.asset_id,
        file.role,
        file.version,
        &file.name,
    )
}

/// The first candidate name not yet taken in the directory.
fn free_name(
    file: &PlannedFile,
    policy: FileMatchPolicy,
    taken: &HashSet<String>,
) -> (filename::NameParts, String) {
    let is_free = |name: &str| !taken.contains(&name.to_lowercase());
    let base = &file.parts;
    let mut candidates = vec![base.clone(), base.with_suffix(&format!("-{}", file.size))];
    if policy == FileMatchPolicy::NameSizeDedupWithSuffix {
        candidates.push(base.with_suffix(&format!("-{}", filename::id7(&file.asset_id))));
    }
    for candidate in candidates {
        let name = candidate.render();
        if is_free(&name) {
            return (candidate, name);
        }
    }
    // Each counter value yields a distinct name (only the stem is ever shortened), so this
    // ends after at most `taken.len() + 1` tries.
    let mut n: u64 = 2;
    loop {
        let candidate = base.with_suffix(&format!("-{n}"));
        let name = candidate.render();
        if is_free(&name) {
            return (candidate, name);
        }
        n += 1;
    }
}
