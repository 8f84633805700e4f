//! Structure and determinism of the synthetic files.

use super::*;

const ALL: [Format; 7] = [
    Format::Jpeg,
    Format::Heic,
    Format::Png,
    Format::Mov,
    Format::Mp4,
    Format::Dng,
    Format::Cr2,
];

fn res(format: Format, size: u64) -> Resource {
    Resource {
        asset_key: 77,
        rendition: 1,
        generation: 0,
        size,
        format,
    }
}

fn whole(r: &Resource) -> Vec<u8> {
    let mut buf = vec![0u8; r.size as usize];
    fill(9, r, 0, &mut buf);
    buf
}

/// Sizes that exercise each format's edges: the minimum, frame boundaries, odd remainders.
fn sizes(format: Format) -> Vec<u64> {
    let min = min_size(format);
    let mut v = vec![
        min,
        min + 1,
        min + 3,
        min + 11,
        min + 12,
        1024,
        65_537 + 200,
        3 * 65_548 + 7,
        1_000_003,
    ];
    v.retain(|&s| s >= min);
    v
}

fn be16(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

fn be32(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_be_bytes(b[at..at + 4].try_into().unwrap()))
}

fn check_jpeg(b: &[u8]) {
    assert_eq!(&b[..2], &[0xFF, 0xD8], "SOI");
    let mut at = 2;
    let mut markers = Vec::new();
    loop {
        assert_eq!(b[at], 0xFF, "marker at {at}");
        let marker = b[at + 1];
        markers.push(marker);
        let len = be16(b, at + 2);
        assert!(len >= 2);
        if marker == 0xDA {
            // Scan data to EOI: the tiny image's one byte.
            assert_eq!(
                &b[at + 2 + len..],
                &[0x3F, 0xFF, 0xD9],
                "scan then EOI at the very end"
            );
            break;
        }
        at += 2 + len;
    }
    assert_eq!(markers[0], 0xE0, "JFIF APP0 first");
    assert_eq!(&b[6..11], b"JFIF\0");
    assert!(!markers.contains(&0xE1), "no EXIF/APP1 segment");
    let tail: Vec<u8> = markers.iter().copied().filter(|&m| m != 0xFE).collect();
    assert_eq!(
        tail,
        vec![0xE0, 0xDB, 0xC0, 0xC4, 0xC4, 0xDA],
        "segments besides COM"
    );
}

fn check_png(b: &[u8]) {
    assert_eq!(&b[..8], &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
    let mut at = 8;
    let mut kinds = Vec::new();
    while at < b.len() {
        let len = be32(b, at) as usize;
        let kind = &b[at + 4..at + 8];
        let crc = be32(b, at + 8 + len) as u32;
        assert_eq!(
            crc,
            crc32::crc32(&b[at + 4..at + 8 + len]),
            "CRC of chunk at {at}"
        );
        kinds.push(String::from_utf8_lossy(kind).into_owned());
        at += 12 + len;
    }
    assert_eq!(at, b.len(), "chunks end exactly at the end");
    assert_eq!(kinds.first().map(String::as_str), Some("IHDR"));
    assert_eq!(kinds.last().map(String::as_str), Some("IEND"));
    assert_eq!(kinds[kinds.len() - 2], "IDAT");
    assert!(kinds[1..kinds.len() - 2].iter().all(|k| k == "paDd"));
}

/// Walk ISO-BMFF boxes; returns their types.
fn boxes(b: &[u8], total: u64) -> Vec<String> {
    let mut at = 0u64;
    let mut types = Vec::new();
    while at < total {
        let i = at as usize;
        let mut len = be32(b, i);
        if len == 1 {
            len = u64::from_be_bytes(b[i + 8..i + 16].try_into().unwrap());
        }
        assert!(len >= 8, "box at {at} of length {len}");
        types.push(String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned());
        at += len;
    }
    assert_eq!(at, total, "boxes add up to the file size");
    types
}

fn check_tiff(b: &[u8], cr2: bool) {
    assert_eq!(&b[..4], b"II*\0");
    let ifd = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
    if cr2 {
        assert_eq!(&b[8..10], b"CR");
        assert_eq!(ifd, 16);
    }
    let n = u16::from_le_bytes([b[ifd], b[ifd + 1]]) as usize;
    let mut last_tag = 0;
    let mut strip = None;
    for e in 0..n {
        let at = ifd + 2 + 12 * e;
        let tag = u16::from_le_bytes([b[at], b[at + 1]]);
        assert!(tag > last_tag, "tags ascend");
        last_tag = tag;
        if tag == 273 {
            strip = Some(u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize);
        }
    }
    let next = u32::from_le_bytes(b[ifd + 2 + 12 * n..ifd + 6 + 12 * n].try_into().unwrap());
    assert_eq!(next, 0);
    let strip = strip.expect("StripOffsets");
    assert_eq!(b[strip], 0x80);
}

fn check_structure(format: Format, b: &[u8]) {
    match format {
        Format::Jpeg => check_jpeg(b),
        Format::Png => check_png(b),
        Format::Heic => {
            assert_eq!(&b[8..12], b"heic");
            assert_eq!(boxes(b, b.len() as u64), ["ftyp", "meta", "mdat"]);
            // The primary image item is the whole of `mdat`'s data (what an EXIF writer reads).
            let heif = crate::metadata::bmff::parse(b).expect("a HEIF item structure");
            let primary = heif.primary.expect("a primary item");
            let item = &heif.items[&primary];
            assert_eq!(&item.kind, b"hvc1");
            let data = heif.item_bytes(b, item).unwrap();
            assert_eq!(data[..], b[b.len() - data.len()..]);
            assert_eq!(&b[b.len() - data.len() - 4..b.len() - data.len()], b"mdat");
        }
        Format::Mov => {
            assert_eq!(&b[8..12], b"qt  ");
            assert_eq!(boxes(b, b.len() as u64), ["ftyp", "wide", "mdat"]);
        }
        Format::Mp4 => {
            assert_eq!(&b[8..12], b"isom");
            assert_eq!(boxes(b, b.len() as u64), ["ftyp", "mdat"]);
        }
        Format::Dng => check_tiff(b, false),
        Format::Cr2 => check_tiff(b, true),
    }
}

#[test]
fn every_format_is_structurally_valid_at_every_size() {
    for format in ALL {
        for size in sizes(format) {
            let b = whole(&res(format, size));
            assert_eq!(b.len() as u64, size);
            check_structure(format, &b);
        }
    }
}

#[test]
fn documented_minimum_sizes() {
    let mins: Vec<u64> = ALL.iter().map(|&f| min_size(f)).collect();
    assert_eq!(mins, [163, 156, 82, 36, 36, 225, 203]);
}

#[test]
fn any_window_equals_the_same_bytes_of_the_whole_file() {
    let mut lcg = 12345u64;
    let mut next = |m: u64| {
        lcg = lcg
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (lcg >> 33) % m
    };
    for format in ALL {
        let size = 3 * 65_548 + 1234;
        let r = res(format, size);
        let all = whole(&r);
        let bytes = FileBytes::new(9, &r);
        for _ in 0..200 {
            let start = next(size);
            let len = next(70_000).min(size - start) as usize;
            let mut part = vec![0u8; len];
            assert_eq!(bytes.fill(start, &mut part), len);
            assert_eq!(
                part,
                all[start as usize..start as usize + len],
                "{format:?} window {start}+{len}"
            );
        }
        // Windows reaching past the end stop at the end and leave the rest alone.
        let mut part = vec![0xAAu8; 100];
        assert_eq!(bytes.fill(size - 10, &mut part), 10);
        assert_eq!(&part[..10], &all[size as usize - 10..]);
        assert!(part[10..].iter().all(|&x| x == 0xAA));
        assert_eq!(bytes.fill(size, &mut part), 0);
    }
}

#[test]
fn sha256_is_the_hash_of_the_bytes() {
    use sha2::{Digest, Sha256};
    for format in ALL {
        let r = res(format, 700_001);
        let expected: [u8; 32] = Sha256::digest(whole(&r)).into();
        assert_eq!(sha256(9, &r), expected, "{format:?}");
    }
}

#[test]
fn content_depends_on_seed_and_every_resource_field() {
    let base = res(Format::Heic, 4096);
    let a = whole(&base);
    let mut other_seed = vec![0u8; 4096];
    fill(10, &base, 0, &mut other_seed);
    assert_ne!(a, other_seed);
    for changed in [
        Resource {
            asset_key: 78,
            ..base
        },
        Resource {
            rendition: 2,
            ..base
        },
        Resource {
            generation: 1,
            ..base
        },
    ] {
        let b = whole(&changed);
        assert_eq!(&a[..32], &b[..32], "same structure");
        assert_ne!(a[32..], b[32..], "different noise for {changed:?}");
    }
}

#[test]
fn huge_videos_use_64_bit_mdat_sizes() {
    let size = 5 * (1u64 << 30) + 3;
    for (format, prefix) in [
        (Format::Mov, 28usize),
        (Format::Mp4, 28),
        (Format::Heic, 148),
    ] {
        let r = res(format, size);
        let mut head = vec![0u8; 256];
        fill(9, &r, 0, &mut head);
        assert_eq!(be32(&head, prefix), 1, "{format:?}: 64-bit size marker");
        assert_eq!(&head[prefix + 4..prefix + 8], b"mdat");
        let large = u64::from_be_bytes(head[prefix + 8..prefix + 16].try_into().unwrap());
        assert_eq!(large, size - prefix as u64);
    }
    // Just under 4 GiB stays a 32-bit size.
    let r = res(Format::Mp4, u64::from(u32::MAX) + 28);
    let mut head = vec![0u8; 64];
    fill(9, &r, 0, &mut head);
    assert_eq!(be32(&head, 28), u64::from(u32::MAX));
}

#[test]
fn undersized_files_keep_their_magic_and_exact_size() {
    for format in ALL {
        let size = min_size(format) - 1;
        let b = whole(&res(format, size));
        assert_eq!(b.len() as u64, size);
        let full = whole(&res(format, 4096));
        assert_eq!(&b[..4], &full[..4], "{format:?} magic");
    }
    let tiny = whole(&res(Format::Jpeg, 3));
    assert_eq!(tiny, [0xFF, 0xD8, 0xFF]);
}
