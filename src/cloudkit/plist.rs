//! A small reader for Apple binary property lists (`bplist00`), enough for `locationEnc`
//! (a dictionary of reals and a date) and `keywordsEnc` (an array of strings).
//!
//! Every offset and length is checked: hostile input gives an error, never a panic, and nesting
//! is bounded so a reference cycle cannot recurse forever.

use std::collections::BTreeMap;

/// A decoded property-list value.
#[derive(Debug, Clone, PartialEq)]
pub enum Plist {
    Null,
    Bool(bool),
    Int(i128),
    Real(f64),
    /// Seconds since 2001-01-01 00:00:00 UTC.
    Date(f64),
    Data(Vec<u8>),
    String(String),
    Uid(u64),
    Array(Vec<Plist>),
    Dict(BTreeMap<String, Plist>),
}

impl Plist {
    /// The value as a float, for reals and integers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Plist::Real(f) => Some(*f),
            Plist::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// Why a binary property list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid binary plist: {0}")]
pub struct PlistError(&'static str);

const MAX_DEPTH: usize = 32;

/// Parse a `bplist00` document.
pub fn parse(bytes: &[u8]) -> Result<Plist, PlistError> {
    if bytes.len() < 8 + 32 || !bytes.starts_with(b"bplist0") {
        return Err(PlistError("missing bplist00 header or trailer"));
    }
    let trailer = &bytes[bytes.len() - 32..];
    let offset_size = usize::from(trailer[6]);
    let ref_size = usize::from(trailer[7]);
    let num_objects = be_uint(&trailer[8..16]).ok_or(PlistError("object count"))?;
    let top = be_uint(&trailer[16..24]).ok_or(PlistError("top object"))?;
    let table_offset = be_uint(&trailer[24..32]).ok_or(PlistError("offset table"))?;
    if !(1..=8).contains(&offset_size) || !(1..=8).contains(&ref_size) {
        return Err(PlistError("bad integer sizes in trailer"));
    }
    let num_objects = usize::try_from(num_objects).map_err(|_| PlistError("object count"))?;
    let table_offset = usize::try_from(table_offset).map_err(|_| PlistError("offset table"))?;
    let table_len = num_objects
        .checked_mul(offset_size)
        .ok_or(PlistError("offset table size"))?;
    let table_end = table_offset
        .checked_add(table_len)
        .ok_or(PlistError("offset table size"))?;
    if table_end > bytes.len() - 32 {
        return Err(PlistError("offset table out of range"));
    }
    let reader = Reader {
        bytes,
        offsets: &bytes[table_offset..table_end],
        offset_size,
        ref_size,
        num_objects,
    };
    reader.object(
        usize::try_from(top).map_err(|_| PlistError("top object"))?,
        0,
    )
}

struct Reader<'a> {
    bytes: &'a [u8],
    offsets: &'a [u8],
    offset_size: usize,
    ref_size: usize,
    num_objects: usize,
}

impl Reader<'_> {
    fn object(&self, index: usize, depth: usize) -> Result<Plist, PlistError> {
        if depth > MAX_DEPTH {
            return Err(PlistError("nesting too deep"));
        }
        if index >= self.num_objects {
            return Err(PlistError("object reference out of range"));
        }
        let entry = &self.offsets[index * self.offset_size..(index + 1) * self.offset_size];
        let pos = usize::try_from(be_uint(entry).ok_or(PlistError("offset"))?)
            .map_err(|_| PlistError("offset"))?;
        let marker = *self
            .bytes
            .get(pos)
            .ok_or(PlistError("object offset out of range"))?;
        let (kind, info) = (marker >> 4, marker & 0x0f);
        match kind {
            0x0 => match info {
                0x0 => Ok(Plist::Null),
                0x8 => Ok(Plist::Bool(false)),
                0x9 => Ok(Plist::Bool(true)),
                _ => Err(PlistError("unknown singleton")),
            },
            0x1 => {
                let n = 1usize << info;
                let b = self.slice(pos + 1, n)?;
                Ok(Plist::Int(match n {
                    1 | 2 | 4 => i128::from(be_uint(b).ok_or(PlistError("int"))?),
                    8 => i128::from(i64::from_be_bytes(
                        b.try_into().map_err(|_| PlistError("int"))?,
                    )),
                    16 => i128::from_be_bytes(b.try_into().map_err(|_| PlistError("int"))?),
                    _ => return Err(PlistError("integer width")),
                }))
            }
            0x2 => {
                let n = 1usize << info;
                let b = self.slice(pos + 1, n)?;
                Ok(Plist::Real(real(b)?))
            }
            0x3 if info == 0x3 => Ok(Plist::Date(real(self.slice(pos + 1, 8)?)?)),
            0x4 => {
                let (len, start) = self.length(pos, info)?;
                Ok(Plist::Data(self.slice(start, len)?.to_vec()))
            }
            0x5 => {
                let (len, start) = self.length(pos, info)?;
                let b = self.slice(start, len)?;
                // Meant to be ASCII; accept any bytes as Latin-1 rather than fail the document.
                Ok(Plist::String(b.iter().map(|&c| char::from(c)).collect()))
            }
            0x6 => {
                let (len, start) = self.length(pos, info)?;
                let b = self.slice(
                    start,
                    len.checked_mul(2).ok_or(PlistError("string length"))?,
                )?;
                let units: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Ok(Plist::String(String::from_utf16_lossy(&units)))
            }
            0x8 => {
                let b = self.slice(pos + 1, usize::from(info) + 1)?;
                Ok(Plist::Uid(be_uint(b).ok_or(PlistError("uid"))?))
            }
            0xA => {
                let (len, start) = self.length(pos, info)?;
                let refs = self.refs(start, len)?;
                let items = refs
                    .into_iter()
                    .map(|r| self.object(r, depth + 1))
                    .collect::<Result<_, _>>()?;
                Ok(Plist::Array(items))
            }
            0xD => {
                let (len, start) = self.length(pos, info)?;
                let keys = self.refs(start, len)?;
                let values = self.refs(start + len * self.ref_size, len)?;
                let mut map = BTreeMap::new();
                for (k, v) in keys.into_iter().zip(values) {
                    let Plist::String(key) = self.object(k, depth + 1)? else {
                        return Err(PlistError("dictionary key is not a string"));
                    };
                    map.insert(key, self.object(v, depth + 1)?);
                }
                Ok(Plist::Dict(map))
            }
            _ => Err(PlistError("unsupported object type")),
        }
    }

    /// Length of a variable-size object and where its payload starts.
    fn length(&self, pos: usize, info: u8) -> Result<(usize, usize), PlistError> {
        if info != 0x0f {
            return Ok((usize::from(info), pos + 1));
        }
        let marker = *self
            .bytes
            .get(pos + 1)
            .ok_or(PlistError("length out of range"))?;
        if marker >> 4 != 0x1 {
            return Err(PlistError("bad length marker"));
        }
        let n = 1usize << (marker & 0x0f);
        if n > 8 {
            return Err(PlistError("length too wide"));
        }
        let len = be_uint(self.slice(pos + 2, n)?).ok_or(PlistError("length"))?;
        let len = usize::try_from(len).map_err(|_| PlistError("length"))?;
        Ok((len, pos + 2 + n))
    }

    fn refs(&self, start: usize, count: usize) -> Result<Vec<usize>, PlistError> {
        let total = count
            .checked_mul(self.ref_size)
            .ok_or(PlistError("reference list"))?;
        let b = self.slice(start, total)?;
        b.chunks_exact(self.ref_size)
            .map(|c| {
                be_uint(c)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or(PlistError("reference"))
            })
            .collect()
    }

    fn slice(&self, start: usize, len: usize) -> Result<&[u8], PlistError> {
        let end = start
            .checked_add(len)
            .ok_or(PlistError("length overflow"))?;
        self.bytes
            .get(start..end)
            .ok_or(PlistError("object runs past the end"))
    }
}

fn be_uint(b: &[u8]) -> Option<u64> {
    if b.len() > 8 {
        return None;
    }
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn real(b: &[u8]) -> Result<f64, PlistError> {
    match b.len() {
        4 => Ok(f64::from(f32::from_be_bytes(
            b.try_into().map_err(|_| PlistError("real"))?,
        ))),
        8 => Ok(f64::from_be_bytes(
            b.try_into().map_err(|_| PlistError("real"))?,
        )),
        _ => Err(PlistError("real width")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal writer for tests: builds a bplist00 with 1-byte refs and offsets.
    pub(crate) fn write(objects: &[Vec<u8>], top: u8) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = Vec::new();
        for o in objects {
            offsets.push(u8::try_from(out.len()).expect("small test plist"));
            out.extend_from_slice(o);
        }
        let table = out.len();
        out.extend_from_slice(&offsets);
        let mut trailer = vec![0u8; 6];
        trailer.push(1);
        trailer.push(1);
        trailer.extend_from_slice(&(objects.len() as u64).to_be_bytes());
        trailer.extend_from_slice(&u64::from(top).to_be_bytes());
        trailer.extend_from_slice(&(table as u64).to_be_bytes());
        out.extend_from_slice(&trailer);
        out
    }

    pub(crate) fn ascii(s: &str) -> Vec<u8> {
        let mut v = vec![0x50 | u8::try_from(s.len()).expect("short")];
        v.extend_from_slice(s.as_bytes());
        v
    }

    pub(crate) fn realv(f: f64) -> Vec<u8> {
        let mut v = vec![0x23];
        v.extend_from_slice(&f.to_be_bytes());
        v
    }

    #[test]
    fn reads_a_location_dictionary() {
        // dict {lat: 25.03, lon: 121.56}: objects 0 = dict, 1..2 keys, 3..4 values
        let objs = vec![
            vec![0xD2, 1, 2, 3, 4],
            ascii("lat"),
            ascii("lon"),
            realv(25.03),
            realv(121.56),
        ];
        let p = parse(&write(&objs, 0)).expect("parse");
        let Plist::Dict(d) = p else { panic!("dict") };
        assert_eq!(d["lat"].as_f64(), Some(25.03));
        assert_eq!(d["lon"].as_f64(), Some(121.56));
    }

    #[test]
    fn reads_an_array_of_utf16_and_ascii_strings() {
        let mut utf16 = vec![0x62];
        for u in "Jö".encode_utf16() {
            utf16.extend_from_slice(&u.to_be_bytes());
        }
        let objs = vec![vec![0xA2, 1, 2], ascii("beach"), utf16];
        let p = parse(&write(&objs, 0)).expect("parse");
        assert_eq!(
            p,
            Plist::Array(vec![
                Plist::String("beach".into()),
                Plist::String("Jö".into())
            ])
        );
    }

    #[test]
    fn garbage_and_cycles_are_errors_not_panics() {
        assert!(parse(b"not a plist at all, not a plist at all, not").is_err());
        // An array that contains itself.
        let cyclic = write(&[vec![0xA1, 0]], 0);
        assert!(parse(&cyclic).is_err());
        // Out-of-range reference.
        assert!(parse(&write(&[vec![0xA1, 9]], 0)).is_err());
        // Truncations of a valid document never panic.
        let good = write(&[vec![0xA1, 1], ascii("x")], 0);
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
    }
}
