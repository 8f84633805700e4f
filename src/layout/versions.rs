//! Which versions of an asset become files, and under which names before collision handling:
//! RAW alignment (6.2), size disambiguation and fallbacks (6.3), live photos (6.4).
//!
//! The rules follow icloudpd's `disambiguate_filenames` and download loop, including their
//! quirks (`--size adjusted` means "the edit, else the original", even with `--force-size`).
//!
//! Two files of one asset that still share a name (a size that fell back to the original,
//! beside an edit of the same name) are told apart here, in the `--size` order, as icloudpd's
//! download loop does: the first requested keeps the name, a later one gets `-<size>`.
//! Collision handling across assets (`dedup`) then never has to choose between the files of
//! one asset.

use super::filename::{self, NameParts};
use super::policy::{AlignRaw, LayoutPolicy, PrimarySize};
use crate::model::{Asset, ItemKind, Version, VersionKind};

/// One file an asset contributes: what it is for, whose bytes it holds, and its name.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedVersion<'a> {
    /// The size the file serves (`Adjusted` for "the edit, else the original", ...).
    pub role: VersionKind,
    /// The catalog version whose bytes the file holds (after `--align-raw` swapping).
    pub source: &'a Version,
    /// The name, before collision handling.
    pub name: NameParts,
}

/// The asset's versions by the role they play after `--align-raw`.
struct AlignedVersions<'a> {
    asset: &'a Asset,
    original: Option<&'a Version>,
    alternative: Option<&'a Version>,
}

impl<'a> AlignedVersions<'a> {
    fn new(asset: &'a Asset, align: AlignRaw) -> Self {
        let original = asset.version(VersionKind::Original);
        let alternative = asset.version(VersionKind::Alternative);
        let is_raw = |v: Option<&Version>| v.is_some_and(|v| v.file_type.contains("raw"));
        let swap = alternative.is_some()
            && match align {
                AlignRaw::AsIs => false,
                AlignRaw::Original => is_raw(alternative),
                AlignRaw::Alternative => is_raw(original),
            };
        let (original, alternative) = if swap {
            (alternative, original)
        } else {
            (original, alternative)
        };
        AlignedVersions {
            asset,
            original,
            alternative,
        }
    }

    fn get(&self, role: VersionKind) -> Option<&'a Version> {
        match role {
            VersionKind::Original => self.original,
            VersionKind::Alternative => self.alternative,
            // icloudpd knows no edited rendition of a video (`resVidFull`): `--size adjusted`
            // gives a video's original, so a folder icloudpd wrote is taken over as it is.
            VersionKind::Adjusted if self.asset.kind == ItemKind::Movie => None,
            other => self.asset.version(other),
        }
    }
}

/// Sizes that `--force-size` makes the asset skip (icloudpd logs
/// `<size> size does not exist for <filename>. Skipping...` for each).
pub fn skipped_sizes(asset: &Asset, policy: &LayoutPolicy) -> Vec<PrimarySize> {
    plan(asset, policy).1
}

/// The files of one asset, in a stable order: primary sizes as requested, then the live part.
pub fn select<'a>(asset: &'a Asset, policy: &LayoutPolicy) -> Vec<SelectedVersion<'a>> {
    plan(asset, policy).0
}

fn plan<'a>(
    asset: &'a Asset,
    policy: &LayoutPolicy,
) -> (Vec<SelectedVersion<'a>>, Vec<PrimarySize>) {
    let versions = AlignedVersions::new(asset, policy.align_raw);
    let base = filename::base_name(asset, policy.keep_unicode, policy.file_match);
    let image = filename::is_image(asset);
    let name_of = |role: VersionKind, source: &Version| {
        filename::version_name(&base, role, &source.file_type, image, policy.mov_names)
    };
    let sizes = policy.effective_sizes();
    let requested = |s: PrimarySize| sizes.contains(&s);

    // The original under its own name, used wherever another size falls back to it.
    let original = versions
        .original
        .map(|v| (v, name_of(VersionKind::Original, v)));

    // Disambiguation: each requested size that exists, plus the clones icloudpd makes.
    let mut chosen: Vec<(PrimarySize, &Version, NameParts)> = Vec::new();
    for &size in &sizes {
        if let Some(v) = versions.get(size.kind()) {
            chosen.push((size, v, name_of(size.kind(), v)));
        }
    }
    let find = |chosen: &[(PrimarySize, &Version, NameParts)], s: PrimarySize| {
        chosen.iter().position(|(size, _, _)| *size == s)
    };

    if requested(PrimarySize::Adjusted) {
        let adjusted = find(&chosen, PrimarySize::Adjusted);
        if !requested(PrimarySize::Original) {
            if adjusted.is_none()
                && let Some((v, name)) = &original
            {
                chosen.push((PrimarySize::Adjusted, v, name.clone()));
            }
        } else if let (Some(a), Some(o)) = (adjusted, find(&chosen, PrimarySize::Original))
            && chosen[a].2.render() == chosen[o].2.render()
        {
            chosen[a].2 = chosen[a].2.with_suffix("-adjusted");
        }
    }

    if requested(PrimarySize::Alternative) {
        let alternative = find(&chosen, PrimarySize::Alternative);
        let adjusted = find(&chosen, PrimarySize::Adjusted);
        if !requested(PrimarySize::Original) && adjusted.is_none() {
            if alternative.is_none()
                && let Some((v, name)) = &original
            {
                chosen.push((PrimarySize::Alternative, v, name.clone()));
            }
        } else if let Some(alt) = alternative {
            let alt_name = chosen[alt].2.render();
            let same_as = |i: Option<usize>| i.is_some_and(|i| chosen[i].2.render() == alt_name);
            if same_as(adjusted) || same_as(find(&chosen, PrimarySize::Original)) {
                chosen[alt].2 = chosen[alt].2.with_suffix("-alternative");
            }
        }
    }

    // The download loop: a missing size is skipped (--force-size), covered by a requested
    // original, or replaced by the original.
    let mut files: Vec<SelectedVersion<'a>> = Vec::new();
    let mut skipped = Vec::new();
    for &size in &sizes {
        let (role, source, name) = match find(&chosen, size) {
            Some(i) => (size.kind(), chosen[i].1, chosen[i].2.clone()),
            None if size == PrimarySize::Original => continue, // no original at all
            None if policy.force_size => {
                skipped.push(size);
                continue;
            }
            None if requested(PrimarySize::Original) => continue,
            None => match &original {
                Some((v, name)) => (VersionKind::Original, *v, name.clone()),
                None => continue,
            },
        };
        push_unique(&mut files, role, source, name);
    }

    if !policy.skip_live_photos && image {
        let role = policy.live_size.kind();
        if let Some(v) = asset.version(role) {
            push_unique(&mut files, role, v, name_of(role, v));
        }
    }
    (files, skipped)
}

/// Add a file unless the same bytes already land under the same name (two sizes that both
/// fell back to the original). Other bytes under a name an earlier file has (compared
/// ignoring case, like `dedup`) get icloudpd's `<stem>-<size>.<ext>`, then `-2`, `-3`, ...:
/// the size requested first keeps the plain name, as in icloudpd, where it is written first.
fn push_unique<'a>(
    files: &mut Vec<SelectedVersion<'a>>,
    role: VersionKind,
    source: &'a Version,
    name: NameParts,
) {
    let key = |name: &NameParts| name.render().to_lowercase();
    let wanted = key(&name);
    let taken = |key: &str| files.iter().any(|f| f.name.render().to_lowercase() == key);
    if files
        .iter()
        .any(|f| std::ptr::eq(f.source, source) && key(&f.name) == wanted)
    {
        return;
    }
    let mut chosen = name.clone();
    if taken(&wanted) {
        chosen = name.with_suffix(&format!("-{}", source.size));
        // An asset has a handful of files: the counter ends after a few tries.
        let mut n: u32 = 2;
        while taken(&key(&chosen)) {
            chosen = name.with_suffix(&format!("-{n}"));
            n += 1;
        }
    }
    files.push(SelectedVersion {
        role,
        source,
        name: chosen,
    });
}
