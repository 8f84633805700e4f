//! A mount kept busy (a shell with its working directory inside) and told twice to stop exits
//! at once with 130, whether the signals are SIGINT or SIGTERM (docs/SEMANTICS.md).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

#[test]
fn a_busy_mount_stopped_by_a_second_signal_exits_130() {
    if !fuse_ready() {
        return;
    }
    let env = Env::new(small(10, 0.001));
    for (name, signal) in [("SIGINT", libc::SIGINT), ("SIGTERM", libc::SIGTERM)] {
        let mnt = env.empty_dir(&format!("mnt-{name}"));
        let mut up = env.mount(&mnt, &["--poll-interval", "3600"]);
        // A program whose working directory is inside the mount keeps it busy.
        let mut user = Command::new("sleep")
            .arg("120")
            .current_dir(&up.mnt)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..2 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(up.pid(), signal) };
            std::thread::sleep(Duration::from_millis(500));
        }
        let (code, err) = up.wait_exit();
        let _ = user.kill();
        let _ = user.wait();
        assert!(
            err.contains("programs still use the mount"),
            "{name}: {err}"
        );
        assert!(err.contains("stopping without waiting"), "{name}: {err}");
        assert_eq!(code, 130, "{name}: {err}");
        assert!(!is_mounted(&up.mnt), "{name}: still mounted");
    }
}
