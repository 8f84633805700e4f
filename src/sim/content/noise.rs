//! Keyed counter-mode noise: the filler of every synthetic file.
//!
//! Byte `p` of a stream is byte `p % 8` (little-endian) of `word(key, p / 8)`, so any window of
//! any stream is computed directly from its offset, with one multiply-mix per 8 bytes and no
//! per-byte branching. It only has to look random to compressors and humans; it is no cipher.

/// Mix the identity of a stream (seed and resource fields) into one 64-bit key.
pub(crate) fn key(parts: &[u64]) -> u64 {
    let mut k = 0x243F_6A88_85A3_08D3u64;
    for &p in parts {
        k = mix(k ^ p);
    }
    k
}

/// A strong 64-bit finaliser (splitmix64's), used for keys and word values.
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The `index`-th 8-byte word of stream `key`.
#[inline(always)]
fn word(key: u64, index: u64) -> u64 {
    // One 64x64->128 multiply folds both halves: cheap, and every input bit reaches the output.
    let x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key;
    let m = u128::from(x).wrapping_mul(u128::from(x ^ 0xE703_7ED1_A0B4_28DB));
    (m as u64) ^ ((m >> 64) as u64)
}

/// Fill `buf` with the bytes of stream `key` starting at byte `offset`.
pub(crate) fn fill(key: u64, offset: u64, buf: &mut [u8]) {
    let mut index = offset / 8;
    let skip = (offset % 8) as usize;
    let mut rest: &mut [u8] = buf;
    if skip != 0 {
        let bytes = word(key, index).to_le_bytes();
        let n = (8 - skip).min(rest.len());
        rest[..n].copy_from_slice(&bytes[skip..skip + n]);
        rest = &mut rest[n..];
        index += 1;
    }
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&word(key, index).to_le_bytes());
        index += 1;
    }
    let tail = words.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(key, index).to_le_bytes()[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_window_matches_the_whole_stream() {
        let mut whole = vec![0u8; 1000];
        fill(42, 0, &mut whole);
        for (start, len) in [
            (0, 1),
            (1, 7),
            (3, 8),
            (7, 9),
            (8, 16),
            (13, 500),
            (999, 1),
            (5, 0),
        ] {
            let mut part = vec![0u8; len];
            fill(42, start as u64, &mut part);
            assert_eq!(part, whole[start..start + len], "window {start}+{len}");
        }
    }

    #[test]
    fn streams_differ_and_look_random() {
        let mut a = vec![0u8; 1 << 16];
        let mut b = vec![0u8; 1 << 16];
        fill(key(&[1, 2]), 0, &mut a);
        fill(key(&[1, 3]), 0, &mut b);
        assert_ne!(a, b);
        // Every byte value shows up about equally often (expected 256 each).
        let mut counts = [0u32; 256];
        for &x in &a {
            counts[x as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (150..400).contains(&c)),
            "skewed histogram: {counts:?}"
        );
    }
}
