//! The launcher: a single-threaded process, forked from the shim's `main`
//! before any thread exists, that owns every call into Ward's runtime library.
//!
//! Why: libcontainer forks and clones, and forking from a multi-threaded
//! process (the ttrpc server, the crate's signal thread) can deadlock the
//! child on a lock held by a thread that no longer exists. So the shim never
//! forks; it asks the launcher, over a SOCK_SEQPACKET socketpair (JSON
//! messages, stdio fds as SCM_RIGHTS). Container inits and exec'd processes are
//! children of the launcher, which reaps them and reports `(pid, status)` to
//! the shim: the containerd-shim crate's own SIGCHLD reaper (in the shim
//! process) can therefore never steal a container's exit status.

pub mod backend;
pub mod client;
pub mod fdpass;
#[cfg(feature = "testing")]
pub mod host;
pub mod protocol;
pub mod respawn;
pub mod rootfs;
pub mod server;
pub mod ward;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};

/// The shim's end of a running launcher.
#[derive(Debug)]
pub struct LauncherProcess {
    pub pid: Pid,
    pub sock: OwnedFd,
}

/// Number of threads of this process, from /proc/self/status.
fn thread_count() -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(Error::io("read", "/proc/self/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| Error::Protocol("no Threads: line in /proc/self/status".into()))
}

/// Forks the launcher. Refuses to fork if this process has more than one
/// thread. `make_backend` runs in the child.
pub fn spawn<B, F>(make_backend: F) -> Result<LauncherProcess>
where
    B: backend::Backend,
    F: FnOnce() -> Result<B>,
{
    let threads = thread_count()?;
    if threads != 1 {
        return Err(Error::FailedPrecondition(format!(
            "refusing to fork the launcher from a process with {threads} threads"
        )));
    }
    let (shim_end, launcher_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::sys("socketpair"))?;

    // SAFETY: this process has exactly one thread (checked above), so the
    // child cannot inherit a lock held by another thread.
    match unsafe { fork() }.map_err(Error::sys("fork launcher"))? {
        ForkResult::Parent { child } => {
            drop(launcher_end);
            Ok(LauncherProcess {
                pid: child,
                sock: shim_end,
            })
        }
        ForkResult::Child => {
            drop(shim_end);
            let code = match child_main(launcher_end, make_backend) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "launcher failed");
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

fn child_main<B, F>(sock: OwnedFd, make_backend: F) -> Result<()>
where
    B: backend::Backend,
    F: FnOnce() -> Result<B>,
{
    detach_stdio()?;
    // Orphaned container processes are reparented to us, not to the shim.
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer argument only.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(Error::Sys {
            op: "prctl(PR_SET_CHILD_SUBREAPER)",
            source: nix::Error::last(),
        });
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"ward-launcher".as_ptr(), 0, 0, 0) };
    let backend = make_backend()?;
    server::Server::new(sock, backend).run()
}

/// Points stdin/stdout/stderr at /dev/null: `containerd-shim-ward-v2 start`
/// waits for EOF on the serving shim's stdout, and containerd reads the
/// `delete` action's stdout to EOF; the launcher must hold neither.
fn detach_stdio() -> Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(Error::io("open", "/dev/null"))?;
    for fd in 0..=2 {
        nix::unistd::dup2(null.as_raw_fd(), fd).map_err(Error::sys("dup2 /dev/null"))?;
    }
    Ok(())
}
