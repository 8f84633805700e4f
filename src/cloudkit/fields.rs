//! Compact decoding of a record's `fields`: only the fields the client reads are kept, each as
//! a small typed value instead of a JSON tree.
//!
//! Listing pages are the bulk of the traffic (about 7 KB of JSON per asset), so this is the hot
//! path of an enumeration: unknown fields are skipped without allocating, resource dictionaries
//! keep only size, URL and checksum, and field names are interned as `&'static str`.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

pub(crate) use super::field_names::{known_field, rendition_names};

/// The strings of a record: owned (`String`, the default) for records kept beyond their
/// answer, or borrowed from the answer's text (`Cow<str>`) while a listing page is parsed,
/// which saves a copy of every string of every record (a page is ~7 KB of JSON per asset).
pub trait RecordText:
    Deref<Target = str> + Borrow<str> + Clone + PartialEq + Eq + Hash + fmt::Debug + Default
{
    /// The text as an owned `String` (no copy when it already is one).
    fn into_string(self) -> String;
}

impl RecordText for String {
    fn into_string(self) -> String {
        self
    }
}

impl RecordText for Cow<'_, str> {
    fn into_string(self) -> String {
        self.into_owned()
    }
}

/// A [`RecordText`] read from a JSON string: borrowed when the deserializer lends it.
pub trait TextFrom<'de>: RecordText {
    /// From a string that lives as long as the input.
    fn borrowed(s: &'de str) -> Self;
    /// From a transient string (one with escapes, decoded into a scratch buffer).
    fn copied(s: &str) -> Self;
    /// From a string the deserializer already owns.
    fn owned(s: String) -> Self;
}

impl<'de> TextFrom<'de> for String {
    fn borrowed(s: &'de str) -> Self {
        s.to_string()
    }
    fn copied(s: &str) -> Self {
        s.to_string()
    }
    fn owned(s: String) -> Self {
        s
    }
}

impl<'de: 'a, 'a> TextFrom<'de> for Cow<'a, str> {
    fn borrowed(s: &'de str) -> Self {
        Cow::Borrowed(s)
    }
    fn copied(s: &str) -> Self {
        Cow::Owned(s.to_string())
    }
    fn owned(s: String) -> Self {
        Cow::Owned(s)
    }
}

/// A field value, typed by its JSON shape.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<S = String> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(S),
    /// An `ASSETID` resource dictionary (inline: with borrowed strings it is small, and a
    /// listing has several per record).
    Resource(Resource<S>),
    /// A `REFERENCE`: the target recordName.
    Reference(S),
    /// Anything else (lists, other objects): present, content not kept.
    Other,
}

/// The parts of a resource dictionary (`res<V>Res`) a download needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource<S = String> {
    pub size: Option<i64>,
    pub download_url: Option<S>,
    pub file_checksum: Option<S>,
}

/// One field: its value and declared `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<S = String> {
    pub value: FieldValue<S>,
    pub declared_type: Option<FieldType>,
}

/// The declared `type` of a field; the common ones without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int64,
    Double,
    Timestamp,
    EncryptedBytes,
    AssetId,
    Reference,
    ReferenceList,
    StringList,
    Other(Box<str>),
}

impl FieldType {
    fn parse(s: &str) -> FieldType {
        match s {
            "STRING" => FieldType::String,
            "INT64" => FieldType::Int64,
            "DOUBLE" => FieldType::Double,
            "TIMESTAMP" => FieldType::Timestamp,
            "ENCRYPTED_BYTES" => FieldType::EncryptedBytes,
            "ASSETID" => FieldType::AssetId,
            "REFERENCE" => FieldType::Reference,
            "REFERENCE_LIST" => FieldType::ReferenceList,
            "STRING_LIST" => FieldType::StringList,
            other => FieldType::Other(other.into()),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            FieldType::String => "STRING",
            FieldType::Int64 => "INT64",
            FieldType::Double => "DOUBLE",
            FieldType::Timestamp => "TIMESTAMP",
            FieldType::EncryptedBytes => "ENCRYPTED_BYTES",
            FieldType::AssetId => "ASSETID",
            FieldType::Reference => "REFERENCE",
            FieldType::ReferenceList => "REFERENCE_LIST",
            FieldType::StringList => "STRING_LIST",
            FieldType::Other(s) => s,
        }
    }
}

/// A declared type, read without allocating for the common names.
struct TypeName(Option<FieldType>);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TypeName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a type name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TypeName, E> {
                Ok(TypeName(Some(FieldType::parse(s))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<TypeName, E> {
                Ok(TypeName(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TypeName, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TypeName(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypeName, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TypeName(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The kept fields of a record, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fields<S = String>(pub(crate) Vec<(&'static str, Field<S>)>);

impl<S> Default for Fields<S> {
    fn default() -> Self {
        Fields(Vec::new())
    }
}

impl<S: RecordText> Fields<S> {
    /// The same fields with owned strings.
    pub fn into_owned(self) -> Fields {
        Fields(
            self.0
                .into_iter()
                .map(|(k, f)| {
                    (
                        k,
                        Field {
                            value: f.value.into_owned(),
                            declared_type: f.declared_type,
                        },
                    )
                })
                .collect(),
        )
    }
}

impl<S> Fields<S> {
    /// The field of that name, if kept.
    pub fn get(&self, name: &str) -> Option<&Field<S>> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, f)| f)
    }

    /// Number of kept fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no field was kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: RecordText> FieldValue<S> {
    /// The same value with owned strings.
    pub fn into_owned(self) -> FieldValue {
        match self {
            FieldValue::Null => FieldValue::Null,
            FieldValue::Bool(b) => FieldValue::Bool(b),
            FieldValue::Int(i) => FieldValue::Int(i),
            FieldValue::Float(f) => FieldValue::Float(f),
            FieldValue::Str(s) => FieldValue::Str(s.into_string()),
            FieldValue::Resource(r) => FieldValue::Resource(Resource {
                size: r.size,
                download_url: r.download_url.map(RecordText::into_string),
                file_checksum: r.file_checksum.map(RecordText::into_string),
            }),
            FieldValue::Reference(s) => FieldValue::Reference(s.into_string()),
            FieldValue::Other => FieldValue::Other,
        }
    }

    /// Integer reading of a scalar: floats truncate, booleans are 0/1, digit strings parse.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            FieldValue::Int(i) => Some(*i),
            FieldValue::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Some(*f as i64),
            FieldValue::Bool(b) => Some(i64::from(*b)),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl<'de, S: TextFrom<'de>> Deserialize<'de> for Fields<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldsVisitor(PhantomData))
    }
}

struct FieldsVisitor<S>(PhantomData<S>);

impl<'de, S: TextFrom<'de>> Visitor<'de> for FieldsVisitor<S> {
    type Value = Fields<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a fields object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<S>, A::Error> {
        let mut out = Vec::with_capacity(32);
        while let Some(key) = map.next_key::<KnownKey>()? {
            match key.0 {
                Some(name) => out.push((name, map.next_value::<Field<S>>()?)),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Fields(out))
    }

    // `fields` that is not an object (null, a list, ...) holds nothing.
    fn visit_unit<E: de::Error>(self) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fields<S>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Fields::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Fields<S>, E> {
        Ok(Fields::default())
    }
}

/// A map key, resolved to a known field name without allocating.
struct KnownKey(Option<&'static str>);

impl<'de> Deserialize<'de> for KnownKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KnownKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<KnownKey, E> {
                Ok(KnownKey(known_field(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de, S: TextFrom<'de>> Deserialize<'de> for Field<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(PhantomData))
    }
}

struct FieldVisitor<S>(PhantomData<S>);

/// A bare (unwrapped) value is accepted as its own field value.
fn bare<S>(value: FieldValue<S>) -> Field<S> {
    Field {
        value,
        declared_type: None,
    }
}

impl<'de, S: TextFrom<'de>> Visitor<'de> for FieldVisitor<S> {
    type Value = Field<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field wrapper {\"value\": .., \"type\": ..}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<S>, A::Error> {
        let mut value = FieldValue::Null;
        let mut declared_type = None;
        while let Some(key) = map.next_key::<WrapperKey>()? {
            match key {
                WrapperKey::Value => value = map.next_value()?,
                WrapperKey::Type => declared_type = map.next_value::<TypeName>()?.0,
                WrapperKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Field {
            value,
            declared_type,
        })
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Int(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field<S>, E> {
        Ok(bare(u64_value(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Float(v)))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Str(S::borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Str(S::copied(v))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Str(S::owned(v))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Field<S>, E> {
        Ok(bare(FieldValue::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<S>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(bare(FieldValue::Other))
    }
}

enum WrapperKey {
    Value,
    Type,
    Other,
}

impl<'de> Deserialize<'de> for WrapperKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = WrapperKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a wrapper key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WrapperKey, E> {
                Ok(match s {
                    "value" => WrapperKey::Value,
                    "type" => WrapperKey::Type,
                    _ => WrapperKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

fn u64_value<S>(v: u64) -> FieldValue<S> {
    match i64::try_from(v) {
        Ok(i) => FieldValue::Int(i),
        Err(_) => FieldValue::Float(v as f64),
    }
}

impl<'de, S: TextFrom<'de>> Deserialize<'de> for FieldValue<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor(PhantomData))
    }
}

struct ValueVisitor<S>(PhantomData<S>);

impl<'de, S: TextFrom<'de>> Visitor<'de> for ValueVisitor<S> {
    type Value = FieldValue<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue<S>, E> {
        Ok(u64_value(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Str(S::borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Str(S::copied(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Str(S::owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<FieldValue<S>, E> {
        Ok(FieldValue::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue<S>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(FieldValue::Other)
    }

    /// An object is a reference (it has `recordName`), a resource (it has any of `size`,
    /// `downloadURL`, `fileChecksum`), or something the client does not read.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue<S>, A::Error> {
        let mut reference = None;
        let mut res = Resource::<S>::default();
        let mut is_resource = false;
        while let Some(key) = map.next_key::<ObjectKey>()? {
            match key {
                ObjectKey::RecordName => {
                    if let FieldValue::Str(s) = map.next_value::<FieldValue<S>>()? {
                        reference = Some(s);
                    }
                }
                ObjectKey::Size => {
                    is_resource = true;
                    res.size = map.next_value::<FieldValue<S>>()?.as_int();
                }
                ObjectKey::DownloadUrl => {
                    is_resource = true;
                    if let FieldValue::Str(s) = map.next_value::<FieldValue<S>>()? {
                        res.download_url = Some(s);
                    }
                }
                ObjectKey::FileChecksum => {
                    is_resource = true;
                    if let FieldValue::Str(s) = map.next_value::<FieldValue<S>>()? {
                        res.file_checksum = Some(s);
                    }
                }
                ObjectKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (reference, is_resource) {
            (Some(r), false) => FieldValue::Reference(r),
            (_, true) => FieldValue::Resource(res),
            (None, false) => FieldValue::Other,
        })
    }
}

enum ObjectKey {
    RecordName,
    Size,
    DownloadUrl,
    FileChecksum,
    Other,
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ObjectKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ObjectKey, E> {
                Ok(match s {
                    "recordName" => ObjectKey::RecordName,
                    "size" => ObjectKey::Size,
                    "downloadURL" => ObjectKey::DownloadUrl,
                    "fileChecksum" => ObjectKey::FileChecksum,
                    _ => ObjectKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, or `None` for any other JSON value (which is consumed).
pub(crate) struct LenientString<S = String>(pub Option<S>);

impl<'de, S: TextFrom<'de>> Deserialize<'de> for LenientString<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LenientString(match FieldValue::<S>::deserialize(d)? {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_known_fields_compactly_and_skips_the_rest() {
        let f: Fields = serde_json::from_value(json!({
            "resOriginalRes": {"value": {"fileChecksum": "AQ", "size": 12, "wrappingKey": "k",
                "referenceChecksum": "r", "downloadURL": "https://x/${f}"}, "type": "ASSETID"},
            "masterRef": {"value": {"recordName": "M", "action": "DELETE_SELF", "zoneID": {"zoneName": "Z"}}, "type": "REFERENCE"},
            "resOriginalFingerprint": {"value": "AQ", "type": "STRING"},
            "contributors": {"value": [{"recordName": "_x"}], "type": "REFERENCE_LIST"},
            "isHidden": 1,
            "assetDate": {"value": 1.5e12},
        }))
        .expect("fields");
        assert_eq!(f.len(), 4);
        let Some(FieldValue::Resource(r)) = f.get("resOriginalRes").map(|x| &x.value) else {
            panic!("resource")
        };
        assert_eq!(r.size, Some(12));
        assert_eq!(r.download_url.as_deref(), Some("https://x/${f}"));
        assert_eq!(
            f.get("masterRef").map(|x| &x.value),
            Some(&FieldValue::Reference("M".into()))
        );
        assert_eq!(f.get("isHidden").map(|x| x.value.as_int()), Some(Some(1)));
        assert_eq!(
            f.get("assetDate").and_then(|x| x.value.as_int()),
            Some(1_500_000_000_000)
        );
        assert_eq!(
            f.get("resOriginalRes")
                .and_then(|x| x.declared_type.as_ref()),
            Some(&FieldType::AssetId)
        );
    }

    #[test]
    fn non_object_fields_hold_nothing() {
        for v in [json!(null), json!([1, 2]), json!("x"), json!(3)] {
            let f: Fields = serde_json::from_value(v).expect("lenient");
            assert!(f.is_empty());
        }
    }
}
