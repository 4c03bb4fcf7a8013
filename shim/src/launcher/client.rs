//! The shim's side of the launcher socket: request/reply matching by sequence
//! number, and a reader thread that forwards exits.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use super::fdpass;
use super::protocol::{Envelope, LauncherMessage, RemoteError, Reply, Request};
use super::LauncherProcess;
use crate::error::{Error, Result};

type Pending = Arc<Mutex<HashMap<u64, SyncSender<Result<Reply, RemoteError>>>>>;

pub struct Launcher {
    /// The launcher process (a child of the shim).
    pub pid: i32,
    sock: Arc<OwnedFd>,
    /// Held across "register pending, then send" so replies never outrun registration.
    send_lock: Mutex<()>,
    pending: Pending,
    gone: Arc<AtomicBool>,
    seq: AtomicU64,
}

impl Launcher {
    /// Starts the reader thread. `on_exit(pid, status)` runs on it, in the
    /// order the launcher reaped the processes; it must not block for long.
    /// `on_eof(pid)` runs when the launcher's socket ends (it died or exited).
    pub fn new(
        process: LauncherProcess,
        on_exit: impl Fn(i32, i32) + Send + 'static,
        on_eof: impl FnOnce(i32) + Send + 'static,
    ) -> Result<Self> {
        let pid = process.pid.as_raw();
        let sock = Arc::new(process.sock);
        let pending: Pending = Arc::default();
        let gone = Arc::new(AtomicBool::new(false));
        let (r_sock, r_pending, r_gone) = (sock.clone(), pending.clone(), gone.clone());
        std::thread::Builder::new()
            .name("launcher-reader".into())
            .spawn(move || {
                read_loop(&r_sock, &r_pending, on_exit);
                fail_pending(&r_gone, &r_pending);
                on_eof(pid);
            })
            .map_err(Error::io("spawn thread", "launcher-reader"))?;
        Ok(Self {
            pid,
            sock,
            send_lock: Mutex::new(()),
            pending,
            gone,
            seq: AtomicU64::new(1),
        })
    }

    /// The launcher is dead (its pid was reaped): every call, pending or future, fails with
    /// [`Error::LauncherGone`]. Its socket may stay open longer than the process (a created
    /// container's init inherits it until its execve).
    pub fn mark_gone(&self) {
        fail_pending(&self.gone, &self.pending);
    }

    /// Sends one request (with the fds it carries) and waits for its reply.
    pub fn call(&self, request: Request, fds: Vec<OwnedFd>) -> Result<Reply> {
        if self.gone.load(Ordering::SeqCst) {
            return Err(Error::LauncherGone);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let bytes = serde_json::to_vec(&Envelope { seq, request })
            .map_err(|e| Error::Protocol(e.to_string()))?;
        let (tx, rx) = sync_channel(1);
        {
            let _guard = self.send_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(seq, tx);
            // Marked gone after the check above: the clear may have missed this entry.
            if self.gone.load(Ordering::SeqCst) {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&seq);
                return Err(Error::LauncherGone);
            }
            let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
            if let Err(e) = fdpass::send(self.sock.as_fd(), &bytes, &borrowed) {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&seq);
                return Err(e);
            }
        }
        // Our copies of the fds close here; the launcher has its own.
        drop(fds);
        match rx.recv() {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(remote)) => Err(Error::Remote {
                kind: remote.kind,
                message: remote.message,
            }),
            Err(_) => Err(Error::LauncherGone),
        }
    }
}

fn fail_pending(gone: &AtomicBool, pending: &Pending) {
    gone.store(true, Ordering::SeqCst);
    // Dropping the senders fails everyone still waiting.
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn read_loop(sock: &OwnedFd, pending: &Pending, on_exit: impl Fn(i32, i32)) {
    loop {
        let (bytes, _fds) = match fdpass::recv(sock.as_fd()) {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::error!("launcher closed its socket");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading from launcher");
                return;
            }
        };
        let msg: LauncherMessage = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "bad message from launcher");
                continue;
            }
        };
        match msg {
            LauncherMessage::Reply { seq, result } => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&seq);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(result);
                    }
                    None => tracing::warn!(seq, "reply for no pending request"),
                }
            }
            LauncherMessage::Exit { pid, status } => on_exit(pid, status),
        }
    }
}
