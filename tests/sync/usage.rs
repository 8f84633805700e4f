//! What `sync`, `retry-failed` and `import-existing` take: deleting without a terminal needs
//! `--yes` (else the run is refused before any work), one config file serves all three, and
//! the help says what `--force-size` and `--folder-structure` really do.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use support::*;

/// Every file of the folder with its content hash.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    files_on_disk(root)
}

/// Requests the simulator answered (sign-in, CloudKit, CDN).
fn requests(env: &Env) -> u64 {
    env.sim.state().stats.total()
}

/// The `--help` text of `FLAG` in `sync --help`, on one line.
fn flag_help(env: &Env, flag: &str) -> String {
    let help = env.run(&["sync", "--help"]);
    help.expect_code(0);
    let mut lines = help
        .stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{flag} not in:\n{}", help.stdout));
    let text: Vec<&str> = lines
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    assert!(!text.is_empty(), "{first}: no help text");
    text.join(" ")
}

#[test]
fn deleting_without_a_terminal_needs_yes_else_the_run_is_refused_before_any_work() {
    let env = Env::new(small(12));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let before = expected_tree(&env, &[]);
    let trashed = before.values().next().unwrap().0.clone();
    env.mutate(json!([{"op": "delete", "asset_ids": [trashed]}]));
    let files = snapshot(&photos);
    let in_trash = |env: &Env| env.manifest().values().filter(|e| e.is_deleted).count();
    let trashed_before = in_trash(&env);

    let config = env.folder("deleting.toml");
    std::fs::write(&config, "auto_delete = true\n").unwrap();
    let config_arg = config.display().to_string();
    // Each way of asking for a deletion; the watching one last (it would never end).
    let cases: &[(&[&str], &str)] = &[
        (&["--auto-delete"], "--auto-delete deletes files"),
        (
            &["--delete-after-download"],
            "--delete-after-download moves",
        ),
        (
            &["--keep-icloud-recent-days", "0"],
            "--keep-icloud-recent-days moves",
        ),
        (
            &["--config", &config_arg],
            "`yes = true` in the config file",
        ),
        (
            &["--auto-delete", "--watch-with-interval", "60"],
            "--auto-delete",
        ),
    ];
    for (flags, named) in cases {
        let asked = requests(&env);
        let run = env.sync(&photos, flags);
        // Bad input, not a success: a cron job's mail shows it.
        run.expect_code(1);
        assert!(run.stderr.contains(named), "{flags:?}: {}", run.stderr);
        assert!(run.stderr.contains("--yes"), "{flags:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{flags:?}: {}", run.stdout);
        assert_eq!(requests(&env), asked, "{flags:?}: the run signed in");
        assert_eq!(snapshot(&photos), files, "{flags:?}: files changed");
        assert_eq!(in_trash(&env), trashed_before, "{flags:?}: iCloud changed");
    }

    // A dry run only lists: nothing to confirm.
    let dry = env.sync(&photos, &["--auto-delete", "--dry-run"]);
    dry.expect_code(0);
    assert!(dry.stdout.contains("would delete "), "{}", dry.stdout);

    // `--yes` in the same file lets the cron job delete.
    std::fs::write(&config, "auto_delete = true\nyes = true\n").unwrap();
    let run = env.sync(&photos, &["--config", &config_arg]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("local file(s) deleted"),
        "{}",
        run.stdout
    );
    assert!(snapshot(&photos).len() < files.len());
}

#[test]
fn one_config_file_serves_retry_failed_and_import_existing() {
    let env = Env::new(small(10));
    let photos = env.folder("photos");
    env.sync(&photos, &[]).expect_code(0);
    let files = snapshot(&photos);
    let trashed = expected_tree(&env, &[]).values().next().unwrap().0.clone();
    env.mutate(json!([{"op": "delete", "asset_ids": [trashed]}]));

    // The file a cron sync uses, with every key of sync alone.
    let config = env.folder("all.toml");
    std::fs::write(
        &config,
        "dry_run = true\nonly_print_filenames = true\nwatch_with_interval = 60\n\
         auto_delete = true\nyes = true\nthreads_num = 2\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let folder = photos.display().to_string();
    let both = [
        ("retry-failed", "nothing to retry"),
        ("import-existing", "already recorded"),
    ];
    for (command, says) in both {
        let run = env.run(&[
            command,
            "-d",
            &folder,
            "--config",
            &config_arg,
            "--log-level",
            "debug",
        ]);
        run.expect_code(0);
        assert!(run.stdout.contains(says), "{command}: {}", run.stdout);
        for key in ["dry_run", "watch_with_interval", "auto_delete", "yes"] {
            let note = format!("key \"{key}\" skipped: an option of sync, not of {command}");
            assert!(run.stderr.contains(&note), "{command}: {}", run.stderr);
        }
        // Skipped, not obeyed: nothing deleted, the run did not stay to watch.
        assert_eq!(snapshot(&photos), files, "{command}");

        // On the command line the sync's own options are still refused, and not offered.
        let refused = env.run(&[command, "-d", &folder, "--dry-run"]);
        refused.expect_code(1);
        assert!(refused.stderr.contains("--dry-run"), "{}", refused.stderr);
        let help = env.run(&[command, "--help"]);
        help.expect_code(0);
        assert!(
            !help.stdout.contains("same flags as the sync"),
            "{}",
            help.stdout
        );
        for flag in [
            "--dry-run",
            "--auto-delete",
            "--watch-with-interval",
            "--yes",
        ] {
            assert!(!help.stdout.contains(flag), "{command} offers {flag}");
        }
    }
}

#[test]
fn the_force_size_help_says_adjusted_and_alternative_still_fall_back() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    let planned = |size: &str, force: bool| {
        let mut flags = vec!["--dry-run", "--size", size];
        if force {
            flags.push("--force-size");
        }
        let run = env.sync(&photos, &flags);
        run.expect_code(0);
        run.stdout.lines().count()
    };
    let with_alternative = env
        .manifest()
        .values()
        .filter(|e| e.version == "alternative")
        .count();
    let all = planned("original", false);
    assert!(with_alternative < all, "every asset has an alternative");
    // Assets without an alternative still get their original.
    assert_eq!(planned("alternative", true), planned("alternative", false));
    assert_eq!(planned("adjusted", true), planned("adjusted", false));
    let help = flag_help(&env, "--force-size");
    assert!(
        help.contains("adjusted and alternative still fall back to the original"),
        "{help}"
    );
}

#[test]
fn the_folder_structure_help_names_the_album_and_library_tokens() {
    let env = Env::new(small(30));
    let photos = env.folder("photos");
    let run = env.sync(
        &photos,
        &[
            "--dry-run",
            "--folder-structure",
            "{library}/{album}",
            "--album",
            "Work",
        ],
    );
    run.expect_code(0);
    assert!(!run.stdout.is_empty());
    for path in run.stdout.lines() {
        assert!(path.starts_with("PrimarySync/Work/"), "{path}");
    }
    let help = flag_help(&env, "--folder-structure");
    assert!(
        help.contains("{album}") && help.contains("{library}"),
        "{help}"
    );
}
