//! The shape every synthetic file shares: a fixed head, a body of noise optionally cut into
//! frames (JPEG comment segments, PNG padding chunks), and a fixed tail.
//!
//! Bytes are produced in two passes over a window: noise everywhere (fast, branch-free), then
//! the few structural bytes that fall inside the window are written over it. Frame positions are
//! arithmetic, so a window anywhere in a multi-gigabyte file costs the same as one at the start.

use super::{crc32, noise};

/// Largest JPEG segment payload: the 16-bit length field counts itself.
const JPEG_MAX_PAYLOAD: u64 = 65_533;
/// Data bytes per PNG padding chunk: small enough that a CRC is cheap to recompute on demand.
const PNG_PAD_DATA: u64 = 64 * 1024;
/// Type of the PNG padding chunks: ancillary, private, reserved bit clear, safe to copy.
pub(crate) const PNG_PAD_TYPE: &[u8; 4] = b"paDd";

/// What the frames of a body are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// JPEG `COM` segments: `FF FE`, big-endian u16 of payload + 2, payload.
    JpegComment,
    /// PNG ancillary chunks: big-endian u32 data length, type, data, CRC-32 of type + data.
    PngChunk,
}

impl FrameKind {
    /// Largest frame, header and trailer included.
    fn max_len(self) -> u64 {
        match self {
            FrameKind::JpegComment => 4 + JPEG_MAX_PAYLOAD,
            FrameKind::PngChunk => 12 + PNG_PAD_DATA,
        }
    }

    /// Smallest frame (an empty payload).
    pub(crate) fn min_len(self) -> u64 {
        match self {
            FrameKind::JpegComment => 4,
            FrameKind::PngChunk => 12,
        }
    }
}

/// A body cut into `regular` frames of the maximum length, then up to two shorter ones.
#[derive(Debug, Clone, Copy)]
struct Framing {
    kind: FrameKind,
    start: u64,
    regular: u64,
    /// Lengths of the frames after the regular ones; 0 = absent.
    extra: [u64; 2],
}

impl Framing {
    /// Cut `len` bytes starting at `start` into frames, or `None` if no cut exists (a body of
    /// 1 to `min_len - 1` bytes).
    fn split(kind: FrameKind, start: u64, len: u64) -> Option<Framing> {
        let (max, min) = (kind.max_len(), kind.min_len());
        let (n, r) = (len / max, len % max);
        let (regular, extra) = if r == 0 {
            (n, [0, 0])
        } else if r >= min {
            (n, [r, 0])
        } else if n >= 1 {
            // Too short for a frame of its own: shorten the last full frame to make room.
            (n - 1, [max + r - min, min])
        } else {
            return None;
        };
        Some(Framing {
            kind,
            start,
            regular,
            extra,
        })
    }

    /// Start and length of frame `i`, if it exists.
    fn frame(&self, i: u64) -> Option<(u64, u64)> {
        let max = self.kind.max_len();
        if i < self.regular {
            return Some((self.start + i * max, max));
        }
        let mut at = self.start + self.regular * max;
        for (j, &len) in self.extra.iter().enumerate() {
            if len == 0 {
                return None;
            }
            if i - self.regular == j as u64 {
                return Some((at, len));
            }
            at += len;
        }
        None
    }

    /// Write the headers and trailers of the frames that meet the window.
    fn overlay(&self, key: u64, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        let mut i = (offset.saturating_sub(self.start) / self.kind.max_len()).min(self.regular);
        while let Some((at, len)) = self.frame(i) {
            if at >= end {
                break;
            }
            if at + len > offset {
                self.write_frame(key, at, len, offset, buf);
            }
            i += 1;
        }
    }

    fn write_frame(&self, key: u64, at: u64, len: u64, offset: u64, buf: &mut [u8]) {
        match self.kind {
            FrameKind::JpegComment => {
                let field = (len - 2) as u16;
                let [hi, lo] = field.to_be_bytes();
                put(buf, offset, at, &[0xFF, 0xFE, hi, lo]);
            }
            FrameKind::PngChunk => {
                let data_len = len - 12;
                let mut header = [0u8; 8];
                header[..4].copy_from_slice(&(data_len as u32).to_be_bytes());
                header[4..].copy_from_slice(PNG_PAD_TYPE);
                put(buf, offset, at, &header);
                let crc_at = at + len - 4;
                if meets(offset, buf.len(), crc_at, 4) {
                    let crc = padding_crc(key, at + 8, data_len);
                    put(buf, offset, crc_at, &crc.to_be_bytes());
                }
            }
        }
    }
}

/// CRC of a padding chunk whose data is the noise at `data_at..data_at + len`.
fn padding_crc(key: u64, data_at: u64, len: u64) -> u32 {
    let mut crc = crc32::Crc32::new();
    crc.update(PNG_PAD_TYPE);
    let mut scratch = [0u8; 16 * 1024];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(scratch.len() as u64) as usize;
        noise::fill(key, data_at + done, &mut scratch[..n]);
        crc.update(&scratch[..n]);
        done += n as u64;
    }
    crc.finish()
}

/// True if `[at, at + len)` meets the window `[offset, offset + buf_len)`.
fn meets(offset: u64, buf_len: usize, at: u64, len: u64) -> bool {
    at < offset + buf_len as u64 && at + len > offset
}

/// Copy the part of `bytes` (which live at file position `at`) that falls in the window.
fn put(buf: &mut [u8], offset: u64, at: u64, bytes: &[u8]) {
    let start = at.max(offset);
    let end = (at + bytes.len() as u64).min(offset + buf.len() as u64);
    if start >= end {
        return;
    }
    let dst = &mut buf[(start - offset) as usize..(end - offset) as usize];
    dst.copy_from_slice(&bytes[(start - at) as usize..(end - at) as usize]);
}

/// The structure of one file of a given size.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
    framing: Option<Framing>,
    complete: bool,
}

impl Layout {
    /// `head`, then a body (cut into `frames` if given), then `tail`, `size` bytes in all.
    ///
    /// When `size` cannot hold that structure, the file is only as much of `head` as fits
    /// followed by noise: the magic bytes survive, the structure does not.
    pub(crate) fn new(
        size: u64,
        head: Vec<u8>,
        tail: Vec<u8>,
        frames: Option<FrameKind>,
    ) -> Layout {
        let fixed = (head.len() + tail.len()) as u64;
        let framing = match (size.checked_sub(fixed), frames) {
            (None, _) => Err(()),
            (Some(_), None) => Ok(None),
            (Some(body), Some(kind)) => Framing::split(kind, head.len() as u64, body)
                .map(Some)
                .ok_or(()),
        };
        match framing {
            Ok(framing) => Layout {
                size,
                head,
                tail,
                framing,
                complete: true,
            },
            Err(()) => {
                let mut head = head;
                head.truncate(size as usize);
                Layout {
                    size,
                    head,
                    tail: Vec::new(),
                    framing: None,
                    complete: false,
                }
            }
        }
    }

    /// True if the file has its whole structure (its size is large enough).
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Write the structural bytes that fall in the window `offset..offset + buf.len()`.
    pub(crate) fn overlay(&self, key: u64, offset: u64, buf: &mut [u8]) {
        put(buf, offset, 0, &self.head);
        put(buf, offset, self.size - self.tail.len() as u64, &self.tail);
        if let Some(framing) = &self.framing {
            framing.overlay(key, offset, buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &Framing) -> Vec<(u64, u64)> {
        (0..).map_while(|i| f.frame(i)).collect()
    }

    #[test]
    fn splits_cover_the_body_exactly_with_legal_frames() {
        for kind in [FrameKind::JpegComment, FrameKind::PngChunk] {
            let (max, min) = (kind.max_len(), kind.min_len());
            for len in [
                0,
                min,
                min + 1,
                max - 1,
                max,
                max + 1,
                max + min - 1,
                max + min,
                3 * max + 2,
                10 * max,
            ] {
                let f = Framing::split(kind, 100, len).expect("splittable");
                let fs = frames(&f);
                let mut at = 100;
                for &(start, flen) in &fs {
                    assert_eq!(start, at, "{kind:?} len {len}: frames are contiguous");
                    assert!(
                        (min..=max).contains(&flen),
                        "{kind:?} len {len}: frame of {flen}"
                    );
                    at += flen;
                }
                assert_eq!(at, 100 + len, "{kind:?} len {len}: frames cover the body");
            }
            for len in 1..min {
                assert!(Framing::split(kind, 0, len).is_none());
            }
        }
    }

    #[test]
    fn put_copies_only_the_overlap() {
        let mut buf = [0u8; 4];
        put(&mut buf, 10, 8, &[1, 2, 3, 4]);
        assert_eq!(buf, [3, 4, 0, 0]);
        put(&mut buf, 10, 13, &[7, 8]);
        assert_eq!(buf, [3, 4, 0, 7]);
        put(&mut buf, 10, 20, &[9]);
        assert_eq!(buf, [3, 4, 0, 7]);
    }
}
