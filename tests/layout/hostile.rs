//! Hostile input: whatever the filename, album name, id or template, no planned path is
//! absolute, climbs with `..`, holds NUL or control characters, hides a file, exceeds 255
//! bytes per name, or collides with another (ignoring case). Explicit cases first, then a
//! seeded randomized sweep over names, albums and policies.

use crate::support;

use std::collections::HashSet;
use std::path::{Component, Path};

use icloudpd_rs::layout::{
    AlignRaw, FileMatchPolicy, FolderTemplate, LayoutPolicy, LiveSize, MovNamePolicy, PlannedFile,
    PrimarySize, RelDir, plan_asset, plan_flat, plan_tree,
};
use icloudpd_rs::model::{Asset, ItemKind, VersionKind as K};
use support::*;

/// Every structural guarantee of a planned tree.
fn assert_safe(files: &[PlannedFile], context: &str) {
    let mut seen = HashSet::new();
    for f in files {
        let path = f.rel_path();
        assert!(!path.starts_with('/'), "{context}: absolute {path:?}");
        for c in path.split('/') {
            assert!(
                !c.is_empty() && c != "." && c != "..",
                "{context}: {path:?}"
            );
            assert!(c.len() <= 255, "{context}: {} bytes in {path:?}", c.len());
            assert!(!c.chars().any(char::is_control), "{context}: {path:?}");
        }
        assert!(
            Path::new(&path)
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{context}: {path:?}"
        );
        assert!(
            !f.name.is_empty() && !f.name.starts_with('.'),
            "{context}: {path:?}"
        );
        assert!(!f.name.contains(['/', '\\']), "{context}: {path:?}");
        assert!(
            seen.insert(path.to_lowercase()),
            "{context}: duplicate {path:?}"
        );
        assert!(!path.ends_with(' '), "{context}: {path:?}");
    }
    // No file takes another's sidecar path.
    for f in files {
        let sidecar = format!("{}.xmp", f.rel_path()).to_lowercase();
        assert!(
            !seen.contains(&sidecar),
            "{context}: sidecar of {f:?} taken"
        );
    }
}

#[test]
fn hostile_filenames() {
    let long_multibyte = format!("{}.JPG", "日本語テキスト".repeat(15)); // 315 bytes + ext
    let cases: Vec<(&str, bool, &str)> = vec![
        ("../../etc/passwd", false, "_._.._etc_passwd.JPG"),
        ("/abs", false, "_abs.JPG"),
        ("/", false, "_.JPG"),
        ("a/b:c*d?.JPG", false, "a_b_c_d_.JPG"),
        ("..", false, "AY6c_BsE0jja.JPG"),
        (".", false, "AY6c_BsE0jja.JPG"),
        ("", false, "AY6c_BsE0jja.JPG"),
        ("   ", false, "AY6c_BsE0jja.JPG"),
        ("...JPG", false, "AY6c_BsE0jja.JPG"),
        ("nul\0byte.JPG", false, "nul_byte.JPG"),
        ("line\nbreak\r.JPG", false, "line_break_.JPG"),
        ("C:\\Users\\x.JPG", false, "C__Users_x.JPG"),
        ("emoji😀.JPG", false, "emoji.JPG"),
        ("emoji😀.JPG", true, "emoji😀.JPG"),
    ];
    for (filename, keep_unicode, expected) in cases {
        let policy = LayoutPolicy {
            keep_unicode,
            ..utc_policy()
        };
        let files = plan_asset(&jpeg_photo(ICLOUDPD_ID, filename, 1), &policy);
        assert_eq!(names(&files), [expected], "{filename:?}");
        assert_safe(&files, filename);
    }

    // 300+ bytes of multi-byte characters: cut on a character boundary, extension and size
    // suffix kept.
    let policy = LayoutPolicy {
        keep_unicode: true,
        sizes: vec![PrimarySize::Medium],
        ..utc_policy()
    };
    let files = plan_asset(&jpeg_photo(ICLOUDPD_ID, &long_multibyte, 40), &policy);
    let name = &files[0].name;
    assert!(
        // Room is left for a sidecar's `.xmp`.
        name.len() <= 251 && name.len() > 240,
        "{} bytes",
        name.len()
    );
    let stem = name
        .strip_suffix("-medium.JPG")
        .expect("suffix and extension kept");
    assert!(
        long_multibyte.starts_with(stem) && stem.len() >= 236 - 11,
        "{name}"
    );
    assert_safe(&files, "long");

    // Two long names equal in their first 251 bytes collide after the cut, and stay apart.
    let a = jpeg_photo("A", &format!("{}1.JPG", "x".repeat(300)), 10);
    let mut b = jpeg_photo("B", &format!("{}2.JPG", "x".repeat(300)), 20);
    b.added_date_ms += 1;
    let files = plan_tree([&a, &b], &utc_policy(), None);
    assert_eq!(files.len(), 2);
    assert!(files.iter().any(|f| f.name.ends_with("x-20.JPG")));
    assert_safe(&files, "long pair");
}

#[test]
fn hostile_album_names_and_templates() {
    let photo = jpeg_photo("id", "IMG_0001.JPG", 1);
    let policy = LayoutPolicy {
        folder: "{album}/{:%Y}".parse().unwrap(),
        ..utc_policy()
    };
    let hostile = [
        "..",
        "/",
        "../..",
        "",
        ".",
        "a\0b",
        &"ü".repeat(300),
        "/etc",
    ];
    let files = plan_tree([&photo], &policy, Some(&hostile));
    assert_safe(&files, "albums");
    assert_eq!(
        files[0].dir.components().count(),
        hostile.len() + 1,
        "{}",
        files[0].dir
    );
    for template in ["/x", "../x", "{:%Y}/../x", "{:/%Y}", "{:%Y/..}", "a/../b"] {
        assert!(
            template.parse::<FolderTemplate>().is_err(),
            "{template} should be refused"
        );
    }
    // Components given by callers (mount views) are made safe too.
    let dir = RelDir::from_components(["Albums", "..", "a/b", ""]);
    assert_eq!(dir.as_str(), "Albums/_/a_b/_");
    assert_safe(&plan_flat([&photo], &utc_policy(), &dir), "flat");
}

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const PIECES: &[&str] = &[
    "..", ".", "/", "\\", "\0", "\n", "\u{7f}", "\u{85}", "é", "日本", "😀", " ", "IMG_0001",
    "img_0001", ".JPG", ".heic", ".", ":", "*", "?", "<", ">", "|", "\"", "%", "{", "}", "a", "Ω",
    "\u{202e}", "CON", "-", "_", ".xmp", ".XMP",
];

fn random_text(rng: &mut Rng) -> String {
    let mut text = String::new();
    for _ in 0..rng.below(10) {
        text.push_str(rng.pick(PIECES));
    }
    if rng.chance(10) {
        text.push_str(
            &rng.pick(&["é", "a", "日", "/"])
                .repeat(100 + rng.below(200)),
        );
    }
    text
}

fn random_asset(rng: &mut Rng, n: usize) -> Asset {
    let id_chars: Vec<char> = "A+/=aZ09".chars().collect();
    let id: String = (0..1 + rng.below(28))
        .map(|_| rng.pick(&id_chars))
        .collect::<String>()
        + &n.to_string();
    let kind = rng.pick(&[ItemKind::Image, ItemKind::Movie, ItemKind::Unknown]);
    let utis = [
        JPEG,
        HEIC,
        MOV,
        MP4,
        CR2,
        "public.png",
        "public.data",
        "weird/uti",
        "",
    ];
    let mut versions = Vec::new();
    for k in K::ALL {
        if k == K::Original || rng.chance(40) {
            versions.push(version(k, rng.pick(&utis), rng.next() % 5_000));
        }
    }
    let filename = if rng.chance(15) {
        None
    } else {
        Some(random_text(rng))
    };
    let mut a = asset(&id, filename.as_deref(), kind, versions);
    if rng.chance(20) {
        a.item_type = None;
    }
    a.zone = random_text(rng);
    a.added_date_ms = (rng.next() % 1000) as i64;
    a.asset_date_ms = (rng.next() % 4_000_000_000_000) as i64 - 1_000_000_000_000;
    a
}

fn random_policy(rng: &mut Rng) -> LayoutPolicy {
    let templates = [
        "{:%Y/%m/%d}",
        "none",
        "{album}/%Y",
        "{library}/{album}/{:%Y-%m}",
        "x..y/{album}/{:%d}",
        "{album}{album}/.",
        "%c/%Z",
    ];
    let sizes: Vec<PrimarySize> = PrimarySize::ALL
        .iter()
        .copied()
        .filter(|_| rng.chance(40))
        .collect();
    LayoutPolicy {
        folder: rng.pick(&templates).parse().unwrap(),
        sizes,
        force_size: rng.chance(30),
        live_size: rng.pick(LiveSize::ALL),
        mov_names: rng.pick(MovNamePolicy::ALL),
        skip_live_photos: rng.chance(20),
        align_raw: rng.pick(AlignRaw::ALL),
        file_match: rng.pick(FileMatchPolicy::ALL),
        keep_unicode: rng.chance(50),
        zone: zone(rng.below(26 * 3600) as i32 - 13 * 3600),
    }
}

#[test]
fn randomized_hostile_libraries_give_safe_deterministic_trees() {
    let mut rng = Rng(0x05ee_d1ce_50dd_ba11);
    for round in 0..400 {
        let policy = random_policy(&mut rng);
        let assets: Vec<Asset> = (0..1 + rng.below(12))
            .map(|n| random_asset(&mut rng, n))
            .collect();
        let album: Vec<String> = (0..rng.below(4)).map(|_| random_text(&mut rng)).collect();
        let album: Vec<&str> = album.iter().map(String::as_str).collect();
        let album = (!album.is_empty()).then_some(album.as_slice());
        let context = format!("round {round}: {policy:?}");

        let tree = plan_tree(&assets, &policy, album);
        assert_safe(&tree, &context);
        let reversed: Vec<&Asset> = assets.iter().rev().collect();
        assert_eq!(plan_tree(reversed, &policy, album), tree, "{context}");

        let dir = RelDir::from_components(album.unwrap_or(&["Favorites"]));
        assert_safe(&plan_flat(&assets, &policy, &dir), &context);
    }
}
