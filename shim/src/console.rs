//! The console socket: the runtime connects to it and sends the pty master
//! (one SCM_RIGHTS message), as with runc's `--console-socket`.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

static NEXT: AtomicU64 = AtomicU64::new(0);

pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// A fresh listening socket in a private directory (socket paths must stay
    /// under 108 bytes, so not in the bundle).
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ward-shim-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(Error::io("create console dir", &dir))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(Error::io("chmod console dir", &dir))?;
        let path = dir.join("console.sock");
        let listener =
            UnixListener::bind(&path).map_err(Error::io("bind console socket", &path))?;
        Ok(Self {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and receives the pty master.
    pub fn receive_master(&self, timeout: Duration) -> Result<OwnedFd> {
        let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let ready =
            poll(&mut fds, PollTimeout::from(ms)).map_err(Error::sys("poll console socket"))?;
        if ready == 0 {
            return Err(Error::FailedPrecondition(format!(
                "no pty master on {} within {timeout:?}",
                self.path.display()
            )));
        }
        let (stream, _) = self
            .listener
            .accept()
            .map_err(Error::io("accept console socket", &self.path))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(Error::sys("recvmsg console socket"))?;
        let mut master = None;
        for cmsg in msg.cmsgs().map_err(Error::sys("console cmsgs"))? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                for fd in raw {
                    // SAFETY: installed in our table by this SCM_RIGHTS message; no other owner.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if master.is_none() {
                        master = Some(owned);
                    }
                }
            }
        }
        master.ok_or_else(|| Error::Protocol("console socket message carried no fd".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "removing console socket dir");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn receives_the_fd_and_cleans_up() {
        let console = ConsoleSocket::new().unwrap();
        let dir = console.dir.clone();
        let stream = UnixStream::connect(console.path()).unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        let fds = [r.as_raw_fd()];
        nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[std::io::IoSlice::new(b"x")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let got = console.receive_master(Duration::from_secs(1)).unwrap();
        assert_ne!(got.as_raw_fd(), r.as_raw_fd());
        drop(console);
        assert!(!dir.exists());
    }

    #[test]
    fn times_out_without_a_runtime() {
        let console = ConsoleSocket::new().unwrap();
        assert!(console.receive_master(Duration::from_millis(50)).is_err());
    }
}
