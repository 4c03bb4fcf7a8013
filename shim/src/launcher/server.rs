//! The launcher's loop: one request at a time, then reap. Single-threaded by
//! construction (forked before the shim starts any thread, see `mod.rs`), so
//! the runtime library may fork and `waitpid` sees every child first.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::backend::{Backend, CreateArgs, ExecArgs, Stdio};
use super::protocol::{Envelope, LauncherMessage, RemoteError, Reply, Request, StdioSlots};
use super::{fdpass, rootfs};
use crate::error::{Error, Result};

/// Write end of the SIGCHLD self-pipe, for the signal handler.
static SIGCHLD_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = SIGCHLD_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; `fd` is the non-blocking
        // write end of a pipe that lives for the whole launcher; a full pipe
        // (EAGAIN) already guarantees a wake-up, so the result is ignored.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

pub struct Server<B> {
    sock: OwnedFd,
    backend: B,
    /// Pids this launcher started and has not reaped: only their exits are
    /// reported, and only they may be signalled by pid.
    tracked: HashSet<i32>,
}

impl<B: Backend> Server<B> {
    pub fn new(sock: OwnedFd, backend: B) -> Self {
        Self {
            sock,
            backend,
            tracked: HashSet::new(),
        }
    }

    /// Runs until the shim closes its end of the socket.
    pub fn run(mut self) -> Result<()> {
        let (sig_r, sig_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(Error::sys("pipe2"))?;
        SIGCHLD_PIPE.store(sig_w.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_sigchld),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: the handler only calls write(2) on an fd kept open (sig_w
        // lives until the end of this function, after which we exit).
        unsafe { sigaction(Signal::SIGCHLD, &action) }.map_err(Error::sys("sigaction SIGCHLD"))?;

        loop {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(sig_r.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        op: "poll",
                        source: e,
                    })
                }
            }
            let sock_ready = fds[0].any().unwrap_or(false);
            let sig_ready = fds[1].any().unwrap_or(false);
            if sig_ready {
                drain(sig_r.as_fd());
            }
            if sock_ready {
                match fdpass::recv(self.sock.as_fd())? {
                    None => break,
                    Some((bytes, fds)) => {
                        self.handle_message(&bytes, fds)?;
                        release_free_heap();
                    }
                }
            }
            self.reap()?;
        }
        tracing::debug!("shim closed the launcher socket; launcher exits");
        drop(sig_w);
        Ok(())
    }

    fn handle_message(&mut self, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<()> {
        let envelope: Envelope = match serde_json::from_slice(bytes) {
            Ok(e) => e,
            Err(e) => return Err(Error::Protocol(format!("bad request: {e}"))),
        };
        let seq = envelope.seq;
        let result = self.dispatch(envelope.request, fds).map_err(|e| {
            tracing::warn!(error = %e, "launcher request failed");
            RemoteError {
                kind: e.kind(),
                message: e.to_string(),
            }
        });
        self.send(&LauncherMessage::Reply { seq, result })
    }

    fn dispatch(&mut self, request: Request, fds: Vec<OwnedFd>) -> Result<Reply> {
        match request {
            Request::Create {
                id,
                bundle,
                rootfs: mounts,
                config_path,
                io_owner,
                console_socket,
                stdio,
            } => {
                let stdio = take_stdio(stdio, fds)?;
                rootfs::mount_rootfs(&bundle, &mounts)?;
                let created = self.backend.create(CreateArgs {
                    id,
                    bundle: bundle.clone(),
                    config_path,
                    io_owner,
                    console_socket,
                    stdio,
                });
                match created {
                    Ok((pid, cgroup)) => {
                        self.tracked.insert(pid);
                        Ok(Reply::Created { pid, cgroup })
                    }
                    Err(e) => {
                        if let Err(u) = rootfs::unmount_rootfs(&bundle) {
                            tracing::warn!(error = %u, "unmount after failed create");
                        }
                        Err(e)
                    }
                }
            }
            Request::Start { id } => self.backend.start(&id).map(|()| Reply::Done),
            Request::Exec {
                id,
                process,
                console_socket,
                stdio,
            } => {
                let stdio = take_stdio(stdio, fds)?;
                let pid = self.backend.exec(ExecArgs {
                    id,
                    process,
                    console_socket,
                    stdio,
                })?;
                self.tracked.insert(pid);
                Ok(Reply::Pid(pid))
            }
            Request::Kill { id, signal, all } => {
                self.backend.kill(&id, signal, all).map(|()| Reply::Done)
            }
            Request::KillPid { pid, signal } => {
                if !self.tracked.contains(&pid) {
                    return Err(Error::FailedPrecondition(format!(
                        "process {pid} already finished"
                    )));
                }
                let sig = Signal::try_from(signal)
                    .map_err(|_| Error::InvalidArgument(format!("signal {signal}")))?;
                // Not yet reaped by us, so `pid` is our child (alive or a
                // zombie): it cannot have been recycled.
                nix::sys::signal::kill(Pid::from_raw(pid), sig).map_err(Error::sys("kill"))?;
                Ok(Reply::Done)
            }
            Request::Delete { id, bundle } => {
                self.backend.delete(&id, &bundle)?;
                rootfs::unmount_rootfs(&bundle)?;
                Ok(Reply::Done)
            }
            Request::Adopt { id, bundle } => self.backend.adopt(&id, &bundle).map(|()| Reply::Done),
            Request::Pause { id } => self.backend.pause(&id).map(|()| Reply::Done),
            Request::Resume { id } => self.backend.resume(&id).map(|()| Reply::Done),
            Request::Update { id, resources } => {
                self.backend.update(&id, &resources).map(|()| Reply::Done)
            }
            Request::Pids { id } => self.backend.pids(&id).map(Reply::Pids),
            Request::Stats { id } => self.backend.stats(&id).map(|s| Reply::Stats(Box::new(s))),
        }
    }

    /// Reaps every exited child; reports the ones the shim knows about.
    fn reap(&mut self) -> Result<()> {
        loop {
            let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return Ok(()),
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        op: "waitpid",
                        source: e,
                    })
                }
            };
            if self.tracked.remove(&pid) {
                tracing::debug!(pid, status, "process exited");
                self.send(&LauncherMessage::Exit { pid, status })?;
            }
        }
    }

    fn send(&self, msg: &LauncherMessage) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        fdpass::send(self.sock.as_fd(), &bytes, &[])
    }
}

/// A create leaves a few hundred KiB of freed heap behind (libcontainer, spec parsing) that
/// would otherwise stay resident for the pod's lifetime: hand it back to the kernel.
fn release_free_heap() {
    ward_runtime::sys::release_free_heap();
}

fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 64];
    while let Ok(n) = nix::unistd::read(fd.as_raw_fd() as RawFd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// Assigns received fds to the slots the request names, in order.
fn take_stdio(slots: StdioSlots, fds: Vec<OwnedFd>) -> Result<Stdio> {
    if fds.len() != slots.count() {
        return Err(Error::Protocol(format!(
            "expected {} stdio fds, got {}",
            slots.count(),
            fds.len()
        )));
    }
    let mut it = fds.into_iter();
    Ok(Stdio {
        stdin: if slots.stdin { it.next() } else { None },
        stdout: if slots.stdout { it.next() } else { None },
        stderr: if slots.stderr { it.next() } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_slots_take_fds_in_order() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let (r_raw, w_raw) = (r.as_raw_fd(), w.as_raw_fd());
        let stdio = take_stdio(
            StdioSlots {
                stdin: true,
                stdout: false,
                stderr: true,
            },
            vec![r, w],
        )
        .unwrap();
        assert_eq!(stdio.stdin.unwrap().as_raw_fd(), r_raw);
        assert!(stdio.stdout.is_none());
        assert_eq!(stdio.stderr.unwrap().as_raw_fd(), w_raw);
    }

    #[test]
    fn stdio_count_mismatch_is_an_error() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(take_stdio(StdioSlots::default(), vec![r]).is_err());
    }
}
