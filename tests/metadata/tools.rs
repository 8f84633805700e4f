//! Dev-only checks against the tools users will point at our files: exiftool reads our EXIF
//! and XMP, and libheif still decodes a HEIC we added a date to. Each test says so and passes
//! when its tool is not installed (`apt-get install libimage-exiftool-perl libheif-examples`);
//! the tool-free tests in `metadata_exif.rs` / `metadata_xmp.rs` check the same values with
//! in-process parsers.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::Command;

use icloudpd_rs::metadata::{ExifOutcome, set_exif_datetime, sidecar_path, write_xmp_sidecar};
use serde_json::Value;
use support::*;

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// exiftool's JSON for one file, tags grouped by family-1 group, numeric values (`-n`).
fn exiftool(path: &Path) -> serde_json::Map<String, Value> {
    let out = Command::new("exiftool")
        .args(["-j", "-G1", "-n", "-a"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].as_object().unwrap().clone()
}

fn no_warnings(tags: &serde_json::Map<String, Value>) {
    for (k, v) in tags {
        assert!(
            !k.ends_with(":Warning") && !k.ends_with(":Error"),
            "{k}: {v}"
        );
    }
}

#[test]
fn exiftool_reads_the_jpeg_date() {
    if !tool("exiftool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("plain.jpg", jpeg_without_exif()),
        ("camera.jpg", jpeg_with_exif(&camera_tiff(None))),
    ] {
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        assert!(matches!(
            set_exif_datetime(&p, &full_asset()).unwrap(),
            ExifOutcome::Written { .. }
        ));
        let tags = exiftool(&p);
        no_warnings(&tags);
        assert_eq!(tags["ExifIFD:DateTimeOriginal"], "2018:07:31 14:22:24");
        assert_eq!(tags["ExifIFD:OffsetTimeOriginal"], "+07:00");
        assert_eq!(tags["ExifIFD:CreateDate"], "2018:07:31 14:22:24");
        assert_eq!(tags["ExifIFD:SubSecTimeOriginal"], 816);
        assert_eq!(tags["File:ImageWidth"], 8);
        if name == "camera.jpg" {
            assert_eq!(tags["IFD0:Make"], "Apple");
            assert_eq!(tags["IFD0:Orientation"], 6);
            assert_eq!(tags["ExifIFD:ISO"], 100);
            assert_eq!(tags["GPS:GPSLatitudeRef"], "S");
        }
    }
}

#[test]
fn exiftool_reads_the_sidecar() {
    if !tool("exiftool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("IMG_7409.JPG");
    fs::write(&img, jpeg_without_exif()).unwrap();
    write_xmp_sidecar(&img, &full_asset()).unwrap();
    let tags = exiftool(&sidecar_path(&img));
    no_warnings(&tags);
    let asset = full_asset();
    let loc = asset.location.unwrap();
    assert_eq!(tags["XMP-xmp:CreateDate"], "2018:07:31 14:22:24.816+07:00");
    assert_eq!(
        tags["XMP-exif:DateTimeOriginal"],
        "2018:07:31 14:22:24.816+07:00"
    );
    assert_eq!(
        tags["XMP-photoshop:DateCreated"],
        "2018:07:31 14:22:24.816+07:00"
    );
    let lat = tags["XMP-exif:GPSLatitude"].as_f64().unwrap();
    let lon = tags["XMP-exif:GPSLongitude"].as_f64().unwrap();
    assert!((lat - loc.latitude).abs() < 1e-6, "{lat}");
    assert!((lon - loc.longitude).abs() < 1e-6, "{lon}");
    assert!((tags["XMP-exif:GPSAltitude"].as_f64().unwrap() - 12.34).abs() < 0.005);
    assert_eq!(tags["XMP-exif:GPSAltitudeRef"], 1);
    assert_eq!(tags["XMP-dc:Title"], asset.caption.clone().unwrap());
    assert_eq!(
        tags["XMP-dc:Description"],
        asset.description.clone().unwrap()
    );
    assert_eq!(tags["XMP-dc:Subject"], Value::from(asset.keywords.clone()));
    assert_eq!(tags["XMP-xmp:Rating"], 5);
    assert_eq!(tags["XMP-tiff:Orientation"], 6);
}

#[test]
fn libheif_decodes_a_heic_we_dated() {
    if !tool("heif-enc") || !tool("heif-convert") || !tool("exiftool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Our 8x8 JPEG, without and with camera EXIF, is the encoder's input.
    for (name, input) in [
        ("plain", jpeg_without_exif()),
        ("camera", jpeg_with_exif(&camera_tiff(None))),
    ] {
        let jpg = dir.path().join(format!("{name}.jpg"));
        let heic = dir.path().join(format!("{name}.heic"));
        fs::write(&jpg, input).unwrap();
        let enc = Command::new("heif-enc")
            .arg("-q")
            .arg("50")
            .arg(&jpg)
            .arg("-o")
            .arg(&heic)
            .output()
            .unwrap();
        assert!(
            enc.status.success(),
            "{}",
            String::from_utf8_lossy(&enc.stderr)
        );

        let outcome = set_exif_datetime(&heic, &full_asset());
        assert!(
            matches!(outcome, Ok(ExifOutcome::Written { .. })),
            "{name}: {outcome:?}"
        );
        let tags = exiftool(&heic);
        no_warnings(&tags);
        assert_eq!(
            tags["ExifIFD:DateTimeOriginal"], "2018:07:31 14:22:24",
            "{name}"
        );
        assert_eq!(tags["ExifIFD:OffsetTimeOriginal"], "+07:00");
        if name == "camera" {
            assert_eq!(tags["IFD0:Make"], "Apple");
            assert_eq!(tags["ExifIFD:ISO"], 100);
        }
        let png = dir.path().join(format!("{name}.png"));
        let dec = Command::new("heif-convert")
            .arg(&heic)
            .arg(&png)
            .output()
            .unwrap();
        assert!(
            dec.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        assert!(fs::metadata(&png).unwrap().len() > 0);
    }
}

#[test]
fn exiftool_reads_a_merged_sidecar_and_its_edits_are_kept() {
    if !tool("exiftool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("IMG_7409.JPG");
    fs::write(&img, jpeg_without_exif()).unwrap();
    let side = sidecar_path(&img);
    // A digiKam-like sidecar with the user's own title.
    fs::write(
        &side,
        r#"<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Mine</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"#,
    )
    .unwrap();
    let asset = full_asset();
    write_xmp_sidecar(&img, &asset).unwrap();
    let tags = exiftool(&side);
    no_warnings(&tags);
    assert_eq!(tags["XMP-dc:Title"], "Mine");
    assert_eq!(tags["XMP-xmp:Rating"], 5);
    assert_eq!(tags["XMP-icloud:AssetId"], asset.id.as_str());

    // exiftool edits the sidecar (re-serialising it); our next run keeps its edit.
    let edit = Command::new("exiftool")
        .args([
            "-overwrite_original",
            "-XMP-dc:Rights=CC-BY",
            "-XMP-xmp:Rating=2",
        ])
        .arg(&side)
        .output()
        .unwrap();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    write_xmp_sidecar(&img, &asset).unwrap();
    let tags = exiftool(&side);
    no_warnings(&tags);
    assert_eq!(tags["XMP-dc:Rights"], "CC-BY");
    assert_eq!(tags["XMP-xmp:Rating"], 2);
    assert_eq!(tags["XMP-dc:Title"], "Mine");
    assert_eq!(tags["XMP-icloud:AssetId"], asset.id.as_str());
}
