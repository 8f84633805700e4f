//! The names of the record fields the client reads, interned once: the decoder looks up every
//! key of every record here, so the set is a hash set with a cheap hash for short names.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::requests::{ASSET_FIELDS, RENDITION_PREFIXES};

/// Field names the client reads; all others are skipped while decoding. A hash set: every key
/// of every record of a listing is looked up here (a binary search cost ~13% of parsing).
fn known_fields() -> &'static HashSet<&'static str, BuildHasherDefault<Fnv1a>> {
    static KNOWN: OnceLock<HashSet<&'static str, BuildHasherDefault<Fnv1a>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut v: HashSet<&'static str, BuildHasherDefault<Fnv1a>> = HashSet::default();
        for (_, names) in rendition_fields() {
            v.extend(names);
        }
        v.extend(ASSET_FIELDS);
        v.extend([
            "itemId",
            "albumNameEnc",
            "albumType",
            "position",
            "itemCount",
            "state",
            "progress",
        ]);
        v
    })
}

/// The interned name of a field the client reads.
pub(crate) fn known_field(name: &str) -> Option<&'static str> {
    known_fields().get(name).copied()
}

/// The four field names of each rendition prefix: `Res`, `FileType`, `Width`, `Height`.
pub(crate) fn rendition_fields() -> &'static [(&'static str, [&'static str; 4])] {
    static NAMES: OnceLock<Vec<(&'static str, [&'static str; 4])>> = OnceLock::new();
    NAMES.get_or_init(|| {
        RENDITION_PREFIXES
            .iter()
            .map(|&p| {
                let name = |suffix: &str| -> &'static str {
                    Box::leak(format!("{p}{suffix}").into_boxed_str())
                };
                (
                    p,
                    [name("Res"), name("FileType"), name("Width"), name("Height")],
                )
            })
            .collect()
    })
}

/// The field names of one rendition prefix (`Res`, `FileType`, `Width`, `Height`).
pub(crate) fn rendition_names(prefix: &str) -> Option<&'static [&'static str; 4]> {
    rendition_fields()
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, names)| names)
}

/// FNV-1a: field names are short and come from a fixed set, so a simple hash beats SipHash.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
