//! A set of catalog versions in one bit per version key.
//!
//! A run remembers which versions it finished or failed (every file of a first sync); as a
//! hash set that cost about 20 bytes per file (2.4 MB at 100,000 assets). Version keys are
//! SQLite row keys, handed out in order from 1 and never reused, so a bitmap indexed by key
//! costs an eighth of a byte per version ever created in the catalog (16 KB for 130,000).
//! Keys outside the bitmap's range (never seen in a catalog, but not excluded by its type)
//! go to a hash set.

use std::collections::HashSet;

use crate::catalog::VersionKey;

/// Largest key kept in the bitmap (2^28 bits: 32 MiB at the very worst).
const MAX_BITMAP_KEY: i64 = 1 << 28;

/// A set of [`VersionKey`]s.
#[derive(Debug, Default, Clone)]
pub(super) struct VersionSet {
    bits: Vec<u64>,
    others: HashSet<VersionKey>,
    len: usize,
}

impl VersionSet {
    /// Add `v`; true when it was not there.
    pub fn insert(&mut self, v: VersionKey) -> bool {
        let added = match bit_of(v) {
            Some((word, mask)) => {
                if self.bits.len() <= word {
                    // Doubling keeps growth amortised as keys rise through a run.
                    let want = (word + 1).max(self.bits.len() * 2);
                    self.bits.resize(want, 0);
                }
                let was = self.bits[word] & mask != 0;
                self.bits[word] |= mask;
                !was
            }
            None => self.others.insert(v),
        };
        self.len += usize::from(added);
        added
    }

    /// Remove `v`; true when it was there.
    pub fn remove(&mut self, v: VersionKey) -> bool {
        let removed = match bit_of(v) {
            Some((word, mask)) => match self.bits.get_mut(word) {
                Some(w) if *w & mask != 0 => {
                    *w &= !mask;
                    true
                }
                _ => false,
            },
            None => self.others.remove(&v),
        };
        self.len -= usize::from(removed);
        removed
    }

    /// True when `v` is in the set.
    pub fn contains(&self, v: VersionKey) -> bool {
        match bit_of(v) {
            Some((word, mask)) => self.bits.get(word).is_some_and(|w| w & mask != 0),
            None => self.others.contains(&v),
        }
    }

    /// Number of versions in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The versions, in key order.
    pub fn to_sorted_vec(&self) -> Vec<VersionKey> {
        let mut out: Vec<VersionKey> = Vec::with_capacity(self.len);
        for (i, word) in self.bits.iter().enumerate() {
            let mut w = *word;
            while w != 0 {
                let bit = w.trailing_zeros() as i64;
                out.push(VersionKey(i as i64 * 64 + bit));
                w &= w - 1;
            }
        }
        out.extend(self.others.iter().copied());
        out.sort();
        out
    }
}

/// The word and mask of `v` in the bitmap, when it belongs there.
fn bit_of(v: VersionKey) -> Option<(usize, u64)> {
    (0..=MAX_BITMAP_KEY)
        .contains(&v.0)
        .then(|| ((v.0 / 64) as usize, 1u64 << (v.0 % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_set_for_every_key() {
        let mut s = VersionSet::default();
        let keys = [
            0,
            1,
            63,
            64,
            65,
            1000,
            130_000,
            -5,
            i64::MAX,
            MAX_BITMAP_KEY + 1,
        ];
        for k in keys {
            assert!(s.insert(VersionKey(k)), "{k} is new");
            assert!(!s.insert(VersionKey(k)), "{k} is there already");
            assert!(s.contains(VersionKey(k)));
        }
        assert_eq!(s.len(), keys.len());
        assert!(!s.contains(VersionKey(2)) && !s.contains(VersionKey(1 << 20)));
        let mut sorted: Vec<VersionKey> = keys.iter().map(|k| VersionKey(*k)).collect();
        sorted.sort();
        assert_eq!(s.to_sorted_vec(), sorted);
        assert!(s.remove(VersionKey(64)) && !s.remove(VersionKey(64)));
        assert!(s.remove(VersionKey(-5)) && !s.contains(VersionKey(-5)));
        assert!(!s.remove(VersionKey(1 << 20)), "beyond the bitmap's end");
        assert_eq!(s.len(), keys.len() - 2);
    }

    #[test]
    fn a_large_run_costs_a_bit_per_key() {
        let mut s = VersionSet::default();
        for k in 1..=130_000 {
            s.insert(VersionKey(k));
        }
        assert_eq!(s.len(), 130_000);
        assert!(
            s.bits.len() * 8 <= 2 * 130_000 / 8 + 64,
            "{} words",
            s.bits.len()
        );
    }
}
