//! `icloudpd-rs login` as a user runs it: the real binary against the simulator, checking exit
//! codes, what is printed, and that the password shows up in no output (every run logs at
//! `RUST_LOG=trace`) and in no file of the data directory.

use crate::support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use icloudpd_rs::sim::{BackgroundSim, SimConfig};
use support::files_containing;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_icloudpd-rs");
const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

pub(crate) fn sim(config: SimConfig) -> BackgroundSim {
    BackgroundSim::start(SimConfig {
        assets: 5,
        iterations: 1000,
        ..config
    })
    .expect("simulator starts")
}

pub(crate) fn two_factor() -> SimConfig {
    SimConfig {
        two_factor: true,
        ..Default::default()
    }
}

/// A finished run.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Run the binary with `args`, optional stdin text (else stdin is /dev/null), and `env`.
/// Panics if `secret` appears in its output.
pub(crate) fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>, secret: &str) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("ICLOUD_USERNAME")
        .env_remove("ICLOUD_PASSWORD")
        .env_remove("ICLOUDPD_RS_ENDPOINT")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("RUST_LOG", "trace")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the binary");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out: Output = wait_bounded(child, Duration::from_secs(120));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!secret.is_empty());
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the password appears in the output of {args:?}"
    );
    run
}

/// Wait for the child, draining its output as it comes (a full pipe would block it); kill it
/// (and fail) if it hangs.
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> Output {
    use std::io::Read;
    fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned();
            let tail: String = err
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("the binary hung for {limit:?}; end of stderr:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `login` arguments for the simulator's account, password from a file.
pub(crate) fn login_args(sim: &BackgroundSim, data: &Path, pwfile: &Path) -> Vec<String> {
    vec![
        "login".into(),
        "-u".into(),
        sim.account().username.clone(),
        "--endpoint".into(),
        sim.endpoint().to_string(),
        "--data-dir".into(),
        data.to_string_lossy().into_owned(),
        "--password-file".into(),
        pwfile.to_string_lossy().into_owned(),
    ]
}

pub(crate) fn password_file(dir: &Path, password: &str) -> std::path::PathBuf {
    let path = dir.join("pw");
    std::fs::write(&path, format!("{password}\n")).expect("write password file");
    path
}

pub(crate) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn login_without_second_factor() {
    let sim = sim(SimConfig::default());
    let pw = sim.account().password.clone();
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(&sim, data.path(), &password_file(secrets.path(), &pw));
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Signed in as"), "{}", r.stdout);
    assert!(
        files_containing(data.path(), &pw).is_empty(),
        "password stored"
    );
}

#[test]
fn password_from_the_environment_and_code_from_stdin() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    let args = [
        "login",
        "-u",
        &acct.username,
        "--endpoint",
        sim.endpoint(),
        "--data-dir",
        &data.path().to_string_lossy(),
    ]
    .map(str::to_string);
    let code_line = format!("{}\n", acct.two_factor_code);
    let r = run(
        &strs(&args),
        &[("ICLOUD_PASSWORD", &acct.password)],
        Some(&code_line),
        &acct.password,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("trusted until about"), "{}", r.stdout);
    assert!(
        files_containing(data.path(), &acct.password).is_empty(),
        "password stored"
    );
    // The run logged at trace level: not one of the session's cookie values is in its log.
    let values = cookie_values(data.path());
    assert!(values.len() >= 3, "{values:?}");
    for value in &values {
        assert!(
            !r.stderr.contains(value.as_str()),
            "cookie value {value} logged"
        );
    }

    // Next time: nothing to type, no SRP.
    let inits = sim.state().stats.count("/appleauth/auth/signin/init");
    let r = run(
        &strs(&args),
        &[("ICLOUD_PASSWORD", &acct.password)],
        None,
        &acct.password,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        sim.state().stats.count("/appleauth/auth/signin/init"),
        inits
    );
    let d = data.path().to_string_lossy().into_owned();
    let r = run(
        &["status", "--json", "--data-dir", &d],
        &[],
        None,
        &acct.password,
    );
    let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(doc["session"]["two_factor"], true, "{doc}");
    assert_eq!(doc["session"]["trusted"], true, "{doc}");
}

#[test]
fn second_factor_without_a_terminal_says_which_commands_to_run() {
    let sim = sim(two_factor());
    let pw = sim.account().password.clone();
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(&sim, data.path(), &password_file(secrets.path(), &pw));
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("two-factor authentication is needed"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--request-code"), "{}", r.stderr);
    assert!(r.stderr.contains("--submit-code CODE"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("--data-dir {}", data.path().display())),
        "the suggested command must find this session: {}",
        r.stderr
    );
    assert_eq!(
        sim.state()
            .stats
            .count("/appleauth/auth/verify/trusteddevice/securitycode"),
        0,
        "a code was pushed although nobody can type it"
    );
}

/// Headless sign-in, step 1: `login --request-code` with a password file (must succeed).
pub(crate) fn request_code(sim: &BackgroundSim, data: &Path) -> Run {
    let acct = sim.account();
    let secrets = tempfile::tempdir().expect("tempdir");
    let mut args = login_args(sim, data, &password_file(secrets.path(), &acct.password));
    args.push("--request-code".into());
    let r = run(&strs(&args), &[], None, &acct.password);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

/// Headless sign-in, step 2: `login --submit-code CODE` in a process given no password.
pub(crate) fn submit_code(sim: &BackgroundSim, data: &Path, code: &str) -> Run {
    let acct = sim.account();
    let d = data.to_string_lossy();
    let args = [
        "login",
        "-u",
        &acct.username,
        "--endpoint",
        sim.endpoint(),
        "--data-dir",
        &d,
        "--submit-code",
        code,
    ];
    run(&args, &[], None, &acct.password)
}

#[test]
fn headless_request_then_submit_in_two_processes() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    let r = request_code(&sim, data.path());
    assert!(r.stdout.contains("--submit-code CODE"), "{}", r.stdout);

    // The second process gets no password at all.
    let r = submit_code(&sim, data.path(), &acct.two_factor_code);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Signed in as"), "{}", r.stdout);
    assert_eq!(sim.state().stats.count("/appleauth/auth/signin/init"), 1);
}

#[test]
fn wrong_codes_exit_3() {
    let sim = sim(two_factor());
    let acct = sim.account().clone();
    let wrong = if acct.two_factor_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let args = login_args(
        &sim,
        data.path(),
        &password_file(secrets.path(), &acct.password),
    );
    let input = format!("{wrong}\n{wrong}\n{wrong}\n");
    let r = run(&strs(&args), &[], Some(&input), &acct.password);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("verification code was wrong (3 attempts)"),
        "{}",
        r.stderr
    );
}

#[test]
fn missing_username_is_a_usage_error() {
    let r = run(
        &["login", "--data-dir", "/nonexistent"],
        &[],
        None,
        "unused-secret",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("-u/--username"), "{}", r.stderr);
}

/// Without `-u`, the one account signed in to is used; with several, the error names them.
#[test]
fn without_a_username_the_only_saved_account_is_used() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_string_lossy().into_owned();
    let mut names = Vec::new();
    for seed in [1, 2] {
        let sim = sim(SimConfig {
            seed,
            ..SimConfig::default()
        });
        let pw = sim.account().password.clone();
        let secrets = tempfile::tempdir().expect("tempdir");
        let args = login_args(&sim, data.path(), &password_file(secrets.path(), &pw));
        assert_eq!(run(&strs(&args), &[], None, &pw).code, 0);
        names.push(sim.account().username.clone());
        // `status` (offline) finds the account by itself: signed in, no catalog yet.
        let r = run(&["status", "--data-dir", &d], &[], None, &pw);
        if seed == 1 {
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert!(r.stdout.contains("Catalog: none yet"), "{}", r.stdout);
            let session = format!("Session: {} signed in", names[0]);
            assert!(r.stdout.contains(&session), "{}", r.stdout);
            // The account has no second factor: no code will be asked, and status says so.
            assert!(
                r.stdout.contains("Two-factor trust: not needed"),
                "{}",
                r.stdout
            );
            let r = run(&["status", "--json", "--data-dir", &d], &[], None, &pw);
            let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
            assert_eq!(doc["assets"], 0);
            assert_eq!(doc["catalog"], serde_json::Value::Null);
            assert_eq!(doc["session"]["username"], names[0].as_str());
            assert_eq!(doc["session"]["two_factor"], false);
        } else {
            assert_eq!(r.code, 1, "{}", r.stderr);
            names.sort();
            let listed = format!("several accounts ({})", names.join(", "));
            assert!(r.stderr.contains(&listed), "{}", r.stderr);
            assert!(r.stderr.contains("-u/--username"), "{}", r.stderr);
        }
    }
}

#[test]
fn password_command_is_used_and_its_failure_reported_without_output() {
    let sim = sim(SimConfig::default());
    let acct = sim.account().clone();
    let data = tempfile::tempdir().expect("tempdir");
    let base = [
        "login",
        "-u",
        &acct.username,
        "--endpoint",
        sim.endpoint(),
        "--data-dir",
        &data.path().to_string_lossy(),
        "--password-command",
    ]
    .map(str::to_string);
    let mut ok = base.to_vec();
    ok.push(format!("printf '%s\\n' '{}'", acct.password));
    let r = run(&strs(&ok), &[], None, &acct.password);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let fresh = tempfile::tempdir().expect("tempdir");
    let mut failing = base.to_vec();
    failing[6] = fresh.path().to_string_lossy().into_owned();
    failing.push("echo leaked-output-xyz; exit 4".into());
    let r = run(&strs(&failing), &[], None, "leaked-output-xyz");
    // A local failure (exit 1): signing in again would not fix the command.
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("password command failed"), "{}", r.stderr);
}

fn tls_sim() -> BackgroundSim {
    sim(SimConfig {
        tls_cert: Some(Path::new(TLS_DIR).join("server.pem")),
        tls_key: Some(Path::new(TLS_DIR).join("server.key")),
        ..Default::default()
    })
}

#[test]
fn https_trusts_ssl_cert_file_and_ssl_cert_dir_and_nothing_else() {
    let sim = tls_sim();
    assert!(sim.endpoint().starts_with("https://"), "{}", sim.endpoint());
    let pw = sim.account().password.clone();
    let secrets = tempfile::tempdir().expect("tempdir");
    let pwfile = password_file(secrets.path(), &pw);

    let data = tempfile::tempdir().expect("tempdir");
    let args = login_args(&sim, data.path(), &pwfile);
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 1, "an unknown CA must be refused: {}", r.stderr);
    assert!(r.stderr.contains("cannot reach iCloud"), "{}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("certificate"),
        "{}",
        r.stderr
    );

    let ca = format!("{TLS_DIR}/ca.pem");
    let r = run(&strs(&args), &[("SSL_CERT_FILE", &ca)], None, &pw);
    assert_eq!(r.code, 0, "SSL_CERT_FILE: {}", r.stderr);

    let data = tempfile::tempdir().expect("tempdir");
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&ca, certs.path().join("test-ca.pem")).expect("copy");
    let dirs = format!("/nonexistent-dir:{}", certs.path().display());
    let args = login_args(&sim, data.path(), &pwfile);
    let r = run(&strs(&args), &[("SSL_CERT_DIR", &dirs)], None, &pw);
    assert_eq!(r.code, 0, "SSL_CERT_DIR list: {}", r.stderr);
}

#[test]
fn a_silent_server_cannot_hang_login() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let holder = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(8) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(60));
        drop(open);
    });
    let data = tempfile::tempdir().expect("tempdir");
    let r = run(
        &[
            "login",
            "-u",
            "someone@example.com",
            "-p",
            "pw-for-silent-server",
            "--endpoint",
            &endpoint,
            "--data-dir",
            &data.path().to_string_lossy(),
            "--timeout",
            "1",
        ],
        &[],
        None,
        "pw-for-silent-server",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no answer in time"), "{}", r.stderr);
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_domain_exit_3() {
    use support::{Replay, load_cassette, synthetic};
    let mut interactions: Vec<_> = load_cassette("auth_non_2fa.yml")
        .into_iter()
        .filter(|i| i.path != "/setup/ws/1/accountLogin")
        .collect();
    interactions.push(synthetic(
        "POST",
        "/setup/ws/1/accountLogin",
        200,
        r#"{"domainToUse":"iCloud.com.cn"}"#,
    ));
    let server = Replay::start(interactions).await;
    let data = tempfile::tempdir().expect("tempdir");
    let dir = data.path().to_string_lossy().into_owned();
    let endpoint = server.endpoint.clone();
    let r = tokio::task::spawn_blocking(move || {
        run(
            &[
                "login",
                "-u",
                "jdoe@gmail.com",
                "-p",
                "pw-other-domain",
                "--endpoint",
                &endpoint,
                "--data-dir",
                &dir,
            ],
            &[],
            None,
            "pw-other-domain",
        )
    })
    .await
    .expect("run");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("Apple insists on using iCloud.com.cn"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--domain cn"), "{}", r.stderr);
}

/// Without -u, a data folder with no account says so (and that it does not exist), instead of
/// only asking for an Apple ID.
#[test]
fn no_apple_id_and_a_missing_data_folder_are_both_named() {
    let data = tempfile::tempdir().expect("tempdir");
    let missing = data.path().join("nowhere");
    let r = run(
        &["status", "--data-dir", missing.to_str().unwrap()],
        &[],
        None,
        "no-password-involved",
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("nowhere (it does not exist)") && r.stderr.contains("-u/--username"),
        "{}",
        r.stderr
    );
}

/// `--log-level` (icloudpd's flag) wins over RUST_LOG.
#[test]
fn log_level_flag_wins_over_the_environment() {
    let sim = sim(SimConfig::default());
    let pw = sim.account().password.clone();
    let data = tempfile::tempdir().expect("tempdir");
    let secrets = tempfile::tempdir().expect("tempdir");
    let mut args = login_args(&sim, data.path(), &password_file(secrets.path(), &pw));
    args.extend(["--log-level".to_string(), "warn".to_string()]);
    // `run` sets RUST_LOG=trace.
    let r = run(&strs(&args), &[], None, &pw);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for level in [" TRACE ", " DEBUG ", " INFO "] {
        assert!(!r.stderr.contains(level), "{level} in: {}", r.stderr);
    }
}

/// The values (longer than 8 characters) of the cookies saved under `data`.
fn cookie_values(data: &std::path::Path) -> Vec<String> {
    let mut values = Vec::new();
    for account in std::fs::read_dir(data).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(account.path().join("cookies.json")) else {
            continue;
        };
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        for cookie in doc.as_array().into_iter().flatten() {
            let raw = cookie["raw_cookie"].as_str().unwrap_or_default();
            let value = raw.split(';').next().and_then(|kv| kv.split_once('='));
            if let Some((_, v)) = value
                && v.trim_matches('"').len() > 8
            {
                values.push(v.trim_matches('"').to_string());
            }
        }
    }
    values
}

/// `-p ""` or an empty `ICLOUD_PASSWORD` is no password: `--password-file` is used, and with
/// no other source the run says a password is needed without sending a sign-in that Apple
/// could only refuse (refusals count towards throttling).
#[test]
fn an_empty_password_is_no_password() {
    let sim = sim(SimConfig::default());
    let pw = sim.account().password.clone();
    let secrets = tempfile::tempdir().expect("tempdir");
    let pwfile = password_file(secrets.path(), &pw);
    let empty_env = [("ICLOUD_PASSWORD", "")];
    let empty_flag = ["-p".to_string(), String::new()];
    for (flag, env) in [(&empty_flag[..], &[][..]), (&[][..], &empty_env[..])] {
        let data = tempfile::tempdir().expect("tempdir");
        let mut args = login_args(&sim, data.path(), &pwfile);
        args.extend_from_slice(flag);
        let r = run(&strs(&args), env, None, &pw);
        assert_eq!(r.code, 0, "{flag:?} {env:?}: {}", r.stderr);
        assert!(r.stdout.contains("Signed in as"), "{}", r.stdout);

        let data = tempfile::tempdir().expect("tempdir");
        let mut args = login_args(&sim, data.path(), &pwfile);
        args.truncate(args.len() - 2); // no --password-file
        args.extend_from_slice(flag);
        let inits = sim.state().stats.count("/appleauth/auth/signin/init");
        let r = run(&strs(&args), env, None, &pw);
        assert_eq!(r.code, 3, "{flag:?} {env:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("a password is needed") && r.stderr.contains("none was given"),
            "{flag:?} {env:?}: {}",
            r.stderr
        );
        assert_eq!(
            sim.state().stats.count("/appleauth/auth/signin/init"),
            inits,
            "{flag:?} {env:?}: a sign-in was sent with an empty password"
        );
    }
}
