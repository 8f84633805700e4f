//! The catalog commands as a user runs them: `refresh`, then `list libraries`, `list albums`
//! and `status` (text and `--json`) from the catalog alone, with the simulator stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use icloudpd_rs::sim::{BackgroundSim, SimConfig};
use serde_json::Value;

use crate::support::primary_manifest;

/// Run the binary; (exit code, stdout, stderr).
fn run(data: &Path, username: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_icloudpd-rs"))
        .args(args)
        .args(["-u", username])
        .arg("--data-dir")
        .arg(data)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A simulator of `assets` tiny assets.
pub(crate) fn sim(assets: usize, seed: u64) -> BackgroundSim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    BackgroundSim::start(SimConfig {
        assets,
        seed,
        size_scale: 0.0001,
        iterations: 1000,
        ..SimConfig::default()
    })
    .unwrap()
}

#[test]
fn list_and_status_report_the_refreshed_library_without_the_network() {
    let sim = sim(400, 12);
    let dir = tempfile::tempdir().unwrap();
    let account = sim.account().clone();
    let user = account.username.as_str();

    // Before any refresh: no catalog yet, and what lists the library.
    let (code, out, err) = run(dir.path(), user, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Catalog: none yet"), "{out}");
    assert!(out.contains("icloudpd-rs refresh"), "{out}");

    let (code, out, err) = run(
        dir.path(),
        user,
        &[
            "refresh",
            "--json",
            "-p",
            &account.password,
            "--endpoint",
            sim.endpoint(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // `mode` is a string whatever the mode; a full listing says why beside it.
    let report: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(report["libraries"][0]["mode"], "full", "{out}");
    assert_eq!(report["libraries"][0]["reason"], "first listing", "{out}");

    // What the simulator holds: assets of the primary library, and the visible members of
    // each album (album listings leave hidden and recently deleted assets out).
    let manifest = primary_manifest(sim.state());
    let mut assets = BTreeSet::new();
    let mut visible = BTreeSet::new();
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &manifest {
        assets.insert(e.asset_id.clone());
        if !e.is_hidden && !e.is_deleted {
            visible.insert(e.asset_id.clone());
            for album in &e.albums {
                members
                    .entry(album.clone())
                    .or_default()
                    .insert(e.asset_id.clone());
            }
        }
    }
    drop(sim);

    let (code, out, err) = run(dir.path(), user, &["list", "libraries"]);
    assert_eq!(code, 0, "{err}");
    // What `--library` takes, its database, what the mount calls it, and All Photos' size.
    let line = format!(
        "PrimarySync\tprivate\tPersonal Library\t{} photos and videos",
        visible.len()
    );
    assert!(out.lines().any(|l| l == line), "{out}");
    let (code, out, err) = run(dir.path(), user, &["list", "libraries", "--json"]);
    assert_eq!(code, 0, "{err}");
    let primary: Value = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object a line"))
        .find(|l| l["zone"] == "PrimarySync")
        .expect("the primary library");
    assert_eq!(primary["database"], "private");
    assert!(primary["last_refresh"].as_str().unwrap().ends_with('Z'));
    assert!(primary.get("zone_token").is_none(), "tokens stay private");

    // Albums: every album of the simulator, with its count of visible assets.
    let (code, out, err) = run(dir.path(), user, &["list", "albums", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let counts: BTreeMap<String, u64> = listed
        .iter()
        .filter(|a| a["folder"] == false && a["library"] == "PrimarySync")
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["assets"].as_u64().unwrap(),
            )
        })
        .collect();
    for (name, ids) in &members {
        assert_eq!(counts.get(name), Some(&(ids.len() as u64)), "album {name}");
    }
    let (code, text, err) = run(dir.path(), user, &["list", "albums"]);
    assert_eq!(code, 0, "{err}");
    for a in &listed {
        let path = a["path"].as_str().unwrap();
        let line = if a["folder"] == true {
            format!("{path}/")
        } else {
            format!("{path}\t{}", a["assets"])
        };
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }

    // Status, as JSON and as text.
    let (code, out, err) = run(dir.path(), user, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(status["assets"], assets.len() as u64);
    assert_eq!(status["versions"], manifest.len() as u64);
    assert_eq!(status["downloaded"], 0);
    assert_eq!(status["failed"], 0);
    assert_eq!(
        status["albums"],
        listed
            .iter()
            .filter(|a| a["library"] == "PrimarySync")
            .count() as u64
    );
    assert!(status["last_refresh"].as_str().unwrap().ends_with('Z'));
    let library = &status["libraries"][0];
    assert_eq!(library["last_refresh"], primary["last_refresh"]);
    assert!(
        library["last_full_refresh"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // The account options before the command (`git -C DIR status` style), or between a
    // command group and its command, give the same answers.
    let data = dir.path().to_str().unwrap();
    for (args, same_as) in [
        (
            vec!["-u", user, "--data-dir", data, "status", "--json"],
            &out,
        ),
        (
            vec!["--data-dir", data, "list", "-u", user, "albums"],
            &text,
        ),
        (
            vec!["list", "--data-dir", data, "albums", "-u", user],
            &text,
        ),
    ] {
        let got = Command::new(env!("CARGO_BIN_EXE_icloudpd-rs"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(got.status.code(), Some(0), "{args:?}: {got:?}");
        assert_eq!(&String::from_utf8_lossy(&got.stdout), same_as, "{args:?}");
    }
    let (code, out, err) = run(dir.path(), user, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Assets: {}", assets.len())), "{out}");
    // The refresh time as a person reads it: a local date and time, not a quoted JSON string.
    let last = out
        .lines()
        .find_map(|l| l.strip_prefix("Last refresh: "))
        .unwrap_or_else(|| panic!("no refresh time: {out}"));
    assert!(
        chrono::DateTime::parse_from_str(last, "%Y-%m-%d %H:%M:%S %:z").is_ok(),
        "{last:?}"
    );
}

/// icloudpd's `--list-albums` (`-l`) and `--list-libraries`, typed as icloudpd users type
/// them (no command): the library is listed first, then printed; the smart folders `--album`
/// takes are listed with the albums.
#[test]
fn icloudpds_list_flags_list_from_the_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = BackgroundSim::start(SimConfig {
        assets: 200,
        seed: 4,
        size_scale: 0.0001,
        iterations: 1000,
        shared_library: true,
        shared_assets: 20,
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let account = sim.account().clone();
    let user = account.username.as_str();
    let auth = ["-p", &account.password, "--endpoint", sim.endpoint()];
    let albums = primary_manifest(sim.state())
        .into_iter()
        .flat_map(|e| e.albums)
        .collect::<BTreeSet<_>>();
    for flag in ["--list-albums", "-l"] {
        let (code, out, err) = run(dir.path(), user, &[&[flag][..], &auth].concat());
        assert_eq!(code, 0, "{flag}: {err}");
        assert!(out.lines().any(|l| l.starts_with("Favorites\t")), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with("Recently Deleted\t")),
            "{out}"
        );
        for album in &albums {
            assert!(
                out.lines()
                    .any(|l| l.split('\t').next().unwrap().ends_with(album.as_str())),
                "{flag}: album {album} in\n{out}"
            );
        }
    }
    let (code, out, err) = run(
        dir.path(),
        user,
        &[&["--list-libraries"][..], &auth].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("PrimarySync\t"), "{out}");
    // Every library, whatever `--library` says (the default is the primary one).
    let shared = out
        .lines()
        .find(|l| l.starts_with("SharedSync-"))
        .unwrap_or_else(|| panic!("no shared library in\n{out}"));
    assert!(shared.ends_with("\t20 photos and videos"), "{shared}");
}

/// `list libraries` reads the catalog only: after a refresh of the primary library (the
/// default) it says how to look for the others.
#[test]
fn list_libraries_says_when_only_the_primary_library_was_refreshed() {
    let sim = sim(50, 5);
    let dir = tempfile::tempdir().unwrap();
    let account = sim.account().clone();
    let user = account.username.as_str();
    let auth = ["-p", &account.password, "--endpoint", sim.endpoint()];
    let (code, _, err) = run(dir.path(), user, &[&["refresh"][..], &auth].concat());
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(dir.path(), user, &["list", "libraries"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("PrimarySync\t"), "{out}");
    assert!(err.contains("refresh --library all"), "{err}");
}

/// Records iCloud sent that could not become files are told: a warning at the refresh, and
/// `status` (text and `--json`) says which and why.
#[test]
fn status_names_the_records_that_could_not_be_used() {
    use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
    let sim = sim(300, 14);
    let dir = tempfile::tempdir().unwrap();
    let account = sim.account().clone();
    let user = account.username.as_str();
    // Pages that always come cut short: their masters arrive without their assets.
    sim.state().faults.set(
        FaultKind::ApiShortPage,
        FaultRule {
            p: 1.0,
            ..FaultRule::default()
        },
    );
    let refresh = [
        "refresh",
        "-p",
        &account.password,
        "--endpoint",
        sim.endpoint(),
    ];
    let (code, _, err) = run(dir.path(), user, &refresh);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("could not become files"), "{err}");
    let (code, out, err) = run(dir.path(), user, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Not usable:"), "{out}");
    assert!(out.contains("CPLMaster without its CPLAsset"), "{out}");
    let (_, out, _) = run(dir.path(), user, &["status", "--json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let unusable = doc["unusable_records"].as_array().unwrap();
    assert!(!unusable.is_empty(), "{doc}");
    assert!(unusable[0]["reason"].as_str().is_some(), "{doc}");

    // Healthy again: a full listing uses every record, and status says nothing of them.
    sim.state().faults.clear();
    let full = [&refresh[..], &["--full"]].concat();
    let (code, _, err) = run(dir.path(), user, &full);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(dir.path(), user, &["status"]);
    assert!(!out.contains("Not usable:"), "{out}");
}

/// A catalog damaged past its first page opens (readers check only its header), and a query
/// meets the damage: the read-only commands name the file and the fix, as `sync` does, and
/// leave it as it was.
#[test]
fn read_only_commands_name_a_damaged_catalog_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let user = "damaged@example.com";
    let db = dir.path().join(user).join("catalog.sqlite");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let (mut catalog, _) = crate::support::writer(&db);
    catalog.register_root(&dir.path().join("photos")).unwrap();
    drop(catalog);
    // Every table's and index's first page, but not the schema's (page 1).
    let roots: Vec<i64> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let mut bytes = std::fs::read(&db).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    for root in roots {
        let start = (root as usize - 1) * page;
        bytes[start..start + page].fill(0xA5);
    }
    std::fs::write(&db, &bytes).unwrap();

    for args in [
        &["status"][..],
        &["status", "--failed"],
        &["verify"],
        &["list", "albums"],
    ] {
        let (code, _, err) = run(dir.path(), user, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        for says in [
            format!("catalog {} is damaged", db.display()),
            "it was left untouched: restore a backup or move it away".to_string(),
        ] {
            assert!(err.contains(&says), "{args:?}: no {says:?} in {err}");
        }
    }
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the catalog changed");
}

/// `status` right after an upgrade reads a catalog of the older schema: migrated by the
/// first command that may write the folder, this one included (it sent users to `sync`).
#[test]
fn status_migrates_a_catalog_of_an_older_release() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let username = "old@example.com";
    let account = icloudpd_rs::auth::session_store::AccountStore::new(&data, username);
    std::fs::create_dir_all(account.dir()).unwrap();
    let catalog = account.dir().join("catalog.sqlite");
    crate::open::build_v5(&catalog);
    let (code, out, err) = run(&data, username, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["assets"].is_u64(), "{doc}");
    let version: i64 = rusqlite::Connection::open(&catalog)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, icloudpd_rs::catalog::schema::CURRENT_VERSION);
}
