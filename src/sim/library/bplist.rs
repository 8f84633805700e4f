//! A minimal binary property list (`bplist00`) writer for the `locationEnc` dictionary and the
//! `keywordsEnc` array, in the layout Apple's own plists use (objects, offset table, trailer).

/// A plist value this writer can encode.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Real(f64),
    /// A date, as seconds since 2001-01-01T00:00:00Z.
    Date(f64),
    Str(&'a str),
    Array(Vec<Value<'a>>),
    /// Keys are strings.
    Dict(Vec<(&'a str, Value<'a>)>),
}

/// Seconds between the Unix epoch and the plist epoch (2001-01-01).
pub const PLIST_EPOCH_UNIX_SECS: f64 = 978_307_200.0;

/// Encode `root` as a `bplist00` document.
pub fn encode(root: &Value<'_>) -> Vec<u8> {
    // Flatten objects depth-first; each container stores references to its children.
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let count = count_objects(root);
    let ref_size: usize = if count < 256 { 1 } else { 2 };
    flatten(root, &mut objects, ref_size);

    let mut out = b"bplist00".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for obj in &objects {
        offsets.push(out.len());
        out.extend_from_slice(obj);
    }
    let table_offset = out.len();
    let offset_size: usize = if table_offset < 256 {
        1
    } else if table_offset < 65_536 {
        2
    } else {
        4
    };
    for off in &offsets {
        out.extend_from_slice(&(*off as u64).to_be_bytes()[8 - offset_size..]);
    }
    out.extend_from_slice(&[0u8; 6]);
    out.push(offset_size as u8);
    out.push(ref_size as u8);
    out.extend_from_slice(&(objects.len() as u64).to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(table_offset as u64).to_be_bytes());
    out
}

fn count_objects(v: &Value<'_>) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(count_objects).sum::<usize>(),
        Value::Dict(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_objects(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// Append `v` (and its children) to `objects`; returns its object number.
fn flatten(v: &Value<'_>, objects: &mut Vec<Vec<u8>>, ref_size: usize) -> usize {
    let me = objects.len();
    objects.push(Vec::new());
    let bytes = match v {
        Value::Real(x) => {
            let mut b = vec![0x23];
            b.extend_from_slice(&x.to_be_bytes());
            b
        }
        Value::Date(x) => {
            let mut b = vec![0x33];
            b.extend_from_slice(&x.to_be_bytes());
            b
        }
        Value::Str(s) => string_object(s),
        Value::Array(items) => {
            let refs: Vec<usize> = items
                .iter()
                .map(|i| flatten(i, objects, ref_size))
                .collect();
            let mut b = marker(0xA0, refs.len());
            for r in refs {
                push_ref(&mut b, r, ref_size);
            }
            b
        }
        Value::Dict(entries) => {
            let keys: Vec<usize> = entries
                .iter()
                .map(|(k, _)| flatten(&Value::Str(k), objects, ref_size))
                .collect();
            let values: Vec<usize> = entries
                .iter()
                .map(|(_, v)| flatten(v, objects, ref_size))
                .collect();
            let mut b = marker(0xD0, entries.len());
            for r in keys.into_iter().chain(values) {
                push_ref(&mut b, r, ref_size);
            }
            b
        }
    };
    objects[me] = bytes;
    me
}

fn string_object(s: &str) -> Vec<u8> {
    if s.is_ascii() {
        let mut b = marker(0x50, s.len());
        b.extend_from_slice(s.as_bytes());
        b
    } else {
        let units: Vec<u16> = s.encode_utf16().collect();
        let mut b = marker(0x60, units.len());
        for u in units {
            b.extend_from_slice(&u.to_be_bytes());
        }
        b
    }
}

/// Type marker with an inline count, or `0x?F` followed by an integer object for ≥ 15.
fn marker(kind: u8, count: usize) -> Vec<u8> {
    if count < 15 {
        return vec![kind | count as u8];
    }
    let mut b = vec![kind | 0x0F];
    if count < 256 {
        b.extend_from_slice(&[0x10, count as u8]);
    } else if count < 65_536 {
        b.push(0x11);
        b.extend_from_slice(&(count as u16).to_be_bytes());
    } else {
        b.push(0x12);
        b.extend_from_slice(&(count as u32).to_be_bytes());
    }
    b
}

fn push_ref(b: &mut Vec<u8>, r: usize, ref_size: usize) {
    b.extend_from_slice(&(r as u64).to_be_bytes()[8 - ref_size..]);
}

#[cfg(test)]
pub(crate) mod reader {
    //! Just enough of a `bplist00` reader to check the writer against Apple's own plists.

    /// A decoded value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Decoded {
        Real(f64),
        Date(f64),
        Str(String),
        Array(Vec<Decoded>),
        Dict(Vec<(String, Decoded)>),
        Other(u8),
    }

    /// Decode a whole document.
    pub fn decode(data: &[u8]) -> Option<Decoded> {
        if data.len() < 40 || &data[..8] != b"bplist00" {
            return None;
        }
        let t = &data[data.len() - 32..];
        let offset_size = t[6] as usize;
        let ref_size = t[7] as usize;
        let num = u64::from_be_bytes(t[8..16].try_into().ok()?) as usize;
        let top = u64::from_be_bytes(t[16..24].try_into().ok()?) as usize;
        let table = u64::from_be_bytes(t[24..32].try_into().ok()?) as usize;
        let offsets: Vec<usize> = (0..num)
            .map(|i| be(&data[table + i * offset_size..table + (i + 1) * offset_size]))
            .collect();
        object(data, &offsets, ref_size, top, 0)
    }

    fn be(b: &[u8]) -> usize {
        b.iter().fold(0usize, |acc, x| (acc << 8) | *x as usize)
    }

    fn object(data: &[u8], offsets: &[usize], rs: usize, n: usize, depth: u32) -> Option<Decoded> {
        if depth > 16 {
            return None;
        }
        let at = *offsets.get(n)?;
        let m = data[at];
        let (kind, low) = (m >> 4, (m & 0x0F) as usize);
        let (count, start) = if low == 0x0F && matches!(kind, 0x5 | 0x6 | 0xA | 0xD) {
            let size = 1usize << (data[at + 1] & 0x0F);
            (be(&data[at + 2..at + 2 + size]), at + 2 + size)
        } else {
            (low, at + 1)
        };
        let f64_at = |p: usize| f64::from_be_bytes(data[p..p + 8].try_into().expect("8 bytes"));
        Some(match kind {
            0x2 => Decoded::Real(f64_at(at + 1)),
            0x3 => Decoded::Date(f64_at(at + 1)),
            0x5 => Decoded::Str(String::from_utf8(data[start..start + count].to_vec()).ok()?),
            0x6 => {
                let units: Vec<u16> = (0..count)
                    .map(|i| u16::from_be_bytes([data[start + 2 * i], data[start + 2 * i + 1]]))
                    .collect();
                Decoded::Str(String::from_utf16(&units).ok()?)
            }
            0xA => {
                let mut items = Vec::new();
                for i in 0..count {
                    let r = be(&data[start + i * rs..start + (i + 1) * rs]);
                    items.push(object(data, offsets, rs, r, depth + 1)?);
                }
                Decoded::Array(items)
            }
            0xD => {
                let mut entries = Vec::new();
                for i in 0..count {
                    let k = be(&data[start + i * rs..start + (i + 1) * rs]);
                    let v = be(&data[start + (count + i) * rs..start + (count + i + 1) * rs]);
                    let Decoded::Str(key) = object(data, offsets, rs, k, depth + 1)? else {
                        return None;
                    };
                    entries.push((key, object(data, offsets, rs, v, depth + 1)?));
                }
                Decoded::Dict(entries)
            }
            _ => Decoded::Other(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::reader::{Decoded, decode};
    use super::*;
    use base64::Engine as _;

    /// A `locationEnc` value recorded from Apple (icloudpd's test cassettes).
    const RECORDED_LOCATION: &str = "YnBsaXN0MDDYAQIDBAUGBwgJCQoLCQwNCVZjb3Vyc2VVc3BlZWRTYWx0U2xvbld2ZXJ0QWNjU2xhdFl0aW1lc3RhbXBXaG9yekFjYyMAAAAAAAAAACNAdG9H6P0fpCNAWL2oZnRhiiNAMtKmTC+DezMAAAAAAAAAAAgZICYqLjY6RExVXmdwAAAAAAAAAQEAAAAAAAAADgAAAAAAAAAAAAAAAAAAAHk=";

    fn keys(d: &Decoded) -> Vec<String> {
        match d {
            Decoded::Dict(e) => {
                let mut k: Vec<String> = e.iter().map(|(k, _)| k.clone()).collect();
                k.sort();
                k
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn location_dict_has_the_recorded_shape() {
        let recorded = base64::engine::general_purpose::STANDARD
            .decode(RECORDED_LOCATION)
            .unwrap();
        let recorded = decode(&recorded).expect("reader understands Apple's plist");
        let ours = encode(&Value::Dict(vec![
            ("lat", Value::Real(18.8)),
            ("lon", Value::Real(98.9)),
            ("alt", Value::Real(326.4)),
            ("speed", Value::Real(0.0)),
            ("course", Value::Real(-1.0)),
            ("horzAcc", Value::Real(65.0)),
            ("vertAcc", Value::Real(10.0)),
            ("timestamp", Value::Date(554_000_000.0)),
        ]));
        let decoded = decode(&ours).expect("decodes");
        assert_eq!(keys(&decoded), keys(&recorded));
        let Decoded::Dict(entries) = decoded else {
            panic!()
        };
        assert!(entries.contains(&("lon".to_string(), Decoded::Real(98.9))));
        assert!(entries.contains(&("timestamp".to_string(), Decoded::Date(554_000_000.0))));
        let Decoded::Dict(rec) = recorded else {
            panic!()
        };
        assert!(
            rec.iter()
                .any(|(k, v)| k == "timestamp" && matches!(v, Decoded::Date(_)))
        );
    }

    #[test]
    fn arrays_of_unicode_strings_and_long_arrays() {
        let words: Vec<Value> = (0..20)
            .map(|i| Value::Str(if i % 2 == 0 { "été" } else { "cat" }))
            .collect();
        let decoded = decode(&encode(&Value::Array(words))).unwrap();
        let Decoded::Array(items) = decoded else {
            panic!()
        };
        assert_eq!(items.len(), 20);
        assert_eq!(items[0], Decoded::Str("été".into()));
        assert_eq!(items[1], Decoded::Str("cat".into()));
        let empty = encode(&Value::Array(vec![]));
        assert_eq!(decode(&empty), Some(Decoded::Array(vec![])));
    }
}
