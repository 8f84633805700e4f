//! The names the catalog commands show are the ones to act on: `list albums` lists every
//! smart folder `--album` takes, under the mount's folder names, and `status --failed` names
//! every failed file by the path it goes to in the layout of the run that failed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use icloudpd_rs::catalog::SmartFolder;
use icloudpd_rs::sim::BackgroundSim;
use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use icloudpd_rs::view::names::smart_folder_place;
use serde_json::Value;

use crate::cli::sim;
use crate::support::primary_manifest;

/// The binary signed in to `sim` with data in `data`: (exit code, stdout, stderr).
fn run(sim: &BackgroundSim, data: &Path, args: &[&str]) -> (i32, String, String) {
    let account = sim.account();
    let out = Command::new(env!("CARGO_BIN_EXE_icloudpd-rs"))
        .args(args)
        .args(["-u", &account.username, "--endpoint", sim.endpoint()])
        .arg("--data-dir")
        .arg(data)
        .env("ICLOUD_PASSWORD", &account.password)
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUDPD_RS_ENDPOINT")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn list_albums_lists_every_smart_folder_under_its_mount_name() {
    let sim = sim(60, 21);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = run(&sim, &data, &["refresh"]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(&sim, &data, &["list", "albums"]);
    assert_eq!(code, 0, "{err}");
    let smart: Vec<(&str, u64)> = out
        .lines()
        .filter_map(|l| l.strip_suffix("\tsmart folder"))
        .map(|l| {
            let (name, count) = l.split_once('\t').expect("name and count");
            (name, count.parse().expect("a count"))
        })
        .collect();
    // All Photos first, then each folder as the mount names it (`Media Types/Live Photos`).
    let mount_names: Vec<&str> = SmartFolder::ALL
        .iter()
        .map(|f| {
            let (top, sub) = smart_folder_place(*f);
            sub.unwrap_or(top)
        })
        .collect();
    let names: Vec<&str> = smart.iter().map(|(n, _)| *n).collect();
    assert_eq!(names[0], "All Photos", "{out}");
    assert_eq!(names[1..], mount_names[..], "{out}");
    let (code, status, err) = run(&sim, &data, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        smart[0].1,
        status["libraries"][0]["assets"].as_u64().unwrap()
    );

    // Each name listed is one `--album` takes.
    let photos = dir.path().join("photos");
    let photos = photos.to_str().unwrap();
    for name in names {
        let (code, out, err) = run(
            &sim,
            &data,
            &["sync", "-d", photos, "--dry-run", "--album", name],
        );
        assert_eq!(code, 0, "--album {name:?}: {out}{err}");
    }
}

#[test]
fn status_failed_names_each_failure_by_the_path_its_file_goes_to() {
    let sim = sim(30, 8);
    let manifest = primary_manifest(sim.state());
    let visible = |e: &&icloudpd_rs::sim::library::ManifestEntry| !e.is_hidden && !e.is_deleted;
    let live = manifest
        .iter()
        .filter(visible)
        .find(|e| e.version == "live_original")
        .expect("a live photo")
        .asset_id
        .clone();
    let plain = manifest
        .iter()
        .filter(visible)
        .find(|e| {
            e.version == "original"
                && !manifest
                    .iter()
                    .any(|o| o.asset_id == e.asset_id && o.version.starts_with("live"))
        })
        .expect("a photo without video")
        .asset_id
        .clone();
    sim.state().faults.set(
        FaultKind::Cdn503,
        FaultRule {
            p: 1.0,
            asset_ids: Some([live.clone(), plain.clone()].into()),
            remaining: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let photos = dir.path().join("photos");
    // Another layout than the default: the paths shown are the run's.
    let sync = [
        "sync",
        "-d",
        photos.to_str().unwrap(),
        "--no-progress-bar",
        "--folder-structure",
        "{:%Y}",
    ];
    let (code, out, err) = run(&sim, &data, &sync);
    assert_eq!(code, 2, "{out}{err}");

    let (code, json, err) = run(&sim, &data, &["status", "--failed", "--json"]);
    assert_eq!(code, 0, "{err}");
    let failed: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let (code, text, err) = run(&sim, &data, &["status", "--failed"]);
    assert_eq!(code, 0, "{err}");
    let assets: BTreeSet<&str> = failed
        .iter()
        .map(|f| f["asset_id"].as_str().unwrap())
        .collect();
    assert_eq!(assets, [live.as_str(), plain.as_str()].into(), "{json}");
    assert!(
        failed.iter().any(|f| f["version"] == "live_original"),
        "{json}"
    );

    // Once the CDN answers, the next run writes each file at the path shown.
    sim.state().faults.clear();
    let (code, out, err) = run(&sim, &data, &sync);
    assert_eq!(code, 0, "{out}{err}");
    for f in &failed {
        let path = f["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no path in {f}"));
        assert!(
            std::fs::symlink_metadata(photos.join(path)).is_ok_and(|m| m.is_file()),
            "{path} was not written there"
        );
        assert!(path.split('/').next().unwrap().len() == 4, "{path}");
        let line = format!("\t{path} ({})\t", f["version"].as_str().unwrap());
        assert!(text.contains(&line), "{line:?} in\n{text}");
    }
}
