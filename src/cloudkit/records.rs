//! The CloudKit record envelope and its field wrappers (`{"value": .., "type": ..}`), decoded
//! leniently: a missing `type`, booleans as 0/1 or `true`/`false`, floats for integers and
//! timestamps, `null` for absent. One odd record never fails a whole page.

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::fields::{Field, FieldValue, Fields, LenientString, RecordText, Resource, TextFrom};

/// Standard base64, padding optional (CloudKit pads; lenient about peers that do not).
pub(crate) const BASE64: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;

/// One record of any type as CloudKit returns it. Only what the client reads is kept: the
/// envelope below and the fields it knows (see [`super::fields`]). Strings are owned by
/// default; a listing page's records borrow them from the answer (`Record<Cow<str>>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(bound(deserialize = "S: TextFrom<'de>"))]
pub struct Record<S = String> {
    #[serde(rename = "recordName", default, deserialize_with = "lenient_string")]
    pub record_name: Option<S>,
    #[serde(rename = "recordType", default, deserialize_with = "lenient_string")]
    pub record_type: Option<S>,
    #[serde(default)]
    pub fields: Fields<S>,
    #[serde(
        rename = "recordChangeTag",
        default,
        deserialize_with = "lenient_string"
    )]
    pub change_tag: Option<S>,
    /// Hard-deleted (purged); seen in change feeds.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub deleted: bool,
    #[serde(rename = "zoneID", default, deserialize_with = "lenient_zone_name")]
    pub zone_name: Option<S>,
    /// A per-record error (the other records of the answer are valid).
    #[serde(
        rename = "serverErrorCode",
        default,
        deserialize_with = "lenient_string"
    )]
    pub server_error_code: Option<S>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<S>,
}

/// Why a text field could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextProblem {
    NotAString,
    BadBase64,
    BadUtf8,
}

impl std::fmt::Display for TextProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TextProblem::NotAString => "value is not a string",
            TextProblem::BadBase64 => "value is not valid base64",
            TextProblem::BadUtf8 => "decoded bytes are not valid UTF-8",
        })
    }
}

impl<S: RecordText> Record<S> {
    /// The same record with owned strings (to keep it beyond its answer).
    pub fn into_owned(self) -> Record {
        Record {
            record_name: self.record_name.map(RecordText::into_string),
            record_type: self.record_type.map(RecordText::into_string),
            fields: self.fields.into_owned(),
            change_tag: self.change_tag.map(RecordText::into_string),
            deleted: self.deleted,
            zone_name: self.zone_name.map(RecordText::into_string),
            server_error_code: self.server_error_code.map(RecordText::into_string),
            reason: self.reason.map(RecordText::into_string),
        }
    }

    /// Record name, or `""` when the record has none.
    pub fn name(&self) -> &str {
        self.record_name.as_deref().unwrap_or("")
    }

    /// Record type, or `""`.
    pub fn kind(&self) -> &str {
        self.record_type.as_deref().unwrap_or("")
    }

    fn field(&self, name: &str) -> Option<&Field<S>> {
        self.fields.get(name)
    }

    /// The value of a field; `None` when absent or `null`.
    pub fn value(&self, name: &str) -> Option<&FieldValue<S>> {
        self.field(name)
            .map(|f| &f.value)
            .filter(|v| !matches!(v, FieldValue::Null))
    }

    /// True when the record has a field of that name with a non-null value.
    pub fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    /// The declared `type` of a field, if any.
    pub fn field_type(&self, name: &str) -> Option<&str> {
        self.field(name)?.declared_type.as_ref().map(|t| t.as_str())
    }

    /// An integer field; floats are truncated, booleans are 0/1, digit strings are parsed.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.value(name)?.as_int()
    }

    /// A flag: true when the value is non-zero or `true`; absent or null is false.
    pub fn flag(&self, name: &str) -> bool {
        self.int(name).is_some_and(|v| v != 0)
    }

    /// A floating-point field.
    pub fn double(&self, name: &str) -> Option<f64> {
        match self.value(name)? {
            FieldValue::Float(f) => Some(*f),
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|f: &f64| f.is_finite())
    }

    /// A plain string field (non-empty).
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            FieldValue::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The target recordName of a `REFERENCE` field.
    pub fn reference(&self, name: &str) -> Option<&str> {
        match self.value(name)? {
            FieldValue::Reference(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The resource dictionary of an `ASSETID` field.
    pub fn resource(&self, name: &str) -> Option<&Resource<S>> {
        match self.value(name)? {
            FieldValue::Resource(r) => Some(r),
            _ => None,
        }
    }

    /// The bytes of an `ENCRYPTED_BYTES` (base64) field. `Ok(None)` when absent.
    pub fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, TextProblem> {
        let Some(v) = self.value(name) else {
            return Ok(None);
        };
        let FieldValue::Str(s) = v else {
            return Err(TextProblem::NotAString);
        };
        BASE64
            .decode(s.trim())
            .map(Some)
            .map_err(|_| TextProblem::BadBase64)
    }

    /// A text field: `STRING` as-is, anything else (ENCRYPTED_BYTES, or no type) as base64 of
    /// UTF-8. `Ok(None)` when absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, TextProblem> {
        if self.field_type(name) == Some("STRING") {
            return match self.value(name) {
                None => Ok(None),
                Some(FieldValue::Str(s)) => Ok(Some(s.to_string())),
                Some(_) => Err(TextProblem::NotAString),
            };
        }
        match self.bytes(name)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| TextProblem::BadUtf8),
        }
    }
}

/// Integer from any JSON scalar CloudKit or a peer might use for one.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok()))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn lenient_string<'de, D: Deserializer<'de>, S: TextFrom<'de>>(
    d: D,
) -> Result<Option<S>, D::Error> {
    Ok(LenientString::<S>::deserialize(d)?.0)
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(FieldValue::<String>::deserialize(d)?
        .as_int()
        .is_some_and(|v| v != 0))
}

fn lenient_zone_name<'de, D: Deserializer<'de>, S: TextFrom<'de>>(
    d: D,
) -> Result<Option<S>, D::Error> {
    struct V<S>(std::marker::PhantomData<S>);
    impl<'de, S: TextFrom<'de>> serde::de::Visitor<'de> for V<S> {
        type Value = Option<S>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a zoneID object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Option<S>, A::Error> {
            let mut name = None;
            while let Some(key) = map.next_key::<LenientString>()? {
                if key.0.as_deref() == Some("zoneName") {
                    name = map.next_value::<LenientString<S>>()?.0;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(name)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Option<S>, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Option<S>, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// A `zoneID` object as received (zones/list, changes/database).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ZoneIdRecord {
    #[serde(rename = "zoneName", default, deserialize_with = "lenient_string")]
    pub zone_name: Option<String>,
    #[serde(
        rename = "ownerRecordName",
        default,
        deserialize_with = "lenient_string"
    )]
    pub owner_record_name: Option<String>,
    #[serde(rename = "zoneType", default, deserialize_with = "lenient_string")]
    pub zone_type: Option<String>,
}

/// The `serverErrorCode` and `reason` of an answer (or of one entry of it) that failed. Read
/// into an answer with `#[serde(flatten)]`: the answer's own fields are still parsed directly.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ServerError {
    #[serde(
        rename = "serverErrorCode",
        default,
        deserialize_with = "lenient_string"
    )]
    pub code: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<String>,
}

impl ServerError {
    /// `(code, reason)` when there is a code.
    pub fn code_and_reason(&self) -> Option<(String, String)> {
        Some((self.code.clone()?, self.reason.clone().unwrap_or_default()))
    }
}

/// Top-level error fields any CloudKit answer may carry instead of its payload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TopLevelError {
    #[serde(
        rename = "serverErrorCode",
        default,
        deserialize_with = "lenient_string"
    )]
    pub server_error_code: Option<String>,
    #[serde(rename = "errorCode", default, deserialize_with = "lenient_string")]
    pub error_code: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: Option<String>,
    #[serde(
        rename = "serverErrorMessage",
        default,
        deserialize_with = "lenient_string"
    )]
    pub server_error_message: Option<String>,
    #[serde(rename = "errorMessage", default, deserialize_with = "lenient_string")]
    pub error_message: Option<String>,
}

impl TopLevelError {
    /// `(code, reason)` when the answer is an error.
    pub fn code_and_reason(&self) -> Option<(String, String)> {
        let code = self
            .server_error_code
            .clone()
            .or_else(|| self.error_code.clone())?;
        let reason = self
            .reason
            .clone()
            .or_else(|| self.server_error_message.clone())
            .or_else(|| self.error_message.clone())
            .unwrap_or_default();
        Some((code, reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(fields: Value) -> Record {
        serde_json::from_value(
            json!({"recordName": "R", "recordType": "CPLAsset", "fields": fields}),
        )
        .expect("record")
    }

    #[test]
    fn flags_accept_ints_bools_and_absence() {
        let r = rec(json!({
            "isFavorite": {"value": 1, "type": "INT64"},
            "isHidden": {"value": true},
            "isDeleted": {"value": 0},
            "isExpunged": {"value": null},
            "burstId": {"value": 1.0, "type": "INT64"},
        }));
        assert!(r.flag("isFavorite") && r.flag("isHidden") && r.flag("burstId"));
        assert!(!r.flag("isDeleted") && !r.flag("isExpunged") && !r.flag("orientation"));
    }

    #[test]
    fn timestamps_may_be_floats() {
        let r = rec(json!({"assetDate": {"value": 1533021744816.0, "type": "TIMESTAMP"}}));
        assert_eq!(r.int("assetDate"), Some(1_533_021_744_816));
    }

    #[test]
    fn text_decodes_base64_or_takes_string_as_is() {
        let r = rec(json!({
            "filenameEnc": {"value": "SU1HXzc0MDkuSlBH", "type": "ENCRYPTED_BYTES"},
            "captionEnc": {"value": "SU1HXzc0MDkuSlBH"},
            "extendedDescEnc": {"value": "IMG 1.JPG", "type": "STRING"},
            "keywordsEnc": {"value": "!!!", "type": "ENCRYPTED_BYTES"},
            "locationEnc": {"value": "/w==", "type": "ENCRYPTED_BYTES"},
        }));
        assert_eq!(
            r.text("filenameEnc").unwrap().as_deref(),
            Some("IMG_7409.JPG")
        );
        assert_eq!(
            r.text("captionEnc").unwrap().as_deref(),
            Some("IMG_7409.JPG")
        );
        assert_eq!(
            r.text("extendedDescEnc").unwrap().as_deref(),
            Some("IMG 1.JPG")
        );
        assert_eq!(r.text("keywordsEnc"), Err(TextProblem::BadBase64));
        assert_eq!(r.text("locationEnc"), Err(TextProblem::BadUtf8));
        assert_eq!(r.text("albumNameEnc"), Ok(None));
    }

    #[test]
    fn borrowed_records_read_the_same_as_owned_ones() {
        use std::borrow::Cow;
        // One string with an escape (decoded into an owned copy), the rest borrowed.
        let text = r#"{"recordName": "A\u0031", "recordType": "CPLMaster", "recordChangeTag": "t",
            "zoneID": {"zoneName": "PrimarySync"}, "fields": {
            "itemType": {"value": "public.jpeg", "type": "STRING"},
            "masterRef": {"value": {"recordName": "M"}, "type": "REFERENCE"},
            "resOriginalRes": {"value": {"size": 5, "fileChecksum": "AQ", "downloadURL": "https:\/\/x\/${f}"}}}}"#;
        let borrowed: Record<Cow<str>> = serde_json::from_str(text).expect("borrowed");
        let owned: Record = serde_json::from_str(text).expect("owned");
        assert!(matches!(
            borrowed.record_type,
            Some(Cow::Borrowed("CPLMaster"))
        ));
        assert!(matches!(borrowed.record_name, Some(Cow::Owned(_))));
        assert_eq!(borrowed.name(), "A1");
        assert_eq!(borrowed.string("itemType"), Some("public.jpeg"));
        assert_eq!(borrowed.reference("masterRef"), Some("M"));
        let res = borrowed.resource("resOriginalRes").expect("resource");
        assert_eq!(res.download_url.as_deref(), Some("https://x/${f}"));
        let copied = borrowed.into_owned();
        assert_eq!(copied.fields, owned.fields);
        assert_eq!(
            (copied.record_name, copied.change_tag, copied.zone_name),
            (owned.record_name, owned.change_tag, owned.zone_name)
        );
    }

    #[test]
    fn odd_envelopes_do_not_fail() {
        let r: Record = serde_json::from_value(json!({
            "recordName": 5, "recordType": null, "fields": [], "deleted": 1, "zoneID": "x"
        }))
        .expect("lenient");
        assert_eq!(r.record_name, None);
        assert!(r.deleted);
        assert!(r.fields.is_empty());
    }
}
