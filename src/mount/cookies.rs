//! Readdir cookies.
//!
//! `.` is cookie 1, `..` is 2, and every child has a cookie strictly increasing in name order,
//! assigned once and kept across updates (new names get a value between their neighbours).
//! Reading "after cookie c" is a binary search for the first child whose cookie is greater than
//! c, so any cookie ever returned is a valid resume point, even if its entry has gone, and a
//! page costs O(log n + page) in any directory size.

use super::tree::Child;

/// Cookie of `.`.
pub(crate) const COOKIE_DOT: u64 = 1;
/// Cookie of `..`.
pub(crate) const COOKIE_DOTDOT: u64 = 2;
/// Spacing of fresh cookies (room for 2^32 insertions between two neighbours... halving).
pub(crate) const COOKIE_STEP: u64 = 1 << 32;
/// Cookies stay positive as a signed 64-bit `d_off`.
pub(crate) const COOKIE_MAX: u64 = i64::MAX as u64;

/// Cookies for the sorted `names`, keeping the cookie of every name already in `old`.
///
/// A new name gets a cookie between those of its nearest old neighbours, counting removed old
/// names too: resuming after the cookie of a removed entry then still shows the new names that
/// sort after it.
pub(crate) fn assign_cookies(names: &[&[u8]], old: Option<&[Child]>) -> Vec<u64> {
    let fresh = |n: usize| (1..=n as u64).map(|i| i * COOKIE_STEP).collect();
    let Some(old) = old else {
        return fresh(names.len());
    };
    let mut out = Vec::with_capacity(names.len());
    let mut j = 0;
    let mut i = 0;
    while i < names.len() {
        while j < old.len() && &*old[j].name < names[i] {
            j += 1;
        }
        if j < old.len() && &*old[j].name == names[i] {
            out.push(old[j].cookie);
            i += 1;
            continue;
        }
        // A run of new names between old[j - 1] and old[j].
        let low = if j > 0 {
            old[j - 1].cookie
        } else {
            COOKIE_DOTDOT
        };
        let high = old.get(j).map_or(COOKIE_MAX, |c| c.cookie);
        let run_start = i;
        while i < names.len() && old.get(j).is_none_or(|c| names[i] < &*c.name) {
            i += 1;
        }
        let run = (i - run_start) as u64;
        let step = if high == COOKIE_MAX && low.saturating_add(COOKIE_STEP * run) < COOKIE_MAX {
            // Appending: keep the usual spacing so later appends have room too.
            COOKIE_STEP
        } else {
            (high - low) / (run + 1)
        };
        if step == 0 {
            // No room left between two neighbours: renumber the directory. Old cookies may
            // then resume at a slightly wrong place; the update invalidates the listing anyway.
            return fresh(names.len());
        }
        for k in 1..=run {
            out.push(low + step * k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mount::namespace::Kind;

    #[test]
    fn cookie_space_exhaustion_renumbers() {
        let old_names: Vec<Vec<u8>> = vec![b"a".to_vec(), b"c".to_vec()];
        let old: Vec<Child> = old_names
            .iter()
            .zip([10u64, 11])
            .map(|(n, cookie)| Child {
                name: n.clone().into(),
                ino: 1,
                kind: Kind::File,
                cookie,
            })
            .collect();
        // No integer strictly between 10 and 11: the directory is renumbered.
        let names: Vec<&[u8]> = vec![b"a", b"b", b"c"];
        let cookies = assign_cookies(&names, Some(&old));
        assert_eq!(cookies, vec![COOKIE_STEP, 2 * COOKIE_STEP, 3 * COOKIE_STEP]);
        // With room, kept cookies stay and new ones fit between.
        let old2: Vec<Child> = old
            .into_iter()
            .zip([100u64, 200])
            .map(|(mut c, k)| {
                c.cookie = k;
                c
            })
            .collect();
        let names: Vec<&[u8]> = vec![b"0", b"a", b"b", b"c", b"d"];
        let cookies = assign_cookies(&names, Some(&old2));
        assert_eq!(cookies[1], 100);
        assert_eq!(cookies[3], 200);
        assert!(cookies.windows(2).all(|w| w[0] < w[1]));
        assert!(cookies[0] > COOKIE_DOTDOT);
    }
}
