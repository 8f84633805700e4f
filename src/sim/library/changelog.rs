//! The per-zone change log and the sync tokens that point into it.
//!
//! The log is append-only: every mutation appends one entry per touched record. Rendering an
//! entry shows the record's *current* state, and an entry whose record changed again later is
//! skipped (the later entry shows it), as CloudKit's change feed returns each changed record
//! once. Runs of superseded entries therefore produce the empty `moreComing` pages seen live.
//!
//! A zone token encodes (zone, position) with a keyed MAC; a database token encodes (database,
//! global change counter). Both are deterministic, reusable and never consumed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// One changed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordRef {
    /// The CPLMaster of the asset at this index.
    Master(u32),
    /// The CPLAsset of the asset at this index.
    Asset(u32),
    /// The CPLAlbum at this index.
    Album(u32),
    /// The CPLContainerRelation of an asset in an album.
    Relation { album: u32, asset: u32 },
    /// The zone's CPLLibraryInfo record.
    LibraryInfo,
}

/// The append-only log of one zone.
#[derive(Debug, Default)]
pub struct ChangeLog {
    entries: Vec<RecordRef>,
    /// (first sequence, ms): the wall-clock time of entries from that sequence on.
    times: Vec<(u32, i64)>,
}

impl ChangeLog {
    /// A log with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        ChangeLog {
            entries: Vec::with_capacity(n),
            times: Vec::new(),
        }
    }

    /// Number of entries (= sequence of the last one; the position "caught up").
    pub fn len(&self) -> u32 {
        self.entries.len() as u32
    }

    /// True when nothing was ever logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append an entry; returns its sequence number (1-based).
    pub fn append(&mut self, r: RecordRef) -> u32 {
        self.entries.push(r);
        self.entries.len() as u32
    }

    /// The entry with sequence `seq` (1-based).
    pub fn entry(&self, seq: u32) -> Option<RecordRef> {
        self.entries.get(seq.checked_sub(1)? as usize).copied()
    }

    /// Entries appended from now on happened at `ms`.
    pub fn mark_time(&mut self, ms: i64) {
        let next = self.len() + 1;
        match self.times.last_mut() {
            Some(last) if last.0 == next => last.1 = ms,
            _ => self.times.push((next, ms)),
        }
    }

    /// Wall-clock time of the entry `seq`, if it was logged after generation.
    pub fn time_of(&self, seq: u32) -> Option<i64> {
        let i = self.times.partition_point(|(first, _)| *first <= seq);
        i.checked_sub(1).map(|i| self.times[i].1)
    }
}

/// Why a token was refused (both are `BAD_REQUEST` with these reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not base64 of the right length (e.g. a truncated token).
    #[error("Invalid continuation format")]
    Format,
    /// Well-formed but not a token of this zone (garbage, another zone, a database token).
    #[error("Unknown sync continuation type")]
    UnknownType,
}

const ZONE_TOKEN: u8 = 0x5A;
const DATABASE_TOKEN: u8 = 0xDB;
const TOKEN_LEN: usize = 33;

/// Mints and checks sync tokens for one seed.
#[derive(Debug, Clone)]
pub struct TokenCodec {
    key: [u8; 32],
}

impl TokenCodec {
    /// The codec of a seed.
    pub fn new(seed: u64) -> Self {
        TokenCodec {
            key: crate::sim::seeded_hash(seed, b"sync-tokens"),
        }
    }

    fn mint(&self, kind: u8, scope: &str, value: u64) -> String {
        let mut b = [0u8; TOKEN_LEN];
        b[0] = kind;
        b[1..5].copy_from_slice(&scope_tag(scope));
        b[5..13].copy_from_slice(&value.to_be_bytes());
        let mac = self.mac(&b[..13]);
        b[13..].copy_from_slice(&mac[..20]);
        STANDARD.encode(b)
    }

    fn check(&self, kind: u8, scope: &str, token: &str) -> Result<u64, TokenError> {
        let b = STANDARD.decode(token).map_err(|_| TokenError::Format)?;
        if b.len() != TOKEN_LEN {
            return Err(TokenError::Format);
        }
        if b[0] != kind || b[1..5] != scope_tag(scope) || self.mac(&b[..13])[..20] != b[13..] {
            return Err(TokenError::UnknownType);
        }
        Ok(u64::from_be_bytes(b[5..13].try_into().expect("8 bytes")))
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(data);
        h.finalize().into()
    }

    /// The token of position `pos` in `zone`'s log (44 characters).
    pub fn zone_token(&self, zone: &str, pos: u32) -> String {
        self.mint(ZONE_TOKEN, zone, u64::from(pos))
    }

    /// The position a zone token stands for.
    pub fn parse_zone_token(&self, zone: &str, token: &str) -> Result<u32, TokenError> {
        let v = self.check(ZONE_TOKEN, zone, token)?;
        u32::try_from(v).map_err(|_| TokenError::UnknownType)
    }

    /// The token of `database` at global change counter `counter`.
    pub fn database_token(&self, database: &str, counter: u64) -> String {
        self.mint(DATABASE_TOKEN, database, counter)
    }

    /// The counter a database token stands for.
    pub fn parse_database_token(&self, database: &str, token: &str) -> Result<u64, TokenError> {
        self.check(DATABASE_TOKEN, database, token)
    }
}

fn scope_tag(scope: &str) -> [u8; 4] {
    let h: [u8; 32] = Sha256::digest(scope.as_bytes()).into();
    [h[0], h[1], h[2], h[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_tokens_round_trip_and_are_deterministic() {
        let c = TokenCodec::new(1);
        let t = c.zone_token("PrimarySync", 1234);
        assert_eq!(t.len(), 44);
        assert_eq!(t, TokenCodec::new(1).zone_token("PrimarySync", 1234));
        assert_eq!(c.parse_zone_token("PrimarySync", &t), Ok(1234));
        assert_ne!(t, c.zone_token("PrimarySync", 1235));
    }

    #[test]
    fn bad_tokens_are_classified() {
        let c = TokenCodec::new(1);
        let t = c.zone_token("PrimarySync", 7);
        assert_eq!(
            c.parse_zone_token("PrimarySync", &t[..20]),
            Err(TokenError::Format)
        );
        assert_eq!(
            c.parse_zone_token("PrimarySync", "%%%"),
            Err(TokenError::Format)
        );
        let garbage = STANDARD.encode([7u8; 33]);
        assert_eq!(
            c.parse_zone_token("PrimarySync", &garbage),
            Err(TokenError::UnknownType)
        );
        assert_eq!(
            c.parse_zone_token("SharedSync-X", &t),
            Err(TokenError::UnknownType)
        );
        let db = c.database_token("private", 7);
        assert_eq!(
            c.parse_zone_token("PrimarySync", &db),
            Err(TokenError::UnknownType)
        );
        assert_eq!(c.parse_database_token("private", &db), Ok(7));
        assert_eq!(
            c.parse_database_token("shared", &db),
            Err(TokenError::UnknownType)
        );
        assert_eq!(
            TokenCodec::new(2).parse_zone_token("PrimarySync", &t),
            Err(TokenError::UnknownType)
        );
        // A recorded Apple token is not ours.
        assert!(
            c.parse_zone_token(
                "PrimarySync",
                "AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td"
            )
            .is_err()
        );
    }

    #[test]
    fn log_sequences_and_times() {
        let mut log = ChangeLog::default();
        assert_eq!(log.append(RecordRef::Master(0)), 1);
        assert_eq!(log.append(RecordRef::Asset(0)), 2);
        log.mark_time(1000);
        assert_eq!(log.append(RecordRef::LibraryInfo), 3);
        log.mark_time(2000);
        log.append(RecordRef::Album(1));
        assert_eq!(log.time_of(2), None);
        assert_eq!(log.time_of(3), Some(1000));
        assert_eq!(log.time_of(4), Some(2000));
        assert_eq!(log.entry(1), Some(RecordRef::Master(0)));
        assert_eq!(log.entry(0), None);
        assert_eq!(log.entry(5), None);
        assert_eq!(log.len(), 4);
    }
}
