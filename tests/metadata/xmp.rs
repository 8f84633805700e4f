//! XMP sidecars: values read back by an XML parser (not by string match), merging with
//! sidecars written by darktable- and digiKam-like tools, idempotence, and files left alone.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};

use icloudpd_rs::metadata::{
    ICLOUD_NS, SidecarOutcome, render_xmp, sidecar_path, write_xmp_sidecar,
};
use support::*;

const XMP: &str = "http://ns.adobe.com/xap/1.0/";
const EXIF: &str = "http://ns.adobe.com/exif/1.0/";
const PS: &str = "http://ns.adobe.com/photoshop/1.0/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const TIFF: &str = "http://ns.adobe.com/tiff/1.0/";
const IPTC_EXT: &str = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/";

/// Parse `DDD,MM.mmmmH` into signed decimal degrees.
fn degrees(s: &str) -> f64 {
    let (body, hemi) = s.split_at(s.len() - 1);
    let (d, m) = body.split_once(',').unwrap();
    let v = d.parse::<f64>().unwrap() + m.parse::<f64>().unwrap() / 60.0;
    if hemi == "S" || hemi == "W" { -v } else { v }
}

fn rational(s: &str) -> f64 {
    let (n, d) = s.split_once('/').unwrap();
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

fn image(dir: &Path) -> PathBuf {
    let p = dir.join("IMG_7409.JPG");
    fs::write(&p, b"not read").unwrap();
    p
}

#[test]
fn sidecar_is_named_after_the_full_file_name() {
    assert_eq!(
        sidecar_path(Path::new("/a/IMG_1.JPG")),
        PathBuf::from("/a/IMG_1.JPG.xmp")
    );
    assert_eq!(sidecar_path(Path::new("x")), PathBuf::from("x.xmp"));
}

#[test]
fn rendered_values_round_trip_through_a_parser() {
    let asset = full_asset();
    let props = xmp_properties(&render_xmp(&asset));

    let date = "2018-07-31T14:22:24.816+07:00";
    assert_eq!(one(&props, XMP, "CreateDate"), [date]);
    assert_eq!(one(&props, EXIF, "DateTimeOriginal"), [date]);
    assert_eq!(one(&props, PS, "DateCreated"), [date]);
    let parsed = chrono::DateTime::parse_from_rfc3339(date).unwrap();
    assert_eq!(parsed.timestamp_millis(), DATE_MS);

    let loc = asset.location.unwrap();
    let lat = degrees(&one(&props, EXIF, "GPSLatitude")[0]);
    let lon = degrees(&one(&props, EXIF, "GPSLongitude")[0]);
    assert!((lat - loc.latitude).abs() < 1e-6, "{lat}");
    assert!((lon - loc.longitude).abs() < 1e-6, "{lon}");
    let alt = rational(&one(&props, EXIF, "GPSAltitude")[0]);
    assert!((alt - 12.34).abs() < 0.005, "{alt}");
    assert_eq!(one(&props, EXIF, "GPSAltitudeRef"), ["1"]);

    assert_eq!(one(&props, DC, "title"), [asset.caption.clone().unwrap()]);
    assert_eq!(
        one(&props, DC, "description"),
        [asset.description.clone().unwrap()]
    );
    assert_eq!(one(&props, DC, "subject"), asset.keywords);
    assert_eq!(one(&props, XMP, "Rating"), ["5"]);
    assert_eq!(one(&props, TIFF, "Orientation"), ["6"]);
    assert_eq!(one(&props, ICLOUD_NS, "AssetId"), [asset.id.as_str()]);
    assert_eq!(one(&props, ICLOUD_NS, "Favorite"), ["True"]);
    assert_eq!(one(&props, ICLOUD_NS, "Hidden"), ["False"]);
    assert_eq!(one(&props, ICLOUD_NS, "LivePhoto"), ["True"]);
    assert!(!props.contains_key(&(XMP.to_string(), "Label".to_string())));
}

#[test]
fn not_a_favourite_has_no_rating_and_flags_are_documented_values() {
    let mut asset = full_asset();
    asset.favorite = false;
    asset.hidden = true;
    asset.subtype_v2 = 3;
    asset.burst_id = Some("BURST-1".into());
    let props = xmp_properties(&render_xmp(&asset));
    assert!(!props.contains_key(&(XMP.to_string(), "Rating".to_string())));
    assert_eq!(one(&props, XMP, "Label"), ["Hidden"]);
    assert_eq!(one(&props, ICLOUD_NS, "Hidden"), ["True"]);
    assert_eq!(one(&props, ICLOUD_NS, "Screenshot"), ["True"]);
    assert_eq!(one(&props, ICLOUD_NS, "BurstId"), ["BURST-1"]);
}

#[test]
fn screenshot_has_icloudpds_make_and_digital_source_type() {
    let mut asset = full_asset();
    let props = xmp_properties(&render_xmp(&asset));
    assert!(!props.contains_key(&(TIFF.to_string(), "Make".to_string())));
    assert!(!props.contains_key(&(IPTC_EXT.to_string(), "DigitalSourceType".to_string())));

    asset.subtype_v2 = 3;
    let text = render_xmp(&asset);
    let props = xmp_properties(&text);
    assert_eq!(one(&props, TIFF, "Make"), ["Screenshot"]);
    assert_eq!(
        one(&props, IPTC_EXT, "DigitalSourceType"),
        ["screenCapture"]
    );
    // The prefix icloudpd binds, for tools that match on it rather than on the namespace.
    assert!(
        text.contains(&format!("xmlns:Iptc4xmpExt=\"{IPTC_EXT}\"")),
        "{text}"
    );
    assert!(
        text.contains("<Iptc4xmpExt:DigitalSourceType>screenCapture<"),
        "{text}"
    );
}

#[test]
fn a_make_from_another_tool_wins_over_the_screenshot_source() {
    // exiftool-style sidecar that already names the device.
    let theirs = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Image::ExifTool 12.76">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:tiff="http://ns.adobe.com/tiff/1.0/">
   <tiff:Make>Apple</tiff:Make>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"#;
    let mut asset = full_asset();
    asset.subtype_v2 = 3;
    let (outcome, merged, _dir, img) = merge_asset_into(theirs, &asset);
    assert_eq!(outcome, SidecarOutcome::Updated);
    assert_kept(theirs, &merged);
    let props = xmp_properties(&merged);
    assert_eq!(one(&props, TIFF, "Make"), ["Apple"]);
    // Make and source type go together: neither of ours is mixed in.
    assert!(!props.contains_key(&(IPTC_EXT.to_string(), "DigitalSourceType".to_string())));
    assert_eq!(one(&props, ICLOUD_NS, "Screenshot"), ["True"]);
    // Rewriting gives the same bytes: our block with the new fields is recognised as ours.
    assert_eq!(
        write_xmp_sidecar(&img, &asset).unwrap().outcome,
        SidecarOutcome::Unchanged
    );
}

#[test]
fn gps_speed_and_time_stamp_are_written_as_icloudpd_writes_them() {
    let mut asset = full_asset();
    let props = xmp_properties(&render_xmp(&asset));
    assert!(!props.contains_key(&(EXIF.to_string(), "GPSSpeed".to_string())));
    assert!(!props.contains_key(&(EXIF.to_string(), "GPSTimeStamp".to_string())));

    let loc = asset.location.as_mut().unwrap();
    loc.speed = Some(12.0);
    loc.gps_time_ms = Some(DATE_MS);
    let props = xmp_properties(&render_xmp(&asset));
    // Python's str(12.0), and the fix time in UTC with no offset (the capture date is 14:22
    // at +07:00).
    assert_eq!(one(&props, EXIF, "GPSSpeed"), ["12.0"]);
    assert_eq!(one(&props, EXIF, "GPSTimeStamp"), ["2018-07-31T07:22:24"]);

    asset.location.as_mut().unwrap().speed = Some(0.0);
    let props = xmp_properties(&render_xmp(&asset));
    assert!(!props.contains_key(&(EXIF.to_string(), "GPSSpeed".to_string())));
    assert_eq!(one(&props, EXIF, "GPSTimeStamp"), ["2018-07-31T07:22:24"]);
}

#[test]
fn a_gps_position_from_another_tool_keeps_our_speed_and_time_out() {
    let theirs = r#"<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Image::ExifTool 12.76">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/">
   <exif:GPSLatitude>10,30.0N</exif:GPSLatitude>
   <exif:GPSLongitude>20,15.0E</exif:GPSLongitude>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"#;
    let mut asset = full_asset();
    let loc = asset.location.as_mut().unwrap();
    loc.speed = Some(4.25);
    loc.gps_time_ms = Some(DATE_MS);
    let (_, merged, _dir, img) = merge_asset_into(theirs, &asset);
    assert_kept(theirs, &merged);
    let props = xmp_properties(&merged);
    assert_eq!(one(&props, EXIF, "GPSLatitude"), ["10,30.0N"]);
    // Speed and time belong to the fix: not mixed into another tool's position.
    for name in ["GPSSpeed", "GPSTimeStamp", "GPSAltitude"] {
        assert!(
            !props.contains_key(&(EXIF.to_string(), name.to_string())),
            "{name}"
        );
    }
    assert_eq!(
        write_xmp_sidecar(&img, &asset).unwrap().outcome,
        SidecarOutcome::Unchanged
    );
}

#[test]
fn minimal_asset_gives_a_valid_packet() {
    let mut asset = full_asset();
    asset.caption = None;
    asset.description = None;
    asset.keywords.clear();
    asset.location = None;
    asset.orientation = None;
    asset.asset_date_ms = 0;
    asset.favorite = false;
    asset.versions.clear();
    let text = render_xmp(&asset);
    let props = xmp_properties(&text);
    assert!(!props.contains_key(&(XMP.to_string(), "CreateDate".to_string())));
    assert!(!props.contains_key(&(DC.to_string(), "title".to_string())));
    assert_eq!(one(&props, ICLOUD_NS, "AssetId"), [asset.id.as_str()]);
    assert!(text.starts_with("<?xpacket begin="));
    assert!(text.trim_end().ends_with("<?xpacket end=\"w\"?>"));
}

#[test]
fn hostile_text_stays_well_formed() {
    let mut asset = full_asset();
    asset.caption = Some("]]><!-- \u{0}\u{8} </rdf:RDF> \"'& \r\n".into());
    asset.keywords = vec!["<x:xmpmeta>".into(), "&amp;".into()];
    asset.filename = Some("a\u{1}b.jpg".into());
    let props = xmp_properties(&render_xmp(&asset));
    assert_eq!(one(&props, DC, "title"), ["]]><!--  </rdf:RDF> \"'& \r\n"]);
    assert_eq!(one(&props, DC, "subject"), ["<x:xmpmeta>", "&amp;"]);
    assert_eq!(one(&props, ICLOUD_NS, "Filename"), ["ab.jpg"]);
}

#[test]
fn created_then_unchanged_then_updated() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let mut asset = full_asset();
    assert_eq!(
        write_xmp_sidecar(&img, &asset).unwrap().outcome,
        SidecarOutcome::Created
    );
    let first = fs::read_to_string(sidecar_path(&img)).unwrap();
    assert_eq!(first, render_xmp(&asset));
    assert_eq!(
        write_xmp_sidecar(&img, &asset).unwrap().outcome,
        SidecarOutcome::Unchanged
    );
    asset.favorite = false;
    assert_eq!(
        write_xmp_sidecar(&img, &asset).unwrap().outcome,
        SidecarOutcome::Updated
    );
    let props = xmp_properties(&fs::read_to_string(sidecar_path(&img)).unwrap());
    assert!(!props.contains_key(&(XMP.to_string(), "Rating".to_string())));
    assert_eq!(one(&props, ICLOUD_NS, "Favorite"), ["False"]);
    // Back to the first state gives the first bytes.
    asset.favorite = true;
    write_xmp_sidecar(&img, &asset).unwrap();
    assert_eq!(fs::read_to_string(sidecar_path(&img)).unwrap(), first);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// A darktable-style sidecar: properties as attributes, a processing history, its own
/// rating and date.
const DARKTABLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_7409.JPG"
   exif:DateTimeOriginal="2018:07:31 14:22:24"
   darktable:xmp_version="5"
   darktable:history_end="2">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1" darktable:params="0000000000000000"/>
     <rdf:li darktable:num="1" darktable:operation="colorin" darktable:enabled="1" darktable:params="gz02eJxjZBgFo2AUjAIAAmwAAQ=="/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"#;

/// A digiKam-style sidecar: the user gave a title and tags.
const DIGIKAM: &str = r#"<?xpacket begin="﻿" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <dc:title>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">My own title</rdf:li>
    </rdf:Alt>
   </dc:title>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>Places/Bay</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>Places|Bay</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"#;

/// Every line of `theirs` is still in `merged`, in order.
fn assert_kept(theirs: &str, merged: &str) {
    let mut rest = merged;
    for line in theirs.lines() {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("lost or reordered: {line:?}\n---\n{merged}"));
        rest = &rest[at + line.len()..];
    }
}

fn merge_into(existing: &str) -> (SidecarOutcome, String, tempfile::TempDir) {
    let (outcome, text, dir, _) = merge_asset_into(existing, &full_asset());
    (outcome, text, dir)
}

/// `asset`'s sidecar written over another tool's `existing` one: the outcome, the merged
/// text, the folder (kept alive) and the image the sidecar belongs to.
fn merge_asset_into(
    existing: &str,
    asset: &icloudpd_rs::model::Asset,
) -> (SidecarOutcome, String, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    fs::write(sidecar_path(&img), existing).unwrap();
    let outcome = write_xmp_sidecar(&img, asset).unwrap().outcome;
    let text = fs::read_to_string(sidecar_path(&img)).unwrap();
    (outcome, text, dir, img)
}

#[test]
fn darktable_sidecar_keeps_its_history_and_rating() {
    let (outcome, merged, _dir) = merge_into(DARKTABLE);
    assert_eq!(outcome, SidecarOutcome::Updated);
    assert_kept(DARKTABLE, &merged);
    let props = xmp_properties(&merged);
    // Theirs won: their rating and their date group; nothing of ours duplicates them.
    assert_eq!(one(&props, XMP, "Rating"), ["1"]);
    assert_eq!(
        one(&props, EXIF, "DateTimeOriginal"),
        ["2018:07:31 14:22:24"]
    );
    assert!(!props.contains_key(&(XMP.to_string(), "CreateDate".to_string())));
    assert!(!props.contains_key(&(PS.to_string(), "DateCreated".to_string())));
    // Ours were added.
    assert_eq!(one(&props, DC, "title"), [full_asset().caption.unwrap()]);
    assert_eq!(one(&props, ICLOUD_NS, "AssetId"), [full_asset().id]);
    let lat = degrees(&one(&props, EXIF, "GPSLatitude")[0]);
    assert!((lat - 37.774_929).abs() < 1e-6);
    // The history is intact.
    let history = one(&props, "http://darktable.sf.net/", "history");
    assert_eq!(history.len(), 2);
}

#[test]
fn digikam_title_wins_and_everything_is_kept() {
    let (outcome, merged, _dir) = merge_into(DIGIKAM);
    assert_eq!(outcome, SidecarOutcome::Updated);
    assert_kept(DIGIKAM, &merged);
    let props = xmp_properties(&merged);
    assert_eq!(one(&props, DC, "title"), ["My own title"]);
    assert_eq!(one(&props, DC, "subject"), full_asset().keywords);
    assert_eq!(
        one(&props, "http://www.digikam.org/ns/1.0/", "TagsList"),
        ["Places/Bay"]
    );
    assert_eq!(one(&props, XMP, "Rating"), ["5"]);
    assert_eq!(
        one(&props, XMP, "CreateDate"),
        ["2018-07-31T14:22:24.816+07:00"]
    );
}

/// What another tool's values kept out is said, so a change made in iCloud that does not
/// reach the sidecar can be logged.
#[test]
fn the_properties_kept_for_another_tool_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    fs::write(sidecar_path(&img), DIGIKAM).unwrap();
    let write = write_xmp_sidecar(&img, &full_asset()).unwrap();
    assert_eq!(write.outcome, SidecarOutcome::Updated);
    assert!(
        write.kept_theirs.iter().any(|p| p == "dc:title"),
        "{:?}",
        write.kept_theirs
    );
    assert!(!write.kept_theirs.iter().any(|p| p == "dc:subject"));
    // A sidecar of our own names nothing.
    fs::remove_file(sidecar_path(&img)).unwrap();
    let write = write_xmp_sidecar(&img, &full_asset()).unwrap();
    assert_eq!(write.outcome, SidecarOutcome::Created);
    assert!(write.kept_theirs.is_empty());
    let write = write_xmp_sidecar(&img, &full_asset()).unwrap();
    assert_eq!(write.outcome, SidecarOutcome::Unchanged);
    assert!(write.kept_theirs.is_empty());
}

#[test]
fn merging_twice_is_idempotent_and_follows_changes() {
    for theirs in [DARKTABLE, DIGIKAM] {
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path());
        fs::write(sidecar_path(&img), theirs).unwrap();
        let mut asset = full_asset();
        write_xmp_sidecar(&img, &asset).unwrap();
        let once = fs::read_to_string(sidecar_path(&img)).unwrap();
        assert_eq!(
            write_xmp_sidecar(&img, &asset).unwrap().outcome,
            SidecarOutcome::Unchanged
        );
        assert_eq!(fs::read_to_string(sidecar_path(&img)).unwrap(), once);
        // A change in iCloud replaces our block, not theirs, and does not pile up blocks.
        asset.keywords = vec!["changed".into()];
        asset.hidden = true;
        assert_eq!(
            write_xmp_sidecar(&img, &asset).unwrap().outcome,
            SidecarOutcome::Updated
        );
        let twice = fs::read_to_string(sidecar_path(&img)).unwrap();
        assert_kept(theirs, &twice);
        let props = xmp_properties(&twice);
        assert_eq!(one(&props, ICLOUD_NS, "AssetId").len(), 1);
        assert_eq!(one(&props, ICLOUD_NS, "Hidden"), ["True"]);
        // Back to the first state gives back the first bytes.
        asset = full_asset();
        write_xmp_sidecar(&img, &asset).unwrap();
        assert_eq!(fs::read_to_string(sidecar_path(&img)).unwrap(), once);
    }
}

#[test]
fn a_block_another_tool_added_to_is_theirs() {
    // Our block, after a tool appended a property of its own to it.
    let asset = full_asset();
    let ours = render_xmp(&asset);
    let edited = ours.replacen(
        "</rdf:Description>",
        " <xmp:Nickname xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\">mine</xmp:Nickname>\n  </rdf:Description>",
        1,
    );
    let (outcome, merged, _dir) = merge_into(&edited);
    // Nothing of it is removed; every property in it is now theirs, so ours adds nothing.
    assert_eq!(outcome, SidecarOutcome::Unchanged, "{merged}");
    assert_eq!(merged, edited);
}

#[test]
fn a_toolkit_rewrite_without_our_marker_is_theirs() {
    // An XMP toolkit re-serialised our sidecar: same properties, no comment.
    let asset = full_asset();
    let rewritten = render_xmp(&asset).replace(
        "<!-- icloudpd-rs: from iCloud Photos; this block is rewritten on each sync -->",
        "",
    );
    let (outcome, merged, _dir) = merge_into(&rewritten);
    assert_eq!(outcome, SidecarOutcome::Unchanged);
    assert_eq!(merged, rewritten);
}

#[test]
fn files_that_are_not_xmp_are_left_alone() {
    for (name, content) in [
        ("binary", &b"\x00\x01\x02\xff\xfe garbage"[..]),
        ("empty", b""),
        ("text", b"just some notes\n"),
        ("other xml", b"<?xml version=\"1.0\"?><notes><n>hi</n></notes>"),
        ("broken xml", b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">"),
        ("mismatched", b"<a><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"></b></a>"),
        ("empty rdf", b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/></x:xmpmeta>"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let img = image(dir.path());
        fs::write(sidecar_path(&img), content).unwrap();
        let outcome = write_xmp_sidecar(&img, &full_asset()).unwrap().outcome;
        assert!(
            matches!(outcome, SidecarOutcome::LeftAlone { .. }),
            "{name}: {outcome:?}"
        );
        assert_eq!(fs::read(sidecar_path(&img)).unwrap(), content, "{name}");
    }
}

#[test]
fn unreadable_sidecar_location_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    // A directory where the sidecar should be.
    fs::create_dir(sidecar_path(&img)).unwrap();
    assert!(write_xmp_sidecar(&img, &full_asset()).is_err());
    assert!(sidecar_path(&img).is_dir());
}
