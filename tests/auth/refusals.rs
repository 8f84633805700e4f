//! `login` refused, as a user meets it: the exit code (3 when signing in again is the fix, 1
//! for trouble that `login` would not cure), a message naming the cause, and no folder left
//! behind for an account that never signed in.

use icloudpd_rs::sim::SimConfig;

use crate::cli::{
    login_args, password_file, request_code, run, sim, strs, submit_code, two_factor,
};
use crate::support::files_containing;

/// Run a plain `login` against a simulator configured with `config`; returns exit code and
/// standard error.
fn refused(config: SimConfig, password: Option<&str>) -> (i32, String) {
    let sim = sim(config.clone());
    let pw = password
        .map(str::to_string)
        .unwrap_or_else(|| sim.account().password.clone());
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(&sim, data.path(), &password_file(secrets.path(), &pw));
    let r = run(&strs(&args), &[], None, &pw);
    assert!(
        files_containing(data.path(), &pw).is_empty(),
        "password stored"
    );
    // A sign-in refused before Apple accepted the password leaves no folder behind (a
    // mistyped Apple ID); ADP refuses after it, and the session is kept for the next try.
    let left: Vec<_> = std::fs::read_dir(data.path()).unwrap().flatten().collect();
    assert!(config.adp || left.is_empty(), "{left:?}");
    (r.code, r.stderr)
}

/// `sync` with a wrong password: a new account leaves nothing in the data folder; a known
/// account keeps its folder and catalog.
#[test]
fn a_refused_sign_in_leaves_no_folder_for_a_new_account_only() {
    let sim = sim(SimConfig::default());
    let data = tempfile::tempdir().expect("tempdir");
    let photos = tempfile::tempdir().expect("tempdir");
    let sync = |password: &str| {
        let d = data.path().to_string_lossy().into_owned();
        let p = photos.path().to_string_lossy().into_owned();
        let args = [
            "sync",
            "-u",
            &sim.account().username,
            "--endpoint",
            sim.endpoint(),
            "--data-dir",
            &d,
            "-d",
            &p,
            "--dry-run",
        ];
        run(&args, &[("ICLOUD_PASSWORD", password)], None, password)
    };
    let r = sync("definitely-wrong-password");
    assert_eq!(r.code, 3, "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(data.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    // Nobody answering (a wrong --endpoint, no network) is no different.
    let d = data.path().to_string_lossy().into_owned();
    let args = [
        "refresh",
        "-u",
        "someone@example.com",
        "--endpoint",
        "http://127.0.0.1:9",
        "--data-dir",
        &d,
    ];
    let r = run(
        &args,
        &[("ICLOUD_PASSWORD", "unused-secret")],
        None,
        "unused-secret",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(data.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");

    let r = sync(&sim.account().password.clone());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Signed out (the session files gone): the password is asked for, and refused.
    let account = std::fs::read_dir(data.path()).unwrap().flatten().next();
    let account = account.expect("the account's folder").path();
    for session in ["session.json", "cookies.json"] {
        std::fs::remove_file(account.join(session)).unwrap();
    }
    let r = sync("definitely-wrong-password");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        account.join("catalog.sqlite").is_file(),
        "the catalog stays"
    );
}

/// Sign-in refused with exit code 3 and a message holding every one of `says`.
fn assert_refused(config: SimConfig, password: Option<&str>, says: &[&str]) {
    let (code, err) = refused(config, password);
    assert_eq!(code, 3, "{err}");
    for s in says {
        assert!(err.contains(s), "no {s:?} in: {err}");
    }
}

#[test]
fn wrong_password_exit_3() {
    assert_refused(
        SimConfig::default(),
        Some("definitely-wrong-password"),
        &["refused the Apple ID or password"],
    );
}

#[test]
fn locked_account_exit_3() {
    assert_refused(
        SimConfig {
            locked: true,
            ..Default::default()
        },
        None,
        &["is locked", "iforgot.apple.com"],
    );
}

#[test]
fn security_keys_exit_3() {
    assert_refused(
        SimConfig {
            two_factor: true,
            fido: true,
            ..Default::default()
        },
        None,
        &["security key", "YubiKey 5C", "not supported"],
    );
}

#[test]
fn advanced_data_protection_exit_3() {
    assert_refused(
        SimConfig {
            adp: true,
            ..Default::default()
        },
        None,
        &["Advanced Data Protection", "Access iCloud Data on the Web"],
    );
}

/// Throttling is a sign-in refused: exit 3, with a message that says to wait (not to run
/// `login`, which would only add to the sign-ins Apple is throttling).
#[test]
fn throttling_exit_3_after_bounded_retries() {
    let (code, err) = refused(
        SimConfig {
            faults: vec!["api-429=1.0".into()],
            ..Default::default()
        },
        None,
    );
    assert_eq!(code, 3, "{err}");
    for s in ["throttling", "after 3 attempts", "wait a while"] {
        assert!(err.contains(s), "no {s:?} in: {err}");
    }
    assert!(!err.contains("icloudpd-rs login"), "{err}");
}

#[test]
fn no_password_and_no_terminal_exit_3() {
    let sim = sim(SimConfig::default());
    let data = tempfile::tempdir().expect("tempdir");
    let r = run(
        &[
            "login",
            "-u",
            &sim.account().username,
            "--endpoint",
            sim.endpoint(),
            "--data-dir",
            &data.path().to_string_lossy(),
        ],
        &[],
        None,
        &sim.account().password,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("a password is needed"), "{}", r.stderr);
    assert_eq!(sim.state().stats.count("/appleauth/auth/signin/init"), 0);
}

/// `status` of a data folder, as text and as JSON.
fn status_of(data: &std::path::Path, secret: &str) -> (String, serde_json::Value) {
    let d = data.to_string_lossy().into_owned();
    let text = run(&["status", "--data-dir", &d], &[], None, secret);
    let json = run(&["status", "--json", "--data-dir", &d], &[], None, secret);
    let doc = serde_json::from_str(json.stdout.trim()).expect("status --json");
    (text.stdout, doc)
}

/// `login` (password file, then the two-factor code on standard input) into a new data
/// folder: the folder, the folder of the password file, and the `login` arguments.
fn logged_in_with_a_code(
    sim: &icloudpd_rs::sim::BackgroundSim,
) -> (tempfile::TempDir, tempfile::TempDir, Vec<String>) {
    let acct = sim.account();
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(
        sim,
        data.path(),
        &password_file(secrets.path(), &acct.password),
    );
    let code = format!("{}\n", acct.two_factor_code);
    let r = run(&strs(&args), &[], Some(&code), &acct.password);
    assert_eq!(r.code, 0, "{}", r.stderr);
    (data, secrets, args)
}

/// `refresh` of the simulator's account into `data`, with `env`.
fn refresh_of(
    sim: &icloudpd_rs::sim::BackgroundSim,
    data: &std::path::Path,
    env: &[(&str, &str)],
    secret: &str,
) -> crate::cli::Run {
    let d = data.to_string_lossy().into_owned();
    let args = [
        "refresh",
        "-u",
        &sim.account().username,
        "--endpoint",
        sim.endpoint(),
        "--data-dir",
        &d,
    ];
    run(&args, env, None, secret)
}

/// A saved session's tokens go only to the service that issued them: another `--endpoint` on
/// the same data folder is refused before anything is sent to it.
#[test]
fn a_saved_session_is_never_sent_to_another_endpoint() {
    let first = sim(two_factor());
    let pw = first.account().password.clone();
    let (_data, _secrets, args) = logged_in_with_a_code(&first);
    // Another server (same account name and password, as a copy of the first).
    let other = sim(two_factor());
    let mut args = args.clone();
    let at = args.iter().position(|a| a == "--endpoint").unwrap() + 1;
    args[at] = other.endpoint().to_string();
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("was made with"), "{}", r.stderr);
    assert!(r.stderr.contains("another --data-dir"), "{}", r.stderr);
    let reached = other.state().stats.count("/setup/ws/1/accountLogin")
        + other.state().stats.count("/setup/ws/1/validate")
        + other.state().stats.count("/appleauth/auth/signin/init");
    assert_eq!(reached, 0, "the other server was asked");
    // The first server's session is intact.
    args[at] = first.endpoint().to_string();
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// When Apple asks for a code again (the trust expired) or refuses web access (ADP), `status`
/// says so instead of "signed in".
#[test]
fn status_follows_what_apple_last_said() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let (data, secrets, _) = logged_in_with_a_code(&sim);
    let (text, doc) = status_of(data.path(), &acct.password);
    assert!(text.contains("signed in"), "{text}");
    assert_eq!(doc["session"]["trusted"], true, "{doc}");

    sim.state().auth.expire_web_sessions();
    sim.state().auth.expire_trust_tokens();
    let refresh = refresh_of(
        &sim,
        data.path(),
        &[("ICLOUD_PASSWORD", &acct.password)],
        &acct.password,
    );
    assert_eq!(refresh.code, 3, "{}", refresh.stderr);
    let (text, doc) = status_of(data.path(), &acct.password);
    assert!(text.contains("Apple asks for a two-factor code"), "{text}");
    assert_eq!(doc["session"]["signed_in"], false, "{doc}");
    assert_eq!(doc["session"]["trusted"], false, "{doc}");

    // ADP: the password is accepted, web access is not.
    let adp = crate::cli::sim(SimConfig {
        adp: true,
        ..Default::default()
    });
    let pw = adp.account().password.clone();
    let data = tempfile::tempdir().expect("tempdir");
    let args = login_args(&adp, data.path(), &password_file(secrets.path(), &pw));
    assert_eq!(run(&strs(&args), &[], None, &pw).code, 3);
    let (text, doc) = status_of(data.path(), &pw);
    assert!(text.contains("Advanced Data Protection"), "{text}");
    assert_eq!(doc["session"]["signed_in"], false, "{doc}");
}

/// `status` of an account with neither a session nor a catalog says so, and it is no error.
#[test]
fn status_of_an_account_never_signed_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_string_lossy().into_owned();
    let r = run(
        &["status", "-u", "nobody@example.com", "--data-dir", &d],
        &[],
        None,
        "no-password-involved",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Catalog: none yet"), "{}", r.stdout);
    assert!(r.stdout.contains("Session: not signed in"), "{}", r.stdout);
    // Reading is all it did.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

/// A session Apple no longer accepts, in a run with no password to sign in again (cron):
/// `status` then says signed out, not signed in.
#[test]
fn status_says_signed_out_once_the_saved_session_was_refused() {
    let sim = sim(SimConfig::default());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(
        &sim,
        data.path(),
        &password_file(secrets.path(), &acct.password),
    );
    assert_eq!(run(&strs(&args), &[], None, &acct.password).code, 0);
    sim.state().auth.expire_web_sessions();
    let refresh = refresh_of(&sim, data.path(), &[], &acct.password);
    assert_eq!(refresh.code, 3, "{}", refresh.stderr);
    assert!(
        refresh.stderr.contains("a password is needed"),
        "{}",
        refresh.stderr
    );
    let (text, doc) = status_of(data.path(), &acct.password);
    assert_eq!(doc["session"]["signed_in"], false, "{doc}");
    assert!(text.contains("signed out"), "{text}");
}

/// A `--submit-code` that cannot be a code is bad input (exit 1, the expected format named),
/// refused before anything is sent: the sign-in still waits for the right code.
#[test]
fn a_malformed_submitted_code_is_bad_input() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    request_code(&sim, data.path());
    let submit = |code: &str| submit_code(&sim, data.path(), code);
    let requests = sim.state().stats.total();
    let r = submit("12345");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--submit-code"), "{}", r.stderr);
    assert!(r.stderr.contains("6 digits"), "{}", r.stderr);
    assert_eq!(sim.state().stats.total(), requests, "sent to the server");
    let r = submit(&acct.two_factor_code);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A first run into a data folder that does not exist yet, whose sign-in fails (a wrong
/// password, a password command that fails): the folders it made are gone (a folder that was
/// there stays), and no log says a catalog was created.
#[test]
fn a_failed_first_sign_in_leaves_no_data_folder() {
    let sim = sim(SimConfig::default());
    let base = tempfile::tempdir().expect("tempdir");
    let existing = base.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let photos = base.path().join("photos").to_string_lossy().into_owned();
    let wrong = [("ICLOUD_PASSWORD", "wrong-secret")];
    let runs: [&[&str]; 3] = [
        &["sync", "-d", &photos],
        &["refresh", "--password-command", "exit 1"],
        &["login"],
    ];
    for data in [base.path().join("new/data"), existing.join("data")] {
        let d = data.to_string_lossy().into_owned();
        let user = &sim.account().username;
        let common = ["-u", user, "--endpoint", sim.endpoint(), "--data-dir", &d];
        for command in runs {
            let args: Vec<&str> = [command, &common[..], &["--log-level", "info"]].concat();
            // The password given wins over a command.
            let env = if command.contains(&"--password-command") {
                &[][..]
            } else {
                &wrong[..]
            };
            let r = run(&args, env, None, "wrong-secret");
            assert_ne!(r.code, 0, "{args:?}");
            assert!(!r.stderr.contains("created a new catalog"), "{}", r.stderr);
            let left: Vec<_> = std::fs::read_dir(base.path()).unwrap().flatten().collect();
            assert_eq!(left.len(), 1, "{args:?} left {left:?}");
            assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0, "{args:?}");
        }
    }
}
