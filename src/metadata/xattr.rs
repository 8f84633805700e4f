//! The extended attributes the mount shows on a photo's file (`getfattr -d FILE`), so that
//! scripts and file managers can see what iCloud knows without a sidecar:
//!
//! | name | value |
//! |---|---|
//! | `user.icloud.asset_id` | the CPLMaster recordName (stable identity of the asset) |
//! | `user.icloud.favorite` | `1` or `0` |
//! | `user.icloud.hidden` | `1` or `0` |
//! | `user.icloud.deleted` | `1` when in Recently Deleted, else `0` |
//! | `user.icloud.caption` | the title, when set |
//! | `user.icloud.description` | the description, when set |
//! | `user.icloud.keywords` | keywords joined with `,` (a comma inside a keyword is kept), when any |
//! | `user.icloud.filename` | the name in iCloud, when known (the local name may carry a dedup suffix) |
//! | `user.icloud.date` | capture time, RFC 3339 with the local offset (`2018-07-31T14:22:24.816+07:00`), when known |
//! | `user.icloud.location` | `latitude,longitude[,altitude]` in decimal degrees and metres, when known |
//! | `user.xdg.comment` | the title (the freedesktop.org convention file managers show), when set |
//!
//! Values are UTF-8 without a terminating NUL. Empty text is left out rather than shown empty.

use chrono::SecondsFormat;

use super::capture_time;
use crate::model::Asset;

/// The extended attributes of an asset's file, as `(name, value)`, in a fixed order.
pub fn xattrs_for(asset: &Asset) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut put = |name: &str, value: String| out.push((name.to_string(), value.into_bytes()));
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let text = |s: &Option<String>| s.as_ref().filter(|s| !s.trim().is_empty()).cloned();

    put("user.icloud.asset_id", asset.id.clone());
    put("user.icloud.favorite", flag(asset.favorite));
    put("user.icloud.hidden", flag(asset.hidden));
    put("user.icloud.deleted", flag(asset.deleted));
    if let Some(c) = text(&asset.caption) {
        put("user.icloud.caption", c);
    }
    if let Some(d) = text(&asset.description) {
        put("user.icloud.description", d);
    }
    let keywords: Vec<&str> = asset
        .keywords
        .iter()
        .map(String::as_str)
        .filter(|k| !k.trim().is_empty())
        .collect();
    if !keywords.is_empty() {
        put("user.icloud.keywords", keywords.join(","));
    }
    if let Some(f) = text(&asset.filename) {
        put("user.icloud.filename", f);
    }
    if let Some(t) = capture_time(asset) {
        put(
            "user.icloud.date",
            t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        );
    }
    if let Some(loc) = asset
        .location
        .filter(|l| l.latitude.is_finite() && l.longitude.is_finite())
    {
        let mut v = format!("{},{}", loc.latitude, loc.longitude);
        if let Some(alt) = loc.altitude.filter(|a| a.is_finite()) {
            v.push_str(&format!(",{alt}"));
        }
        put("user.icloud.location", v);
    }
    if let Some(c) = text(&asset.caption) {
        put("user.xdg.comment", c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::xmp::tests::bare_asset;
    use crate::model::Location;

    fn get<'a>(x: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
        x.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn minimal_asset() {
        let x = xattrs_for(&bare_asset());
        assert_eq!(
            get(&x, "user.icloud.asset_id"),
            Some("AY6c+BsE0jjaXx9tmVGJM1D2VcEO")
        );
        assert_eq!(get(&x, "user.icloud.favorite"), Some("0"));
        assert_eq!(get(&x, "user.icloud.caption"), None);
        assert_eq!(get(&x, "user.xdg.comment"), None);
        assert_eq!(get(&x, "user.icloud.keywords"), None);
        assert_eq!(
            get(&x, "user.icloud.date"),
            Some("2018-07-31T14:22:24.816+07:00")
        );
        // Names are unique.
        let mut names: Vec<_> = x.iter().map(|(n, _)| n.clone()).collect();
        names.dedup();
        assert_eq!(names.len(), x.len());
    }

    #[test]
    fn full_asset() {
        let mut a = bare_asset();
        a.favorite = true;
        a.caption = Some("Sunset".into());
        a.description = Some("Over the bay".into());
        a.keywords = vec!["beach".into(), " ".into(), "sea, salt".into()];
        a.location = Some(Location {
            latitude: 37.5,
            longitude: -122.25,
            altitude: Some(10.5),
            speed: None,
            gps_time_ms: None,
        });
        let x = xattrs_for(&a);
        assert_eq!(get(&x, "user.icloud.favorite"), Some("1"));
        assert_eq!(get(&x, "user.icloud.caption"), Some("Sunset"));
        assert_eq!(get(&x, "user.xdg.comment"), Some("Sunset"));
        assert_eq!(get(&x, "user.icloud.description"), Some("Over the bay"));
        assert_eq!(get(&x, "user.icloud.keywords"), Some("beach,sea, salt"));
        assert_eq!(get(&x, "user.icloud.location"), Some("37.5,-122.25,10.5"));
    }
}
