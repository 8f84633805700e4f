//! The filename pipeline of section 6.5: the base name of an asset (decoded name or id
//! fallback, cleaning, file-match policy) and the name of each version (extension from the
//! version's UTI, live-photo MOV naming, size suffixes).
//!
//! Names are kept as [`NameParts`] (`<stem><suffixes>.<ext>`) rather than strings so that
//! later steps (disambiguation, collision suffixes, the 255-byte limit) can add to the suffixes
//! and shorten only the stem, never losing the extension or a suffix.

use base64::Engine as _;

use super::policy::{FileMatchPolicy, MovNamePolicy};
use super::sanitize::{self, NAME_MAX_BYTES};
use crate::model::{Asset, ItemKind, VersionKind};

/// What a file's XMP sidecar adds to its name: `IMG_1.JPG` -> `IMG_1.JPG.xmp`.
pub const SIDECAR_SUFFIX: &str = ".xmp";

/// The longest file name the layout gives: room is left for [`SIDECAR_SUFFIX`], so that the
/// sidecar of any file fits `NAME_MAX` too, and turning `--xmp-sidecar` on renames nothing.
pub const FILE_NAME_MAX_BYTES: usize = NAME_MAX_BYTES - SIDECAR_SUFFIX.len();

/// UTI of QuickTime movies: the motion part of a live photo and most videos.
pub const QUICKTIME_UTI: &str = "com.apple.quicktime-movie";

/// Longest text after the last `.` still taken as an extension; anything longer is part of
/// the stem (a 300-byte "extension" must not survive truncation at the expense of the stem).
const MAX_EXT_BYTES: usize = 20;

/// Length of the id prefix used when an asset has no filename (icloudpd).
const FALLBACK_STEM_CHARS: usize = 12;

/// Extension icloudpd gives a fallback name when `itemType` is absent or unmapped.
const UNKNOWN_EXT: &str = "unknown";

/// File extension for a UTI (section 4.3, icloudpd's table), `None` when unmapped.
pub fn extension_for_uti(uti: &str) -> Option<&'static str> {
    Some(match uti {
        "public.heic" => "HEIC",
        "public.heif" => "HEIF",
        "public.jpeg" => "JPG",
        "public.png" => "PNG",
        "com.apple.quicktime-movie" => "MOV",
        "com.adobe.raw-image" => "DNG",
        "com.canon.cr2-raw-image" => "CR2",
        "com.canon.crw-raw-image" => "CRW",
        "com.canon.cr3-raw-image" => "CR3",
        "com.sony.arw-raw-image" => "ARW",
        "com.fuji.raw-image" => "RAF",
        "com.panasonic.rw2-raw-image" => "RW2",
        "com.nikon.nrw-raw-image" => "NRF",
        "com.nikon.raw-image" => "NEF",
        "com.pentax.raw-image" => "PEF",
        "com.olympus.raw-image" | "com.olympus.or-raw-image" => "ORF",
        _ => return None,
    })
}

/// A filename as `<stem><suffixes>.<ext>`; only the stem is shortened to fit the name limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameParts {
    stem: String,
    suffixes: String,
    ext: Option<String>,
}

impl NameParts {
    /// Split at the last `.`, the way `os.path.splitext` does for ordinary names. A trailing
    /// `.` is dropped; text after the last `.` that is long or not alphanumeric is not an
    /// extension (`IMG 1.2 final`, `.._.._etc_passwd`) and stays in the stem.
    pub fn split(name: &str) -> NameParts {
        let (stem, ext) = match name.rfind('.') {
            Some(dot) => {
                let ext = &name[dot + 1..];
                if ext.is_empty() {
                    (&name[..dot], None)
                } else if ext.len() <= MAX_EXT_BYTES
                    && ext.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    (&name[..dot], Some(ext.to_string()))
                } else {
                    (name, None)
                }
            }
            None => (name, None),
        };
        NameParts {
            stem: stem.to_string(),
            suffixes: String::new(),
            ext,
        }
    }

    /// The extension (without the dot), if any.
    pub fn ext(&self) -> Option<&str> {
        self.ext.as_deref()
    }

    /// The same name with `suffix` added after the stem and earlier suffixes.
    pub fn with_suffix(&self, suffix: &str) -> NameParts {
        let mut parts = self.clone();
        parts.suffixes.push_str(suffix);
        parts
    }

    /// The same name with another extension.
    pub fn with_ext(&self, ext: Option<&str>) -> NameParts {
        let mut parts = self.clone();
        parts.ext = ext.filter(|e| !e.is_empty()).map(str::to_string);
        parts
    }

    /// The filename, at most [`FILE_NAME_MAX_BYTES`] bytes: the stem is cut (on a character
    /// boundary) so that suffixes and extension survive.
    pub fn render(&self) -> String {
        let tail_len = self.suffixes.len() + self.ext.as_ref().map_or(0, |e| e.len() + 1);
        let mut stem =
            sanitize::truncate_bytes(&self.stem, FILE_NAME_MAX_BYTES.saturating_sub(tail_len));
        if tail_len == 0 {
            // A cut that lands after a space must not leave a name ending in one.
            stem = stem.trim_end();
        }
        let mut name = String::with_capacity(stem.len() + tail_len);
        name.push_str(stem);
        name.push_str(&self.suffixes);
        if let Some(ext) = &self.ext {
            name.push('.');
            name.push_str(ext);
        }
        // Only reachable with absurd suffixes; keeps the guarantees whatever the input.
        sanitize::component(&sanitize::unhide(&name))
    }
}

/// icloudpd's `id7`: the first 7 characters of standard base64 of the id's UTF-8 bytes, with
/// `/` (which would make a subdirectory) replaced by `_`.
pub fn id7(asset_id: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(asset_id.as_bytes());
    encoded
        .chars()
        .take(7)
        .map(|c| if c == '/' { '_' } else { c })
        .collect()
}

/// Stem of the fallback name: the id's first 12 characters, non-alphanumerics as `_`.
fn fallback_stem(asset_id: &str) -> String {
    asset_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(FALLBACK_STEM_CHARS)
        .collect()
}

/// A stem that names nothing: empty, or only dots and spaces.
fn is_blank_stem(stem: &str) -> bool {
    stem.chars().all(|c| c == '.' || c == ' ')
}

/// The base filename of an asset (steps 1-5 of section 6.5), before any per-version change.
///
/// Beyond icloudpd: a name that is blank after cleaning (`日本.JPG` without
/// `--keep-unicode-in-filenames`) takes the fallback stem and keeps its extension, a
/// leading `.` becomes `_` so that no photo is a hidden file, and whitespace at the end of
/// the name is dropped after cleaning (as album folder names lose theirs), before the
/// extension is looked for: `"IMG_1.JPG "` is `IMG_1.JPG`, not `IMG_1.JPG .JPG`, and no name
/// ends in a space (which Windows and SMB shares cannot show; `IMG .` loses the dot, then the
/// space). Spaces at the start and before the extension's dot are kept, as icloudpd keeps
/// them.
pub fn base_name(asset: &Asset, keep_unicode: bool, policy: FileMatchPolicy) -> NameParts {
    let named = asset.filename.as_deref().filter(|n| !n.trim().is_empty());
    let mut parts = match named {
        Some(name) => {
            let cleaned = sanitize::clean_chars(name, keep_unicode);
            let mut parts = NameParts::split(cleaned.trim_end());
            if parts.ext.is_none() {
                // `IMG .`: the dropped dot must not leave the space at the end.
                parts.stem.truncate(parts.stem.trim_end().len());
            }
            if is_blank_stem(&parts.stem) {
                parts.stem = fallback_stem(&asset.id);
            }
            parts.stem = sanitize::unhide(&parts.stem);
            parts
        }
        None => {
            let ext = asset
                .item_type
                .as_deref()
                .and_then(extension_for_uti)
                .unwrap_or(UNKNOWN_EXT);
            NameParts {
                stem: fallback_stem(&asset.id),
                suffixes: String::new(),
                ext: Some(ext.to_string()),
            }
        }
    };
    if policy == FileMatchPolicy::NameId7 {
        parts.suffixes.push('_');
        parts.suffixes.push_str(&id7(&asset.id));
    }
    parts
}

/// True when the asset counts as an image for naming (icloudpd treats unknown as image).
pub fn is_image(asset: &Asset) -> bool {
    asset.kind != ItemKind::Movie
}

/// The name of the motion part of a live photo under the MOV policy (section 6.4).
///
/// Beyond icloudpd: a base name without extension gets `.MOV` (as kei does) instead of being
/// left equal to the still's name.
fn live_mov_name(base: &NameParts, policy: MovNamePolicy) -> NameParts {
    let heic = base.ext().is_some_and(|e| e.eq_ignore_ascii_case("heic"));
    let named = if policy == MovNamePolicy::Suffix && heic {
        base.with_suffix("_HEVC")
    } else {
        base.clone()
    };
    named.with_ext(Some("MOV"))
}

/// The name of one version (steps 6-7 of section 6.5): `role` is the size the file serves,
/// `file_type` the UTI of the version whose bytes it holds.
///
/// Beyond icloudpd: a live role always gets MOV naming, even if its UTI is not QuickTime, so
/// that the motion part can never take the still's name.
pub fn version_name(
    base: &NameParts,
    role: VersionKind,
    file_type: &str,
    image: bool,
    mov: MovNamePolicy,
) -> NameParts {
    let named = if image && (file_type == QUICKTIME_UTI || role.is_live()) {
        live_mov_name(base, mov)
    } else {
        let ext = extension_for_uti(file_type).or(base.ext());
        base.with_ext(ext)
    };
    match role {
        VersionKind::Medium | VersionKind::LiveMedium => named.with_suffix("-medium"),
        VersionKind::Thumb | VersionKind::LiveThumb => named.with_suffix("-thumb"),
        _ => named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_splitext_for_ordinary_names() {
        let p = NameParts::split("IMG.1234.HEIC");
        assert_eq!((p.stem.as_str(), p.ext()), ("IMG.1234", Some("HEIC")));
        let p = NameParts::split("IMG.");
        assert_eq!((p.stem.as_str(), p.ext()), ("IMG", None));
        let p = NameParts::split("IMG");
        assert_eq!((p.stem.as_str(), p.ext()), ("IMG", None));
        let long = format!("a.{}", "x".repeat(30));
        let p = NameParts::split(&long);
        assert_eq!((p.stem.as_str(), p.ext()), (long.as_str(), None));
        let p = NameParts::split("IMG 1.2 final");
        assert_eq!((p.stem.as_str(), p.ext()), ("IMG 1.2 final", None));
    }

    #[test]
    fn render_keeps_suffix_and_extension_within_limit() {
        let stem = "ä".repeat(200); // 400 bytes
        let name = NameParts::split(&format!("{stem}.JPG"))
            .with_suffix("-medium")
            .render();
        assert!(name.ends_with("ä-medium.JPG"), "{name}");
        // 240 bytes of stem (120 whole characters) + 11: its sidecar's name is 255 bytes.
        assert_eq!(name.len(), 251);
        assert_eq!(name.len() + SIDECAR_SUFFIX.len(), NAME_MAX_BYTES);
    }

    #[test]
    fn a_cut_name_without_extension_does_not_end_in_a_space() {
        // The cut at 251 bytes lands just after a space.
        let name = NameParts::split(&format!("{} {}", "a".repeat(250), "b".repeat(20))).render();
        assert_eq!(name, "a".repeat(250));
        // With an extension the space before the dot is the user's, and stays.
        assert_eq!(NameParts::split("a .b").render(), "a .b");
    }

    #[test]
    fn id7_matches_icloudpd() {
        assert_eq!(id7("AY6c+BsE0jjaXx9tmVGJM1D2VcEO"), "QVk2Yyt");
        // base64("??~") = "Pz9+" and base64("???") = "Pz8/": the slash must not survive.
        assert_eq!(id7("???????"), "Pz8_Pz8");
    }

    #[test]
    fn fallback_stem_replaces_non_alphanumerics() {
        assert_eq!(
            fallback_stem("AY6c+BsE0jjaXx9tmVGJM1D2VcEO"),
            "AY6c_BsE0jja"
        );
        assert_eq!(fallback_stem("ab"), "ab");
    }

    #[test]
    fn extension_table_covers_section_4_3() {
        assert_eq!(extension_for_uti("com.nikon.nrw-raw-image"), Some("NRF"));
        assert_eq!(extension_for_uti("com.olympus.or-raw-image"), Some("ORF"));
        assert_eq!(extension_for_uti("public.mpeg-4"), None);
        assert_eq!(extension_for_uti("org.webmproject.webp"), None);
    }
}
