//! Just enough of the JPEG container to replace its EXIF block and nothing else: the marker
//! segments before the first scan, the EXIF `APP1` among them, and a splice that leaves every
//! other byte of the file exactly where it was relative to its neighbours.
//!
//! We do the splicing ourselves rather than through the EXIF library so that the file layout
//! is under our control (EXIF after a JFIF `APP0`, never an `APP1` whose length overflows, an
//! XMP `APP1` never mistaken for EXIF) and can be checked afterwards ([`same_except_exif`]).

use std::ops::Range;

/// `Exif\0\0`: the identifier that starts the payload of an EXIF `APP1` segment.
pub(crate) const EXIF_ID: &[u8; 6] = b"Exif\0\0";

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;

/// Largest payload a marker segment can hold (its 16-bit length counts itself).
const MAX_SEGMENT_PAYLOAD: usize = 0xFFFF - 2;

/// One marker segment before the first scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub marker: u8,
    /// From the `0xFF` of the marker to the end of the payload.
    pub span: Range<usize>,
    /// The payload (after the length field).
    pub payload: Range<usize>,
}

/// The header segments of a JPEG file; everything from `scan_start` on (scans, EOI, trailing
/// data) is opaque to us.
#[derive(Debug, Clone)]
pub(crate) struct JpegLayout {
    pub segments: Vec<Segment>,
    pub scan_start: usize,
}

impl JpegLayout {
    /// The first `APP1` segment carrying EXIF, if any.
    pub fn exif_segment(&self, bytes: &[u8]) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.marker == APP1 && bytes[s.payload.clone()].starts_with(EXIF_ID))
    }

    /// The TIFF structure inside the EXIF segment (after `Exif\0\0`).
    pub fn exif_tiff<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        self.exif_segment(bytes)
            .map(|s| &bytes[s.payload.start + EXIF_ID.len()..s.payload.end])
    }
}

/// Parse the segments of a JPEG file up to its first scan.
pub(crate) fn parse(bytes: &[u8]) -> Result<JpegLayout, String> {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != SOI {
        return Err("not a JPEG file (no SOI marker)".into());
    }
    let mut segments = Vec::new();
    let mut pos = 2;
    loop {
        if pos >= bytes.len() {
            return Err("JPEG ends before its first scan".into());
        }
        if bytes[pos] != 0xFF {
            return Err(format!("expected a marker at byte {pos}"));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        let mut m = pos + 1;
        while m < bytes.len() && bytes[m] == 0xFF {
            m += 1;
        }
        let Some(&marker) = bytes.get(m) else {
            return Err("JPEG ends inside a marker".into());
        };
        match marker {
            SOS => {
                return Ok(JpegLayout {
                    segments,
                    scan_start: pos,
                });
            }
            EOI => return Err("JPEG has no image scan".into()),
            0x00 => return Err(format!("stray 0xFF00 at byte {pos}")),
            // Markers without a length field.
            0x01 | 0xD0..=0xD7 => {
                segments.push(Segment {
                    marker,
                    span: pos..m + 1,
                    payload: m + 1..m + 1,
                });
                pos = m + 1;
            }
            _ => {
                let len_at = m + 1;
                let Some(len) = bytes.get(len_at..len_at + 2) else {
                    return Err("JPEG ends inside a segment length".into());
                };
                let len = u16::from_be_bytes([len[0], len[1]]) as usize;
                if len < 2 {
                    return Err(format!("segment length {len} at byte {len_at}"));
                }
                let end = len_at + len;
                if end > bytes.len() {
                    return Err(format!(
                        "segment at byte {pos} runs past the end of the file"
                    ));
                }
                segments.push(Segment {
                    marker,
                    span: pos..end,
                    payload: len_at + 2..end,
                });
                pos = end;
            }
        }
    }
}

/// The file with its EXIF block replaced by (or, when it had none, given) `tiff`: an existing
/// EXIF segment is replaced in place; a new one goes after the leading `APP0` segments (JFIF
/// wants to be first) or right after SOI.
pub(crate) fn with_exif(bytes: &[u8], layout: &JpegLayout, tiff: &[u8]) -> Result<Vec<u8>, String> {
    let payload_len = EXIF_ID.len() + tiff.len();
    if payload_len > MAX_SEGMENT_PAYLOAD {
        return Err(format!(
            "EXIF block of {payload_len} bytes does not fit in one JPEG segment"
        ));
    }
    let mut segment = Vec::with_capacity(4 + payload_len);
    segment.extend_from_slice(&[0xFF, APP1]);
    segment.extend_from_slice(&((payload_len + 2) as u16).to_be_bytes());
    segment.extend_from_slice(EXIF_ID);
    segment.extend_from_slice(tiff);

    let replaced = match layout.exif_segment(bytes) {
        Some(s) => s.span.clone(),
        None => {
            let at = layout
                .segments
                .iter()
                .take_while(|s| s.marker == APP0)
                .last()
                .map_or(2, |s| s.span.end);
            at..at
        }
    };
    let mut out = Vec::with_capacity(bytes.len() + segment.len());
    out.extend_from_slice(&bytes[..replaced.start]);
    out.extend_from_slice(&segment);
    out.extend_from_slice(&bytes[replaced.end..]);
    Ok(out)
}

/// True when `new` is `old` with at most its EXIF segment replaced, added or moved: the other
/// header segments are the same bytes in the same order, and the scans onward are identical.
pub(crate) fn same_except_exif(old: &[u8], new: &[u8]) -> Result<(), String> {
    let a = parse(old)?;
    let b = parse(new)?;
    let others = |bytes: &'_ [u8], layout: &JpegLayout| -> Vec<Range<usize>> {
        let exif = layout.exif_segment(bytes).map(|s| s.span.start);
        layout
            .segments
            .iter()
            .filter(|s| Some(s.span.start) != exif)
            .map(|s| s.span.clone())
            .collect()
    };
    let (sa, sb) = (others(old, &a), others(new, &b));
    if sa.len() != sb.len() {
        return Err(format!(
            "header segments went from {} to {} (EXIF aside)",
            sa.len(),
            sb.len()
        ));
    }
    for (x, y) in sa.iter().zip(&sb) {
        if old[x.clone()] != new[y.clone()] {
            return Err(format!("segment at byte {} changed", x.start));
        }
    }
    if old[a.scan_start..] != new[b.scan_start..] {
        return Err("image data changed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOI, a JFIF APP0, a DQT-like segment, SOS and some scan bytes, EOI.
    fn tiny() -> Vec<u8> {
        let mut v = vec![0xFF, SOI];
        v.extend_from_slice(&[0xFF, APP0, 0, 7, b'J', b'F', b'I', b'F', 0]);
        v.extend_from_slice(&[0xFF, 0xDB, 0, 4, 1, 2]);
        v.extend_from_slice(&[0xFF, SOS, 0, 3, 9, 0x12, 0xFF, 0x00, 0x34, 0xFF, EOI]);
        v
    }

    #[test]
    fn parses_segments_up_to_the_scan() {
        let v = tiny();
        let l = parse(&v).unwrap();
        assert_eq!(l.segments.len(), 2);
        assert_eq!(l.segments[0].marker, APP0);
        assert_eq!(l.scan_start, 2 + 9 + 6);
        assert!(l.exif_segment(&v).is_none());
    }

    #[test]
    fn new_exif_goes_after_jfif_and_replaces_in_place_later() {
        let v = tiny();
        let l = parse(&v).unwrap();
        let w = with_exif(&v, &l, b"II*\0tiff").unwrap();
        let lw = parse(&w).unwrap();
        assert_eq!(lw.segments[1].marker, APP1);
        assert_eq!(lw.exif_tiff(&w).unwrap(), b"II*\0tiff");
        same_except_exif(&v, &w).unwrap();

        let w2 = with_exif(&w, &lw, b"MM\0*longer tiff").unwrap();
        let l2 = parse(&w2).unwrap();
        assert_eq!(l2.segments.len(), 3);
        assert_eq!(l2.exif_tiff(&w2).unwrap(), b"MM\0*longer tiff");
        same_except_exif(&v, &w2).unwrap();
    }

    #[test]
    fn an_xmp_app1_is_not_exif() {
        let mut v = vec![0xFF, SOI];
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x/>";
        v.extend_from_slice(&[0xFF, APP1, 0, (xmp.len() + 2) as u8]);
        v.extend_from_slice(xmp);
        v.extend_from_slice(&tiny()[2..]);
        let l = parse(&v).unwrap();
        assert!(l.exif_segment(&v).is_none());
        let w = with_exif(&v, &l, b"II*\0").unwrap();
        same_except_exif(&v, &w).unwrap();
        // The XMP segment is still there, untouched.
        assert!(w.windows(xmp.len()).any(|win| win == xmp));
    }

    #[test]
    fn detects_changes_outside_exif() {
        let v = tiny();
        let mut w = v.clone();
        let n = w.len();
        w[n - 3] ^= 1;
        assert!(same_except_exif(&v, &w).is_err());
        let mut w = v.clone();
        w[13] ^= 1; // inside the DQT-like segment
        assert!(same_except_exif(&v, &w).is_err());
    }

    #[test]
    fn rejects_truncated_and_oversized() {
        let v = tiny();
        assert!(parse(&v[..12]).is_err());
        assert!(parse(b"GIF89a").is_err());
        let l = parse(&v).unwrap();
        assert!(with_exif(&v, &l, &vec![0u8; 70_000]).is_err());
    }
}
