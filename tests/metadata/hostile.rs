//! Hostile input: files and sidecars mangled at random. Nothing may panic, a file we refuse is
//! left byte for byte as it was, and anything we write is well-formed.

use crate::support;

use std::fs;

use icloudpd_rs::metadata::{SidecarOutcome, set_exif_datetime, sidecar_path, write_xmp_sidecar};
use support::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `base` with a few bytes flipped, a range cut out, or a tail cut off.
fn mangle(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = base.to_vec();
    match rng.below(3) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
        }
        1 => {
            let a = rng.below(v.len());
            let b = (a + 1 + rng.below(16)).min(v.len());
            v.drain(a..b);
        }
        _ => v.truncate(rng.below(v.len())),
    }
    v
}

#[test]
fn mangled_images_never_panic_and_refusals_leave_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bases = [
        ("jpg", jpeg_without_exif()),
        ("jpg", jpeg_with_exif(&camera_tiff(None))),
        ("heic", heic(None)),
        ("heic", heic(Some(&camera_tiff(None)))),
    ];
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (mut written, mut refused) = (0, 0);
    for round in 0..400 {
        let (ext, base) = &bases[round % bases.len()];
        let input = mangle(base, &mut rng);
        let p = dir.path().join(format!("f{round}.{ext}"));
        fs::write(&p, &input).unwrap();
        match set_exif_datetime(&p, &full_asset()) {
            Ok(icloudpd_rs::metadata::ExifOutcome::Written { .. }) => written += 1,
            Ok(_) => assert_eq!(fs::read(&p).unwrap(), input, "round {round}"),
            Err(_) => {
                refused += 1;
                assert_eq!(fs::read(&p).unwrap(), input, "round {round}");
            }
        }
    }
    // Both paths were exercised.
    assert!(
        written > 0 && refused > 0,
        "{written} written, {refused} refused"
    );
    // No temp files left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 400);
}

/// Random bytes behind a JPEG or HEIC signature (what a placeholder CDN serves).
#[test]
fn noise_with_a_valid_signature_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    for round in 0..100 {
        let mut input: Vec<u8> = if round % 2 == 0 {
            vec![0xFF, 0xD8, 0xFF, 0xE0]
        } else {
            b"\0\0\0\x18ftypheic".to_vec()
        };
        input.extend((0..2000).map(|_| rng.next() as u8));
        let p = dir.path().join(format!("n{round}"));
        fs::write(&p, &input).unwrap();
        let r = set_exif_datetime(&p, &full_asset());
        if r.is_err() {
            assert_eq!(fs::read(&p).unwrap(), input);
        }
    }
}

#[test]
fn mangled_sidecars_are_merged_well_formed_or_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("IMG.JPG");
    let base = {
        // A sidecar holding another tool's block and ours.
        let theirs = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" dc:format=\"image/jpeg\"/>\n </rdf:RDF>\n</x:xmpmeta>\n";
        fs::write(sidecar_path(&img), theirs).unwrap();
        write_xmp_sidecar(&img, &full_asset()).unwrap();
        fs::read(sidecar_path(&img)).unwrap()
    };
    let mut rng = Rng(7);
    let (mut merged, mut left) = (0, 0);
    for round in 0..300 {
        let input = mangle(&base, &mut rng);
        fs::write(sidecar_path(&img), &input).unwrap();
        match write_xmp_sidecar(&img, &full_asset()).unwrap().outcome {
            SidecarOutcome::LeftAlone { .. } => {
                left += 1;
                assert_eq!(
                    fs::read(sidecar_path(&img)).unwrap(),
                    input,
                    "round {round}"
                );
            }
            _ => {
                merged += 1;
                let text = fs::read_to_string(sidecar_path(&img)).unwrap();
                // Well-formed, and our asset id is there exactly once.
                let props = xmp_properties(&text);
                let ids = props
                    .get(&(
                        icloudpd_rs::metadata::ICLOUD_NS.to_string(),
                        "AssetId".to_string(),
                    ))
                    .map_or(0, Vec::len);
                assert!(ids <= 1, "round {round}: {ids} asset ids\n{text}");
            }
        }
    }
    assert!(merged > 0 && left > 0, "{merged} merged, {left} left alone");
}
