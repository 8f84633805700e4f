//! An independent walk over the IFDs of an EXIF (TIFF) block, listing which tags it holds.
//!
//! The EXIF library decodes leniently: an IFD it cannot follow is dropped without a word. If
//! we then re-encoded what it understood, the tags it missed would be lost. So before any
//! rewrite, every tag this walk finds must be among those the library decoded; otherwise the
//! file is left alone.

use std::collections::BTreeSet;

/// Which directory a tag lives in, named as the EXIF library groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Directory {
    /// IFD0, IFD1, ... (the number is the position in the chain).
    Generic(u32),
    Exif(u32),
    Gps(u32),
    Interop(u32),
}

const EXIF_POINTER: u16 = 0x8769;
const GPS_POINTER: u16 = 0x8825;
const INTEROP_POINTER: u16 = 0xA005;

/// A tag whose value is the offset of a sub-IFD.
pub(crate) fn is_pointer(tag: u16) -> bool {
    matches!(tag, EXIF_POINTER | GPS_POINTER | INTEROP_POINTER)
}

/// Longest IFD chain we follow; real files have two (the image and its thumbnail).
const MAX_CHAIN: u32 = 16;

struct Block<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Block<'_> {
    fn u16_at(&self, at: usize) -> Result<u16, String> {
        let b = self
            .bytes
            .get(at..at + 2)
            .ok_or_else(|| format!("offset {at} outside the EXIF block"))?;
        Ok(if self.little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    }

    fn u32_at(&self, at: usize) -> Result<u32, String> {
        let b = self
            .bytes
            .get(at..at + 4)
            .ok_or_else(|| format!("offset {at} outside the EXIF block"))?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// The tags of the IFD at `at`, with the offset of the next IFD (0 for none).
    fn ifd(&self, at: usize) -> Result<(Vec<(u16, u32)>, u32), String> {
        let n = self.u16_at(at)? as usize;
        let mut tags = Vec::with_capacity(n);
        for i in 0..n {
            let e = at + 2 + 12 * i;
            tags.push((self.u16_at(e)?, self.u32_at(e + 8)?));
        }
        Ok((tags, self.u32_at(at + 2 + 12 * n)?))
    }
}

/// Every `(directory, tag)` in a TIFF block, or why it cannot be walked.
pub(crate) fn tags(tiff: &[u8]) -> Result<BTreeSet<(Directory, u16)>, String> {
    let little = match tiff.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        _ => return Err("EXIF block without a TIFF header".into()),
    };
    let block = Block {
        bytes: tiff,
        little,
    };
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut next = block.u32_at(4)?;
    let mut n = 0;
    while next != 0 {
        if n == MAX_CHAIN || !seen.insert(next) {
            return Err("IFD chain loops or is too long".into());
        }
        let (entries, following) = block.ifd(next as usize)?;
        for &(tag, value) in &entries {
            out.insert((Directory::Generic(n), tag));
            let sub = match tag {
                EXIF_POINTER => Some(Directory::Exif(n)),
                GPS_POINTER => Some(Directory::Gps(n)),
                _ => None,
            };
            if let Some(dir) = sub {
                let (sub_entries, _) = block.ifd(value as usize)?;
                for &(t, v) in &sub_entries {
                    out.insert((dir, t));
                    if dir == Directory::Exif(n) && t == INTEROP_POINTER {
                        let (interop, _) = block.ifd(v as usize)?;
                        out.extend(interop.iter().map(|&(t, _)| (Directory::Interop(n), t)));
                    }
                }
            }
        }
        next = following;
        n += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_ifd0_and_its_exif_ifd() {
        // II, IFD0 at 8 with one entry: ExifOffset -> 26; Exif IFD with one entry 0x9003.
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        t.extend_from_slice(&[1, 0, 0x69, 0x87, 4, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0, 0, 0, 0]);
        t.extend_from_slice(&[1, 0, 0x03, 0x90, 2, 0, 4, 0, 0, 0, b'a', b'b', b'c', 0]);
        t.extend_from_slice(&[0, 0, 0, 0]);
        let tags = tags(&t).unwrap();
        assert!(tags.contains(&(Directory::Generic(0), 0x8769)));
        assert!(tags.contains(&(Directory::Exif(0), 0x9003)));
        assert_eq!(tags.len(), 2);
    }

    #[test]
    fn broken_blocks_are_errors() {
        assert!(tags(b"XX*\0\x08\0\0\0").is_err());
        assert!(tags(b"II*\0\xff\xff\xff\x7f").is_err());
        // IFD0 whose "next" points back at itself.
        let t = b"II*\0\x08\0\0\0\0\0\x08\0\0\0";
        assert!(tags(t).is_err());
    }
}
