//! Process stdio: containerd's FIFOs, a stdin pipe, and the pty copy loops.
//!
//! - stdout/stderr FIFOs are opened here and handed to the process directly
//!   (no copy, so no output can be lost between exit and TaskExit).
//! - stdin goes through a pipe: the FIFO is copied into the pipe; containerd
//!   closing its writer, or `CloseIO`, closes the pipe: the process's EOF.
//! - with a terminal, the pty master (received on the console socket) is copied
//!   to/from the FIFOs; TaskExit waits (bounded) for the output copy to drain.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::console::ConsoleSocket;
use crate::error::{Error, Result};
use crate::launcher::protocol::StdioSlots;

/// The stdio containerd asked for; `None` where it sent "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub terminal: bool,
}

fn non_empty(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn display(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

impl StdioPaths {
    pub fn new(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Self {
        Self {
            stdin: non_empty(stdin),
            stdout: non_empty(stdout),
            stderr: non_empty(stderr),
            terminal,
        }
    }

    pub fn stdin_str(&self) -> String {
        display(&self.stdin)
    }
    pub fn stdout_str(&self) -> String {
        display(&self.stdout)
    }
    pub fn stderr_str(&self) -> String {
        display(&self.stderr)
    }
}

/// What goes to the launcher with a create/exec request.
pub struct Handoff {
    pub fds: Vec<OwnedFd>,
    pub slots: StdioSlots,
    pub console: Option<ConsoleSocket>,
}

/// The shim's half of a process's stdio, alive until the process is deleted.
pub struct ProcessIo {
    paths: StdioPaths,
    stdin_cancel: Arc<EventFd>,
    all_cancel: Arc<EventFd>,
    /// A pty master kept for ResizePty.
    console: Mutex<Option<OwnedFd>>,
    output_done: Mutex<Option<Receiver<()>>>,
}

fn cancel_fd() -> Result<Arc<EventFd>> {
    EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map(Arc::new)
        .map_err(Error::sys("eventfd"))
}

/// Opens the stdin FIFO without waiting for containerd's writer. Linux
/// reports POLLHUP on a FIFO only after a writer has come and gone, so the
/// copy (which polls before reading) waits for the writer instead of reading
/// an early EOF; the writer closing is the process's EOF.
fn open_fifo_reader(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(Error::io("open stdin fifo", path))
}

/// Opens an output FIFO for the process to write. Read-write, because
/// containerd may open its read side only later (exec output is opened
/// asynchronously by `ctr`): O_WRONLY would fail with ENXIO or block. What is
/// written before the reader appears waits in the FIFO; containerd still sees
/// EOF once every process holding it has exited.
fn open_fifo_writer(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(Error::io("open output fifo", path))
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<()> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(Error::sys("fcntl F_GETFL"))?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).map_err(Error::sys("fcntl F_SETFL"))?;
    Ok(())
}

impl ProcessIo {
    /// Opens the FIFOs (and the console socket for a terminal). Returns the
    /// fds for the process and the shim's half.
    pub fn prepare(paths: &StdioPaths) -> Result<(Handoff, ProcessIo)> {
        let io = ProcessIo {
            paths: paths.clone(),
            stdin_cancel: cancel_fd()?,
            all_cancel: cancel_fd()?,
            console: Mutex::new(None),
            output_done: Mutex::new(None),
        };
        if paths.terminal {
            let console = ConsoleSocket::new()?;
            return Ok((
                Handoff {
                    fds: Vec::new(),
                    slots: StdioSlots::default(),
                    console: Some(console),
                },
                io,
            ));
        }
        let mut fds = Vec::new();
        let mut slots = StdioSlots::default();
        if let Some(path) = &paths.stdin {
            let fifo = open_fifo_reader(path)?;
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
            spawn_copier(
                "stdin",
                fifo.into(),
                w,
                vec![io.stdin_cancel.clone(), io.all_cancel.clone()],
            )?;
            fds.push(r);
            slots.stdin = true;
        }
        if let Some(path) = &paths.stdout {
            fds.push(open_fifo_writer(path)?.into());
            slots.stdout = true;
        }
        if let Some(path) = &paths.stderr {
            fds.push(open_fifo_writer(path)?.into());
            slots.stderr = true;
        }
        Ok((
            Handoff {
                fds,
                slots,
                console: None,
            },
            io,
        ))
    }

    /// For a terminal: takes the pty master the runtime sent and starts the copies.
    pub fn attach_console(&self, master: OwnedFd) -> Result<()> {
        set_nonblocking(master.as_fd(), true)?;
        if let Some(path) = &self.paths.stdin {
            let fifo = open_fifo_reader(path)?;
            let to_master = master.try_clone().map_err(Error::io("dup", "pty master"))?;
            spawn_copier(
                "pty-in",
                fifo.into(),
                to_master,
                vec![self.stdin_cancel.clone(), self.all_cancel.clone()],
            )?;
        }
        if let Some(path) = &self.paths.stdout {
            let out = open_fifo_writer(path)?;
            let from_master = master.try_clone().map_err(Error::io("dup", "pty master"))?;
            let done = spawn_copier(
                "pty-out",
                from_master,
                out.into(),
                vec![self.all_cancel.clone()],
            )?;
            *self.output_done.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
        }
        *self.console.lock().unwrap_or_else(|e| e.into_inner()) = Some(master);
        Ok(())
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let guard = self.console.lock().unwrap_or_else(|e| e.into_inner());
        let Some(master) = guard.as_ref() else {
            return Err(Error::FailedPrecondition("process has no terminal".into()));
        };
        let ws = libc::winsize {
            ws_row: u16::try_from(height).unwrap_or(u16::MAX),
            ws_col: u16::try_from(width).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a `winsize` that lives across the call;
        // `master` is an open pty master.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc != 0 {
            return Err(Error::Sys {
                op: "ioctl(TIOCSWINSZ)",
                source: nix::Error::last(),
            });
        }
        Ok(())
    }

    /// CloseIO: the process sees EOF on stdin once pending input is copied.
    pub fn close_stdin(&self) -> Result<()> {
        self.stdin_cancel
            .write(1)
            .map_err(Error::sys("eventfd write"))?;
        Ok(())
    }

    /// Waits (bounded) until the terminal output has been copied out.
    pub fn wait_output(&self, timeout: Duration) {
        let rx = self
            .output_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            if rx.recv_timeout(timeout).is_err() {
                tracing::warn!(
                    "terminal output still open {timeout:?} after exit; not waiting longer"
                );
            }
        }
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        // Stops every copy thread of this process.
        if let Err(e) = self.all_cancel.write(1) {
            tracing::warn!(error = %e, "stopping stdio copies");
        }
    }
}

/// Copies `src` to `dst` until EOF/EIO on `src`, an error on `dst`, or a
/// cancel. On cancel, what is already readable is still copied. The returned
/// channel is signalled when the copy ends.
fn spawn_copier(
    name: &'static str,
    src: OwnedFd,
    dst: OwnedFd,
    cancels: Vec<Arc<EventFd>>,
) -> Result<Receiver<()>> {
    set_nonblocking(src.as_fd(), true)?;
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name(format!("io-{name}"))
        .spawn(move || {
            copy_loop(&src, &dst, &cancels);
            drop(dst);
            // The receiver may be gone (nobody waits on this copy): fine.
            let _ = tx.send(());
        })
        .map_err(Error::io("spawn thread", name))?;
    Ok(rx)
}

enum Drained {
    Open,
    Closed,
}

fn copy_loop(src: &OwnedFd, dst: &OwnedFd, cancels: &[Arc<EventFd>]) {
    // 16 KiB: stays resident while the copy runs (for the container's life).
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(src.as_fd(), PollFlags::POLLIN)];
        fds.extend(
            cancels
                .iter()
                .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "poll in stdio copy");
                return;
            }
        }
        let cancelled = fds[1..].iter().any(|f| f.any().unwrap_or(false));
        let src_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if src_ready || cancelled {
            match drain(src, dst, &mut buf) {
                Drained::Closed => return,
                Drained::Open if cancelled => return,
                Drained::Open => {}
            }
        }
    }
}

/// Copies whatever `src` has now.
fn drain(src: &OwnedFd, dst: &OwnedFd, buf: &mut [u8]) -> Drained {
    loop {
        match nix::unistd::read(src.as_raw_fd(), buf) {
            Ok(0) => return Drained::Closed,
            Ok(n) => {
                if write_all(dst.as_fd(), &buf[..n]).is_err() {
                    return Drained::Closed;
                }
            }
            Err(nix::Error::EAGAIN) => return Drained::Open,
            Err(nix::Error::EINTR) => continue,
            // EIO: the pty slave side has been closed by every process.
            Err(_) => return Drained::Closed,
        }
    }
}

/// write(2) until done; waits on POLLOUT when `dst` is non-blocking (a pty
/// master shares its O_NONBLOCK with the reading copy).
fn write_all(dst: BorrowedFd<'_>, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(dst, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut fds = [PollFd::new(dst, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) => {
                return Err(Error::Sys {
                    op: "write",
                    source: e,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn empty_strings_mean_no_stream() {
        let p = StdioPaths::new("", "/run/x/stdout", "", false);
        assert!(p.stdin.is_none());
        assert_eq!(p.stdout.as_deref(), Some(Path::new("/run/x/stdout")));
        assert_eq!(p.stdin_str(), "");
        assert_eq!(p.stdout_str(), "/run/x/stdout");
    }

    fn mkfifo(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }

    #[test]
    fn stdin_is_copied_until_the_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let stdin = mkfifo(dir.path(), "stdin");
        let paths = StdioPaths::new(stdin.to_str().unwrap(), "", "", false);
        let (handoff, _io) = ProcessIo::prepare(&paths).unwrap();
        assert_eq!(handoff.slots.count(), 1);
        let mut process_stdin = File::from(handoff.fds.into_iter().next().unwrap());
        // Nothing written yet: the process must not see EOF.
        std::thread::sleep(Duration::from_millis(50));
        let mut writer = OpenOptions::new().write(true).open(&stdin).unwrap();
        writer.write_all(b"hello\n").unwrap();
        drop(writer);
        // The writer closing is EOF (no CloseIO needed).
        let mut got = String::new();
        process_stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
    }

    #[test]
    fn close_io_ends_stdin_while_the_writer_stays() {
        let dir = tempfile::tempdir().unwrap();
        let stdin = mkfifo(dir.path(), "stdin");
        let paths = StdioPaths::new(stdin.to_str().unwrap(), "", "", false);
        let (handoff, io) = ProcessIo::prepare(&paths).unwrap();
        let mut process_stdin = File::from(handoff.fds.into_iter().next().unwrap());
        let mut writer = OpenOptions::new().write(true).open(&stdin).unwrap();
        writer.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        io.close_stdin().unwrap();
        let mut got = String::new();
        process_stdin.read_to_string(&mut got).unwrap();
        assert_eq!(got, "x");
    }

    #[test]
    fn output_fifos_are_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = mkfifo(dir.path(), "stdout");
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        let paths = StdioPaths::new("", out.to_str().unwrap(), "", false);
        let (handoff, _io) = ProcessIo::prepare(&paths).unwrap();
        assert!(handoff.slots.stdout && !handoff.slots.stdin);
        let mut w = File::from(handoff.fds.into_iter().next().unwrap());
        w.write_all(b"out").unwrap();
        drop(w);
        let mut buf = [0u8; 3];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"out");
    }
}
