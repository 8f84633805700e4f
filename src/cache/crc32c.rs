//! CRC-32C (Castagnoli), the checksum that guards every cached block.
//!
//! Cached blocks are re-verified on every read from disk, so the checksum must cost far less
//! than the read itself: on x86-64 with SSE 4.2 the `crc32` instruction does ~8 GB/s on one
//! core; elsewhere a table-driven loop is used. Not a defence against an attacker (the cache
//! directory is private to the user), only against torn writes, bit rot and bugs.

/// Reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// Byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32C of `data`.
pub fn checksum(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE 4.2, checked just above.
            return !unsafe { update_sse42(!0, data) };
        }
    }
    !update_table(!0, data)
}

fn update_table(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut crc64 = crc as u64;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        crc64 = _mm_crc32_u64(crc64, u64::from_le_bytes(word));
    }
    let mut crc = crc64 as u32;
    for &b in chunks.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // The standard check value of CRC-32C and the iSCSI test vectors (RFC 3720 B.4).
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(checksum(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(checksum(&ascending), 0x46DD_794E);
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn hardware_and_table_agree_on_every_length() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099] {
            assert_eq!(
                checksum(&data[..len]),
                !update_table(!0, &data[..len]),
                "len {len}"
            );
        }
    }
}
