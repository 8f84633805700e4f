//! A pseudo-terminal for running the binary as a user at a terminal does: its own session with
//! the terminal as controlling terminal, prompts read on the master side, answers typed into it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// Everything the child wrote to the terminal so far.
    seen: Vec<u8>,
}

impl Pty {
    pub(crate) fn open() -> Pty {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty fills two descriptors, owned below.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors, owned once each.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        Pty {
            master,
            slave,
            seen: Vec::new(),
        }
    }

    /// Start `cmd` on the terminal (stdin, stdout, stderr), in a session of its own with the
    /// terminal as its controlling terminal, as a shell would; no core file.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> Child {
        let dup = || Stdio::from(self.slave.try_clone().expect("dup"));
        cmd.stdin(dup()).stdout(dup()).stderr(dup());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::setsid() < 0
                    || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0
                    || libc::setrlimit(libc::RLIMIT_CORE, &no_core) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("start the binary")
    }

    /// Whether the terminal echoes what is typed.
    pub(crate) fn echo_on(&self) -> bool {
        // SAFETY: tcgetattr on an open terminal into a zeroed struct.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) },
            0
        );
        t.c_lflag & libc::ECHO != 0
    }

    /// Wait until the terminal shows `wanted` (after what was read before); all it showed.
    pub(crate) fn read_until(&mut self, wanted: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let start = self.seen.len();
        while !String::from_utf8_lossy(&self.seen[start..]).contains(wanted) {
            assert!(
                Instant::now() < deadline,
                "no {wanted:?} on the terminal; it shows: {}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut poll = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one valid descriptor, then read into a local buffer.
            if unsafe { libc::poll(&mut poll, 1, 100) } == 1 {
                let mut buf = [0u8; 1024];
                let n =
                    unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), 1024) };
                if n > 0 {
                    self.seen.extend_from_slice(&buf[..n as usize]);
                }
            }
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Type `text` at the terminal.
    pub(crate) fn type_in(&self, text: &str) {
        // SAFETY: write of a local buffer to an open descriptor.
        let n = unsafe { libc::write(self.master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
        assert_eq!(
            n,
            text.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}
