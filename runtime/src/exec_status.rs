//! The container program's own start, reported before `start` returns (as runc's init
//! reports exec errors over its sync pipe): a missing program, EACCES, ENOEXEC, an
//! execve the profile denies, or a sandbox step that failed right before it.
//!
//! `create` makes a FIFO in the container's state dir and hands the init an
//! `O_RDWR | O_CLOEXEC` end of it (through [`crate::sandbox::SandboxPlan`]). `start` opens
//! the read end before it tells the init to go, then waits: a successful execve closes the
//! init's end (close-on-exec) and the reader sees end-of-file with nothing written; a failure
//! is written there as one line before the init exits.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use crate::error::{io, Result};

/// The FIFO's name in the container's Ward state dir.
pub const FILE: &str = "exec-status";

/// The most `report` writes (one atomic FIFO write).
const MAX_MESSAGE: usize = 2048;

/// How long `start` waits for the init's execve before it stops waiting (the program still
/// runs; only the report is lost).
pub const WAIT: Duration = Duration::from_secs(10);

/// Make the FIFO in `wdir` and open the init's end of it, numbered at least `min_fd` (above
/// the fds passed on with `--preserve-fds`, so the executor's close-on-exec sweep covers it).
pub fn create(wdir: &Path, min_fd: RawFd) -> Result<OwnedFd> {
    let path = wdir.join(FILE);
    nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR)
        .map_err(|e| io("mkfifo", &path)(e.into()))?;
    // O_RDWR: opening does not wait for a reader, and the FIFO stays usable until start.
    let fd = open(
        &path,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| io("open", &path)(e.into()))?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let high = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(min_fd))
        .map_err(|e| io("fcntl(F_DUPFD_CLOEXEC)", &path)(e.into()))?;
    // SAFETY: `high` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// In the container's init, on failure: one line for `start`. Only `write(2)` (allowed by
/// every profile); the caller exits next.
pub fn report(fd: RawFd, message: &str) {
    let mut b = message.replace('\n', " ").into_bytes();
    b.truncate(MAX_MESSAGE);
    // SAFETY: `b` is a valid buffer of b.len() bytes; a bad fd only makes write fail.
    let _ = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// The read end, opened by `start` before the init is told to go. `None` when the
/// container has no FIFO (created by an older Ward).
pub struct Waiter(OwnedFd);

impl Waiter {
    pub fn open(wdir: &Path) -> Result<Option<Self>> {
        let path = wdir.join(FILE);
        match open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            // SAFETY: a fresh descriptor owned by nobody else.
            Ok(fd) => Ok(Some(Self(unsafe { OwnedFd::from_raw_fd(fd) }))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(io("open", &path)(e.into())),
        }
    }

    /// Wait until the init's end closes. `Ok(None)`: the program was exec'd (or the init
    /// went away without a word); `Ok(Some(line))`: what failed. Gives up after `timeout`.
    pub fn wait(self, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("the container's program did not start within {timeout:?}; its exec result is not known");
                return None;
            }
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return None,
            }
            match nix::unistd::read(self.0.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() > MAX_MESSAGE {
                        break;
                    }
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                    // POLLHUP without data is end-of-file on the next read; avoid spinning
                    // on a poll that keeps reporting it.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&got).trim().to_string();
        (!text.is_empty()).then_some(text)
    }
}

/// After a reported failure: wait (bounded) until the init `pid` has exited (a zombie or
/// gone), so the container's state reads `stopped` once `start` returns. It closes the
/// FIFO a moment before it becomes a zombie.
pub fn wait_exited(pid: i32, timeout: Duration) {
    let end = Instant::now() + timeout;
    let stat = format!("/proc/{pid}/stat");
    while Instant::now() < end {
        let state = std::fs::read_to_string(&stat).ok().and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        });
        match state {
            None | Some('Z') | Some('X') => return,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_file_is_success_and_a_line_is_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let w = create(dir.path(), 100).unwrap();
        assert!(w.as_raw_fd() >= 100);
        let r = Waiter::open(dir.path()).unwrap().unwrap();
        drop(w);
        assert_eq!(r.wait(Duration::from_secs(5)), None);

        let dir = tempfile::tempdir().unwrap();
        let w = create(dir.path(), 3).unwrap();
        let r = Waiter::open(dir.path()).unwrap().unwrap();
        report(w.as_raw_fd(), "process.args[0]: exec \"x\": ENOENT\n");
        drop(w);
        assert_eq!(
            r.wait(Duration::from_secs(5)).as_deref(),
            Some("process.args[0]: exec \"x\": ENOENT")
        );

        let dir = tempfile::tempdir().unwrap();
        let _w = create(dir.path(), 3).unwrap();
        let r = Waiter::open(dir.path()).unwrap().unwrap();
        let t = Instant::now();
        assert_eq!(r.wait(Duration::from_millis(200)), None);
        assert!(t.elapsed() >= Duration::from_millis(200));
        assert!(Waiter::open(&dir.path().join("none")).unwrap().is_none());
    }
}
