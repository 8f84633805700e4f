//! Folders of the download tree that cannot be used (a file where a folder must go, folders
//! that refuse new entries): only the files that need them fail, recorded with the folder and
//! the cause; the run goes on with everything else and ends partial (exit 2), and once the
//! way is clear `retry-failed` or the next sync completes them. Nothing else is touched.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use icloudpd_rs::catalog::{DownloadState, DownloadStateKind};
use support::*;

type Plan = BTreeMap<String, (String, String)>;

/// The plan, learnt from a dry run into another folder.
fn plan(env: &Env) -> Plan {
    env.sync(&env.folder("probe"), &["--dry-run"])
        .expect_code(0);
    expected_tree(env, &[])
}

/// The planned files under `prefix` (`2021/`, `2021/05/21/`).
fn under(plan: &Plan, prefix: &str) -> Plan {
    plan.iter()
        .filter(|(p, _)| p.starts_with(prefix))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect()
}

/// The year folders of the plan, smallest first (ties by name), with their files.
fn years(plan: &Plan) -> Vec<(String, Plan)> {
    let mut names: Vec<String> = plan
        .keys()
        .map(|p| p.split('/').next().unwrap().to_string())
        .collect();
    names.dedup();
    let mut years: Vec<(String, Plan)> = names
        .into_iter()
        .map(|y| {
            let files = under(plan, &format!("{y}/"));
            (y, files)
        })
        .collect();
    years.sort_by_key(|(y, files)| (files.len(), y.clone()));
    assert!(
        years.len() >= 3,
        "the library spans too few years: {years:?}"
    );
    years
}

/// A run that downloaded everything but `blocked`: the summary, every other file with the
/// simulator's bytes and recorded, no file of `blocked` anywhere, and each of them recorded
/// as failed (catalog and report) with an error that says `why`.
fn assert_partial(
    env: &Env,
    photos: &Path,
    plan: &Plan,
    blocked: &BTreeMap<String, &str>,
    run: &Run,
    report: &Path,
) {
    run.expect_code(2);
    let n = plan.len() as u64;
    let failed = blocked.len() as u64;
    assert!(failed > 0 && failed < n);
    assert_eq!(run.summary(), (n - failed, 0, failed, n), "{}", run.stderr);
    let manifest = env.manifest();
    let on_disk = files_on_disk(photos);
    for (path, key) in plan {
        if blocked.contains_key(path) {
            assert!(!on_disk.contains_key(path), "{path} was written");
        } else {
            assert_eq!(
                on_disk.get(path),
                manifest[key].sha256.as_ref(),
                "{path}: missing or wrong bytes"
            );
        }
    }
    assert_recorded(env, photos);

    let report_path = report;
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("the report")).unwrap();
    assert_eq!(report["status"], "partial");
    let reported = failures(report_path);
    assert_eq!(
        reported.keys().collect::<Vec<_>>(),
        blocked.keys().collect::<Vec<_>>()
    );
    for (path, error) in &reported {
        let why = blocked[path];
        assert!(
            error.contains(why),
            "{path}: {error:?} does not say {why:?}"
        );
    }

    let catalog = env.catalog();
    let root = catalog.root_id(photos).unwrap().expect("registered");
    let mut recorded = 0;
    for record in catalog.downloads(root, DownloadStateKind::Failed) {
        let DownloadState::Failed { last_error, .. } = record.unwrap().state else {
            unreachable!()
        };
        assert!(
            blocked.values().any(|why| last_error.contains(why)),
            "{last_error:?}"
        );
        recorded += 1;
    }
    assert_eq!(recorded, failed, "files recorded as failed");
}

#[test]
fn a_file_where_a_folder_must_go_fails_only_the_files_below_it() {
    let env = Env::new(small(60));
    let plan = plan(&env);
    let (year, files) = years(&plan).remove(0);
    let photos = env.folder("photos");
    std::fs::create_dir(&photos).unwrap();
    let obstacle = photos.join(&year);
    std::fs::write(&obstacle, "a file of the user's").unwrap();
    let report = env.folder("report.json");

    let run = env.sync(&photos, &["--report-json", report.to_str().unwrap()]);
    let why = format!("{} is not a folder", obstacle.display());
    let blocked = files.keys().map(|p| (p.clone(), why.as_str())).collect();
    assert_partial(&env, &photos, &plan, &blocked, &run, &report);
    assert_eq!(
        std::fs::read_to_string(&obstacle).unwrap(),
        "a file of the user's"
    );

    std::fs::remove_file(&obstacle).unwrap();
    let dir = photos.to_str().unwrap();
    let retry = env.run(&["retry-failed", "-d", dir, "--no-progress-bar"]);
    retry.expect_code(0);
    let n = files.len() as u64;
    assert_eq!(retry.summary(), (n, 0, 0, n));
    assert_tree(&env, &photos, &plan);
    assert_recorded(&env, &photos);
}

/// A folder that refuses new entries: immutable as root (permissions do not stop root),
/// read-only otherwise. Undone when dropped, also when the test fails.
struct Locked(PathBuf);

impl Locked {
    /// Lock `dir` (created if missing); `None` when this filesystem cannot (no `chattr`).
    fn new(dir: &Path) -> Option<Locked> {
        std::fs::create_dir_all(dir).unwrap();
        if is_root() {
            let done = Command::new("chattr").arg("+i").arg(dir).output();
            if !done.is_ok_and(|o| o.status.success()) {
                return None;
            }
        } else {
            set_mode(dir, 0o555);
        }
        Some(Locked(dir.to_path_buf()))
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if is_root() {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            set_mode(&self.0, 0o755);
        }
    }
}

fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A year folder where no day folder can be made, and an existing day folder of another year
/// where no file can be made: their files fail, the rest is downloaded.
#[test]
fn folders_that_refuse_new_entries_fail_only_their_files() {
    let env = Env::new(small(60));
    let plan = plan(&env);
    let mut years = years(&plan);
    let (year, year_files) = years.remove(0);
    let (_, other_files) = years.remove(0);
    let (first, _) = other_files.first_key_value().unwrap();
    let day = &first[..first.rfind('/').unwrap()];
    let day_files = under(&plan, &format!("{day}/"));
    let photos = env.folder("photos");
    let locks = (
        Locked::new(&photos.join(&year)),
        Locked::new(&photos.join(day)),
    );
    let (Some(_), Some(_)) = &locks else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but this filesystem cannot make a folder immutable (chattr)"
        );
        eprintln!("skipped: this filesystem cannot make a folder immutable (chattr)");
        return;
    };
    let report = env.folder("report.json");

    let run = env.sync(&photos, &["--report-json", report.to_str().unwrap()]);
    let (year_dir, day_dir) = (
        format!("{}/", photos.join(&year).display()),
        format!("{}/", photos.join(day).display()),
    );
    let blocked: BTreeMap<String, &str> = year_files
        .keys()
        .map(|p| (p.clone(), year_dir.as_str()))
        .chain(day_files.keys().map(|p| (p.clone(), day_dir.as_str())))
        .collect();
    assert_partial(&env, &photos, &plan, &blocked, &run, &report);
    let cause = ["Operation not permitted", "Permission denied"];
    assert!(
        cause.iter().any(|c| run.stderr.contains(c)),
        "{}",
        run.stderr
    );

    drop(locks);
    let again = env.sync(&photos, &[]);
    again.expect_code(0);
    let n = blocked.len() as u64;
    assert_eq!(
        again.summary(),
        (n, plan.len() as u64 - n, 0, plan.len() as u64)
    );
    assert_tree(&env, &photos, &plan);
    assert_recorded(&env, &photos);
}

/// A changed layout moves files into folders; one of them cannot be made: its files stay
/// where they are (recorded there, with a warning), every other file is moved, nothing is
/// lost, and the next run, once the way is clear, ends with the plan.
#[test]
fn a_rename_into_a_folder_that_cannot_be_made_leaves_its_file_in_place() {
    let env = Env::new(small(60));
    let photos = env.folder("photos");
    let flat = ["--folder-structure", "none"];
    env.sync(&photos, &flat).expect_code(0);
    let flat_files = files_on_disk(&photos);
    let plan = expected_tree(&env, &[]);
    let (year, files) = years(&plan).remove(0);
    let obstacle = photos.join(&year);
    std::fs::write(&obstacle, "a file of the user's").unwrap();
    let before = env.cdn();

    let run = env.sync(&photos, &[]);
    assert_ne!(run.code, 1, "the run stopped: {}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{} is not a folder", obstacle.display())),
        "{}",
        run.stderr
    );
    let on_disk = files_on_disk(&photos);
    let manifest = env.manifest();
    for (path, key) in &plan {
        let bytes = if files.contains_key(path) {
            // Still at its flat path, with its bytes.
            let name = path.rsplit('/').next().unwrap();
            assert_eq!(on_disk.get(name), flat_files.get(name), "{name}");
            on_disk.get(name)
        } else {
            on_disk.get(path)
        };
        assert_eq!(bytes, manifest[key].sha256.as_ref(), "{path}");
    }
    assert_recorded(&env, &photos);

    std::fs::remove_file(&obstacle).unwrap();
    env.sync(&photos, &[]).expect_code(0);
    assert_eq!(env.cdn(), before, "nothing downloaded again");
    assert_tree(&env, &photos, &plan);
    assert_recorded(&env, &photos);
}
