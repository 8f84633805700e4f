//! A catalog in a folder this process cannot write (a read-only mount, a backup, another
//! user's data folder): readers and the read-only commands work, writers are refused, and
//! nothing there changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use icloudpd_rs::catalog::Catalog;

use crate::support::{Scratch, writer};

/// `dir` seen read-only: as root (whom permissions do not stop) a read-only bind mount of it,
/// else the folders under it made unwritable. Undone when dropped.
struct ReadOnlyView {
    path: PathBuf,
    /// The bind mount's folder, when root.
    mounted: Option<tempfile::TempDir>,
}

impl ReadOnlyView {
    /// `None` when it cannot be made (root without the right to mount): the test is skipped.
    fn of(dir: &Path) -> Option<ReadOnlyView> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            set_writable(dir, false);
            return Some(ReadOnlyView {
                path: dir.to_path_buf(),
                mounted: None,
            });
        }
        let target = tempfile::tempdir().expect("tempdir");
        let mount = |args: &[&str], source: Option<&Path>| {
            Command::new("mount")
                .args(args)
                .args(source)
                .arg(target.path())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !mount(&["--bind"], Some(dir)) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the read-only view cannot be made"
            );
            eprintln!("skipping: root, but cannot bind-mount {}", dir.display());
            return None;
        }
        let read_only = mount(&["-o", "remount,bind,ro"], None);
        let view = ReadOnlyView {
            path: target.path().to_path_buf(),
            mounted: Some(target),
        };
        if !read_only {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the read-only view cannot be made"
            );
            eprintln!("skipping: cannot remount {} read-only", view.path.display());
            return None;
        }
        Some(view)
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        match &self.mounted {
            Some(target) => {
                let _ = Command::new("umount").arg(target.path()).status();
            }
            None => set_writable(&self.path, true),
        }
    }
}

/// Makes every folder under `dir` (itself included) writable by its owner or by nobody.
fn set_writable(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if writable { 0o755 } else { 0o555 };
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            set_writable(&entry.path(), writable);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Names and contents of the files in `dir`.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_catalog_in_a_read_only_folder_is_read_and_never_written() {
    let scratch = Scratch::new();
    // Characters that mean something in an SQLite URI.
    let folder = scratch.path("a ?#%25 folder");
    std::fs::create_dir(&folder).unwrap();
    let (catalog, _) = writer(&folder.join("catalog.db"));
    drop(catalog);
    let before = files(&folder);
    // The last connection took its WAL files away: a reader must create the index again.
    assert!(!folder.join("catalog.db-shm").exists());

    let Some(view) = ReadOnlyView::of(&folder) else {
        return;
    };
    let db = view.path.join("catalog.db");
    let reader = Catalog::open_read_only(&db).expect("read-only open of a read-only folder");
    assert_eq!(reader.libraries().expect("libraries").len(), 1);
    assert_eq!(reader.status(None).expect("status").assets, 0);
    drop(reader);
    let refused = Catalog::open(&db).expect_err("a writer in a read-only folder");
    assert!(
        refused
            .to_string()
            .contains(&view.path.display().to_string()),
        "{refused}"
    );
    drop(view);
    assert_eq!(files(&folder), before, "the folder changed");
}

#[test]
fn status_and_list_read_a_read_only_data_folder() {
    let scratch = Scratch::new();
    let data = scratch.path("data");
    let user = "reader@example.com";
    let account = data.join(user);
    std::fs::create_dir_all(&account).unwrap();
    drop(writer(&account.join("catalog.sqlite")).0);
    let before = files(&account);

    let Some(view) = ReadOnlyView::of(&data) else {
        return;
    };
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_icloudpd-rs"))
            .args(args)
            .args(["-u", user, "--data-dir"])
            .arg(&view.path)
            .env_remove("RUST_LOG")
            .output()
            .expect("run the binary");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = run(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Assets: 0"), "{out}");
    let (code, out, err) = run(&["list", "libraries"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("PrimarySync"), "{out}");
    // A command that writes says what is in the way.
    let (code, _, err) = run(&["reset-state", "--yes"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Read-only file system") || err.contains("Permission denied"),
        "{err}"
    );
    drop(view);
    assert_eq!(files(&account), before, "the account folder changed");
}
