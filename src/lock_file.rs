//! Lock files: an exclusive `flock` that dies with its process (so a killed holder never
//! leaves a stale lock), with the holder's pid written inside for humans. Who holds a lock is
//! read from `/proc/locks`, so a stale pid in the file is never believed. Used by the catalog
//! (one writer) and the block cache (one mount per cache directory).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Takes the exclusive lock of `path` (created with `mode` if missing) and writes our pid in
/// it; `Ok(None)` when another process holds it.
pub(crate) fn try_lock(path: &Path, mode: u32) -> std::io::Result<Option<File>> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(Some(file))
}

/// Takes the exclusive lock of the directory `dir` itself (no file is added to it: a download
/// folder holds the user's photos and nothing else); `Ok(None)` when another process holds
/// it. Filesystems that cannot lock a directory (NFS emulates `flock` with byte-range locks,
/// which need a file open for writing) give `Err`.
pub(crate) fn try_lock_dir(dir: &Path) -> std::io::Result<Option<File>> {
    let handle = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?;
    match handle.try_lock() {
        Ok(()) => Ok(Some(handle)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Rewrites the lock file of a lock this process holds to say it is stopping: its work is
/// done (a mount unmounted) and it will let go within seconds. A process that wants the lock
/// waits for such a holder ([`holder_is_stopping`]) instead of failing.
pub(crate) fn announce_stopping(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let text = format!("{}\n{STOPPING}\n", std::process::id());
    file.set_len(0)?;
    file.write_all_at(text.as_bytes(), 0)
}

/// Whether the lock file says its holder is stopping (see [`announce_stopping`]).
pub(crate) fn holder_is_stopping(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().nth(1) == Some(STOPPING))
}

const STOPPING: &str = "stopping";

/// The process holding the lock of `lock_path`, as "pid 1234: icloudpd-rs mount" (its
/// program and subcommand), or `None` when no process holds it.
pub(crate) fn holder(lock_path: &Path) -> Option<String> {
    let pid = match holder_from_proc_locks(lock_path) {
        Ok(pid) => pid?,
        // No /proc/locks (unusual sandbox): trust the pid file if that process exists.
        Err(()) => live_pid_from_file(lock_path)?,
    };
    Some(describe(pid))
}

/// [`holder`] of a lock just found held (a `try_lock` failed): when `/proc/locks` shows no
/// holder, the pid in the file is the holder's (every holder writes its own as it takes the
/// lock). `/proc/locks` is listed a page per `read`, afresh each time, so while other
/// processes take and drop locks a line can be skipped.
pub(crate) fn holder_of_held(lock_path: &Path) -> Option<String> {
    holder(lock_path).or_else(|| live_pid_from_file(lock_path).map(describe))
}

fn describe(pid: u32) -> String {
    match command_of(pid) {
        Some(command) => format!("pid {pid}: {command}"),
        None => format!("pid {pid}"),
    }
}

fn live_pid_from_file(lock_path: &Path) -> Option<u32> {
    pid_from_file(lock_path).filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// "icloudpd-rs mount": the program's name and its subcommand (its first argument, unless that
/// is an option: other arguments may be values, a password among them).
fn command_of(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next().filter(|p| !p.is_empty())?;
    let program = program.rsplit('/').next().unwrap_or(&program).to_string();
    Some(
        match args.next().filter(|a| !a.is_empty() && !a.starts_with('-')) {
            Some(sub) => format!("{program} {sub}"),
            None => program,
        },
    )
}

fn pid_from_file(lock_path: &Path) -> Option<u32> {
    std::fs::read_to_string(lock_path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Looks for a `FLOCK ... WRITE` entry on the lock file's inode in `/proc/locks`.
/// `Err(())` when `/proc/locks` cannot be read.
fn holder_from_proc_locks(lock_path: &Path) -> Result<Option<u32>, ()> {
    let Ok(meta) = std::fs::metadata(lock_path) else {
        return Ok(None);
    };
    let (major, minor) = (dev_major(meta.dev()), dev_minor(meta.dev()));
    // Read a few times: a line can be skipped while the list changes (see `holder_of_held`).
    for _ in 0..3 {
        let locks = std::fs::read_to_string("/proc/locks").map_err(|_| ())?;
        let found = locks.lines().find_map(|line| {
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:123456 0 EOF" (blocked waiters start with "->").
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[1] != "FLOCK" || fields[3] != "WRITE" {
                return None;
            }
            let mut id = fields[5].split(':');
            let maj = u64::from_str_radix(id.next()?, 16).ok()?;
            let min = u64::from_str_radix(id.next()?, 16).ok()?;
            let ino: u64 = id.next()?.parse().ok()?;
            (maj == major && min == minor && ino == meta.ino()).then(|| fields[4].parse().ok())?
        });
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Linux `dev_t` encoding (glibc's `gnu_dev_major`).
fn dev_major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// Linux `dev_t` encoding (glibc's `gnu_dev_minor`).
fn dev_minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_decode_like_glibc() {
        // makedev(8, 1) and makedev(259, 70000).
        assert_eq!((dev_major(0x801), dev_minor(0x801)), (8, 1));
        let dev = (70000u64 & 0xff) | ((259u64 & 0xfff) << 8) | ((70000u64 & !0xff) << 12);
        assert_eq!((dev_major(dev), dev_minor(dev)), (259, 70000));
    }

    #[test]
    fn the_holder_is_found_and_a_stale_pid_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // A stale lock file naming a live process (pid 1) but held by nobody.
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(holder(&path), None);
        let held = try_lock(&path, 0o600).unwrap().expect("free");
        let who = holder(&path).unwrap();
        assert!(
            who.starts_with(&format!("pid {}", std::process::id())),
            "{who}"
        );
        assert!(try_lock(&path, 0o600).unwrap().is_none(), "held");
        assert!(!holder_is_stopping(&path));
        announce_stopping(&held).unwrap();
        assert!(holder_is_stopping(&path));
        assert_eq!(holder(&path), Some(who), "still held, by the same process");
        drop(held);
        assert_eq!(holder(&path), None);
        let again = try_lock(&path, 0o600).unwrap().expect("free");
        assert!(!holder_is_stopping(&path), "a new holder is not stopping");
        drop(again);
    }
}
