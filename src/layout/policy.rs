//! The layout options as typed values, and the parsing of their command-line spellings.
//!
//! The spellings are contracts shared with icloudpd (`--size adjusted`,
//! `--file-match-policy name-id7`, ...): each enum parses exactly them and prints them back.

use std::fmt;
use std::str::FromStr;

use chrono::FixedOffset;

use super::template::{FolderTemplate, TemplateError};
use crate::model::VersionKind;

/// Why a layout option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A value outside the option's fixed set.
    #[error("invalid value `{value}` for {option}: expected one of {expected}")]
    UnknownValue {
        option: &'static str,
        value: String,
        expected: String,
    },
    /// The folder template is malformed.
    #[error("invalid --folder-structure: {0}")]
    Template(#[from] TemplateError),
    /// A time zone that is neither `local`, `utc` nor an offset like `+02:00`.
    #[error("invalid time zone `{0}`: expected `local`, `utc` or an offset like +02:00 or -0530")]
    Zone(String),
}

/// Defines a command-line enum: its values, their spellings, `FromStr` and `Display`.
macro_rules! cli_enum {
    ($(#[$doc:meta])* $name:ident, $option:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order the help lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The command-line spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = PolicyError;

            fn from_str(s: &str) -> Result<Self, PolicyError> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| PolicyError::UnknownValue {
                        option: $option,
                        value: s.to_string(),
                        expected: $name::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

cli_enum!(
    /// A primary size (`--size`, repeatable).
    PrimarySize, "--size", {
        Original => "original",
        Medium => "medium",
        Thumb => "thumb",
        /// The edited rendition; the original when the asset has no edit.
        Adjusted => "adjusted",
        /// The alternative original (the other half of a RAW+JPEG pair).
        Alternative => "alternative",
    }
);

impl PrimarySize {
    /// The version kind this size names.
    pub fn kind(self) -> VersionKind {
        match self {
            PrimarySize::Original => VersionKind::Original,
            PrimarySize::Medium => VersionKind::Medium,
            PrimarySize::Thumb => VersionKind::Thumb,
            PrimarySize::Adjusted => VersionKind::Adjusted,
            PrimarySize::Alternative => VersionKind::Alternative,
        }
    }
}

cli_enum!(
    /// Which motion version of a live photo to write (`--live-photo-size`).
    LiveSize, "--live-photo-size", {
        Original => "original",
        Medium => "medium",
        Thumb => "thumb",
    }
);

impl LiveSize {
    /// The version kind this size names.
    pub fn kind(self) -> VersionKind {
        match self {
            LiveSize::Original => VersionKind::LiveOriginal,
            LiveSize::Medium => VersionKind::LiveMedium,
            LiveSize::Thumb => VersionKind::LiveThumb,
        }
    }
}

cli_enum!(
    /// How the motion part of a live photo is named (`--live-photo-mov-filename-policy`).
    MovNamePolicy, "--live-photo-mov-filename-policy", {
        /// `IMG_1234.HEIC` -> `IMG_1234_HEVC.MOV`; other stills -> `<stem>.MOV`.
        Suffix => "suffix",
        /// Always `<stem>.MOV`.
        Original => "original",
    }
);

cli_enum!(
    /// Which half of a RAW+JPEG pair counts as the original (`--align-raw`).
    AlignRaw, "--align-raw", {
        /// Keep Apple's assignment.
        AsIs => "as-is",
        /// The RAW file is the original.
        Original => "original",
        /// The RAW file is the alternative.
        Alternative => "alternative",
    }
);

cli_enum!(
    /// How files of different assets with the same name are told apart (`--file-match-policy`).
    FileMatchPolicy, "--file-match-policy", {
        /// Names as in iCloud; a later colliding file gets `-<size>` (icloudpd's default).
        NameSizeDedupWithSuffix => "name-size-dedup-with-suffix",
        /// Every name carries `_<id7>`, a short form of the asset id.
        NameId7 => "name-id7",
    }
);

/// The time zone in which an asset's date picks its date folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateZone {
    /// The system's zone as chrono reads it (`TZ`, `/etc/localtime`), like icloudpd. The
    /// offset follows daylight saving time at each asset's date.
    Local,
    /// A fixed offset east of UTC.
    Fixed(FixedOffset),
}

impl DateZone {
    /// UTC.
    pub fn utc() -> DateZone {
        DateZone::Fixed(FixedOffset::east_opt(0).expect("zero is a valid offset"))
    }
}

impl FromStr for DateZone {
    type Err = PolicyError;

    /// `local`, `utc`/`UTC`/`Z`, or an offset: `+02:00`, `-0530`, `+01`.
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::Zone(s.to_string());
        match s {
            "local" => return Ok(DateZone::Local),
            "utc" | "UTC" | "Z" => return Ok(DateZone::utc()),
            _ => {}
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|&c| c != ':').collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) || rest.matches(':').count() > 1 {
            return Err(bad());
        }
        let (hours, minutes) = match digits.len() {
            2 => (&digits[..2], "00"),
            4 => (&digits[..2], &digits[2..]),
            _ => return Err(bad()),
        };
        let hours: i32 = hours.parse().map_err(|_| bad())?;
        let minutes: i32 = minutes.parse().map_err(|_| bad())?;
        if minutes >= 60 {
            return Err(bad());
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
            .map(DateZone::Fixed)
            .ok_or_else(bad)
    }
}

/// Every option that decides where and under which names files land. The same policy gives
/// the same tree in `sync -d`, the background mirror and the mount.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutPolicy {
    /// `--folder-structure`.
    pub folder: FolderTemplate,
    /// `--size`, in the order given; empty means `original`, repeats are ignored.
    pub sizes: Vec<PrimarySize>,
    /// `--force-size`: a missing medium/thumb is skipped instead of replaced by the original.
    pub force_size: bool,
    /// `--live-photo-size`.
    pub live_size: LiveSize,
    /// `--live-photo-mov-filename-policy`.
    pub mov_names: MovNamePolicy,
    /// `--skip-live-photos`: no MOV companions (the stills are still written).
    pub skip_live_photos: bool,
    /// `--align-raw`.
    pub align_raw: AlignRaw,
    /// `--file-match-policy`.
    pub file_match: FileMatchPolicy,
    /// `--keep-unicode-in-filenames` (file names only: folder names always keep it).
    pub keep_unicode: bool,
    /// Zone for the date folders.
    pub zone: DateZone,
}

impl Default for LayoutPolicy {
    /// icloudpd's defaults, dates in the local zone.
    fn default() -> Self {
        LayoutPolicy {
            folder: FolderTemplate::default(),
            sizes: vec![PrimarySize::Original],
            force_size: false,
            live_size: LiveSize::Original,
            mov_names: MovNamePolicy::Suffix,
            skip_live_photos: false,
            align_raw: AlignRaw::AsIs,
            file_match: FileMatchPolicy::NameSizeDedupWithSuffix,
            keep_unicode: false,
            zone: DateZone::Local,
        }
    }
}

impl LayoutPolicy {
    /// The requested sizes without repeats, `original` when none was given.
    pub fn effective_sizes(&self) -> Vec<PrimarySize> {
        let mut sizes: Vec<PrimarySize> = Vec::with_capacity(self.sizes.len().max(1));
        for &size in &self.sizes {
            if !sizes.contains(&size) {
                sizes.push(size);
            }
        }
        if sizes.is_empty() {
            sizes.push(PrimarySize::Original);
        }
        sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in PrimarySize::ALL {
            assert_eq!(s.as_str().parse::<PrimarySize>(), Ok(*s));
        }
        assert_eq!("as-is".parse::<AlignRaw>(), Ok(AlignRaw::AsIs));
        assert_eq!(
            "name-size-dedup-with-suffix".parse::<FileMatchPolicy>(),
            Ok(FileMatchPolicy::NameSizeDedupWithSuffix)
        );
        assert_eq!(
            "name-id7".parse::<FileMatchPolicy>(),
            Ok(FileMatchPolicy::NameId7)
        );
        assert_eq!("suffix".parse::<MovNamePolicy>(), Ok(MovNamePolicy::Suffix));
        assert_eq!("thumb".parse::<LiveSize>(), Ok(LiveSize::Thumb));
    }

    #[test]
    fn unknown_values_name_the_option_and_choices() {
        let err = "large".parse::<PrimarySize>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value `large` for --size: expected one of original, medium, thumb, \
             adjusted, alternative"
        );
        assert!("Original".parse::<PrimarySize>().is_err());
    }

    #[test]
    fn zones_parse() {
        let east = |s| DateZone::Fixed(FixedOffset::east_opt(s).unwrap());
        assert_eq!("local".parse(), Ok(DateZone::Local));
        assert_eq!("utc".parse(), Ok(east(0)));
        assert_eq!("+02:00".parse(), Ok(east(7200)));
        assert_eq!("-0530".parse(), Ok(east(-19800)));
        assert_eq!("+01".parse(), Ok(east(3600)));
        for bad in ["", "02:00", "+2", "+02:60", "+02:0a", "+99:00", "+0:2:00"] {
            assert!(bad.parse::<DateZone>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_default_and_dedup() {
        let mut p = LayoutPolicy {
            sizes: vec![],
            ..LayoutPolicy::default()
        };
        assert_eq!(p.effective_sizes(), vec![PrimarySize::Original]);
        p.sizes = vec![
            PrimarySize::Medium,
            PrimarySize::Original,
            PrimarySize::Medium,
        ];
        assert_eq!(
            p.effective_sizes(),
            vec![PrimarySize::Medium, PrimarySize::Original]
        );
    }
}
