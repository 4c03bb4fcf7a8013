//! Ward's own terminal for `run` and `exec -t` in the foreground without `--console-socket`,
//! as runc does: a private console socket receives the pty master from the container, then
//! this process copies between its own stdio and the master until the process exits.
//!
//! Single-threaded: one poll loop over stdin, the master and a pidfd of the process.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getsockopt, recvmsg, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use ward_runtime::sys;

/// A console socket in a fresh private directory; removed on drop.
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> Result<Self> {
        let base = if Path::new("/run").is_dir() {
            PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("ward-tty-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        // 0711 and a 0666 socket: an `exec` connects from inside the container's user
        // namespace (an unprivileged host uid). Who connected is checked on accept.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod {}", dir.display()))?;
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("console socket {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(Self {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master sent by the container side. The connection was made while the
    /// container was being set up, so it waits in the backlog; connections from any uid but
    /// root and `peer_uid` are dropped.
    pub fn receive_master(&self, peer_uid: u32) -> Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    bail!("terminal: the container never sent its pty master")
                }
                Err(e) => return Err(e).context("accept on the console socket"),
            };
            let cred = getsockopt(&stream, sockopt::PeerCredentials)?;
            if cred.uid() != 0 && cred.uid() != peer_uid {
                tracing::warn!(
                    uid = cred.uid(),
                    "console socket: connection from a stranger dropped"
                );
                continue;
            }
            stream.set_nonblocking(false)?;
            let mut buf = [0u8; 4096];
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!([RawFd; 1]);
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .context("receive the pty master")?;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    if let Some(&fd) = fds.first() {
                        // SAFETY: SCM_RIGHTS just installed this fd in our table; we own it.
                        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
            }
            bail!("terminal: the console socket message carried no fd");
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Puts a terminal in raw mode for the life of the guard.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::SeqCst);
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copy stdin → master and master → stdout until the process `pid` (our child) has exited
/// and the master is drained. Returns the exit code.
pub fn proxy(master: OwnedFd, pid: i32) -> Result<i32> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let (stdin, stdout) = (stdin.as_fd(), stdout.as_fd());
    let _ = sys::copy_winsize(stdin.as_raw_fd(), master.as_raw_fd());
    let _raw = RawMode::enter(stdin);
    let handler = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_winch),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &handler) }?;
    let pidfd = sys::pidfd_open(pid).map_err(|e| anyhow!("pidfd_open {pid}: {e}"))?;
    let mut stdin_open = true;
    let mut exited = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if WINCH.swap(false, Ordering::SeqCst) {
            let _ = sys::copy_winsize(stdin.as_raw_fd(), master.as_raw_fd());
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        // Once the process is gone, drain the master until it reports the slave closed (EIO);
        // the pty hands data over asynchronously, so a short wait, not none. A background
        // process still holding the slave ends the drain after the wait.
        let timeout = if exited {
            PollTimeout::from(200u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) if exited => break,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(anyhow!("poll: {e}")),
        }
        let ev = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let (m, p, s) = (ev(0), ev(1), ev(2));
        if m.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                // Every slave end is closed: the process is exiting.
                Ok(0) | Err(Errno::EIO) => break,
                Ok(n) => write_all(stdout, &buf[..n]).map_err(|e| anyhow!("write stdout: {e}"))?,
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(e) => return Err(anyhow!("read pty: {e}")),
            }
        }
        if p.contains(PollFlags::POLLIN) {
            exited = true;
        }
        if stdin_open && s.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    // End of input: the terminal's EOF character, as a user pressing ^D.
                    stdin_open = false;
                    let _ = write_all(master.as_fd(), &[4]);
                }
                Ok(n) => {
                    write_all(master.as_fd(), &buf[..n]).map_err(|e| anyhow!("write pty: {e}"))?
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
    drop(_raw);
    super::wait_exit_code(pid)
}
