//! Builders shared by the `catalog_*` integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use icloudpd_rs::catalog::{Catalog, LibraryId, RunId, RunKind};
use icloudpd_rs::model::{Album, Asset, ItemKind, Library, Location, Version, VersionKind};
use icloudpd_rs::sim::SimState;
use icloudpd_rs::sim::library::{ManifestEntry, ManifestOptions};

/// A temporary directory with a catalog path inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("catalog.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A catalog writer with the primary library added.
pub fn writer(path: &Path) -> (Catalog, LibraryId) {
    let mut c = Catalog::open(path).expect("open catalog");
    let lib = c.upsert_library(&Library::primary()).expect("library");
    (c, lib)
}

pub fn version(kind: VersionKind, size: u64, checksum: &str) -> Version {
    Version {
        kind,
        size,
        file_type: if kind.is_live() {
            "com.apple.quicktime-movie".into()
        } else {
            "public.heic".into()
        },
        checksum: checksum.into(),
        width: Some(4032),
        height: Some(3024),
    }
}

/// A plain photo with original, medium and thumb versions; `n` varies dates and sizes.
pub fn photo(id: &str, n: i64) -> Asset {
    Asset {
        id: id.into(),
        asset_record: format!("ASSET-{id}"),
        asset_change_tag: Some("ct1".into()),
        zone: "PrimarySync".into(),
        filename: Some(format!("IMG_{n:04}.HEIC")),
        filename_problem: None,
        item_type: Some("public.heic".into()),
        kind: ItemKind::Image,
        asset_date_ms: 1_500_000_000_000 + n * 1000,
        added_date_ms: 1_600_000_000_000 + n * 1000,
        tz_offset_s: None,
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
        versions: vec![
            version(
                VersionKind::Original,
                1_000_000 + n as u64,
                &format!("orig-{id}"),
            ),
            version(
                VersionKind::Medium,
                200_000 + n as u64,
                &format!("med-{id}"),
            ),
            version(
                VersionKind::Thumb,
                20_000 + n as u64,
                &format!("thumb-{id}"),
            ),
        ],
    }
}

/// An asset with every optional field set and every kind of version.
pub fn everything(id: &str) -> Asset {
    Asset {
        id: id.into(),
        asset_record: "F2A23C38-0020-42FE-A273-2923ADE3CAED".into(),
        asset_change_tag: Some("49lh".into()),
        zone: "PrimarySync".into(),
        filename: Some("Été à Zürich/写真.HEIC".into()),
        filename_problem: Some("repaired: invalid UTF-8".into()),
        item_type: Some("public.heic".into()),
        kind: ItemKind::Image,
        asset_date_ms: 1_533_021_744_816,
        added_date_ms: 1_533_021_746_602,
        tz_offset_s: Some(-25_200),
        favorite: true,
        hidden: true,
        deleted: true,
        date_expunged_ms: Some(1_535_613_744_786),
        burst_id: Some("BURST-1".into()),
        subtype: 100,
        subtype_v2: 2,
        orientation: Some(6),
        duration: Some(6472),
        adjustment_type: Some("com.apple.photo".into()),
        caption: Some("A title".into()),
        description: Some("A longer description\nwith a newline".into()),
        keywords: vec!["beach".into(), "Zürich".into(), String::new()],
        location: Some(Location {
            latitude: 47.376_886_5,
            longitude: -8.541_694,
            altitude: Some(408.25),
            speed: Some(4.25),
            gps_time_ms: Some(1_555_410_486_500),
        }),
        versions: VersionKind::ALL
            .iter()
            .enumerate()
            .map(|(i, &kind)| Version {
                kind,
                size: u64::MAX / 4 + i as u64,
                file_type: format!("type.{}", kind.as_str()),
                checksum: format!("AY6c+BsE0jjaXx9tmVGJM1D2Vc{i}="),
                width: if i % 2 == 0 { Some(u32::MAX) } else { None },
                height: if i % 3 == 0 { Some(1) } else { None },
            })
            .collect(),
    }
}

pub fn album(id: &str, name: &str, parent: Option<&str>, folder: bool, position: i64) -> Album {
    Album {
        id: id.into(),
        zone: "PrimarySync".into(),
        name: name.into(),
        parent_id: parent.map(Into::into),
        is_folder: folder,
        deleted: false,
        position,
    }
}

/// Stores `assets` through a complete full run.
pub fn full_refresh(c: &mut Catalog, lib: LibraryId, assets: &[Asset]) -> RunId {
    let run = c
        .begin_run(lib, RunKind::Full, Some(assets.len() as u64))
        .expect("begin");
    for page in assets.chunks(100) {
        c.upsert_page(run, page, &[]).expect("page");
    }
    c.finish_full_enumeration(run, Some("token-after-full"))
        .expect("finish");
    run
}

pub fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

/// In a child writer test: a writer on the catalog the parent named in `env`, or `None` when
/// the test runs on its own.
pub fn child_catalog(env: &str) -> Option<(Catalog, LibraryId)> {
    let db = std::env::var_os(env)?;
    Some(writer(Path::new(&db)))
}

/// What a child writer prints once its run has begun, followed by the run id.
const CHILD_READY: &str = "CHILD-WRITER-READY";

/// In a child writer: say the run has begun, then write new assets (from `first`) in pages
/// of 100 until the parent kills the process.
pub fn write_until_killed(c: &mut Catalog, run: RunId, first: i64) -> ! {
    println!("{CHILD_READY} {}", run.0);
    let mut i = first;
    loop {
        let page: Vec<_> = (i..i + 100).map(|n| photo(&format!("N{n}"), n)).collect();
        c.upsert_page(run, &page, &[]).unwrap();
        i += 100;
    }
}

/// Start this test binary's ignored test `test` as a child writer on `db` (passed in the
/// environment variable `env`), and wait until its run has begun.
pub fn spawn_child_writer(test: &str, env: &str, db: &Path) -> (std::process::Child, RunId) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env(env, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let run = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix(CHILD_READY)
                .map(|id| RunId(id.trim().parse::<i64>().unwrap()))
        })
        .expect("child never got ready");
    (child, run)
}

/// The simulator's manifest of its primary library (one entry per version, no checksums).
pub fn primary_manifest(sim: &SimState) -> Vec<ManifestEntry> {
    sim.library
        .manifest(&ManifestOptions {
            zone: Some("PrimarySync".into()),
            sha256: false,
        })
        .expect("manifest")
}
