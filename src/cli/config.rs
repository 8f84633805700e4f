//! The TOML config file (`--config FILE`): the same keys as the flags, with the precedence
//! flag > environment > file > default.
//!
//! The file is turned into extra command-line arguments, inserted before the user's own, for
//! every key that was not already given on the command line or through the environment. Parsing
//! then happens once more, so a config value gets exactly the validation a flag gets.
//!
//! One file serves every command that reads one (`sync`, `retry-failed`, `import-existing`,
//! `mount`): a key that only another of them takes (`cache_size` for `sync`, `threads_num` for
//! `mount`, `dry_run` or `auto_delete` for `retry-failed`) is skipped, said at debug level; a
//! key none of them takes is refused. The global
//! `log_level` is a key too, beaten by `--log-level` and by `RUST_LOG`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;

/// Name of the flag that points at the config file.
const CONFIG_ARG: &str = "config";
/// The global flag whose environment variable clap does not know: `RUST_LOG` is read when
/// logging starts, and beats the file as any environment variable does.
const LOG_LEVEL_ARG: &str = "log_level";
const LOG_LEVEL_ENV: &str = "RUST_LOG";

/// The command line with the config file's settings inserted.
#[derive(Debug)]
pub struct Merged {
    pub argv: Vec<OsString>,
    /// The keys skipped because only other commands take them, said once logging has started
    /// (debug level).
    pub notes: Vec<String>,
}

impl Merged {
    fn unchanged(argv: Vec<OsString>) -> Merged {
        Merged {
            argv,
            notes: Vec::new(),
        }
    }
}

/// Return `argv` with the config file's settings inserted, or an error naming the problem.
/// Without `--config`, `argv` comes back unchanged.
pub fn merge_config_file(cmd: &clap::Command, argv: Vec<OsString>) -> Result<Merged, String> {
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        // Let the real parse report the error.
        return Ok(Merged::unchanged(argv));
    };
    // The matches and command that hold the arguments (the subcommand's, if one was used).
    let (sub_name, sub_matches, sub_cmd) = match matches.subcommand() {
        Some((name, m)) => match cmd.find_subcommand(name) {
            Some(c) => (Some(name.to_string()), m.clone(), c.clone()),
            None => return Ok(Merged::unchanged(argv)),
        },
        None => (None, matches.clone(), cmd.clone()),
    };
    if !reads_config(&sub_cmd) {
        return Ok(Merged::unchanged(argv));
    }
    let Some(path) = sub_matches.get_one::<std::path::PathBuf>(CONFIG_ARG) else {
        return Ok(Merged::unchanged(argv));
    };
    // One file serves every command that reads one: the keys of the others are skipped here.
    let others: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|c| reads_config(c) && Some(c.get_name()) != sub_name.as_deref())
        .collect();
    let globals: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| a.is_global_set()).collect();
    let known = Known {
        own: &sub_cmd,
        globals: &globals,
        others: &others,
    };
    let mut skipped = Vec::new();
    let extra = config_args(&known, &sub_matches, path, &mut skipped)?;
    let out = if extra.is_empty() {
        argv
    } else {
        let insert_at = match &sub_name {
            Some(name) => match argv.iter().position(|a| a.to_str() == Some(name.as_str())) {
                Some(i) => i + 1,
                None => return Ok(Merged::unchanged(argv)),
            },
            None => 1,
        };
        let mut out = argv[..insert_at].to_vec();
        out.extend(extra);
        out.extend_from_slice(&argv[insert_at..]);
        out
    };
    // The command line alone parsed: an error now comes from the file, and says so (clap
    // would name only the flag, one the user never typed).
    if let Err(e) = cmd.clone().try_get_matches_from(&out) {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        return Err(format!(
            "config file {}: {}",
            path.display(),
            first.strip_prefix("error: ").unwrap_or(first)
        ));
    }
    let command = sub_name.as_deref().unwrap_or_default();
    let notes = skipped
        .iter()
        .map(|(key, takers)| {
            format!(
                "config file {}: key {key:?} skipped: an option of {}, not of {command}",
                path.display(),
                takers.join(", ")
            )
        })
        .collect();
    Ok(Merged { argv: out, notes })
}

/// Whether `cmd` takes `--config FILE`.
fn reads_config(cmd: &clap::Command) -> bool {
    cmd.get_arguments().any(|a| a.get_id() == CONFIG_ARG)
}

/// The arguments a config key may name.
struct Known<'a> {
    /// Those of the command that runs.
    own: &'a clap::Command,
    /// Global ones (`--log-level`), which the command takes too.
    globals: &'a [&'a clap::Arg],
    /// The other commands that read a config file: their keys are skipped, not refused.
    others: &'a [&'a clap::Command],
}

/// A key skipped because only other commands take it: (key, those commands).
type Skipped = (String, Vec<String>);

/// Arguments for the keys of the config file at `path` that the user did not set otherwise;
/// the keys only other commands take go to `skipped`.
fn config_args(
    known: &Known,
    matches: &clap::ArgMatches,
    path: &Path,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
    if let Some(warning) = exposed_password(path, &table) {
        eprintln!("icloudpd-rs: warning: {warning}");
    }
    let mut out = Vec::new();
    for (key, value) in &table {
        let wanted = key.replace('_', "-");
        let named = |a: &&clap::Arg| a.get_long() == Some(wanted.as_str());
        let arg = known
            .own
            .get_arguments()
            .find(named)
            .or_else(|| known.globals.iter().copied().find(named));
        let Some(arg) = arg else {
            let takers: Vec<String> = known
                .others
                .iter()
                .filter(|c| c.get_arguments().any(|a| named(&a)))
                .map(|c| c.get_name().to_string())
                .collect();
            if !takers.is_empty() {
                skipped.push((key.clone(), takers));
                continue;
            }
            let hint = did_you_mean(key, known)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            return Err(format!(
                "config file {}: unknown key {key:?}{hint}",
                path.display()
            ));
        };
        if arg.get_id() == CONFIG_ARG || arg.is_positional() {
            return Err(format!(
                "config file {}: key {key:?} cannot be set in a config file",
                path.display()
            ));
        }
        let id = arg.get_id().as_str();
        if matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        ) {
            continue;
        }
        if id == LOG_LEVEL_ARG && std::env::var_os(LOG_LEVEL_ENV).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let flag = format!("--{wanted}");
        let takes_value = arg.get_action().takes_values();
        let is_path = arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>();
        let mut push_value = |v: &toml::Value| -> Result<(), String> {
            let text = match v {
                toml::Value::String(s) if is_path => expand_home(s),
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "config file {}: key {key:?} has an unsupported value {other}",
                        path.display()
                    ));
                }
            };
            out.push(OsString::from(format!("{flag}={text}")));
            Ok(())
        };
        match (takes_value, value) {
            (false, toml::Value::Boolean(true)) => out.push(OsString::from(flag.clone())),
            (false, toml::Value::Boolean(false)) => {}
            (false, other) => {
                return Err(format!(
                    "config file {}: key {key:?} is a switch and takes true or false, not {other}",
                    path.display()
                ));
            }
            (true, toml::Value::Array(items)) => {
                for item in items {
                    push_value(item)?;
                }
            }
            (true, v) => push_value(v)?,
        }
    }
    Ok(out)
}

/// The known key nearest to the unknown `key` (a typo: at most two letters off), spelled with
/// `_` or `-` as `key` is.
fn did_you_mean(key: &str, known: &Known) -> Option<String> {
    let wanted = key.replace('_', "-");
    let own = known.own.get_arguments();
    let others = known.others.iter().flat_map(|c| c.get_arguments());
    let (distance, long) = own
        .chain(known.globals.iter().copied())
        .chain(others)
        .filter(|a| !a.is_hide_set() && a.get_id() != CONFIG_ARG)
        .filter_map(|a| a.get_long())
        .map(|long| (strsim::levenshtein(&wanted, long), long))
        .min()?;
    let enough = distance <= 2 && distance * 3 <= wanted.chars().count();
    let hyphens = key.contains('-') && !key.contains('_');
    enough.then(|| {
        if hyphens {
            long.to_string()
        } else {
            long.replace('-', "_")
        }
    })
}

/// `~` and `~/...` as a shell expands them on a command line (a config file is read by no
/// shell): the home folder.
fn expand_home(text: &str) -> String {
    let home = || std::env::var("HOME").ok().filter(|h| !h.is_empty());
    match text.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match home() {
            Some(home) => format!("{home}{rest}"),
            None => text.to_string(),
        },
        _ => text.to_string(),
    }
}

/// A warning when the file holds a password that other users can read (as fetchmail and ssh
/// refuse such files, short of refusing a setup that works).
fn exposed_password(path: &Path, table: &toml::Table) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if !table.contains_key("password") {
        return None;
    }
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "config file {} holds a password and other users can read it (mode {mode:o}); run \
             `chmod 600 {}`, or use password_file or password_command instead",
            path.display(),
            super::global::shell_word(&path.display().to_string())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn cmd() -> Command {
        Command::new("t").subcommand(
            Command::new("sync")
                .arg(
                    Arg::new("config")
                        .long("config")
                        .value_parser(clap::value_parser!(std::path::PathBuf)),
                )
                .arg(Arg::new("directory").long("directory"))
                .arg(
                    Arg::new("threads_num")
                        .long("threads-num")
                        .env("T_THREADS")
                        .default_value("4"),
                )
                .arg(
                    Arg::new("retries")
                        .long("retries")
                        .value_parser(clap::value_parser!(u32)),
                )
                .arg(Arg::new("album").long("album").action(ArgAction::Append))
                .arg(
                    Arg::new("skip_videos")
                        .long("skip-videos")
                        .action(ArgAction::SetTrue),
                )
                // Only the environment test sets this variable (tests share the process).
                .arg(
                    Arg::new("workers")
                        .long("workers")
                        .env("ICLOUDPD_RS_TEST_CONFIG_WORKERS"),
                ),
        )
    }

    /// `cmd()` plus a `mount` subcommand that reads a config file too, and a global flag.
    fn with_mount() -> Command {
        cmd()
            .arg(Arg::new("verbosity").long("verbosity").global(true))
            .subcommand(
                Command::new("mount")
                    .arg(
                        Arg::new("config")
                            .long("config")
                            .value_parser(clap::value_parser!(std::path::PathBuf)),
                    )
                    .arg(Arg::new("cache_size").long("cache-size")),
            )
    }

    #[test]
    fn a_sync_file_serves_the_mount_without_its_sync_only_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let argv = |file: &str| -> Vec<OsString> {
            std::fs::write(&path, file).unwrap();
            vec![
                "t".into(),
                "mount".into(),
                format!("--config={}", path.display()).into(),
            ]
        };
        let merged = merge_config_file(
            &with_mount(),
            argv("directory = \"/p\"\nskip_videos = true\ncache_size = \"5\"\n"),
        )
        .unwrap();
        let m = with_mount().try_get_matches_from(merged.argv).unwrap();
        let m = m.subcommand_matches("mount").unwrap();
        assert_eq!(m.get_one::<String>("cache_size").unwrap(), "5");
        // A key no command knows is still refused.
        let e = merge_config_file(&with_mount(), argv("cache_sise = 5\n")).unwrap_err();
        assert!(e.contains("unknown key \"cache_sise\""), "{e}");
    }

    /// The real command line: one file with keys of `sync` only, of `mount` only and the
    /// global `log_level` serves both, each taking its own keys.
    #[test]
    fn one_file_serves_sync_and_mount_of_the_real_command_line() {
        use clap::{CommandFactory, Parser};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "folder_structure = \"none\"\nthreads_num = 3\nno_progress_bar = true\n\
             cache_size = \"1G\"\npoll_interval = 60\nallow_other = true\n\
             read_timeout = 30\nlog_level = \"warn\"\n",
        )
        .unwrap();
        let cfg = format!("--config={}", path.display());
        let parse = |args: &[&str]| {
            let mut argv: Vec<OsString> = vec!["icloudpd-rs".into()];
            argv.extend(args.iter().map(OsString::from));
            let merged = merge_config_file(&super::super::Cli::command(), argv).unwrap();
            super::super::Cli::try_parse_from(merged.argv).unwrap()
        };
        // `RUST_LOG` beats the file's `log_level` (tests do not set it: the process is shared).
        let file_level = std::env::var_os(LOG_LEVEL_ENV)
            .is_none_or(|v| v.is_empty())
            .then_some(super::super::LogLevel::Warn);
        for sync_like in ["sync", "retry-failed", "import-existing"] {
            let cli = parse(&[sync_like, &cfg]);
            let args = match cli.command {
                super::super::Command::Sync(args) => args.common,
                super::super::Command::RetryFailed(args)
                | super::super::Command::ImportExisting(args) => *args,
                other => panic!("{sync_like} parsed as {other:?}"),
            };
            assert_eq!(args.layout.folder_structure, "none");
            assert_eq!(args.transfer.threads_num, 3);
            assert_eq!(cli.log_level, file_level);
        }
        let cli = parse(&["mount", &cfg, "/mnt"]);
        let super::super::Command::Mount(args) = cli.command else {
            panic!("mount parsed as {:?}", cli.command);
        };
        assert_eq!(args.mount.cache_size, "1G");
        assert_eq!(args.mount.poll_interval, 60);
        assert!(args.mount.allow_other);
        assert_eq!(args.read_timeout, 30);
        assert_eq!(args.layout.folder_structure, "none");
        assert_eq!(cli.log_level, file_level);
        // The flag beats the file, wherever it stands.
        for argv in [
            ["--log-level", "error", "mount", &cfg, "/mnt"],
            ["mount", &cfg, "--log-level", "error", "/mnt"],
        ] {
            let cli = parse(&argv);
            assert_eq!(cli.log_level, Some(super::super::LogLevel::Error));
        }
        let cli = parse(&["mount", &cfg, "--cache-size", "2G", "/mnt"]);
        let super::super::Command::Mount(args) = cli.command else {
            panic!();
        };
        assert_eq!(args.mount.cache_size, "2G");

        // A typo is refused by every command, with the key it probably meant.
        std::fs::write(&path, "cache_sise = \"1G\"\n").unwrap();
        for args in [vec!["sync", &cfg], vec!["mount", &cfg, "/mnt"]] {
            let mut argv: Vec<OsString> = vec!["icloudpd-rs".into()];
            argv.extend(args.iter().map(OsString::from));
            let e = merge_config_file(&super::super::Cli::command(), argv).unwrap_err();
            assert!(
                e.ends_with("unknown key \"cache_sise\" (did you mean \"cache_size\"?)"),
                "{e}"
            );
        }
        // A bad value of a key this command skips is left to the command that takes it.
        std::fs::write(&path, "poll_interval = \"often\"\n").unwrap();
        parse(&["sync", &cfg]);
        // A bad log level is named as any bad value.
        std::fs::write(&path, "log_level = \"loud\"\n").unwrap();
        let argv: Vec<OsString> = vec!["icloudpd-rs".into(), "sync".into(), cfg.clone().into()];
        if file_level.is_some() {
            let e = merge_config_file(&super::super::Cli::command(), argv).unwrap_err();
            assert!(e.contains("invalid value 'loud' for '--log-level"), "{e}");
        }
    }

    /// The keys of `sync` alone (a dry run, watching, deleting) are skipped by the commands
    /// that share its other flags, and each skip names the commands that do take the key.
    #[test]
    fn the_keys_of_sync_alone_are_skipped_by_retry_failed_and_import_existing() {
        use clap::{CommandFactory, Parser};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "dry_run = true\nonly_print_filenames = true\nwatch_with_interval = 60\n\
             auto_delete = true\ndelete_after_download = true\nkeep_icloud_recent_days = 3\n\
             yes = true\nthreads_num = 3\n",
        )
        .unwrap();
        let cfg = format!("--config={}", path.display());
        let merge = |args: &[&str]| {
            let mut argv: Vec<OsString> = vec!["icloudpd-rs".into()];
            argv.extend(args.iter().map(OsString::from));
            merge_config_file(&super::super::Cli::command(), argv).unwrap()
        };
        for command in ["retry-failed", "import-existing"] {
            let merged = merge(&[command, &cfg]);
            let cli = super::super::Cli::try_parse_from(merged.argv).unwrap();
            let (super::super::Command::RetryFailed(args)
            | super::super::Command::ImportExisting(args)) = cli.command
            else {
                panic!("{command} parsed as {:?}", cli.command);
            };
            assert_eq!(args.transfer.threads_num, 3);
            assert_eq!(merged.notes.len(), 7, "{:?}", merged.notes);
            for note in &merged.notes {
                assert!(
                    note.ends_with(&format!(": an option of sync, not of {command}")),
                    "{note}"
                );
            }
        }
        // The mount is told the truth too: only sync takes these keys.
        let merged = merge(&["mount", &cfg, "/mnt"]);
        let watch = merged
            .notes
            .iter()
            .find(|n| n.contains("\"watch_with_interval\""))
            .unwrap();
        assert!(
            watch.ends_with(": an option of sync, not of mount"),
            "{watch}"
        );
    }

    #[test]
    fn a_typo_gets_the_nearest_key_in_its_own_spelling() {
        let e = run("skip_vidoes = true\n", &[]).unwrap_err();
        assert!(e.ends_with("(did you mean \"skip_videos\"?)"), "{e}");
        let e = run("skip-vidoes = true\n", &[]).unwrap_err();
        assert!(e.ends_with("(did you mean \"skip-videos\"?)"), "{e}");
        // Nothing near: no guess.
        let e = run("colour = 1\n", &[]).unwrap_err();
        assert!(e.ends_with("unknown key \"colour\""), "{e}");
    }

    #[test]
    fn a_mount_file_serves_sync_without_its_mount_only_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "directory = \"/p\"\ncache_size = \"5\"\nverbosity = \"high\"\n",
        )
        .unwrap();
        let argv: Vec<OsString> = vec![
            "t".into(),
            "sync".into(),
            format!("--config={}", path.display()).into(),
        ];
        let merged = merge_config_file(&with_mount(), argv).unwrap();
        let m = with_mount().try_get_matches_from(merged.argv).unwrap();
        let m = m.subcommand_matches("sync").unwrap();
        assert_eq!(m.get_one::<String>("directory").unwrap(), "/p");
        // The global flag is a key of every command.
        assert_eq!(m.get_one::<String>("verbosity").unwrap(), "high");
    }

    fn run(config: &str, argv: &[&str]) -> Result<clap::ArgMatches, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, config).unwrap();
        let mut full: Vec<OsString> = vec![
            "t".into(),
            "sync".into(),
            format!("--config={}", path.display()).into(),
        ];
        full.extend(argv.iter().map(OsString::from));
        let merged = merge_config_file(&cmd(), full)?;
        let m = cmd()
            .try_get_matches_from(merged.argv)
            .map_err(|e| e.to_string())?;
        Ok(m.subcommand_matches("sync").unwrap().clone())
    }

    #[test]
    fn a_leading_tilde_of_a_path_is_the_home_folder() {
        let cmd = || {
            Command::new("t").subcommand(
                Command::new("sync")
                    .arg(
                        Arg::new("config")
                            .long("config")
                            .value_parser(clap::value_parser!(PathBuf)),
                    )
                    .arg(
                        Arg::new("directory")
                            .long("directory")
                            .value_parser(clap::value_parser!(PathBuf)),
                    )
                    .arg(Arg::new("album").long("album")),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "directory = \"~/Photos\"\nalbum = \"~/not a path\"\n",
        )
        .unwrap();
        let argv: Vec<OsString> = vec![
            "t".into(),
            "sync".into(),
            format!("--config={}", path.display()).into(),
        ];
        let merged = merge_config_file(&cmd(), argv).unwrap();
        let m = cmd().try_get_matches_from(merged.argv).unwrap();
        let m = m.subcommand_matches("sync").unwrap();
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            m.get_one::<PathBuf>("directory").unwrap(),
            &Path::new(&home).join("Photos")
        );
        assert_eq!(m.get_one::<String>("album").unwrap(), "~/not a path");
    }

    #[test]
    fn file_fills_what_flags_do_not_set() {
        let m = run(
            "directory = \"/p\"\nthreads_num = 8\nalbum = [\"A\", \"B\"]\nskip-videos = true\n",
            &[],
        )
        .unwrap();
        assert_eq!(m.get_one::<String>("directory").unwrap(), "/p");
        assert_eq!(m.get_one::<String>("threads_num").unwrap(), "8");
        let albums: Vec<_> = m.get_many::<String>("album").unwrap().collect();
        assert_eq!(albums, ["A", "B"]);
        assert!(m.get_flag("skip_videos"));
    }

    #[test]
    fn flags_beat_the_file() {
        let m = run(
            "directory = \"/p\"\nalbum = [\"A\"]\n",
            &["--directory", "/q", "--album", "Z"],
        )
        .unwrap();
        assert_eq!(m.get_one::<String>("directory").unwrap(), "/q");
        let albums: Vec<_> = m.get_many::<String>("album").unwrap().collect();
        assert_eq!(albums, ["Z"]);
    }

    #[test]
    fn environment_beats_the_file() {
        // SAFETY: the variable is used by this test only.
        unsafe { std::env::set_var("ICLOUDPD_RS_TEST_CONFIG_WORKERS", "16") };
        let m = run("workers = 8\n", &[]).unwrap();
        assert_eq!(m.get_one::<String>("workers").unwrap(), "16");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = run("no_such_key = 1\n", &[]).unwrap_err();
        assert!(e.contains("unknown key \"no_such_key\""), "{e}");
        let e = run("skip_videos = \"yes\"\n", &[]).unwrap_err();
        assert!(e.contains("switch"), "{e}");
        let e = run("directory = [\n", &[]).unwrap_err();
        assert!(e.contains("not valid TOML"), "{e}");
        // A value the flag's own parser refuses: the file is named, not just the flag.
        let e = run("retries = \"four\"\n", &[]).unwrap_err();
        assert!(e.starts_with("config file ") && e.contains("c.toml"), "{e}");
        assert!(e.contains("invalid value 'four' for '--retries"), "{e}");
    }
}
