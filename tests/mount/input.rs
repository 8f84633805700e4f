//! `mount` refuses bad input with a message naming the fix and exit code 1 (3 when a sign-in
//! is needed), leaving nothing mounted; and it ends cleanly (exit 0) on SIGTERM, SIGINT, SIGHUP
//! and an outside `fusermount3 -u`, serving a busy mount's users until they let go.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// Run `mount` at `mnt` with `flags`; expect exit `code` and a message containing `hint`.
fn refused(env: &Env, mnt: &Path, flags: &[&str], code: i32, hint: &str) -> String {
    let stderr = refused_run(env, mnt, flags, code, hint);
    let canonical = mnt.canonicalize().unwrap_or_else(|_| mnt.to_path_buf());
    assert!(!is_mounted(&canonical), "{flags:?} left a mount");
    stderr
}

/// A mount refused with `code` and `hint` on standard error; its stderr for more checks.
fn refused_run(env: &Env, mnt: &Path, flags: &[&str], code: i32, hint: &str) -> String {
    let m = mnt.display().to_string();
    let mut args = vec!["mount", m.as_str(), "--poll-interval", "3600"];
    args.extend_from_slice(flags);
    let run = env.run(&args);
    assert_eq!(run.code, code, "{args:?}: stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains(hint),
        "{args:?}: expected {hint:?} in:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run.stderr
}

#[test]
fn bad_mountpoints_and_flags_are_refused_with_their_fix() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(50, 0.0005));
    let missing = env.path("missing");
    refused(&env, &missing, &[], 1, "mkdir -p");

    let file = env.path("file");
    std::fs::write(&file, b"x").unwrap();
    refused(&env, &file, &[], 1, "not a directory");

    let full = env.empty_dir("full");
    std::fs::write(full.join("a"), b"x").unwrap();
    refused(&env, &full, &[], 1, "not empty");

    let mnt = env.empty_dir("mnt");
    refused(
        &env,
        &mnt,
        &["--fuse-device", "/nonexistent/fuse"],
        1,
        "modprobe fuse",
    );
    refused(&env, &mnt, &["--poll-interval", "0"], 1, "--poll-interval");
    let inside = mnt.join("mirror").display().to_string();
    refused(
        &env,
        &mnt,
        &["--mirror", &inside],
        1,
        "must not contain each other",
    );
    refused(
        &env,
        &mnt,
        &["--cache-size", "lots"],
        1,
        "--cache-size \"lots\"",
    );
    refused(
        &env,
        &mnt,
        &["--album", "No Such Album"],
        1,
        "no album or smart folder named",
    );

    // Already mounted (by another mount of this library).
    let up = env.mount(&mnt, &["--poll-interval", "3600"]);
    refused_run(&env, &mnt, &[], 1, "fusermount3 -u");
    assert!(is_mounted(&mnt), "the first mount is untouched");
    assert!(std::fs::read_dir(&mnt).unwrap().count() > 0);

    // The same account on a second mountpoint: the shared cache stops it, naming the first
    // mount, before anything about the catalog is said.
    let second = env.empty_dir("second");
    let first = format!("(pid {}: icloudpd-rs mount)", up.pid());
    refused(&env, &second, &[], 1, &first);
    refused(&env, &second, &[], 1, "pass another --cache-dir");
    // With a cache of its own it mounts, following the first mount's catalog; not with a
    // mirror, which needs the catalog (refused without first saying it would follow).
    let cache = env.path("second-cache").display().to_string();
    let mirror = env.path("second-mirror").display().to_string();
    let flags = ["--cache-dir", cache.as_str(), "--mirror", mirror.as_str()];
    let err = refused(
        &env,
        &second,
        &flags,
        1,
        "--mirror needs this account's catalog",
    );
    assert!(
        err.contains(&first) && !err.contains("follows its changes"),
        "{err}"
    );
    let follower = env.mount(&second, &["--poll-interval", "3600", "--cache-dir", &cache]);
    let err = take(&follower.stderr);
    assert!(
        err.contains(&format!("another icloudpd-rs process {first} is updating")),
        "{err}"
    );
    assert!(!err.contains("wait for it"), "{err}");
    assert_eq!(
        std::fs::read_dir(&second).unwrap().count(),
        std::fs::read_dir(&mnt).unwrap().count()
    );
    follower.finish();
    up.finish();
}

/// `--until-found` counts the mirror's downloads: without `--mirror` it is refused, naming the
/// fix, before signing in (the simulator is down here: a sign-in would fail otherwise), rather
/// than silently ignored (it used to mount the whole library).
#[test]
fn until_found_without_a_mirror_is_refused_before_signing_in() {
    let mut env = Env::new(small(5, 0.0005));
    env.stop_sim();
    let mnt = env.empty_dir("mnt");
    refused(
        &env,
        &mnt,
        &["--until-found", "3"],
        1,
        "--until-found needs --mirror DIR",
    );
    // With a mirror the flag is accepted: this run gets as far as signing in, and fails there.
    let mirror = env.path("mirror").display().to_string();
    let m = mnt.display().to_string();
    let run = env.run(&[
        "mount",
        &m,
        "--until-found",
        "3",
        "--mirror",
        &mirror,
        "--poll-interval",
        "3600",
    ]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("--until-found"), "{}", run.stderr);
    assert!(!is_mounted(&mnt));
}

#[test]
fn no_permission_is_explained() {
    if !fuse_ready() || !tool_exists("setpriv") {
        return;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // needs to switch to another user
    }
    let env = Env::new(small(10, 0.0005));
    let as_nobody = |mnt: &Path, hint: &str| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(BIN)
            .arg("mount")
            .arg(mnt)
            .args(["-u", &env.username, "--endpoint", &env.endpoint])
            .args(["--data-dir", "/nonexistent-data"])
            .env("ICLOUD_PASSWORD", &env.password)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(hint), "expected {hint:?} in {err}");
        assert!(!is_mounted(mnt));
    };
    // A mountpoint the user cannot reach.
    let private = env.empty_dir("private/mnt");
    as_nobody(&private, "no permission");
    // A usable mountpoint, but /dev/fuse is root's only.
    let shared = tempfile::tempdir_in("/tmp").unwrap();
    let mnt = shared.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let c = std::ffi::CString::new(shared.path().as_os_str().as_encoded_bytes()).unwrap();
    let m = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid paths.
    unsafe {
        libc::chmod(c.as_ptr(), 0o755);
        libc::chown(m.as_ptr(), 65534, 65534);
    }
    let dev_mode = std::fs::metadata("/dev/fuse").unwrap();
    use std::os::unix::fs::PermissionsExt;
    if dev_mode.permissions().mode() & 0o006 == 0 {
        as_nobody(&mnt, "FUSE access is restricted");
    }
}

#[test]
fn a_needed_two_factor_code_exits_3_with_the_login_hint() {
    if !fuse_ready() {
        return;
    }
    let mut config = small(10, 0.0005);
    config.two_factor = true;
    let env = Env::new(config);
    let mnt = env.empty_dir("mnt");
    refused(&env, &mnt, &[], 3, "icloudpd-rs login");
}

#[test]
fn sigterm_sigint_and_fusermount_unmount_cleanly() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(30, 0.0005));
    for how in ["SIGTERM", "SIGINT", "SIGHUP", "fusermount3 -u"] {
        let mnt = env.empty_dir(&format!("mnt-{}", how.replace(' ', "")));
        // At the default log level, as a user runs it.
        let m = mnt.display().to_string();
        let child = env
            .command(&["mount", &m, "--poll-interval", "3600"])
            .env_remove("RUST_LOG")
            .spawn()
            .unwrap();
        let mut up = Mounted::wait_up(child, &mnt);
        assert!(std::fs::read_dir(&mnt).unwrap().count() > 0);
        let (code, err) = match how {
            "SIGTERM" => up.stop_with(libc::SIGTERM),
            "SIGINT" => up.stop_with(libc::SIGINT),
            // A closed terminal or a dropped ssh session.
            "SIGHUP" => up.stop_with(libc::SIGHUP),
            _ => {
                fusermount_u(&mnt);
                up.wait_exit()
            }
        };
        assert_eq!(code, 0, "{how}: {err}");
        assert!(!is_mounted(&mnt), "{how}: still mounted");
        // A clean stop is not a problem to report, and fuser's own lines are not ours to show.
        assert!(!err.contains("WARN"), "{how}: {err}");
        assert!(!err.contains(" fuser::"), "{how}: {err}");
        assert!(err.contains("unmounted"), "{how}: {err}");
    }
}

/// A signal while a program uses the mount (an open file here; a shell inside it, a copy under
/// way) detaches the mount at once and serves that program until it lets go, then exits 0; a
/// second signal stops at once.
#[test]
fn a_busy_mount_serves_its_users_until_they_let_go_unless_signalled_twice() {
    use std::io::Read;
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(20, 0.005));
    let synced = env.path("synced");
    env.sync(&synced, &[]);
    let expected = tree(&synced, false);
    let (rel, _) = expected.iter().max_by_key(|(_, (size, ..))| *size).unwrap();
    let want = std::fs::read(synced.join(rel)).unwrap();

    // One signal: the open file goes on reading the right bytes; closing it ends the mount.
    let mnt = env.empty_dir("mnt-once");
    let mut up = env.mount(&mnt, &["--poll-interval", "3600"]);
    let mut file = std::fs::File::open(up.mnt.join(rel)).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(up.pid(), libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!is_mounted(&up.mnt), "the mount is detached at once");
    assert!(
        up.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the daemon serves its user: {}",
        take(&up.stderr)
    );
    let mut got = Vec::new();
    file.read_to_end(&mut got).unwrap();
    assert!(
        got == want,
        "bytes read after the signal differ from the synced file"
    );
    drop(file);
    let (code, err) = up.wait_exit();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("programs still use the mount"), "{err}");

    // Two signals: the daemon stops without waiting; the user gets errors, not wrong bytes.
    let mnt = env.empty_dir("mnt-twice");
    let mut up = env.mount(&mnt, &["--poll-interval", "3600"]);
    let mut file = std::fs::File::open(up.mnt.join(rel)).unwrap();
    for _ in 0..2 {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(up.pid(), libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, err) = up.wait_exit();
    assert_eq!(code, 130, "{err}");
    let mut got = Vec::new();
    assert!(
        file.read_to_end(&mut got).is_err(),
        "read after the daemon quit"
    );
}

/// A sync of the account while it is mounted is refused, naming the mount and what to do.
#[test]
fn a_sync_while_mounted_names_the_mount() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(10, 0.0005));
    let mnt = env.empty_dir("mnt");
    let up = env.mount(&mnt, &["--poll-interval", "3600"]);
    let dir = env.empty_dir("photos");
    let run = env.run(&["sync", "-d", dir.to_str().unwrap(), "--no-progress-bar"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("icloudpd-rs mount") && run.stderr.contains("--mirror"),
        "{}",
        run.stderr
    );
    drop(up);
}

/// `fusermount3 -u DIR && icloudpd-rs sync ...`: the unmounted mount is still finishing its
/// mirror's files in flight; the sync waits for it instead of failing on the catalog.
#[test]
fn a_sync_right_after_an_unmount_waits_for_the_mount_to_finish() {
    if !fuse_ready() {
        return;
    }
    let mut config = small(40, 0.02);
    // Slow transfers, so that the mirror has files in flight when the mount is unmounted.
    config.cdn_bandwidth = Some(256 * 1024);
    let env = Env::new(config);
    let mnt = env.empty_dir("mnt");
    let mirror = env.path("mirror").display().to_string();
    let mut up = env.mount(&mnt, &["--poll-interval", "3600", "--mirror", &mirror]);
    // Unmount while the mirror has a file in flight (a partial file beside its destination).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !has_partial_file(Path::new(&mirror)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fusermount_u(&mnt);
    // Still finishing (so still holding the catalog) as the sync starts.
    let finishing = up.child.as_mut().unwrap().try_wait().unwrap().is_none();
    assert!(finishing, "the mount exited before the sync started");
    let run = env.run(&["sync", "-d", &mirror, "--no-progress-bar", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (code, err) = up.wait_exit();
    assert_eq!(code, 0, "{err}");
}

/// Whether a download is in flight somewhere under `dir` (a partial file, by its suffix).
fn has_partial_file(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        path.is_dir() && has_partial_file(&path)
            || e.file_name()
                .to_string_lossy()
                .ends_with(".icloudpd-rs.part")
    })
}

/// A library iCloud does not have is bad input, refused as such on a later mount too (where
/// a refresh that cannot reach iCloud mounts the catalog as it is).
#[test]
fn an_unknown_library_is_refused_without_mounting_the_catalog_as_it_is() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(5, 0.0005));
    let mnt = env.empty_dir("mnt");
    env.mount(&mnt, &["--poll-interval", "3600"]).finish();
    let err = refused(
        &env,
        &mnt,
        &["--library", "nope"],
        1,
        "no library matches --library",
    );
    assert!(!err.contains("mounting it as it is"), "{err}");
}

/// A cache folder inside the mountpoint would be created there, then hidden by the mount: it
/// is refused before signing in (the simulator is down here), and nothing is made inside.
#[test]
fn a_cache_folder_inside_the_mountpoint_is_refused_before_signing_in() {
    if !fuse_ready() {
        return;
    }
    let mut env = Env::new(small(5, 0.0005));
    env.stop_sim();
    let mnt = env.empty_dir("mnt");
    let inside = mnt.join("cache").display().to_string();
    refused(
        &env,
        &mnt,
        &["--cache-dir", &inside],
        1,
        "the cache folder (--cache-dir)",
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0, "made inside");
}
