//! The simulator's files decode in independent readers (Pillow, exiftool).

use icloudpd_rs::sim::content::{self, Format};

use crate::cdn_support::{client, config, res, start, url};

/// Decodes a JPEG and a PNG from the CDN with Pillow. Needs a Python with Pillow:
/// `ICLOUDPD_TEST_PYTHON=/path/to/venv/bin/python cargo test --test sim cdn_formats:: -- --ignored`.
#[tokio::test]
#[ignore = "needs Python with Pillow (ICLOUDPD_TEST_PYTHON)"]
async fn jpeg_and_png_decode_with_pillow() {
    let python = std::env::var("ICLOUDPD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let sim = start(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    for (format, size, name, expect) in [
        (Format::Jpeg, 2_500_000, "a.jpg", "JPEG (8, 8) L 128"),
        (Format::Jpeg, 163, "b.jpg", "JPEG (8, 8) L 128"),
        (Format::Png, 1_000_000, "a.png", "PNG (1, 1) L 128"),
        (Format::Png, 82, "b.png", "PNG (1, 1) L 128"),
    ] {
        let r = res(format, size);
        let body = c
            .get(url(&sim, &r))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &body).unwrap();
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(
                "import sys; from PIL import Image\n\
                 im = Image.open(sys.argv[1]); im.load()\n\
                 print(im.format, im.size, im.mode, im.getpixel((0, 0)))",
            )
            .arg(&path)
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), expect, "{name}");
    }
}

/// exiftool (an independent reader, installed by `scripts/test.sh`) recognises every format and
/// finds nothing to complain about. Passes with a note when exiftool is not installed.
#[test]
fn exiftool_validates_every_format() {
    let available = std::process::Command::new("exiftool")
        .arg("-ver")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("exiftool not installed: skipped (apt-get install libimage-exiftool-perl)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (format, file_type) in [
        (Format::Jpeg, "JPEG"),
        (Format::Png, "PNG"),
        (Format::Heic, "HEIC"),
        (Format::Mov, "MOV"),
        (Format::Mp4, "MP4"),
        (Format::Dng, "DNG"),
        (Format::Cr2, "CR2"),
    ] {
        for size in [content::min_size(format), 300_007] {
            let r = res(format, size);
            let mut bytes = vec![0u8; size as usize];
            content::fill(5, &r, 0, &mut bytes);
            let path = dir
                .path()
                .join(format!("f{size}.{}", file_type.to_lowercase()));
            std::fs::write(&path, &bytes).unwrap();
            let out = std::process::Command::new("exiftool")
                .args(["-j", "-validate", "-warning", "-error", "-FileType", "-a"])
                .arg(&path)
                .output()
                .unwrap();
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let tags = &json[0];
            assert_eq!(tags["FileType"], file_type, "{format:?} {size}: {tags}");
            assert_eq!(tags["Validate"], "OK", "{format:?} {size}: {tags}");
            assert!(
                tags.get("Warning").is_none() && tags.get("Error").is_none(),
                "{tags}"
            );
        }
    }
}
