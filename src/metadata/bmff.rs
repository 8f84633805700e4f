//! A read-only view of a HEIF file's items (ISO/IEC 23008-12 over ISO BMFF): which items there
//! are, their types, where their bytes live, and how they reference each other.
//!
//! The EXIF library rewrites HEIF files itself (moving data, patching `iloc` offsets); this
//! module exists to check its work independently before a rewritten file may replace the
//! original ([`same_except_exif`]): every image item must still have exactly the same bytes,
//! the item properties must be untouched, and the EXIF item must describe the primary image.

use std::collections::BTreeMap;

/// A box: its type and the byte ranges of the whole box and of its content.
#[derive(Debug, Clone, Copy)]
struct BoxRef {
    kind: [u8; 4],
    start: usize,
    body: usize,
    end: usize,
}

/// Iterate the boxes laid end to end in `bytes[from..to]`.
fn boxes(bytes: &[u8], from: usize, to: usize) -> Result<Vec<BoxRef>, String> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let head = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("box header at byte {pos} runs past its parent"))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = [head[4], head[5], head[6], head[7]];
        let (size, header) = match size32 {
            0 => ((to - pos) as u64, 8),
            1 => {
                let large = bytes
                    .get(pos + 8..pos + 16)
                    .ok_or("64-bit box size runs past the end")?;
                (
                    u64::from_be_bytes(large.try_into().map_err(|_| "size")?),
                    16,
                )
            }
            n => (n, 8),
        };
        let end = (pos as u64).saturating_add(size);
        if size < header as u64 || end > to as u64 {
            return Err(format!(
                "box {} at byte {pos} has a bad size {size}",
                String::from_utf8_lossy(&kind)
            ));
        }
        out.push(BoxRef {
            kind,
            start: pos,
            body: pos + header,
            end: end as usize,
        });
        pos = end as usize;
    }
    Ok(out)
}

/// A big-endian reader over a box body, failing instead of panicking on short input.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], b: BoxRef) -> Self {
        Cursor {
            bytes,
            pos: b.body,
            end: b.end,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.pos + n > self.end {
            return Err("box content ends early".into());
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// An unsigned big-endian integer of `n` bytes (0, 1, 2, 4 or 8).
    fn uint(&mut self, n: usize) -> Result<u64, String> {
        if n > 8 {
            return Err(format!("integer of {n} bytes"));
        }
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | *b as u64))
    }

    /// Version and flags of a full box.
    fn full_header(&mut self) -> Result<u8, String> {
        let v = self.take(4)?[0];
        Ok(v)
    }
}

/// How an item's bytes are found (`iloc` construction method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub id: u32,
    pub kind: [u8; 4],
    method: u8,
    base_offset: u64,
    extents: Vec<(u64, u64)>,
}

/// The items of a HEIF file.
#[derive(Debug, Clone)]
pub(crate) struct Heif {
    pub primary: Option<u32>,
    pub items: BTreeMap<u32, Item>,
    /// `(reference type, from, to)` triples from `iref`.
    pub references: Vec<([u8; 4], u32, u32)>,
    /// Where each reference's `to` id is stored, and in how many bytes (same order).
    reference_slots: Vec<(usize, usize)>,
    idat: Option<(usize, usize)>,
    iprp: Option<(usize, usize)>,
}

impl Heif {
    /// The item holding EXIF data, if any.
    pub fn exif_item(&self) -> Option<&Item> {
        self.items.values().find(|i| &i.kind == b"Exif")
    }

    /// The bytes of an item, concatenated over its extents.
    pub fn item_bytes(&self, bytes: &[u8], item: &Item) -> Result<Vec<u8>, String> {
        let (base, limit) = match item.method {
            0 => (0usize, bytes.len()),
            1 => self.idat.ok_or("item in idat but no idat box")?,
            m => return Err(format!("item {} uses construction method {m}", item.id)),
        };
        let mut out = Vec::new();
        for &(off, len) in &item.extents {
            let outside = || format!("item {} points outside the file", item.id);
            let start = (base as u64)
                .checked_add(item.base_offset)
                .and_then(|s| s.checked_add(off))
                .ok_or_else(outside)?;
            // A zero length means "to the end of the containing data".
            let end = if len == 0 {
                limit as u64
            } else {
                start.checked_add(len).ok_or_else(outside)?
            };
            if start > end || end > limit as u64 {
                return Err(outside());
            }
            out.extend_from_slice(&bytes[start as usize..end as usize]);
        }
        Ok(out)
    }
}

/// Read the item structure of a HEIF file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Heif, String> {
    let top = boxes(bytes, 0, bytes.len())?;
    let meta = top
        .iter()
        .find(|b| &b.kind == b"meta")
        .ok_or("no meta box")?;
    // `meta` is a full box: 4 bytes of version and flags before its children.
    if meta.body + 4 > meta.end {
        return Err("meta box too short".into());
    }
    let children = boxes(bytes, meta.body + 4, meta.end)?;
    let mut heif = Heif {
        primary: None,
        items: BTreeMap::new(),
        references: Vec::new(),
        reference_slots: Vec::new(),
        idat: None,
        iprp: None,
    };
    let mut types = BTreeMap::new();
    let mut locations = Vec::new();
    for b in &children {
        match &b.kind {
            b"pitm" => {
                let mut c = Cursor::new(bytes, *b);
                let v = c.full_header()?;
                heif.primary = Some(c.uint(if v == 0 { 2 } else { 4 })? as u32);
            }
            b"iinf" => types = item_types(bytes, *b)?,
            b"iloc" => locations = item_locations(bytes, *b)?,
            b"iref" => {
                let refs = references(bytes, *b)?;
                heif.references = refs.iter().map(|r| r.0).collect();
                heif.reference_slots = refs.iter().map(|r| r.1).collect();
            }
            b"idat" => heif.idat = Some((b.body, b.end)),
            b"iprp" => heif.iprp = Some((b.start, b.end)),
            _ => {}
        }
    }
    for mut item in locations {
        item.kind = types.get(&item.id).copied().unwrap_or(*b"    ");
        heif.items.insert(item.id, item);
    }
    // Items without data (grids may be in idat, which has a location) still count.
    for (id, kind) in types {
        heif.items.entry(id).or_insert(Item {
            id,
            kind,
            method: 0,
            base_offset: 0,
            extents: Vec::new(),
        });
    }
    Ok(heif)
}

fn item_types(bytes: &[u8], iinf: BoxRef) -> Result<BTreeMap<u32, [u8; 4]>, String> {
    let mut c = Cursor::new(bytes, iinf);
    let v = c.full_header()?;
    c.uint(if v == 0 { 2 } else { 4 })?;
    let mut out = BTreeMap::new();
    for infe in boxes(bytes, c.pos, iinf.end)? {
        if &infe.kind != b"infe" {
            continue;
        }
        let mut c = Cursor::new(bytes, infe);
        let v = c.full_header()?;
        let (id, kind) = match v {
            2 => (c.uint(2)? as u32, {
                c.uint(2)?;
                c.take(4)?
            }),
            3 => (c.uint(4)? as u32, {
                c.uint(2)?;
                c.take(4)?
            }),
            // Versions 0 and 1 carry no item type.
            _ => (c.uint(2)? as u32, &b"    "[..]),
        };
        out.insert(id, [kind[0], kind[1], kind[2], kind[3]]);
    }
    Ok(out)
}

fn item_locations(bytes: &[u8], iloc: BoxRef) -> Result<Vec<Item>, String> {
    let mut c = Cursor::new(bytes, iloc);
    let v = c.full_header()?;
    if v > 2 {
        return Err(format!("iloc version {v}"));
    }
    let sizes = c.uint(1)? as usize;
    let (offset_size, length_size) = (sizes >> 4, sizes & 0xF);
    let sizes = c.uint(1)? as usize;
    let base_offset_size = sizes >> 4;
    let index_size = if v == 0 { 0 } else { sizes & 0xF };
    let count = c.uint(if v < 2 { 2 } else { 4 })?;
    let mut out = Vec::new();
    for _ in 0..count {
        let id = c.uint(if v < 2 { 2 } else { 4 })? as u32;
        let method = if v == 0 { 0 } else { (c.uint(2)? & 0xF) as u8 };
        c.uint(2)?; // data_reference_index
        let base_offset = c.uint(base_offset_size)?;
        let extents = c.uint(2)?;
        let mut list = Vec::new();
        for _ in 0..extents {
            c.uint(index_size)?;
            let off = c.uint(offset_size)?;
            let len = c.uint(length_size)?;
            list.push((off, len));
        }
        out.push(Item {
            id,
            kind: *b"    ",
            method,
            base_offset,
            extents: list,
        });
    }
    Ok(out)
}

/// A reference triple and the `(position, size)` of its `to` id.
type Reference = (([u8; 4], u32, u32), (usize, usize));

fn references(bytes: &[u8], iref: BoxRef) -> Result<Vec<Reference>, String> {
    let mut c = Cursor::new(bytes, iref);
    let v = c.full_header()?;
    let id_size = if v == 0 { 2 } else { 4 };
    let mut out = Vec::new();
    for r in boxes(bytes, c.pos, iref.end)? {
        let mut c = Cursor::new(bytes, r);
        let from = c.uint(id_size)? as u32;
        let n = c.uint(2)?;
        for _ in 0..n {
            let at = c.pos;
            out.push(((r.kind, from, c.uint(id_size)? as u32), (at, id_size)));
        }
    }
    Ok(out)
}

/// Make the EXIF item describe the primary image. The EXIF library, when it adds an EXIF
/// item, links it to item 1, which is not the primary image in every file (libheif's are
/// item 2); the id is rewritten in place, so nothing else moves.
pub(crate) fn link_exif_to_primary(bytes: &mut [u8]) -> Result<(), String> {
    let heif = parse(bytes)?;
    let exif = heif.exif_item().ok_or("no EXIF item")?.id;
    let primary = heif.primary.ok_or("no primary item")?;
    if heif.references.contains(&(*b"cdsc", exif, primary)) {
        return Ok(());
    }
    let slot = heif
        .references
        .iter()
        .position(|r| r.0 == *b"cdsc" && r.1 == exif)
        .map(|i| heif.reference_slots[i])
        .ok_or("the EXIF item is not linked to any image")?;
    match slot {
        (at, 2) => {
            let id = u16::try_from(primary).map_err(|_| "primary item id too large")?;
            bytes[at..at + 2].copy_from_slice(&id.to_be_bytes());
        }
        (at, _) => bytes[at..at + 4].copy_from_slice(&primary.to_be_bytes()),
    }
    Ok(())
}

/// True when `new` is `old` with only its EXIF item changed or added: the same primary item,
/// every other item present with the same type and the same bytes, no new non-EXIF item, the
/// item properties byte-identical, the old references kept, and the EXIF item described as
/// metadata of the primary image (`cdsc`).
pub(crate) fn same_except_exif(old: &[u8], new: &[u8]) -> Result<(), String> {
    let a = parse(old)?;
    let b = parse(new)?;
    if a.primary != b.primary {
        return Err("primary item changed".into());
    }
    let not_exif = |h: &Heif| -> Vec<u32> {
        h.items
            .values()
            .filter(|i| &i.kind != b"Exif")
            .map(|i| i.id)
            .collect()
    };
    if not_exif(&a) != not_exif(&b) {
        return Err("the set of image items changed".into());
    }
    for id in not_exif(&a) {
        let (x, y) = (&a.items[&id], &b.items[&id]);
        if x.kind != y.kind {
            return Err(format!("item {id} changed type"));
        }
        if a.item_bytes(old, x)? != b.item_bytes(new, y)? {
            return Err(format!("the data of item {id} changed"));
        }
    }
    let props = |h: &Heif, bytes: &[u8]| h.iprp.map(|(s, e)| bytes[s..e].to_vec());
    if props(&a, old) != props(&b, new) {
        return Err("item properties changed".into());
    }
    let old_exif = a.exif_item().map(|i| i.id);
    for r in &a.references {
        if Some(r.1) != old_exif && !b.references.contains(r) {
            return Err("an item reference was lost".into());
        }
    }
    let exif = b.exif_item().ok_or("no EXIF item after writing")?;
    let primary = b.primary.ok_or("no primary item")?;
    if !b.references.contains(&(*b"cdsc", exif.id, primary)) {
        return Err("the EXIF item does not describe the primary image".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"\0\0\0\x10ftypheic",
            b"\0\0\0\x08meta",
            b"\0\0\0\x01metaXXXX",
            b"\xff\xff\xff\xffmeta\0\0\0\0",
        ] {
            assert!(parse(input).is_err(), "{input:?}");
        }
    }
}
