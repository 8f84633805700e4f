//! Bad input gets a clear error naming the problem, exit code 1, and leaves what was already
//! downloaded untouched: unknown and contradictory flags, bad values, a config file with an
//! unknown key, a download folder that is a file, read-only or full.

use crate::support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use support::*;

/// (inode, mtime, sha256) of every file under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, (u64, i64, String)> {
    files_on_disk(root)
        .into_iter()
        .map(|(p, sha)| {
            let m = std::fs::metadata(root.join(&p)).unwrap();
            (p, (m.ino(), m.mtime(), sha))
        })
        .collect()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn bad_flags_and_config_are_refused_and_touch_nothing() {
    let env = Env::new(small(15));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = snapshot(&photos);
    let config = env.folder("bad.toml");
    std::fs::write(&config, "threads_num = 4\nno_such_setting = true\n").unwrap();
    let config_arg = config.display().to_string();
    let not_toml = env.folder("not.toml");
    std::fs::write(&not_toml, "threads_num = \n").unwrap();
    let not_toml_arg = not_toml.display().to_string();
    let bad_value = env.folder("zero.toml");
    std::fs::write(&bad_value, "threads_num = 0\n").unwrap();
    let bad_value_arg = bad_value.display().to_string();
    let missing = env.folder("missing.toml").display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-flag"], "--no-such-flag"),
        (
            &["--skip-photos", "--skip-videos"],
            "--skip-photos and --skip-videos",
        ),
        (
            &["--delete-after-download", "--keep-icloud-recent-days", "3"],
            "cannot be used with",
        ),
        (&["--size", "huge"], "huge"),
        (&["--folder-structure", "../{:%Y}"], "--folder-structure"),
        (&["--threads-num", "0"], "threads-num"),
        (
            &["--skip-created-before", "yesterday"],
            "--skip-created-before",
        ),
        (&["--recent", "0"], "--recent"),
        (&["--filename-exclude", "[bad"], "--filename-exclude"),
        (&["--config", &config_arg], "no_such_setting"),
        (&["--config", &not_toml_arg], "not valid TOML"),
        (&["--config", &bad_value_arg], "threads-num"),
        (&["--config", &missing], "missing.toml"),
        (&["--album", "No Such Album"], "No Such Album"),
        (
            &["--auto-delete", "--delete-after-download"],
            "--auto-delete cannot be combined",
        ),
        (
            &[
                "--skip-created-before",
                "2024-06-01",
                "--skip-created-after",
                "2024-01-01",
            ],
            "--skip-created-before 2024-06-01 is later than --skip-created-after 2024-01-01",
        ),
        (&["--album", "Trips", "--album", "!Trips"], "Trips"),
        (&["--watch-with-interval", "0"], "watch-with-interval"),
        (&["--size"], "--size"),
        (&["--temp-suffix", "a/b"], "--temp-suffix"),
    ];
    for (flags, named) in cases {
        let run = env.sync(&photos, flags);
        run.expect_code(1);
        assert!(
            run.stderr.contains(named),
            "{flags:?}: the error does not name {named:?}:\n{}",
            run.stderr
        );
        assert_eq!(snapshot(&photos), before, "{flags:?} changed the folder");
    }
    // A reason found during the run is said once, not logged and then printed.
    let run = env.sync(&photos, &["--album", "No Such Album"]);
    assert_eq!(
        run.stderr.matches("No Such Album").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_download_folder_that_is_a_file_is_refused() {
    let env = Env::new(small(5));
    let file = env.folder("not-a-dir");
    std::fs::write(&file, "keep me").unwrap();
    let run = env.sync(&file, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("not a directory"), "{}", run.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn a_read_only_download_folder_is_refused() {
    let env = Env::new(small(5));
    let dir = env.folder("ro");
    std::fs::create_dir(&dir).unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let run = env.sync(&dir, &[]);
    if mounted {
        let _ = Command::new("umount").arg(&dir).status();
    }
    run.expect_code(1);
    assert!(run.stderr.contains("cannot write"), "{}", run.stderr);
}

#[test]
fn a_full_disk_stops_the_run_clearly_and_keeps_every_finished_file_whole() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let mut config = small(40);
    config.size_scale = 0.01;
    let env = Env::new(config);
    let dir = env.folder("small-disk");
    let _unmount = small_disk(&dir, "2m");
    let run = env.sync(&dir, &[]);
    {
        run.expect_code(1);
        assert!(run.stderr.contains("full"), "{}", run.stderr);
        // Every file at a planned path is complete and correct, and recorded.
        let expected = expected_tree(&env, &[]);
        let manifest = env.manifest();
        let on_disk = files_on_disk(&dir);
        let mut finished = 0;
        for (path, sha) in &on_disk {
            let name = path.rsplit('/').next().unwrap();
            if name.starts_with('.') {
                continue; // a partial file, resumed by the next run
            }
            let key = expected
                .get(path)
                .unwrap_or_else(|| panic!("unplanned file {path}"));
            assert_eq!(Some(sha), manifest[key].sha256.as_ref(), "{path}");
            finished += 1;
        }
        assert!(
            finished > 0,
            "nothing fit on the disk: the test proves little"
        );
        assert_recorded(&env, &dir);
    }
}

#[test]
fn a_disk_that_fills_up_later_leaves_what_was_downloaded_untouched() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let env = Env::new(small(20));
    let dir = env.folder("small-disk");
    let _unmount = small_disk(&dir, "8m");
    let photos = dir.join("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = snapshot(&photos);
    let expected = expected_tree(&env, &[]);
    // Fill the disk, then new photos arrive.
    let filler = dir.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    env.mutate(serde_json::json!({"op": "add", "count": 5}));
    let run = env.sync(&photos, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("full"), "{}", run.stderr);
    let after = snapshot(&photos);
    for (path, was) in &before {
        assert_eq!(after.get(path), Some(was), "{path} was touched");
    }
    // New files, if any fit, are whole; partial ones are hidden temp files.
    let now_expected = expected_tree(&env, &[]);
    let manifest = env.manifest();
    for (path, (_, _, sha)) in after.iter().filter(|(p, _)| !before.contains_key(*p)) {
        let name = path.rsplit('/').next().unwrap();
        if !name.starts_with('.') {
            let key = now_expected
                .get(path)
                .unwrap_or_else(|| panic!("unplanned {path}"));
            assert_eq!(Some(sha), manifest[key].sha256.as_ref(), "{path}");
        }
    }
    assert_recorded(&env, &photos);
    assert!(expected.keys().all(|p| before.contains_key(p)));

    // Space again: the run completes.
    std::fs::remove_file(&filler).unwrap();
    env.sync(&photos, &[]).expect_code(0);
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}

/// Unmounts its directory when dropped (also when a test fails).
struct Unmount(std::path::PathBuf);

/// A tmpfs of `size` (`2m`, `256k`) on a new folder `dir`, unmounted when the guard drops.
fn small_disk(dir: &Path, size: &str) -> Unmount {
    std::fs::create_dir(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot mount a tmpfs on {dir:?}");
    Unmount(dir.to_path_buf())
}

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The catalog's own disk fills up during the first listing: one clear message, once.
#[test]
fn a_full_disk_under_the_catalog_is_named_as_such() {
    if !is_root() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test as root"
        );
        eprintln!("skipped: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let env = Env::new(small(300));
    let data = env.folder("small-data-disk");
    let _unmount = small_disk(&data, "256k");
    let photos = env.folder("photos").display().to_string();
    let out = Command::new(BIN)
        .args(["sync", "-u", &env.sim.account().username, "--endpoint"])
        .arg(env.sim.endpoint())
        .arg("--data-dir")
        .arg(&data)
        .args(["-d", &photos, "--no-progress-bar"])
        .env("ICLOUD_PASSWORD", &env.sim.account().password)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the disk holding the catalog is full; free some space there"),
        "{stderr}"
    );
    assert!(!stderr.contains("catalog: catalog"), "{stderr}");
}

/// `icloudpd-rs completions bash`, which must succeed.
fn bash_completion_script() -> String {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `completions SHELL` prints a script the shell accepts, completing every command and flag.
#[test]
fn shell_completions_cover_the_commands_and_flags() {
    let script = bash_completion_script();
    for word in [
        "sync",
        "mount",
        "retry-failed",
        "--folder-structure",
        "--cache-size",
    ] {
        assert!(script.contains(word), "{word} is not completed");
    }
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    std::io::Write::write_all(&mut bash.stdin.take().unwrap(), script.as_bytes()).unwrap();
    assert!(bash.wait().unwrap().success(), "bash rejects the script");
    let bad = Command::new(BIN)
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

/// The bash script completes after a subcommand too (`icloudpd-rs sync --skip-v<TAB>`), which
/// clap_complete's own script does not for a hyphenated binary name (clap-rs/clap#6421).
#[test]
fn bash_completes_the_flags_of_a_subcommand() {
    let script = bash_completion_script();
    // The function the script registers for the binary, as bash calls it on <TAB>.
    let function = script
        .lines()
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.first() == Some(&"complete") && words.last() == Some(&"icloudpd-rs"))
                .then(|| words[words.iter().position(|w| *w == "-F").unwrap() + 1].to_string())
        })
        .expect("a `complete -F FUNCTION ... icloudpd-rs` line");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("icloudpd-rs.bash");
    std::fs::write(&path, &script).unwrap();
    // (words on the line, word under the cursor): the candidates bash would offer.
    let complete = |words: &[&str]| -> Vec<String> {
        let line = words.join(" ");
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let quoted = quoted.join(" ");
        let current = words.len() - 1;
        let program = format!(
            "source {path}\n\
             COMP_WORDS=({quoted}); COMP_CWORD={current}; COMP_LINE='{line}'; \
             COMP_POINT=${{#COMP_LINE}}\n\
             {function} icloudpd-rs '{word}' '{previous}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            path = path.display(),
            word = words[current],
            previous = words[current - 1],
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash");
        assert!(out.status.success(), "{program}\n{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    };
    let flags = complete(&["icloudpd-rs", "sync", "--skip-v"]);
    assert!(flags.iter().any(|w| w == "--skip-videos"), "{flags:?}");
    let what = complete(&["icloudpd-rs", "list", "a"]);
    assert!(what.iter().any(|w| w == "albums"), "{what:?}");
    let sizes = complete(&["icloudpd-rs", "sync", "--size", ""]);
    for size in ["original", "medium", "thumb"] {
        assert!(sizes.iter().any(|w| w == size), "{size}: {sizes:?}");
    }
    // The top level completes as before.
    let commands = complete(&["icloudpd-rs", "mo"]);
    assert_eq!(commands, ["mount"]);
}

/// A listing piped into `head` ends quietly when `head` has what it wants (no panic, no
/// backtrace), as Unix tools do.
#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new(small(5));
    env.sync(&env.folder("photos"), &[]).expect_code(0);
    let data = env.data().display().to_string();
    for args in [
        vec!["completions", "bash"],
        vec!["status", "--data-dir", &data],
        vec!["list", "albums", "--data-dir", &data],
    ] {
        // `| head -c 0`: the reader is gone before the first line.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(BIN)
            .args(&args)
            .env_remove("ICLOUD_USERNAME")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

/// A `--report-json` path that cannot be written is refused before anything is downloaded
/// (it used to be found out after the whole run, which then exited 0 without its report).
#[test]
fn a_report_path_in_a_missing_folder_is_refused_before_the_run() {
    let env = Env::new(small(5));
    let photos = env.folder("photos");
    let report = env.folder("no-such-folder").join("report.json");
    let run = env.sync(&photos, &["--report-json", report.to_str().unwrap()]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("--report-json") && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );
    assert!(!photos.exists(), "nothing was downloaded");
}
