//! Fixtures for the metadata tests, built in code: a decodable 8x8 baseline JPEG, a TIFF/EXIF
//! block written by hand (independently of the EXIF library under test), a structurally valid
//! HEIF container, an asset, and an XMP reader over quick-xml.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use icloudpd_rs::model::{Asset, ItemKind, Location, Version, VersionKind};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// 2018-07-31T07:22:24.816Z, taken at UTC+7 (the recorded asset of the protocol notes).
pub const DATE_MS: i64 = 1_533_021_744_816;

/// An asset with every field the metadata module reads set to something telling.
pub fn full_asset() -> Asset {
    Asset {
        id: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO".into(),
        asset_record: "F2A23C38-0020-42FE-A273-2923ADE3CAED".into(),
        asset_change_tag: None,
        zone: "PrimarySync".into(),
        filename: Some("IMG_7409.JPG".into()),
        filename_problem: None,
        item_type: Some("public.jpeg".into()),
        kind: ItemKind::Image,
        asset_date_ms: DATE_MS,
        added_date_ms: DATE_MS + 2000,
        tz_offset_s: Some(25_200),
        favorite: true,
        hidden: false,
        deleted: false,
        date_expunged_ms: None,
        burst_id: None,
        subtype: 0,
        subtype_v2: 2,
        orientation: Some(6),
        duration: None,
        adjustment_type: None,
        caption: Some("Sunset <over> the bay & more".into()),
        description: Some("Long description\nwith two lines".into()),
        keywords: vec!["beach".into(), "sea".into(), "Ünïcödé".into()],
        location: Some(Location {
            latitude: 37.774_929,
            longitude: -122.419_416,
            altitude: Some(-12.34),
            speed: None,
            gps_time_ms: None,
        }),
        versions: vec![
            Version {
                kind: VersionKind::Original,
                size: 1000,
                file_type: "public.jpeg".into(),
                checksum: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO".into(),
                width: Some(8),
                height: Some(8),
            },
            Version {
                kind: VersionKind::LiveOriginal,
                size: 2000,
                file_type: "com.apple.quicktime-movie".into(),
                checksum: "AZ6c+BsE0jjaXx9tmVGJM1D2VcEO".into(),
                width: None,
                height: None,
            },
        ],
    }
}

// ---------------------------------------------------------------- JPEG

/// A decodable 8x8 grey baseline JPEG: JFIF, one quantisation table, two one-code Huffman
/// tables and a scan of one block (DC 0, end of block).
pub fn jpeg_without_exif() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    v.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    v.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    v.extend_from_slice(&[1u8; 64]);
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00u8, 0x10] {
        v.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        v.extend_from_slice(&[0u8; 15]);
        v.push(0x00);
    }
    v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
    // DC code `0`, EOB code `0`, padded with ones.
    v.push(0x3F);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

/// The same JPEG with an EXIF `APP1` (after JFIF) holding `tiff`.
pub fn jpeg_with_exif(tiff: &[u8]) -> Vec<u8> {
    let plain = jpeg_without_exif();
    let mut v = plain[..20].to_vec(); // SOI + JFIF APP0
    let len = (2 + 6 + tiff.len()) as u16;
    v.extend_from_slice(&[0xFF, 0xE1]);
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(b"Exif\0\0");
    v.extend_from_slice(tiff);
    v.extend_from_slice(&plain[20..]);
    v
}

// ---------------------------------------------------------------- TIFF / EXIF

/// One IFD entry: tag, TIFF type, count, little-endian value bytes.
#[derive(Clone)]
pub struct Entry {
    pub tag: u16,
    pub kind: u16,
    pub count: u32,
    pub data: Vec<u8>,
}

pub fn ascii(tag: u16, s: &str) -> Entry {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    Entry {
        tag,
        kind: 2,
        count: data.len() as u32,
        data,
    }
}

pub fn short(tag: u16, v: u16) -> Entry {
    Entry {
        tag,
        kind: 3,
        count: 1,
        data: v.to_le_bytes().to_vec(),
    }
}

pub fn rationals(tag: u16, vs: &[(u32, u32)]) -> Entry {
    let mut data = Vec::new();
    for (n, d) in vs {
        data.extend_from_slice(&n.to_le_bytes());
        data.extend_from_slice(&d.to_le_bytes());
    }
    Entry {
        tag,
        kind: 5,
        count: vs.len() as u32,
        data,
    }
}

fn ifd_size(entries: &[Entry]) -> usize {
    let data: usize = entries
        .iter()
        .map(|e| {
            if e.data.len() > 4 {
                e.data.len() + e.data.len() % 2
            } else {
                0
            }
        })
        .sum();
    2 + 12 * entries.len() + 4 + data
}

fn write_ifd(out: &mut Vec<u8>, entries: &mut [Entry]) {
    entries.sort_by_key(|e| e.tag);
    let base = out.len();
    let mut data_at = base + 2 + 12 * entries.len() + 4;
    let mut data = Vec::new();
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in entries.iter() {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.kind.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        if e.data.len() <= 4 {
            let mut v = e.data.clone();
            v.resize(4, 0);
            out.extend_from_slice(&v);
        } else {
            out.extend_from_slice(&(data_at as u32).to_le_bytes());
            data.extend_from_slice(&e.data);
            if e.data.len() % 2 == 1 {
                data.push(0);
            }
            data_at += e.data.len() + e.data.len() % 2;
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&data);
}

/// A little-endian TIFF block: IFD0, then the EXIF sub-IFD and the GPS IFD when not empty.
pub fn tiff(ifd0: &[Entry], exif: &[Entry], gps: &[Entry]) -> Vec<u8> {
    let pointer = |tag, at: usize| Entry {
        tag,
        kind: 4,
        count: 1,
        data: (at as u32).to_le_bytes().to_vec(),
    };
    let mut ifd0 = ifd0.to_vec();
    let n_pointers = usize::from(!exif.is_empty()) + usize::from(!gps.is_empty());
    let dummy = pointer(0, 0);
    let ifd0_len = ifd_size(&ifd0) + n_pointers * (ifd_size(std::slice::from_ref(&dummy)) - 6);
    let exif_at = 8 + ifd0_len;
    let gps_at = exif_at + if exif.is_empty() { 0 } else { ifd_size(exif) };
    if !exif.is_empty() {
        ifd0.push(pointer(0x8769, exif_at));
    }
    if !gps.is_empty() {
        ifd0.push(pointer(0x8825, gps_at));
    }
    let mut out = b"II*\0\x08\0\0\0".to_vec();
    write_ifd(&mut out, &mut ifd0);
    assert_eq!(out.len(), exif_at);
    if !exif.is_empty() {
        write_ifd(&mut out, &mut exif.to_vec());
    }
    assert_eq!(out.len(), gps_at);
    if !gps.is_empty() {
        write_ifd(&mut out, &mut gps.to_vec());
    }
    out
}

/// A camera-like EXIF block: make, model, orientation, exposure, ISO, a GPS position, and a
/// `DateTimeOriginal` when given.
pub fn camera_tiff(date_time_original: Option<&str>) -> Vec<u8> {
    let ifd0 = [
        ascii(0x010F, "Apple"),
        ascii(0x0110, "iPhone X"),
        short(0x0112, 6),
    ];
    let mut exif = vec![rationals(0x829A, &[(1, 120)]), short(0x8827, 100)];
    if let Some(d) = date_time_original {
        exif.push(ascii(0x9003, d));
    }
    let gps = [
        ascii(0x0001, "S"),
        rationals(0x0002, &[(33, 1), (51, 1), (3123, 100)]),
    ];
    tiff(&ifd0, &exif, &gps)
}

/// Every EXIF field kamadak-exif finds in a file, as `(IFD, tag) -> display value`.
pub fn read_exif(path: &Path) -> BTreeMap<(u16, u16), String> {
    let file = std::fs::File::open(path).unwrap();
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::BufReader::new(file))
        .expect("kamadak-exif reads the file");
    exif.fields()
        .map(|f| {
            (
                (f.ifd_num.index(), f.tag.number()),
                f.display_value().to_string(),
            )
        })
        .collect()
}

/// An ASCII field as kamadak-exif parses it (no quotes).
pub fn exif_ascii(path: &Path, tag: exif::Tag) -> Option<String> {
    let file = std::fs::File::open(path).unwrap();
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::BufReader::new(file))
        .ok()?;
    let field = exif.get_field(tag, exif::In::PRIMARY)?;
    match &field.value {
        exif::Value::Ascii(v) => Some(String::from_utf8_lossy(v.first()?).into_owned()),
        _ => None,
    }
}

// ---------------------------------------------------------------- HEIF

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version, 0, 0, 0];
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// A structurally valid HEIC: `ftyp heic`, a `meta` with one `hvc1` image item (id 1,
/// primary) with `hvcC` and `ispe` properties, optionally an `Exif` item (id 2, `cdsc` of
/// item 1) holding `exif_tiff`, and an `mdat` with the items' bytes. The image bytes are a
/// recognisable pattern, not a decodable HEVC stream: the tests check they are unchanged.
pub fn heic(exif_tiff: Option<&[u8]>) -> Vec<u8> {
    heic_with_image_id(exif_tiff, 1)
}

/// [`heic`] with the image (and primary) item numbered `id`, the EXIF item `id + 1`.
pub fn heic_with_image_id(exif_tiff: Option<&[u8]>, id: u16) -> Vec<u8> {
    let image: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let exif_item = exif_tiff.map(|t| {
        let mut v = 6u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"Exif\0\0");
        v.extend_from_slice(t);
        v
    });

    let ftyp = bx(b"ftyp", b"heic\0\0\0\0mif1heic");
    let meta_for = |image_at: u32, exif_at: u32| -> Vec<u8> {
        let mut hdlr = vec![0u8; 4];
        hdlr.extend_from_slice(b"pict");
        hdlr.extend_from_slice(&[0u8; 13]);
        let hdlr = full(b"hdlr", 0, &hdlr);
        let pitm = full(b"pitm", 0, &id.to_be_bytes());
        let infe = |id: u16, kind: &[u8; 4]| {
            let mut b = id.to_be_bytes().to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(kind);
            b.push(0);
            full(b"infe", 2, &b)
        };
        let n = if exif_item.is_some() { 2u16 } else { 1 };
        let mut iinf = n.to_be_bytes().to_vec();
        iinf.extend(infe(id, b"hvc1"));
        if exif_item.is_some() {
            iinf.extend(infe(id + 1, b"Exif"));
        }
        let iinf = full(b"iinf", 0, &iinf);
        // iloc version 1: 4-byte offsets and lengths, no base offset, construction method 0.
        let mut iloc = vec![0x44, 0x00];
        iloc.extend_from_slice(&n.to_be_bytes());
        let mut loc = |id: u16, at: u32, len: usize| {
            iloc.extend_from_slice(&id.to_be_bytes());
            iloc.extend_from_slice(&[0, 0, 0, 0]); // construction method, data ref index
            iloc.extend_from_slice(&1u16.to_be_bytes());
            iloc.extend_from_slice(&at.to_be_bytes());
            iloc.extend_from_slice(&(len as u32).to_be_bytes());
        };
        loc(id, image_at, image.len());
        if let Some(e) = &exif_item {
            loc(id + 1, exif_at, e.len());
        }
        let iloc = full(b"iloc", 1, &iloc);
        let hvcc = bx(b"hvcC", &[1u8; 23]);
        let mut ispe = 8u32.to_be_bytes().to_vec();
        ispe.extend_from_slice(&8u32.to_be_bytes());
        let ispe = full(b"ispe", 0, &ispe);
        let ipco = bx(b"ipco", &[hvcc, ispe].concat());
        let mut ipma = vec![0, 0, 0, 1];
        ipma.extend_from_slice(&id.to_be_bytes());
        ipma.extend_from_slice(&[2, 0x81, 0x02]);
        let ipma = full(b"ipma", 0, &ipma);
        let iprp = bx(b"iprp", &[ipco, ipma].concat());
        let mut children = [hdlr, pitm, iinf, iloc].concat();
        if exif_item.is_some() {
            let mut cdsc = (id + 1).to_be_bytes().to_vec();
            cdsc.extend_from_slice(&1u16.to_be_bytes());
            cdsc.extend_from_slice(&id.to_be_bytes());
            children.extend(full(b"iref", 0, &bx(b"cdsc", &cdsc)));
        }
        children.extend(iprp);
        full(b"meta", 0, &children)
    };
    let meta_len = meta_for(0, 0).len();
    let mdat_body_at = (ftyp.len() + meta_len + 8) as u32;
    let exif_at = mdat_body_at;
    let image_at = exif_at + exif_item.as_ref().map_or(0, |e| e.len() as u32);
    let meta = meta_for(image_at, exif_at);
    let mut mdat_body = exif_item.clone().unwrap_or_default();
    mdat_body.extend_from_slice(&image);
    [ftyp, meta, bx(b"mdat", &mdat_body)].concat()
}

/// The image item's bytes of a file built by [`heic`], found the way a reader would:
/// through `iloc` (parsed here with the same minimal rules).
pub fn heic_pattern() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 % 251) as u8).collect()
}

// ---------------------------------------------------------------- XMP

/// Every top-level property of every `rdf:Description` in an XMP text, as
/// `(namespace, name) -> values`: an attribute or simple element gives one value, an
/// `rdf:Alt`/`rdf:Bag`/`rdf:Seq` gives its items. Panics on XML that is not well-formed.
pub fn xmp_properties(text: &str) -> BTreeMap<(String, String), Vec<Vec<String>>> {
    const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    let mut reader = NsReader::from_str(text);
    let mut out: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    let mut depth = 0;
    let mut desc_depth = None;
    let mut current: Option<((String, String), Vec<String>)> = None;
    let mut in_li = false;
    let ns_of = |r: ResolveResult<'_>| match r {
        ResolveResult::Bound(n) => n.0.to_string(),
        _ => String::new(),
    };
    loop {
        let (ns, ev) = reader.read_resolved_event().expect("well-formed XML");
        let ns = ns_of(ns);
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = e.local_name().into_inner().to_string();
                if ns == RDF && local == "Description" && desc_depth.is_none() {
                    for a in e.attributes() {
                        let a = a.unwrap();
                        if a.key.as_namespace_binding().is_some() {
                            continue;
                        }
                        let (ans, alocal) = reader.resolver().resolve_attribute(a.key);
                        let ans = ns_of(ans);
                        if ans == RDF {
                            continue;
                        }
                        out.entry((ans, alocal.into_inner().to_string()))
                            .or_default()
                            .push(vec![
                                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .unwrap()
                                    .into_owned(),
                            ]);
                    }
                    if !empty {
                        desc_depth = Some(depth + 1);
                    }
                } else if Some(depth) == desc_depth {
                    current = Some(((ns, local), Vec::new()));
                    if empty {
                        let (k, v) = current.take().unwrap();
                        out.entry(k).or_default().push(v);
                    }
                } else if ns == RDF && local == "li" {
                    in_li = !empty;
                    if let Some(c) = current.as_mut() {
                        c.1.push(String::new());
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Event::Text(t) => {
                let s = quick_xml::escape::unescape(&t.xml10_content())
                    .unwrap()
                    .into_owned();
                if let Some(c) = current.as_mut() {
                    if in_li {
                        if let Some(last) = c.1.last_mut() {
                            last.push_str(&s);
                        }
                    } else if !s.trim().is_empty() {
                        c.1.push(s);
                    }
                }
            }
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::unescape(&format!("&{};", r.xml10_content()))
                        .unwrap()
                        .into_owned(),
                };
                if let Some(c) = current.as_mut() {
                    match (in_li, c.1.last_mut()) {
                        (true, Some(last)) => last.push_str(&s),
                        _ => c.1.push(s),
                    }
                }
            }
            Event::End(ref e) => {
                depth -= 1;
                let local = e.local_name().into_inner().to_string();
                if local == "li" {
                    in_li = false;
                }
                if Some(depth) == desc_depth {
                    if let Some((k, v)) = current.take() {
                        out.entry(k).or_default().push(v);
                    }
                } else if desc_depth == Some(depth + 1) {
                    desc_depth = None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unclosed elements");
    out
}

/// The single value of a property that appears exactly once.
pub fn one(
    props: &BTreeMap<(String, String), Vec<Vec<String>>>,
    ns: &str,
    name: &str,
) -> Vec<String> {
    let v = props
        .get(&(ns.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(v.len(), 1, "{name} appears {} times", v.len());
    v[0].clone()
}

// ---------------------------------------------------------------- tools

/// Whether an external tool is installed (dev-only checks run when it is).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-ver")
        .output()
        .map(|_| true)
        .unwrap_or(false)
}
