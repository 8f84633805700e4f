//! Running `sync` for years: the TOML config (flag > env > file), the notification script on
//! sync-complete, sync-failed and 2fa-needed, `--report-json`, and `--watch-with-interval`
//! following changes until a signal stops it.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use icloudpd_rs::sim::faults::{FaultKind, FaultRule};
use serde_json::json;
use support::*;

/// A notification script appending `EVENT DOWNLOADED FAILED TOTAL EXIT` lines to `log`.
fn script(dir: &Path, log: &Path) -> std::path::PathBuf {
    let path = dir.join("notify.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$ICLOUDPD_RS_EVENT $ICLOUDPD_RS_DOWNLOADED $ICLOUDPD_RS_FAILED \
             $ICLOUDPD_RS_TOTAL $ICLOUDPD_RS_EXIT_CODE\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_config_file_fills_in_what_flags_do_not_say() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    let config = env.folder("icloudpd.toml");
    std::fs::write(
        &config,
        format!(
            "directory = \"{}\"\nfolder_structure = \"none\"\nthreads_num = 2\nno-progress-bar = true\n",
            photos.display()
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    env.run(&["sync", "--config", &cfg]).expect_code(0);
    assert_tree(
        &env,
        &photos,
        &expected_tree(&env, &["--folder-structure", "none"]),
    );

    // A flag beats the file.
    let other = env.folder("other");
    let dir = other.display().to_string();
    env.run(&[
        "sync",
        "--config",
        &cfg,
        "-d",
        &dir,
        "--folder-structure",
        "%Y",
    ])
    .expect_code(0);
    assert_tree(
        &env,
        &other,
        &expected_tree(&env, &["--folder-structure", "%Y"]),
    );
}

/// One file per account serves `sync` (from cron) and `mount` (a service): `sync` skips the
/// mount's keys (saying so at debug level), `log_level` is a key (beaten by `RUST_LOG`), and a
/// key no command takes is still refused.
#[test]
fn one_config_file_serves_sync_and_mount() {
    let env = Env::new(small(10));
    let photos = env.folder("photos");
    let config = env.folder("icloudpd.toml");
    std::fs::write(
        &config,
        format!(
            "directory = \"{}\"\nfolder_structure = \"none\"\nno_progress_bar = true\n\
             cache_size = \"1G\"\npoll_interval = 60\nallow_other = true\nread_timeout = 30\n\
             mirror = \"{}\"\ncache-dir = \"/nowhere\"\nlog_level = \"debug\"\n",
            photos.display(),
            env.folder("mirror").display()
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let run = |rust_log: Option<&str>, args: &[&str]| {
        let mut cmd = env.command(args);
        match rust_log {
            Some(v) => cmd.env("RUST_LOG", v),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = wait_bounded(cmd.spawn().unwrap(), Duration::from_secs(300));
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    // The file's log level applies, and says which keys `sync` skipped.
    let r = run(None, &["sync", "--config", &cfg]);
    r.expect_code(0);
    assert_tree(
        &env,
        &photos,
        &expected_tree(&env, &["--folder-structure", "none"]),
    );
    for key in [
        "cache_size",
        "poll_interval",
        "allow_other",
        "read_timeout",
        "mirror",
    ] {
        let note = format!("key \"{key}\" skipped: an option of mount, not of sync");
        assert!(r.stderr.contains(&note), "{note}:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("unknown key"), "{}", r.stderr);
    // `RUST_LOG` beats the file's level; `--log-level` beats both.
    let r = run(Some("warn"), &["sync", "--config", &cfg]);
    r.expect_code(0);
    assert!(!r.stderr.contains("DEBUG"), "{}", r.stderr);
    let r = run(
        Some("debug"),
        &["sync", "--config", &cfg, "--log-level", "warn"],
    );
    r.expect_code(0);
    assert!(!r.stderr.contains("DEBUG"), "{}", r.stderr);

    // A typo is refused, naming the key it probably is.
    std::fs::write(&config, "cache_sise = \"1G\"\n").unwrap();
    let r = env.run(&[
        "sync",
        "--config",
        &cfg,
        "-d",
        &photos.display().to_string(),
    ]);
    r.expect_code(1);
    assert!(
        r.stderr.contains(&format!(
            "config file {cfg}: unknown key \"cache_sise\" (did you mean \"cache_size\"?)"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn a_password_in_a_config_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(small(5));
    let config = env.folder("icloudpd.toml");
    std::fs::write(
        &config,
        format!(
            "directory = \"{}\"\npassword = \"{}\"\n",
            env.folder("photos").display(),
            env.sim.account().password
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let chmod = |mode| std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode));
    chmod(0o644).unwrap();
    let run = env.run(&["sync", "--config", &cfg, "--dry-run"]);
    run.expect_code(0);
    let warning = format!("config file {cfg} holds a password and other users can read it");
    assert!(run.stderr.contains(&warning), "{}", run.stderr);
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(
        !run.stderr.contains(&env.sim.account().password),
        "{}",
        run.stderr
    );
    chmod(0o600).unwrap();
    let run = env.run(&["sync", "--config", &cfg, "--dry-run"]);
    run.expect_code(0);
    assert!(!run.stderr.contains("holds a password"), "{}", run.stderr);
}

#[test]
fn the_notification_script_and_report_tell_how_runs_ended() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    let log = env.folder("events.log");
    let notify = script(env.dir.path(), &log);
    let report = env.folder("report.json");
    let (n, r) = (notify.display().to_string(), report.display().to_string());
    let run = env.sync(&photos, &["--notification-script", &n, "--report-json", &r]);
    run.expect_code(0);
    let (downloaded, _, _, total) = run.summary();
    assert_eq!(
        lines(&log),
        [format!("sync-complete {downloaded} 0 {total} 0")]
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["downloaded"], downloaded);
    assert!(doc["bytes_downloaded"].as_u64().unwrap() > 0);
    // Durations are seconds, named alike at every level.
    assert!(doc["elapsed_secs"].as_f64().unwrap() > 0.0);
    let library = &doc["refresh"]["libraries"][0];
    assert!(library["elapsed_secs"].as_f64().unwrap() > 0.0, "{library}");

    // One photo whose URL is always refused: a partial run.
    let id = env.mutate(json!({"op": "add", "count": 1}))[0].clone();
    env.sim.state().faults.set(
        FaultKind::UrlExpire,
        FaultRule {
            p: 1.0,
            asset_ids: Some([id.clone()].into_iter().collect()),
            remaining: None,
        },
    );
    let run = env.sync(&photos, &["--notification-script", &n, "--report-json", &r]);
    run.expect_code(2);
    let last = lines(&log).pop().unwrap();
    assert!(last.starts_with("sync-failed 0 "), "{last}");
    assert!(last.ends_with(" 2"), "{last}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(doc["status"], "partial");
    assert_eq!(doc["failures"][0]["asset_id"], id.as_str());
}

#[test]
fn a_needed_two_factor_code_is_exit_3_and_notified() {
    let mut config = small(5);
    config.two_factor = true;
    let env = Env::new(config);
    let log = env.folder("events.log");
    let notify = script(env.dir.path(), &log);
    let n = notify.display().to_string();
    let run = env.sync(&env.folder("photos"), &["--notification-script", &n]);
    run.expect_code(3);
    assert!(run.stderr.contains("login"), "{}", run.stderr);
    assert_eq!(lines(&log), ["2fa-needed 0 0 0 3"]);
}

/// `sync --watch-with-interval 1` into `photos`, its events logged to `log` (see `script`).
fn spawn_watch(env: &Env, photos: &Path, log: &Path) -> Watching {
    let notify = script(env.dir.path(), log);
    spawn_notifying(env, photos, &notify, &["--watch-with-interval", "1"])
}

/// `sync -d photos --notification-script notify` with `extra` flags, running.
fn spawn_notifying(env: &Env, photos: &Path, notify: &Path, extra: &[&str]) -> Watching {
    let (dir, n) = (photos.display().to_string(), notify.display().to_string());
    let mut args = vec![
        "sync",
        "-d",
        &dir,
        "--no-progress-bar",
        "--notification-script",
        &n,
    ];
    args.extend_from_slice(extra);
    Watching(Some(env.command(&args).spawn().unwrap()))
}

/// A watching sync, killed if the test fails before it stops it: a failed test must not leave
/// a sync running.
struct Watching(Option<std::process::Child>);

impl Watching {
    /// `signal`, then its output (waited for at most a minute).
    fn stop(mut self, signal: i32) -> std::process::Output {
        let child = self.0.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        wait_bounded(child, Duration::from_secs(60))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A library of `assets`, watched into `photos` with its events logged to `log`, once the
/// watch's first cycle has ended.
fn watch_started(assets: usize) -> (Env, PathBuf, PathBuf, Watching) {
    let env = Env::new(small(assets));
    let photos = env.folder("photos");
    let log = env.folder("events.log");
    let watching = spawn_watch(&env, &photos, &log);
    wait_for_events(&log, &|l| !l.is_empty());
    (env, photos, log, watching)
}

/// Whether a cycle logged after the first `skip` events downloaded something.
fn downloaded_after(events: &[String], skip: usize) -> bool {
    events
        .iter()
        .skip(skip)
        .any(|e| e.starts_with("sync-complete ") && !e.starts_with("sync-complete 0 "))
}

/// Wait (at most a minute) until the events logged to `log` satisfy `pred`.
fn wait_for_events(log: &Path, pred: &dyn Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pred(&lines(log)) {
        assert!(
            Instant::now() < deadline,
            "watch mode stalled: {:?}",
            lines(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_mode_follows_changes_until_stopped() {
    let (env, photos, log, watching) = watch_started(15);
    let added = env.mutate(json!({"op": "add", "count": 2}));
    wait_for_events(&log, &|l| downloaded_after(l, 1));
    let out = watching.stop(libc::SIGTERM);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = expected_tree(&env, &[]);
    for id in &added {
        assert!(expected.values().any(|(a, _)| a == id));
    }
    assert_tree(&env, &photos, &expected);
}

/// A watch whose download folder is replaced between cycles (a disk unmounted, its empty
/// mountpoint left) writes nothing into the other folder: its cycles fail until the folder is
/// back, then it goes on where it was.
#[test]
fn watch_mode_writes_nothing_into_another_folder_at_its_path() {
    let (env, photos, log, watching) = watch_started(10);
    let wait_for = |pred: &dyn Fn(&[String]) -> bool| wait_for_events(&log, pred);
    assert!(
        lines(&log)[0].starts_with("sync-complete "),
        "{:?}",
        lines(&log)
    );
    let away = env.folder("photos-away");
    std::fs::rename(&photos, &away).unwrap();
    std::fs::create_dir(&photos).unwrap();
    env.mutate(json!({"op": "add", "count": 2}));
    wait_for(&|l| l.iter().any(|e| e.starts_with("sync-failed ")));
    assert_eq!(
        std::fs::read_dir(&photos).unwrap().count(),
        0,
        "written into the folder now at the path"
    );
    // The disk is back: the next cycle fetches the new photos into it.
    let failed_at = lines(&log).len();
    std::fs::remove_dir(&photos).unwrap();
    std::fs::rename(&away, &photos).unwrap();
    wait_for(&|l| downloaded_after(l, failed_at));
    let out = watching.stop(libc::SIGTERM);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another folder"), "{stderr}");
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}

/// Ctrl-C reaches the terminal's process group, not the script's own one: the sync tells the
/// script to stop instead of waiting the minute a script is allowed.
#[test]
fn ctrl_c_while_the_notification_script_runs_ends_it() {
    let env = Env::new(small(3));
    let photos = env.folder("photos");
    let log = env.folder("events.log");
    let notify = env.dir.path().join("slow-notify.sh");
    std::fs::write(
        &notify,
        format!(
            "#!/bin/sh\necho \"$ICLOUDPD_RS_EVENT\" >> {}\nsleep 120\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();
    let syncing = spawn_notifying(&env, &photos, &notify, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&log).is_empty() {
        assert!(Instant::now() < deadline, "the script never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = Instant::now();
    let out = syncing.stop(libc::SIGINT);
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "waited {:?} for the script",
        signalled.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("was stopped with the run"), "{stderr}");
    // The sync itself had finished: its files are all there.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}

/// A notification script recording every `ICLOUDPD_RS_*` variable of each call, one call per
/// line (`KEY=VALUE;KEY=VALUE...`).
fn env_script(dir: &Path, log: &Path) -> std::path::PathBuf {
    let path = dir.join("notify-env.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nenv | grep '^ICLOUDPD_RS_' | sort | tr '\\n' ';' >> {log}\necho >> {log}\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn calls(log: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    lines(log)
        .iter()
        .map(|l| {
            l.split(';')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| {
                    (
                        k.trim_start_matches("ICLOUDPD_RS_").to_string(),
                        v.to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_notification_script_gets_every_figure_and_a_failed_run_is_reported() {
    let env = Env::new(small(20));
    let photos = env.folder("photos");
    let log = env.folder("calls.log");
    let notify = env_script(env.dir.path(), &log);
    let report = env.folder("report.json");
    let (n, r) = (notify.display().to_string(), report.display().to_string());
    let flags = [
        "--notification-script",
        n.as_str(),
        "--report-json",
        r.as_str(),
    ];
    let read_report = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
    };

    let run = env.sync(&photos, &flags);
    run.expect_code(0);
    let doc = read_report();
    let first = &calls(&log)[0];
    assert_eq!(first["EVENT"], "sync-complete");
    assert_eq!(first["USERNAME"], env.sim.account().username);
    assert_eq!(first["DIRECTORY"], photos.display().to_string());
    assert_eq!(first["EXIT_CODE"], "0");
    for (var, key) in [
        ("DOWNLOADED", "downloaded"),
        ("SKIPPED", "skipped"),
        ("FAILED", "failed"),
        ("TOTAL", "total"),
        ("BYTES", "bytes_downloaded"),
    ] {
        assert_eq!(
            first[var],
            doc[key].to_string(),
            "{var} vs the report's {key}"
        );
    }
    assert_eq!(first["MESSAGE"], run.stdout.lines().last().unwrap());
    assert!(doc["bytes_downloaded"].as_u64().unwrap() > 0);

    // Nothing new: everything skipped, and said so.
    env.sync(&photos, &flags).expect_code(0);
    let second = &calls(&log)[1];
    assert_eq!(second["DOWNLOADED"], "0");
    assert_eq!(second["SKIPPED"], second["TOTAL"]);
    assert_eq!(
        read_report()["skip_reasons"]["already_downloaded"],
        doc["total"]
    );

    // The service fails for good: exit 1, sync-failed with the error, a report that says why.
    env.sim.state().faults.set(
        FaultKind::ApiMalformed,
        FaultRule {
            p: 1.0,
            asset_ids: None,
            remaining: None,
        },
    );
    let run = env.sync(&photos, &flags);
    run.expect_code(1);
    let third = &calls(&log)[2];
    assert_eq!(third["EVENT"], "sync-failed");
    assert_eq!(third["EXIT_CODE"], "1");
    assert!(!third["MESSAGE"].is_empty());
    assert!(
        run.stderr.contains(third["MESSAGE"].as_str()),
        "{}\n{third:?}",
        run.stderr
    );
    let doc = read_report();
    assert_eq!(doc["status"], "failed");
    assert!(
        doc["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
}

/// What a terminal shows of `raw` output, line by line: the text after the last carriage
/// return of each line, without ANSI escape sequences.
fn visible_lines(raw: &str) -> Vec<String> {
    raw.split('\n')
        .map(|line| {
            let line = line.trim_end_matches('\r');
            let shown = line.rsplit('\r').next().unwrap_or("");
            let mut out = String::new();
            let mut chars = shown.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    // CSI: ESC [ params final-byte.
                    if chars.next() == Some('[') {
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

#[test]
fn log_lines_print_above_the_progress_bar_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` to give the binary a terminal");
        return;
    }
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(BIN);
    for arg in env.account_args(&["sync", "-d", photos.to_str().unwrap(), "--threads-num", "2"]) {
        line.push(' ');
        line.push_str(&quote(&arg));
    }
    let child = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("ICLOUD_PASSWORD", &env.sim.account().password)
        .env("RUST_LOG", "info")
        .env_remove("ICLOUD_USERNAME")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(120));
    assert!(out.status.success(), "{:?}", out.status);
    let raw = String::from_utf8_lossy(&out.stdout);
    // The progress line: its spinner while listing, then the bar (a run this small may end
    // before the bar replaces the spinner).
    assert!(
        raw.contains("listing and planning") || raw.contains(" files "),
        "no progress line was drawn:\n{raw}"
    );
    let lines = visible_lines(&raw);
    let logs: Vec<&String> = lines.iter().filter(|l| l.contains("INFO")).collect();
    assert!(!logs.is_empty(), "no log line to check:\n{raw}");
    for l in logs {
        assert!(
            l.starts_with(|c: char| c.is_ascii_digit()),
            "a log line shares its terminal line with the bar: {l:?}"
        );
    }
    assert_tree(&env, &photos, &expected_tree(&env, &[]));
}
