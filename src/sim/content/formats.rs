//! The structure of each synthetic format: which head, frames and tail a file gets.
//!
//! Every file is just valid enough for real tools: JPEG and PNG decode (to a tiny grey image
//! carried at the end, after the padding), ISO-BMFF files are a walkable box sequence whose sizes
//! add up exactly (a HEIC names its image item in a `meta` box, as HEIF requires), and raw files
//! are a TIFF with a well-formed first IFD.

use super::Format;
use super::crc32::crc32;
use super::layout::{FrameKind, Layout};

/// The layout of a file of `format` and `size` bytes.
pub(crate) fn layout(format: Format, size: u64) -> Layout {
    match format {
        Format::Jpeg => Layout::new(
            size,
            jpeg_head(),
            TINY_JPEG.to_vec(),
            Some(FrameKind::JpegComment),
        ),
        Format::Png => Layout::new(size, png_head(), png_tail(), Some(FrameKind::PngChunk)),
        Format::Heic => heic(size),
        Format::Mov => {
            let mut head = ftyp(b"qt  ", 0, &[b"qt  "]);
            // QuickTime writers reserve room to grow `mdat` to a 64-bit size.
            head.extend_from_slice(&[0, 0, 0, 8]);
            head.extend_from_slice(b"wide");
            boxed(size, head)
        }
        Format::Mp4 => boxed(size, ftyp(b"isom", 0x200, &[b"isom", b"iso2", b"mp41"])),
        Format::Dng => Layout::new(size, tiff_head(RawKind::Dng), Vec::new(), None),
        Format::Cr2 => Layout::new(size, tiff_head(RawKind::Cr2), Vec::new(), None),
    }
}

/// The smallest size from which every file of `format` has its whole structure.
pub(crate) fn min_size(format: Format) -> u64 {
    let frame = |kind: FrameKind| kind.min_len();
    match format {
        Format::Jpeg => {
            (jpeg_head().len() + TINY_JPEG.len()) as u64 + frame(FrameKind::JpegComment)
        }
        Format::Png => (png_head().len() + png_tail().len()) as u64 + frame(FrameKind::PngChunk),
        // Box formats: the prefix plus an empty `mdat` (8-byte header).
        Format::Heic | Format::Mov | Format::Mp4 => {
            let mut size = 0;
            while !layout(format, size).is_complete() {
                size += 1;
            }
            size
        }
        Format::Dng => tiff_head(RawKind::Dng).len() as u64,
        Format::Cr2 => tiff_head(RawKind::Cr2).len() as u64,
    }
}

// ---- JPEG -------------------------------------------------------------------------------

/// SOI and a JFIF APP0 segment (version 1.01, aspect ratio 1:1, no thumbnail).
fn jpeg_head() -> Vec<u8> {
    vec![
        0xFF, 0xD8, // SOI
        0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00,
    ]
}

/// A complete 8×8 baseline greyscale image after the padding: all 64 samples are 128.
///
/// Quantisation is all ones; each Huffman table holds a single one-bit code (`0`): the DC
/// table for "difference category 0", the AC table for end-of-block. The only block is then
/// coded as the bits `0 0`, padded with ones to the byte `0x3F`.
const TINY_JPEG: [u8; 139] = {
    let mut t = [0u8; 139];
    // DQT: length 67, 8-bit precision, table 0, 64 ones.
    let dqt = [0xFF, 0xDB, 0x00, 0x43, 0x00];
    let mut i = 0;
    while i < 5 {
        t[i] = dqt[i];
        i += 1;
    }
    while i < 69 {
        t[i] = 1;
        i += 1;
    }
    let rest: [u8; 70] = [
        // SOF0: length 11, 8-bit, 8 lines, 8 samples per line, 1 component (id 1, 1x1, table 0).
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00,
        // DHT: length 20, DC table 0, one code of length 1, symbol 0x00.
        0xFF, 0xC4, 0x00, 0x14, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
        // DHT: length 20, AC table 0, one code of length 1, symbol 0x00 (end of block).
        0xFF, 0xC4, 0x00, 0x14, 0x10, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00,
        // SOS: length 8, 1 component (id 1, tables 0/0), spectral 0..63, no approximation.
        0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00,
        // Entropy-coded data, then EOI.
        0x3F, 0xFF, 0xD9,
    ];
    let mut j = 0;
    while j < 70 {
        t[69 + j] = rest[j];
        j += 1;
    }
    t
};

// ---- PNG --------------------------------------------------------------------------------

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Signature and IHDR of a 1×1 8-bit greyscale image.
fn png_head() -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&1u32.to_be_bytes()); // width
    ihdr.extend_from_slice(&1u32.to_be_bytes()); // height
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // depth 8, greyscale, deflate, adaptive, no interlace
    png_chunk(&mut out, b"IHDR", &ihdr);
    out
}

/// IDAT with the one scanline (filter 0, sample 0x80) as a stored zlib block, then IEND.
fn png_tail() -> Vec<u8> {
    let raw = [0x00u8, 0x80];
    let mut zlib = vec![0x78, 0x01]; // deflate, 32 KiB window, no dictionary; check bits ok
    zlib.push(0x01); // final block, stored
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = Vec::new();
    png_chunk(&mut out, b"IDAT", &zlib);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

// ---- ISO base media (HEIC, MOV, MP4) ----------------------------------------------------

fn ftyp(major: &[u8; 4], minor: u32, compatible: &[&[u8; 4]]) -> Vec<u8> {
    let mut body = major.to_vec();
    body.extend_from_slice(&minor.to_be_bytes());
    for brand in compatible {
        body.extend_from_slice(*brand);
    }
    bmff_box(b"ftyp", &body)
}

/// A HEIF still image: `ftyp`, then the `meta` box every HEIF has (ISO/IEC 23008-12), then
/// `mdat`. `meta` holds what readers look for first: the `pict` handler, the primary item
/// (`pitm`), that item's type (`iinf`: one `hvc1` image) and its place (`iloc`: the whole of
/// `mdat`'s data), so EXIF writers and readers find a well-formed item structure. It carries
/// no EXIF item: `--set-exif-datetime` has a date to add.
fn heic(size: u64) -> Layout {
    let mut head = ftyp(b"heic", 0, &[b"mif1", b"heic"]);
    // The item's extent is fixed-width, so the head's length does not depend on its values.
    let meta_len = heic_meta(0, 0).len() as u64;
    let before_mdat = head.len() as u64 + meta_len;
    let mdat = size.saturating_sub(before_mdat);
    let data_at = before_mdat + mdat_header_len(mdat);
    // A zero length means "to the end of the file": for data past 4 GiB.
    let data_len = u32::try_from(size.saturating_sub(data_at)).unwrap_or(0);
    head.extend(heic_meta(data_at.min(u64::from(u32::MAX)) as u32, data_len));
    boxed(size, head)
}

/// The `meta` box of [`heic`], with item 1 at `data_at` for `data_len` bytes.
fn heic_meta(data_at: u32, data_len: u32) -> Vec<u8> {
    let mut hdlr = vec![0u8; 4]; // pre_defined
    hdlr.extend_from_slice(b"pict");
    hdlr.extend_from_slice(&[0u8; 12]); // reserved
    hdlr.push(0); // empty name
    let pitm = full_box(b"pitm", 0, &1u16.to_be_bytes());
    let mut infe = 1u16.to_be_bytes().to_vec(); // item 1
    infe.extend_from_slice(&[0, 0]); // no protection
    infe.extend_from_slice(b"hvc1");
    infe.push(0); // empty name
    let mut iinf = 1u16.to_be_bytes().to_vec();
    iinf.extend(full_box(b"infe", 2, &infe));
    // Version 0: 4-byte offsets and lengths, no base offset; one item of one extent.
    let mut iloc = vec![0x44, 0x00];
    iloc.extend_from_slice(&1u16.to_be_bytes()); // items
    iloc.extend_from_slice(&1u16.to_be_bytes()); // item 1
    iloc.extend_from_slice(&0u16.to_be_bytes()); // in this file
    iloc.extend_from_slice(&1u16.to_be_bytes()); // extents
    iloc.extend_from_slice(&data_at.to_be_bytes());
    iloc.extend_from_slice(&data_len.to_be_bytes());
    let mut children = full_box(b"hdlr", 0, &hdlr);
    children.extend(pitm);
    children.extend(full_box(b"iinf", 0, &iinf));
    children.extend(full_box(b"iloc", 0, &iloc));
    full_box(b"meta", 0, &children)
}

/// An ISO-BMFF box: 32-bit size, type, then `body`.
fn bmff_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// An ISO-BMFF full box: a box whose body starts with a version and 24 bits of flags (0).
fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut full = vec![version, 0, 0, 0];
    full.extend_from_slice(body);
    bmff_box(kind, &full)
}

/// Bytes of the header of an `mdat` box of `len` bytes: a 64-bit size past 4 GiB.
fn mdat_header_len(len: u64) -> u64 {
    if len <= u64::from(u32::MAX) { 8 } else { 16 }
}

/// `prefix` then one `mdat` box holding the rest of the file, with a 64-bit size when needed.
fn boxed(size: u64, mut prefix: Vec<u8>) -> Layout {
    let mdat = size.saturating_sub(prefix.len() as u64);
    if mdat_header_len(mdat) == 8 {
        prefix.extend_from_slice(&(mdat as u32).to_be_bytes());
        prefix.extend_from_slice(b"mdat");
    } else {
        prefix.extend_from_slice(&1u32.to_be_bytes());
        prefix.extend_from_slice(b"mdat");
        prefix.extend_from_slice(&mdat.to_be_bytes());
    }
    Layout::new(size, prefix, Vec::new(), None)
}

// ---- TIFF-based raw (DNG, CR2) ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Dng,
    Cr2,
}

/// One IFD entry before layout: tag, TIFF type, count, and the value bytes.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: Vec<u8>,
}

const BYTE: u16 = 1;
const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;

fn short(tag: u16, v: u16) -> Entry {
    Entry {
        tag,
        kind: SHORT,
        count: 1,
        value: v.to_le_bytes().to_vec(),
    }
}

fn long(tag: u16, v: u32) -> Entry {
    Entry {
        tag,
        kind: LONG,
        count: 1,
        value: v.to_le_bytes().to_vec(),
    }
}

fn ascii(tag: u16, s: &str) -> Entry {
    let mut value = s.as_bytes().to_vec();
    value.push(0);
    Entry {
        tag,
        kind: ASCII,
        count: value.len() as u32,
        value,
    }
}

/// A little-endian TIFF header and IFD0 describing a 1×1 8-bit greyscale strip (for CR2,
/// Canon's 16-byte header). The strip's one byte is the last byte of the head.
fn tiff_head(kind: RawKind) -> Vec<u8> {
    let mut out = vec![b'I', b'I', 0x2A, 0x00];
    let ifd_at: u32 = if kind == RawKind::Cr2 { 16 } else { 8 };
    out.extend_from_slice(&ifd_at.to_le_bytes());
    if kind == RawKind::Cr2 {
        out.extend_from_slice(&[b'C', b'R', 2, 0]); // "CR", version 2.0
        out.extend_from_slice(&0u32.to_le_bytes()); // no raw IFD
    }
    let (make, model) = match kind {
        RawKind::Dng => ("Apple", "iCloud simulator"),
        RawKind::Cr2 => ("Canon", "Canon EOS (iCloud simulator)"),
    };
    let mut entries = vec![
        long(254, 0),  // NewSubfileType: main image
        long(256, 1),  // ImageWidth
        long(257, 1),  // ImageLength
        short(258, 8), // BitsPerSample
        short(259, 1), // Compression: none
        short(262, 1), // PhotometricInterpretation: BlackIsZero
        ascii(271, make),
        ascii(272, model),
        long(273, 0),  // StripOffsets: patched below
        short(277, 1), // SamplesPerPixel
        long(278, 1),  // RowsPerStrip
        long(279, 1),  // StripByteCounts
    ];
    if kind == RawKind::Dng {
        entries.push(Entry {
            tag: 50706, // DNGVersion 1.4.0.0
            kind: BYTE,
            count: 4,
            value: vec![1, 4, 0, 0],
        });
        entries.push(ascii(50708, model)); // UniqueCameraModel
    }
    let data_at = ifd_at as usize + 2 + 12 * entries.len() + 4;
    let mut data = Vec::new();
    let strip_at = {
        let overflow: usize = entries
            .iter()
            .filter(|e| e.value.len() > 4)
            .map(|e| e.value.len().next_multiple_of(2))
            .sum();
        (data_at + overflow) as u32
    };
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in &mut entries {
        if e.tag == 273 {
            e.value = strip_at.to_le_bytes().to_vec();
        }
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.kind.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        if e.value.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..e.value.len()].copy_from_slice(&e.value);
            out.extend_from_slice(&inline);
        } else {
            out.extend_from_slice(&((data_at + data.len()) as u32).to_le_bytes());
            data.extend_from_slice(&e.value);
            if data.len() % 2 == 1 {
                data.push(0); // values start on word boundaries
            }
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    out.extend_from_slice(&data);
    debug_assert_eq!(out.len(), strip_at as usize);
    out.push(0x80); // the pixel
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_known_value() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    #[test]
    fn zlib_header_check_bits() {
        assert_eq!((0x78u32 * 256 + 0x01) % 31, 0);
    }

    #[test]
    fn min_sizes_are_the_structure() {
        assert_eq!(min_size(Format::Jpeg), 20 + 139 + 4);
        assert_eq!(min_size(Format::Png), 33 + 37 + 12);
        assert_eq!(min_size(Format::Heic), 24 + 124 + 8);
        assert_eq!(min_size(Format::Mov), 20 + 8 + 8);
        assert_eq!(min_size(Format::Mp4), 28 + 8);
        for f in [
            Format::Jpeg,
            Format::Png,
            Format::Heic,
            Format::Mov,
            Format::Mp4,
            Format::Dng,
            Format::Cr2,
        ] {
            assert!(layout(f, min_size(f)).is_complete(), "{f:?}");
            assert!(!layout(f, min_size(f) - 1).is_complete(), "{f:?}");
            assert!(min_size(f) <= 1024, "{f:?} fits the library's 1 KiB floor");
        }
    }
}
