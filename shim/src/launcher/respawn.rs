//! A fresh launcher for a shim whose launcher died (SIGKILL, OOM kill, a crash).
//!
//! Design (issue 12): the shim cannot fork again, it runs threads by then (see `mod.rs`). So
//! it starts a new launcher by **executing its own binary** (`/proc/self/exe`) in launcher
//! mode through `std::process::Command` (fork+exec in the standard library: no Rust code of
//! ours runs between the two), with the launcher's end of a new socketpair as its stdin. The
//! new launcher is single-threaded from its first instruction, like the forked one.
//!
//! What happens to the dead launcher's containers is the shim's call (`service.rs`): they are
//! failed safe, i.e. killed through the new launcher and reported exited, never re-adopted as
//! running (their exits may already have been lost with the launcher, and nothing would
//! report the ones to come).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use nix::sys::socket::{getsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;

use super::{backend, LauncherProcess};
use crate::error::{Error, Result};

/// argv[1] that puts the shim binary in launcher mode. Not a containerd flag.
pub const LAUNCHER_MODE: &str = "--ward-launcher";

/// Starts a new launcher for containerd namespace `namespace` (re-exec of this binary).
pub fn respawn(namespace: &str, debug: bool) -> Result<LauncherProcess> {
    let (shim_end, launcher_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(Error::sys("socketpair"))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(LAUNCHER_MODE).arg(namespace);
    if debug {
        cmd.arg("-debug");
    }
    // In `ps`, the same command line as the shim's (its argv[0], then its own arguments after
    // `--`, which launcher mode ignores): what finds a shim's processes finds this one too.
    let mut shim_args = std::env::args_os();
    if let Some(argv0) = shim_args.next() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    }
    cmd.arg("--").args(shim_args);
    // Command dup2s our end onto the child's fd 0 (clearing close-on-exec there).
    let child = cmd
        .stdin(Stdio::from(launcher_end))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(Error::io("spawn", "/proc/self/exe (launcher mode)"))?;
    let pid = Pid::from_raw(child.id() as i32);
    // The containerd-shim crate's SIGCHLD reaper waits for it (and tells the shim, which
    // watches its launcher's pid): dropping the handle neither kills nor waits.
    drop(child);
    Ok(LauncherProcess {
        pid,
        sock: shim_end,
    })
}

/// Launcher mode: serve the socket on fd 0 until the shim closes it. Called from `main`
/// before anything else; never returns.
pub fn serve<B, F>(make_backend: F) -> !
where
    B: backend::Backend,
    F: FnOnce() -> Result<B>,
{
    let code = match take_stdin_socket().and_then(|sock| super::child_main(sock, make_backend)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "launcher failed");
            1
        }
    };
    std::process::exit(code);
}

/// Moves fd 0 to a close-on-exec fd of its own (fd 0 becomes /dev/null later), after checking
/// that it is what the shim passes: a SOCK_SEQPACKET socket.
fn take_stdin_socket() -> Result<OwnedFd> {
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let kind = getsockopt(&fd, sockopt::SockType).map_err(Error::sys("getsockopt fd 0"))?;
    if kind != SockType::SeqPacket {
        return Err(Error::FailedPrecondition(
            "launcher mode: fd 0 is not the shim's SOCK_SEQPACKET socket".into(),
        ));
    }
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a valid fd returns a new fd that we then own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Error::Sys {
            op: "fcntl(F_DUPFD_CLOEXEC) fd 0",
            source: nix::Error::last(),
        });
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
