//! One datagram = one message, with file descriptors as SCM_RIGHTS.
//! Every received fd becomes an `OwnedFd` with exactly one owner.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Error, Result};

/// Largest message either side sends (stats are the biggest, a few KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// At most stdin, stdout, stderr.
const MAX_FDS: usize = 3;

pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    if bytes.len() > MAX_MESSAGE {
        return Err(Error::Protocol(format!(
            "message of {} bytes too large",
            bytes.len()
        )));
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EPIPE | nix::Error::ECONNRESET) => return Err(Error::LauncherGone),
            Err(e) => {
                return Err(Error::Sys {
                    op: "sendmsg",
                    source: e,
                })
            }
        }
    }
}

/// Length of the next datagram, without taking it (MSG_PEEK | MSG_TRUNC). Sizing the buffer
/// to the message matters for memory: a zero-filled MAX_MESSAGE buffer per message kept
/// ~0.4 MiB of the heap resident in every shim and launcher.
fn next_len(sock: BorrowedFd<'_>) -> Result<Option<usize>> {
    loop {
        match nix::sys::socket::recv(
            sock.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) => return Ok(Some(n)),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Ok(None),
            Err(e) => {
                return Err(Error::Sys {
                    op: "recv(MSG_PEEK)",
                    source: e,
                })
            }
        }
    }
}

/// Receives one message. `Ok(None)` is end of stream (the peer closed).
pub fn recv(sock: BorrowedFd<'_>) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let Some(len) = next_len(sock)? else {
        return Ok(None);
    };
    if len > MAX_MESSAGE {
        return Err(Error::Protocol(format!("message of {len} bytes too large")));
    }
    // One spare byte: a datagram that grew since the peek shows up as MSG_TRUNC.
    let mut buf = vec![0u8; len + 1];
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECONNRESET) => return Ok(None),
            Err(e) => {
                return Err(Error::Sys {
                    op: "recvmsg",
                    source: e,
                })
            }
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(Error::sys("recvmsg cmsgs"))? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                for fd in raw {
                    // SAFETY: the kernel just installed `fd` in our table for
                    // this message (SCM_RIGHTS); nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        {
            return Err(Error::Protocol("truncated message".into()));
        }
        let len = msg.bytes;
        if len == 0 && fds.is_empty() {
            return Ok(None);
        }
        buf.truncate(len);
        return Ok(Some((buf, fds)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn passes_bytes_and_fds() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), b"hello", &[w.as_fd()]).unwrap();
        drop(w);
        let (bytes, mut fds) = recv(b.as_fd()).unwrap().unwrap();
        assert_eq!(bytes, b"hello");
        assert_eq!(fds.len(), 1);
        let mut wf = std::fs::File::from(fds.pop().unwrap());
        wf.write_all(b"x").unwrap();
        drop(wf);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        assert_eq!(out, "x");
        drop(a);
        assert!(recv(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn messages_of_any_size_up_to_the_limit() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        for size in [1, 4095, 4096, 70_000] {
            let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            send(a.as_fd(), &msg, &[]).unwrap();
            let (got, fds) = recv(b.as_fd()).unwrap().unwrap();
            assert_eq!(got, msg);
            assert!(fds.is_empty());
        }
        assert!(send(a.as_fd(), &vec![0u8; MAX_MESSAGE + 1], &[]).is_err());
    }
}
