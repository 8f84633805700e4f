//! Record names and keyed randomness.
//!
//! Nothing per asset is stored to name it: a CPLMaster recordName, a CPLAsset UUID, an album
//! UUID or a burst id is an invertible keyed permutation of a small number (plus a keyed tag),
//! so rendering derives names and parsing a name finds the asset again without any map. A
//! forged or foreign name fails the tag check.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// What a UUID-shaped record name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdDomain {
    /// A CPLAsset (the number is the asset key).
    Asset = 1,
    /// A CPLAlbum (zone number << 32 | album index).
    Album = 2,
    /// A burst group (zone number << 32 | group number).
    Burst = 3,
    /// Zone names and other one-off UUIDs (label hash).
    Misc = 4,
}

impl IdDomain {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => IdDomain::Asset,
            2 => IdDomain::Album,
            3 => IdDomain::Burst,
            4 => IdDomain::Misc,
            _ => return None,
        })
    }
}

/// Numbers that fit a record name: 56 bits (the domain takes the top byte of a UUID's number).
const NUMBER_MASK: u64 = (1 << 56) - 1;

/// Encodes and decodes the simulator's record names for one seed.
#[derive(Debug, Clone)]
pub struct IdCodec {
    master_rounds: [u32; 4],
    uuid_rounds: [u32; 4],
    tag_key: u64,
}

impl IdCodec {
    /// The codec of a seed.
    pub fn new(seed: u64) -> Self {
        let h = crate::sim::seeded_hash(seed, b"record-ids");
        let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        IdCodec {
            master_rounds: [word(0), word(4), word(8), word(12)],
            uuid_rounds: [word(16), word(20), word(24), word(28)],
            tag_key: u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")) ^ 0x5bd1_e995,
        }
    }

    /// The 21 bytes of an asset's CPLMaster recordName: `0x01`, the permuted key, a keyed tag.
    pub fn master_bytes(&self, asset_key: u64) -> [u8; 21] {
        let mut out = [0u8; 21];
        out[0] = 0x01;
        out[1..9].copy_from_slice(&feistel(&self.master_rounds, asset_key).to_be_bytes());
        out[9..17].copy_from_slice(&mix64(asset_key ^ self.tag_key).to_be_bytes());
        out[17..21]
            .copy_from_slice(&(mix64(asset_key.wrapping_add(self.tag_key)) as u32).to_be_bytes());
        out
    }

    /// The CPLMaster recordName of an asset (standard base64 of 21 bytes, 28 characters).
    pub fn master_name(&self, asset_key: u64) -> String {
        STANDARD.encode(self.master_bytes(asset_key))
    }

    /// The asset key of a CPLMaster recordName made by this codec.
    pub fn parse_master(&self, name: &str) -> Option<u64> {
        let bytes = STANDARD.decode(name).ok()?;
        if bytes.len() != 21 || bytes[0] != 0x01 {
            return None;
        }
        let permuted = u64::from_be_bytes(bytes[1..9].try_into().ok()?);
        let key = feistel_inverse(&self.master_rounds, permuted);
        (self.master_bytes(key)[..] == bytes[..]).then_some(key)
    }

    /// An upper-case version-4-shaped UUID naming `number` in `domain`.
    pub fn uuid(&self, domain: IdDomain, number: u64) -> String {
        let b = self.uuid_bytes(domain, number);
        let hex = hex::encode_upper(b);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    fn uuid_bytes(&self, domain: IdDomain, number: u64) -> [u8; 16] {
        let value = ((domain as u64) << 56) | (number & NUMBER_MASK);
        let p = feistel(&self.uuid_rounds, value).to_be_bytes();
        let t = mix64(value ^ self.tag_key.rotate_left(29)).to_be_bytes();
        [
            p[0],
            p[1],
            p[2],
            p[3],
            t[0],
            t[1],
            0x40 | (t[2] & 0x0F),
            t[3],
            0x80 | (t[4] & 0x3F),
            t[5],
            p[4],
            p[5],
            p[6],
            p[7],
            t[6],
            t[7],
        ]
    }

    /// The domain and number of a UUID made by this codec (any case).
    pub fn parse_uuid(&self, s: &str) -> Option<(IdDomain, u64)> {
        if s.len() != 36 {
            return None;
        }
        let compact: String = s.chars().filter(|c| *c != '-').collect();
        if compact.len() != 32 {
            return None;
        }
        let bytes = hex::decode(compact).ok()?;
        let p = [
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[10], bytes[11], bytes[12], bytes[13],
        ];
        let value = feistel_inverse(&self.uuid_rounds, u64::from_be_bytes(p));
        let domain = IdDomain::from_u8((value >> 56) as u8)?;
        let number = value & NUMBER_MASK;
        (self.uuid_bytes(domain, number)[..] == bytes[..]).then_some((domain, number))
    }
}

/// 64-bit finaliser (splitmix64): a good, cheap keyed-hash building block.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn round_fn(x: u32, k: u32) -> u32 {
    let mut h = x ^ k;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

fn feistel(keys: &[u32; 4], x: u64) -> u64 {
    let (mut l, mut r) = ((x >> 32) as u32, x as u32);
    for &k in keys {
        let next = l ^ round_fn(r, k);
        l = r;
        r = next;
    }
    (u64::from(l) << 32) | u64::from(r)
}

fn feistel_inverse(keys: &[u32; 4], x: u64) -> u64 {
    let (mut l, mut r) = ((x >> 32) as u32, x as u32);
    for &k in keys.iter().rev() {
        let prev = r ^ round_fn(l, k);
        r = l;
        l = prev;
    }
    (u64::from(l) << 32) | u64::from(r)
}

/// A small deterministic random stream (splitmix64) keyed by (seed, stream label, number).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The stream for `number` under `label` (labels keep unrelated choices independent).
    pub fn new(seed: u64, label: u64, number: u64) -> Self {
        Rng(mix64(seed ^ mix64(label ^ mix64(number))))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Fill `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_names_round_trip_and_look_like_apple_ones() {
        let c = IdCodec::new(7);
        for key in [1u64, 2, 99_999, (1 << 40) + 5] {
            let name = c.master_name(key);
            assert_eq!(name.len(), 28, "{name}");
            assert_eq!(STANDARD.decode(&name).unwrap()[0], 1);
            assert_eq!(c.parse_master(&name), Some(key));
        }
        assert_ne!(c.master_name(1), c.master_name(2));
        assert_eq!(c.parse_master("AY6c+BsE0jjaXx9tmVGJM1D2VcEO"), None);
        assert_eq!(c.parse_master("not base64!"), None);
        assert_ne!(IdCodec::new(8).master_name(1), c.master_name(1));
    }

    #[test]
    fn uuids_round_trip_per_domain_and_reject_forgeries() {
        let c = IdCodec::new(3);
        let id = c.uuid(IdDomain::Asset, 42);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "A" | "B"));
        assert_eq!(id, id.to_uppercase());
        assert_eq!(c.parse_uuid(&id), Some((IdDomain::Asset, 42)));
        assert_eq!(
            c.parse_uuid(&id.to_lowercase()),
            Some((IdDomain::Asset, 42))
        );
        let album = c.uuid(IdDomain::Album, 3);
        assert_eq!(c.parse_uuid(&album), Some((IdDomain::Album, 3)));
        assert_eq!(c.parse_uuid("F2A23C38-0020-42FE-A273-2923ADE3CAED"), None);
        assert_eq!(c.parse_uuid("nonsense"), None);
    }

    #[test]
    fn feistel_is_a_permutation() {
        let keys = [1, 2, 3, 4];
        for x in [0u64, 1, u64::MAX, 0xDEAD_BEEF_1234_5678] {
            assert_eq!(feistel_inverse(&keys, feistel(&keys, x)), x);
        }
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(1, 2, 3);
        let mut b = Rng::new(1, 2, 3);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            let v = a.range(-5, 5);
            b.range(-5, 5);
            assert!((-5..=5).contains(&v));
        }
        assert_ne!(Rng::new(1, 2, 3).next_u64(), Rng::new(1, 2, 4).next_u64());
    }
}
