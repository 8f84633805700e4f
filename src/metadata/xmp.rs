//! The XMP we write for an asset: which properties, in which standard namespaces, in what
//! form, so that exiftool, darktable (exiv2), digiKam, Lightroom and Immich read them.
//!
//! | property | from | form |
//! |---|---|---|
//! | `xmp:CreateDate`, `exif:DateTimeOriginal`, `photoshop:DateCreated` | capture date | `2018-07-31T14:22:24.816+07:00` (local time and offset; `+00:00` when the offset is unknown) |
//! | `exif:GPSLatitude`, `exif:GPSLongitude` | location | `DDD,MM.mmmmmmN` (minutes to 1e-6: ~2 cm) |
//! | `exif:GPSAltitude`, `exif:GPSAltitudeRef` | location | rational in cm (`12345/100`), `0` above / `1` below sea level |
//! | `exif:GPSSpeed` | location's speed | metres per second as icloudpd writes it (Python's `str(float)`: `4.25`, `12.0`); absent when 0 or negative (Core Location's "no speed") |
//! | `exif:GPSTimeStamp` | location's fix time | `2019-04-16T10:28:06`, UTC without offset, as icloudpd writes it |
//! | `dc:title` | caption | language alternative, `x-default` |
//! | `dc:description` | description | language alternative, `x-default` |
//! | `dc:subject` | keywords | bag |
//! | `xmp:Rating` | favourite / deleted | `5` for a favourite, `-1` (the "rejected" convention of Lightroom and darktable) for an asset in Recently Deleted, absent otherwise |
//! | `xmp:Label` | hidden | `Hidden` (a custom label; Lightroom and exiftool show it) |
//! | `tiff:Orientation` | orientation | `1`..`8` |
//! | `tiff:Make`, `Iptc4xmpExt:DigitalSourceType` | screenshot (`assetSubtypeV2` 3) | `Screenshot` and `screenCapture`, as icloudpd writes them; absent for other assets |
//! | `icloud:*` | see [`ICLOUD_NS`] | our own namespace |
//!
//! Text from the catalog is remote input: characters XML 1.0 cannot carry are dropped, the
//! rest escaped. Values out of range (latitude 91, orientation 9) are left out, not clamped.

use super::{capture_time, offset_text};
use crate::model::Asset;

/// Namespace URI of our own properties, prefix [`ICLOUD_PREFIX`]:
/// `icloud:AssetId` (CPLMaster recordName), `icloud:Filename` (name in iCloud),
/// `icloud:Favorite`, `icloud:Hidden`, `icloud:Deleted` (`True`/`False`),
/// `icloud:LivePhoto`, `icloud:Screenshot` (`True`, only when so), `icloud:BurstId`.
pub const ICLOUD_NS: &str = "http://ns.icloudpd-rs/icloud/1.0/";
/// The prefix we bind [`ICLOUD_NS`] to.
pub const ICLOUD_PREFIX: &str = "icloud";

pub(crate) const RDF_NS: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
pub(crate) const XMP_NS: &str = "http://ns.adobe.com/xap/1.0/";
pub(crate) const EXIF_NS: &str = "http://ns.adobe.com/exif/1.0/";
pub(crate) const PHOTOSHOP_NS: &str = "http://ns.adobe.com/photoshop/1.0/";
pub(crate) const DC_NS: &str = "http://purl.org/dc/elements/1.1/";
pub(crate) const TIFF_NS: &str = "http://ns.adobe.com/tiff/1.0/";
/// IPTC Extension schema, the namespace icloudpd puts `DigitalSourceType` in.
pub(crate) const IPTC_EXT_NS: &str = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/";

/// Our namespaces, in the order they are declared.
const NAMESPACES: [(&str, &str); 7] = [
    ("xmp", XMP_NS),
    ("exif", EXIF_NS),
    ("photoshop", PHOTOSHOP_NS),
    ("dc", DC_NS),
    ("tiff", TIFF_NS),
    ("Iptc4xmpExt", IPTC_EXT_NS),
    (ICLOUD_PREFIX, ICLOUD_NS),
];

/// The value of one property.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Text(String),
    /// `rdf:Alt` with one `x-default` entry.
    LangAlt(String),
    /// `rdf:Bag`.
    Bag(Vec<String>),
}

/// A property we may write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Property {
    pub prefix: &'static str,
    pub name: &'static str,
    /// Properties that only make sense together: when another tool has any of them, we write
    /// none of them (its GPS position is not mixed with our altitude).
    pub group: &'static str,
    pub value: Value,
}

impl Property {
    /// The namespace URI of the property.
    pub fn namespace(&self) -> &'static str {
        NAMESPACES
            .iter()
            .find(|(p, _)| *p == self.prefix)
            .map_or("", |(_, ns)| ns)
    }
}

/// Every `(namespace, name)` we can write, whatever the asset: the vocabulary that tells our
/// block from one another tool has added to.
pub(crate) const VOCABULARY: &[(&str, &str)] = &[
    (XMP_NS, "CreateDate"),
    (EXIF_NS, "DateTimeOriginal"),
    (PHOTOSHOP_NS, "DateCreated"),
    (EXIF_NS, "GPSLatitude"),
    (EXIF_NS, "GPSLongitude"),
    (EXIF_NS, "GPSAltitude"),
    (EXIF_NS, "GPSAltitudeRef"),
    (EXIF_NS, "GPSSpeed"),
    (EXIF_NS, "GPSTimeStamp"),
    (DC_NS, "title"),
    (DC_NS, "description"),
    (DC_NS, "subject"),
    (XMP_NS, "Rating"),
    (XMP_NS, "Label"),
    (TIFF_NS, "Orientation"),
    (TIFF_NS, "Make"),
    (IPTC_EXT_NS, "DigitalSourceType"),
    (ICLOUD_NS, "AssetId"),
    (ICLOUD_NS, "Filename"),
    (ICLOUD_NS, "Favorite"),
    (ICLOUD_NS, "Hidden"),
    (ICLOUD_NS, "Deleted"),
    (ICLOUD_NS, "LivePhoto"),
    (ICLOUD_NS, "Screenshot"),
    (ICLOUD_NS, "BurstId"),
];

/// `assetSubtypeV2` of a screenshot.
const SUBTYPE_SCREENSHOT: i64 = 3;

/// What icloudpd writes as `tiff:Make` of a screenshot: there is no camera, and photo tools
/// that group or filter by make then show screenshots as their own "camera".
const SCREENSHOT_MAKE: &str = "Screenshot";

/// What icloudpd writes as `Iptc4xmpExt:DigitalSourceType` of a screenshot: the bare term of
/// the IPTC digital source type vocabulary, not its full
/// `http://cv.iptc.org/newscodes/digitalsourcetype/screenCapture` URI, so that a library
/// moved from icloudpd reads the same.
const SCREENSHOT_SOURCE_TYPE: &str = "screenCapture";

/// The properties an asset gives, in the order they are written.
pub(crate) fn properties(asset: &Asset) -> Vec<Property> {
    let mut out = Vec::new();
    let mut push = |prefix, name, group, value| {
        out.push(Property {
            prefix,
            name,
            group,
            value,
        })
    };
    if let Some(when) = capture_time(asset) {
        let fraction = match when.timestamp_subsec_millis() {
            0 => String::new(),
            ms => format!(".{ms:03}"),
        };
        let date = format!(
            "{}{fraction}{}",
            when.format("%Y-%m-%dT%H:%M:%S"),
            offset_text(*when.offset())
        );
        push("xmp", "CreateDate", "date", Value::Text(date.clone()));
        push(
            "exif",
            "DateTimeOriginal",
            "date",
            Value::Text(date.clone()),
        );
        push("photoshop", "DateCreated", "date", Value::Text(date));
    }
    if let Some(loc) = &asset.location
        && let (Some(lat), Some(lon)) = (
            gps_coordinate(loc.latitude, 90.0, ['N', 'S']),
            gps_coordinate(loc.longitude, 180.0, ['E', 'W']),
        )
    {
        push("exif", "GPSLatitude", "gps", Value::Text(lat));
        push("exif", "GPSLongitude", "gps", Value::Text(lon));
        if let Some(alt) = loc.altitude.filter(|a| a.is_finite() && a.abs() < 1e7) {
            let cm = (alt.abs() * 100.0).round() as u64;
            push(
                "exif",
                "GPSAltitude",
                "gps",
                Value::Text(format!("{cm}/100")),
            );
            let below = alt < 0.0 && cm > 0;
            let r = if below { "1" } else { "0" };
            push("exif", "GPSAltitudeRef", "gps", Value::Text(r.into()));
        }
        // icloudpd leaves a speed of 0 out (Python's falsy zero); a negative speed is Core
        // Location's "unknown", which icloudpd would write as `-1.0`: left out as out of range.
        if let Some(speed) = loc.speed.filter(|s| s.is_finite() && *s > 0.0) {
            push(
                "exif",
                "GPSSpeed",
                "gps",
                Value::Text(python_float_text(speed)),
            );
        }
        if let Some(time) = loc.gps_time_ms.and_then(gps_time_text) {
            push("exif", "GPSTimeStamp", "gps", Value::Text(time));
        }
    }
    if let Some(title) = clean_text(asset.caption.as_deref()) {
        push("dc", "title", "title", Value::LangAlt(title));
    }
    if let Some(desc) = clean_text(asset.description.as_deref()) {
        push("dc", "description", "description", Value::LangAlt(desc));
    }
    let mut keywords: Vec<String> = Vec::new();
    for k in &asset.keywords {
        if let Some(k) = clean_text(Some(k))
            && !keywords.contains(&k)
        {
            keywords.push(k);
        }
    }
    if !keywords.is_empty() {
        push("dc", "subject", "subject", Value::Bag(keywords));
    }
    if asset.deleted {
        push("xmp", "Rating", "rating", Value::Text("-1".into()));
    } else if asset.favorite {
        push("xmp", "Rating", "rating", Value::Text("5".into()));
    }
    if asset.hidden {
        push("xmp", "Label", "label", Value::Text("Hidden".into()));
    }
    if let Some(o) = asset.orientation.filter(|o| (1..=8).contains(o)) {
        push(
            "tiff",
            "Orientation",
            "orientation",
            Value::Text(o.to_string()),
        );
    }
    if asset.subtype_v2 == SUBTYPE_SCREENSHOT {
        // One group: both say where the image came from, so when another tool already
        // names a make or a source type, that answer is left whole rather than mixed.
        push(
            "tiff",
            "Make",
            "source",
            Value::Text(SCREENSHOT_MAKE.into()),
        );
        push(
            "Iptc4xmpExt",
            "DigitalSourceType",
            "source",
            Value::Text(SCREENSHOT_SOURCE_TYPE.into()),
        );
    }
    let flag = |b: bool| Value::Text(if b { "True" } else { "False" }.into());
    push(
        ICLOUD_PREFIX,
        "AssetId",
        "AssetId",
        Value::Text(clean(&asset.id)),
    );
    if let Some(name) = clean_text(asset.filename.as_deref()) {
        push(ICLOUD_PREFIX, "Filename", "Filename", Value::Text(name));
    }
    push(ICLOUD_PREFIX, "Favorite", "Favorite", flag(asset.favorite));
    push(ICLOUD_PREFIX, "Hidden", "Hidden", flag(asset.hidden));
    push(ICLOUD_PREFIX, "Deleted", "Deleted", flag(asset.deleted));
    if asset.is_live() {
        push(ICLOUD_PREFIX, "LivePhoto", "LivePhoto", flag(true));
    }
    if asset.subtype_v2 == SUBTYPE_SCREENSHOT {
        push(ICLOUD_PREFIX, "Screenshot", "Screenshot", flag(true));
    }
    if let Some(burst) = clean_text(asset.burst_id.as_deref()) {
        push(ICLOUD_PREFIX, "BurstId", "BurstId", Value::Text(burst));
    }
    out
}

/// A float as Python's `str(float)` writes it, the form icloudpd gives `exif:GPSSpeed`: the
/// shortest digits that read back as the same float, with `.0` on whole numbers, and an
/// exponent (`1e-05`, `1e+16`) below 1e-4 or from 1e16 up. `value` is finite.
fn python_float_text(value: f64) -> String {
    // `{:e}` gives the same shortest digits: `4.25e0`, `1e-5`, `1.2345e16`.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if value.is_sign_negative() { "-" } else { "" };
    // Where the decimal point goes in `digits` (Python's `decpt`).
    let point = exponent + 1;
    if !(-3..=16).contains(&point) {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs());
    }
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let point = point as usize;
        if point >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    format!("{sign}{body}")
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, no offset: icloudpd formats the plist's naive UTC time with
/// `%z`, which is empty for it. `None` outside years 1-9999 (Python cannot hold them).
fn gps_time_text(ms: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    (1..=9999)
        .contains(&chrono::Datelike::year(&t))
        .then(|| t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// `DDD,MM.mmmmmmH`: whole degrees, decimal minutes, hemisphere letter. `None` when the value
/// is not a finite number within `±limit`.
fn gps_coordinate(value: f64, limit: f64, hemispheres: [char; 2]) -> Option<String> {
    if !value.is_finite() || value.abs() > limit {
        return None;
    }
    // Round once, in millionths of a minute, so that 59.9999999' carries into the degree.
    let micro_minutes = (value.abs() * 60.0 * 1e6).round() as u64;
    let per_degree = 60 * 1_000_000;
    let degrees = micro_minutes / per_degree;
    let rest = micro_minutes % per_degree;
    let hemisphere = if value < 0.0 && micro_minutes > 0 {
        hemispheres[1]
    } else {
        hemispheres[0]
    };
    Some(format!(
        "{degrees},{:02}.{:06}{hemisphere}",
        rest / 1_000_000,
        rest % 1_000_000
    ))
}

/// Text that XML 1.0 can carry: characters it forbids (most C0 controls, U+FFFE/U+FFFF)
/// dropped. `None` when nothing but whitespace is left.
fn clean_text(s: Option<&str>) -> Option<String> {
    let s = clean(s?);
    (!s.trim().is_empty()).then_some(s)
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

/// Escape text for element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Keep CR through a parser's end-of-line normalisation.
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Marks our block in a sidecar (see [`super::xmp_merge`]); XMP toolkits drop comments when
/// they rewrite a file, which is exactly when the block stops being ours.
pub(crate) const MARKER: &str =
    "<!-- icloudpd-rs: from iCloud Photos; this block is rewritten on each sync -->";

/// Our `rdf:Description` block for these properties, or `None` when there are none. It
/// declares every prefix it uses (`rdf` included), so it is valid wherever it is inserted.
pub(crate) fn render_block(props: &[Property], indent: &str) -> Option<String> {
    if props.is_empty() {
        return None;
    }
    let mut s = String::new();
    s.push_str(MARKER);
    s.push('\n');
    s.push_str(indent);
    s.push_str("<rdf:Description rdf:about=\"\"");
    s.push_str(&format!("\n{indent}    xmlns:rdf=\"{RDF_NS}\""));
    for (prefix, ns) in NAMESPACES {
        if props.iter().any(|p| p.prefix == prefix) {
            s.push_str(&format!("\n{indent}    xmlns:{prefix}=\"{ns}\""));
        }
    }
    s.push('>');
    for p in props {
        let tag = format!("{}:{}", p.prefix, p.name);
        let pad = format!("\n{indent} ");
        match &p.value {
            Value::Text(t) => s.push_str(&format!("{pad}<{tag}>{}</{tag}>", escape(t))),
            Value::LangAlt(t) => s.push_str(&format!(
                "{pad}<{tag}>{pad} <rdf:Alt>{pad}  <rdf:li xml:lang=\"x-default\">{}</rdf:li>{pad} </rdf:Alt>{pad}</{tag}>",
                escape(t)
            )),
            Value::Bag(items) => {
                s.push_str(&format!("{pad}<{tag}>{pad} <rdf:Bag>"));
                for i in items {
                    s.push_str(&format!("{pad}  <rdf:li>{}</rdf:li>", escape(i)));
                }
                s.push_str(&format!("{pad} </rdf:Bag>{pad}</{tag}>"));
            }
        }
    }
    s.push_str(&format!("\n{indent}</rdf:Description>"));
    Some(s)
}

/// The packet of a sidecar that has only our block: what [`render_xmp`] starts from.
pub(crate) const EMPTY_PACKET: &str =
    "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>
<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"icloudpd-rs\">
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end=\"w\"?>
";

/// The XMP sidecar of an asset on its own (what the mount serves as `<file>.xmp`): a
/// complete packet with one `rdf:Description`. Deterministic: same asset, same bytes.
pub fn render_xmp(asset: &Asset) -> String {
    super::xmp_merge::merge(EMPTY_PACKET, asset)
        .expect("our own empty packet is well-formed XMP")
        .text
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ItemKind, Location};

    pub(crate) fn bare_asset() -> Asset {
        Asset {
            id: "AY6c+BsE0jjaXx9tmVGJM1D2VcEO".into(),
            asset_record: "F2A23C38-0020-42FE-A273-2923ADE3CAED".into(),
            asset_change_tag: None,
            zone: "PrimarySync".into(),
            filename: Some("IMG_7409.JPG".into()),
            filename_problem: None,
            item_type: Some("public.jpeg".into()),
            kind: ItemKind::Image,
            asset_date_ms: 1_533_021_744_816,
            added_date_ms: 1_533_021_746_602,
            tz_offset_s: Some(25_200),
            favorite: false,
            hidden: false,
            deleted: false,
            date_expunged_ms: None,
            burst_id: None,
            subtype: 0,
            subtype_v2: 0,
            orientation: None,
            duration: None,
            adjustment_type: None,
            caption: None,
            description: None,
            keywords: Vec::new(),
            location: None,
            versions: Vec::new(),
        }
    }

    fn text_of(props: &[Property], name: &str) -> Option<String> {
        props
            .iter()
            .find(|p| p.name == name)
            .map(|p| match &p.value {
                Value::Text(t) | Value::LangAlt(t) => t.clone(),
                Value::Bag(b) => b.join("|"),
            })
    }

    #[test]
    fn gps_coordinates_in_degrees_and_decimal_minutes() {
        assert_eq!(
            gps_coordinate(37.774_929, 90.0, ['N', 'S']).unwrap(),
            "37,46.495740N"
        );
        assert_eq!(
            gps_coordinate(-122.419_416, 180.0, ['E', 'W']).unwrap(),
            "122,25.164960W"
        );
        // Rounding carries into the degree instead of printing 60 minutes.
        assert_eq!(
            gps_coordinate(10.999_999_999_9, 90.0, ['N', 'S']).unwrap(),
            "11,00.000000N"
        );
        assert_eq!(
            gps_coordinate(-0.0, 90.0, ['N', 'S']).unwrap(),
            "0,00.000000N"
        );
        assert!(gps_coordinate(90.5, 90.0, ['N', 'S']).is_none());
        assert!(gps_coordinate(f64::NAN, 180.0, ['E', 'W']).is_none());
    }

    #[test]
    fn favourite_deleted_hidden_conventions() {
        let mut a = bare_asset();
        assert_eq!(text_of(&properties(&a), "Rating"), None);
        a.favorite = true;
        assert_eq!(text_of(&properties(&a), "Rating").as_deref(), Some("5"));
        a.deleted = true;
        assert_eq!(text_of(&properties(&a), "Rating").as_deref(), Some("-1"));
        assert_eq!(text_of(&properties(&a), "Label"), None);
        a.hidden = true;
        assert_eq!(text_of(&properties(&a), "Label").as_deref(), Some("Hidden"));
        assert_eq!(text_of(&properties(&a), "Deleted").as_deref(), Some("True"));
    }

    #[test]
    fn hostile_text_is_cleaned_and_bad_values_dropped() {
        let mut a = bare_asset();
        a.caption = Some("a\u{0}b\u{1b}c & <d>".into());
        a.description = Some(" \u{7} ".into());
        a.keywords = vec!["x".into(), "".into(), "x".into(), "y\u{FFFF}".into()];
        a.orientation = Some(9);
        a.location = Some(Location {
            latitude: 1.0,
            longitude: f64::INFINITY,
            altitude: Some(3.0),
            speed: None,
            gps_time_ms: None,
        });
        let p = properties(&a);
        assert_eq!(text_of(&p, "title").as_deref(), Some("abc & <d>"));
        assert_eq!(text_of(&p, "description"), None);
        assert_eq!(text_of(&p, "subject").as_deref(), Some("x|y"));
        assert_eq!(text_of(&p, "Orientation"), None);
        assert_eq!(text_of(&p, "GPSLatitude"), None);
        assert_eq!(text_of(&p, "GPSAltitude"), None);
    }

    #[test]
    fn altitude_as_centimetre_rational_with_reference() {
        let mut a = bare_asset();
        a.location = Some(Location {
            latitude: 1.0,
            longitude: 2.0,
            altitude: Some(-12.345),
            speed: None,
            gps_time_ms: None,
        });
        let p = properties(&a);
        assert_eq!(text_of(&p, "GPSAltitude").as_deref(), Some("1235/100"));
        assert_eq!(text_of(&p, "GPSAltitudeRef").as_deref(), Some("1"));
    }

    #[test]
    fn gps_speed_and_time_stamp_as_icloudpd_writes_them() {
        let mut a = bare_asset();
        let with = |speed, gps_time_ms| Location {
            latitude: 1.0,
            longitude: 2.0,
            altitude: None,
            speed,
            gps_time_ms,
        };
        a.location = Some(with(Some(4.25), Some(1_555_410_486_500)));
        let p = properties(&a);
        assert_eq!(text_of(&p, "GPSSpeed").as_deref(), Some("4.25"));
        assert_eq!(
            text_of(&p, "GPSTimeStamp").as_deref(),
            Some("2019-04-16T10:28:06"),
            "UTC, seconds cut as Python's strftime cuts them, no offset"
        );
        let speed = p.iter().find(|p| p.name == "GPSSpeed").unwrap();
        assert_eq!((speed.namespace(), speed.group), (EXIF_NS, "gps"));
        let time = p.iter().find(|p| p.name == "GPSTimeStamp").unwrap();
        assert_eq!((time.namespace(), time.group), (EXIF_NS, "gps"));

        // The recorded Apple value: speed 0 (left out), a fix time at the plist epoch.
        a.location = Some(with(Some(0.0), Some(978_307_200_000)));
        let p = properties(&a);
        assert_eq!(text_of(&p, "GPSSpeed"), None);
        assert_eq!(
            text_of(&p, "GPSTimeStamp").as_deref(),
            Some("2001-01-01T00:00:00")
        );
        for (speed, time) in [
            (Some(-1.0), Some(i64::MAX)),
            (Some(f64::NAN), Some(-62_200_000_000_000)),
            (Some(f64::INFINITY), None),
            (None, Some(253_402_300_800_000)),
        ] {
            a.location = Some(with(speed, time));
            let p = properties(&a);
            assert_eq!(text_of(&p, "GPSSpeed"), None, "{speed:?}");
            assert_eq!(text_of(&p, "GPSTimeStamp"), None, "{time:?}");
        }
        // Without a usable position, nothing of the group.
        a.location = Some(Location {
            latitude: 91.0,
            ..with(Some(3.0), Some(0))
        });
        let p = properties(&a);
        assert_eq!(text_of(&p, "GPSSpeed"), None);
        assert_eq!(text_of(&p, "GPSTimeStamp"), None);
    }

    #[test]
    fn floats_read_as_python_writes_them() {
        for (value, python) in [
            (4.25, "4.25"),
            (12.0, "12.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123_456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (12_345_678_901_234_567.0, "1.2345678901234568e+16"),
            (1e300, "1e+300"),
            (-2.5, "-2.5"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float_text(value), python, "{value:e}");
        }
    }

    #[test]
    fn screenshot_names_its_source_as_icloudpd_does() {
        let mut a = bare_asset();
        let p = properties(&a);
        assert_eq!(text_of(&p, "Make"), None);
        assert_eq!(text_of(&p, "DigitalSourceType"), None);
        a.subtype_v2 = SUBTYPE_SCREENSHOT;
        let p = properties(&a);
        let make = p.iter().find(|p| p.name == "Make").expect("tiff:Make");
        assert_eq!(make.namespace(), TIFF_NS);
        assert_eq!(make.value, Value::Text("Screenshot".into()));
        let source = p
            .iter()
            .find(|p| p.name == "DigitalSourceType")
            .expect("Iptc4xmpExt:DigitalSourceType");
        assert_eq!(source.namespace(), IPTC_EXT_NS);
        assert_eq!(source.value, Value::Text("screenCapture".into()));
        // Our own flag stays beside them.
        assert_eq!(text_of(&p, "Screenshot").as_deref(), Some("True"));
    }

    #[test]
    fn vocabulary_covers_every_property() {
        let mut a = bare_asset();
        a.caption = Some("t".into());
        a.description = Some("d".into());
        a.keywords = vec!["k".into()];
        a.favorite = true;
        a.hidden = true;
        a.orientation = Some(6);
        a.subtype_v2 = 3;
        a.burst_id = Some("B".into());
        a.location = Some(Location {
            latitude: 1.0,
            longitude: 2.0,
            altitude: Some(3.0),
            speed: Some(1.5),
            gps_time_ms: Some(0),
        });
        for p in properties(&a) {
            let key = (p.namespace(), p.name);
            assert!(VOCABULARY.contains(&key), "{key:?}");
        }
    }
}
