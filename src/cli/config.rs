//! The TOML config file (`--config FILE`): the same keys as the flags, with the precedence
//! flag > environment > file > default.
//!
//! The file is turned into extra command-line arguments, inserted before the user's own, for
//! every key that was not already given on the command line or through the environment. Parsing
//! then happens once more, so a config value gets exactly the validation a flag gets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;

/// Name of the flag that points at the config file.
const CONFIG_ARG: &str = "config";

/// Return `argv` with the config file's settings inserted, or an error naming the problem.
/// Without `--config`, `argv` comes back unchanged.
pub fn merge_config_file(
    cmd: &clap::Command,
    argv: Vec<OsString>,
) -> Result<Vec<OsString>, String> {
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        // Let the real parse report the error.
        return Ok(argv);
    };
    // The matches and command that hold the arguments (the subcommand's, if one was used).
    let (sub_name, sub_matches, sub_cmd) = match matches.subcommand() {
        Some((name, m)) => match cmd.find_subcommand(name) {
            Some(c) => (Some(name.to_string()), m.clone(), c.clone()),
            None => return Ok(argv),
        },
        None => (None, matches.clone(), cmd.clone()),
    };
    if !sub_cmd.get_arguments().any(|a| a.get_id() == CONFIG_ARG) {
        return Ok(argv);
    }
    let Some(path) = sub_matches.get_one::<std::path::PathBuf>(CONFIG_ARG) else {
        return Ok(argv);
    };
    // A file written for `sync` serves the other commands that read one (the mount): keys
    // only `sync` knows are skipped there, not refused.
    let sync_cmd = cmd
        .find_subcommand("sync")
        .filter(|_| sub_name.as_deref() != Some("sync"));
    let extra = config_args(&sub_cmd, &sub_matches, path, sync_cmd)?;
    if extra.is_empty() {
        return Ok(argv);
    }
    let insert_at = match &sub_name {
        Some(name) => match argv.iter().position(|a| a.to_str() == Some(name.as_str())) {
            Some(i) => i + 1,
            None => return Ok(argv),
        },
        None => 1,
    };
    let mut out = argv[..insert_at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&argv[insert_at..]);
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
    Ok(out)
}

/// Arguments for the keys of the config file at `path` that the user did not set otherwise.
fn config_args(
    cmd: &clap::Command,
    matches: &clap::ArgMatches,
    path: &Path,
    sync_cmd: Option<&clap::Command>,
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
        let long = |c: &clap::Command| c.get_arguments().any(|a| a.get_long() == Some(&wanted));
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(wanted.as_str()))
        else {
            if sync_cmd.is_some_and(long) {
                tracing::debug!(key, "config key of sync only; skipped");
                continue;
            }
            return Err(format!(
                "config file {}: unknown key {key:?}",
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

    /// `cmd()` plus a `mount` subcommand that reads a config file too.
    fn with_mount() -> Command {
        cmd().subcommand(
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
        let m = with_mount().try_get_matches_from(merged).unwrap();
        let m = m.subcommand_matches("mount").unwrap();
        assert_eq!(m.get_one::<String>("cache_size").unwrap(), "5");
        // A key no command knows is still refused.
        let e = merge_config_file(&with_mount(), argv("cache_sise = 5\n")).unwrap_err();
        assert!(e.contains("unknown key \"cache_sise\""), "{e}");
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
            .try_get_matches_from(merged)
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
        let m = cmd().try_get_matches_from(merged).unwrap();
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
