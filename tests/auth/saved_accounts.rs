//! Commands given no `-u` take the Apple ID from the one account folder of the data folder
//! with a saved session. A session file in the folder of another Apple ID (copied or moved
//! there) is not an account: it is ignored, with one warning.

use std::path::Path;

use crate::cli::run;

/// A saved session of `username` in `<data>/<folder>/session.json`.
fn saved_session(data: &Path, folder: &str, username: &str) {
    let dir = data.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::json!({"format": 1, "username": username, "client_id": "auth-1"});
    std::fs::write(dir.join("session.json"), json.to_string()).unwrap();
}

#[test]
fn a_session_file_in_another_accounts_folder_is_not_an_account() {
    let data = tempfile::tempdir().expect("tempdir");
    let d = data.path().to_string_lossy().into_owned();
    let status = || run(&["status", "--data-dir", &d], &[], None, "unused-secret");
    saved_session(
        data.path(),
        "sim-user-4@example.com",
        "sim-user-1@example.com",
    );
    let r = status();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no account has signed in"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("sim-user-1"), "{}", r.stdout);

    // Beside the account whose folder it is, it is no second account either.
    saved_session(data.path(), "someone@example.com", "Someone@Example.com");
    let r = status();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Session: Someone@Example.com"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stderr.matches("belongs to another Apple ID").count(),
        1,
        "{}",
        r.stderr
    );
}
