//! The launcher died (issue 12): fail its containers safe.
//!
//! Design, chosen over re-adopting the containers as running: a fresh launcher is started by
//! re-executing the shim binary (`launcher/respawn.rs`: fork+exec by the standard library,
//! never a fork that runs our code in this multi-threaded process). Through it every process
//! the dead launcher started is killed (SIGKILL to the container's cgroup, by the runtime
//! library, as `ctr task kill -a` would). The killed processes were the dead launcher's
//! children; they are now the shim's (it is their subreaper), so the containerd-shim crate's
//! reaper sees their real exit status, and `shim.rs` routes it here as a TaskExit. The new
//! launcher then serves kill, delete and later creates as the first one did.
//!
//! Why not re-adopt: exits the dead launcher reaped but had not sent are lost, and a
//! container whose keeper died is not one to keep running unwatched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Service;
use crate::error::{Error, Result};
use crate::launcher::client::Launcher;
use crate::launcher::protocol::{Reply, Request};
use crate::process::{Process, Status};

/// A container's id, bundle and live processes.
type Victim = (String, std::path::PathBuf, Vec<Arc<Process>>);

/// How long a call that met a dead launcher waits for the new one.
const RESPAWN_WAIT: Duration = Duration::from_secs(3);

/// How long the killed processes have to be reaped and reported.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// The status reported for a killed process whose exit the shim did not see: 128 + SIGKILL.
const KILLED: i32 = 128 + libc::SIGKILL;

impl Service {
    /// The pid of the launcher now in use.
    pub fn launcher_pid(&self) -> i32 {
        self.launcher().pid
    }

    /// The launcher `dead` died (it was reaped, or its socket ended). Starts a new one with
    /// `respawn`, has it adopt every container before anyone else may call it, then kills and
    /// reports the processes of the dead one. A `dead` pid that is not the current launcher's
    /// (already replaced) is ignored.
    pub fn launcher_died(&self, dead: i32, respawn: impl FnOnce() -> Result<Launcher>) {
        let victims = self.victims();
        {
            let mut slot = self.launcher.write().unwrap_or_else(|e| e.into_inner());
            if slot.pid != dead {
                return;
            }
            slot.mark_gone();
            tracing::error!(
                pid = dead,
                "the launcher died: starting a new one; its containers are killed and reported exited"
            );
            let new = match respawn() {
                Ok(new) => new,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a new launcher: kill and delete will fail");
                    return;
                }
            };
            for (id, bundle, _) in &victims {
                let adopt = Request::Adopt {
                    id: id.clone(),
                    bundle: bundle.clone(),
                };
                if let Err(e) = new.call(adopt, Vec::new()) {
                    tracing::error!(id, error = %e, "the new launcher cannot take the container over");
                }
            }
            tracing::info!(pid = new.pid, "new launcher started");
            *slot = Arc::new(new);
        }
        self.fail_safe(&victims);
    }

    /// Every container with the processes of it that run (or were created and not reaped).
    fn victims(&self) -> Vec<Victim> {
        self.lock()
            .iter()
            .map(|(id, c)| {
                let procs = std::iter::once(c.init.clone())
                    .chain(c.execs.values().cloned())
                    .filter(|p| {
                        let st = p.snapshot();
                        st.pid != 0 && st.status != Status::Stopped
                    })
                    .collect();
                (id.clone(), c.bundle.clone(), procs)
            })
            .collect()
    }

    /// Kills the containers' processes through the new launcher and waits for their exits.
    fn fail_safe(&self, victims: &[Victim]) {
        let launcher = self.launcher();
        for (id, _, procs) in victims {
            if procs.is_empty() {
                continue;
            }
            let kill = Request::Kill {
                id: id.clone(),
                signal: libc::SIGKILL,
                all: true,
            };
            match launcher.call(kill, Vec::new()) {
                Ok(_) => tracing::warn!(id, "killed: its launcher died"),
                Err(e) => tracing::error!(id, error = %e, "cannot kill after the launcher died"),
            }
        }
        let deadline = Instant::now() + EXIT_WAIT;
        for p in victims.iter().flat_map(|(_, _, procs)| procs) {
            if !p.wait_until(deadline) {
                self.unreported_exit(p);
            }
        }
    }

    /// A call that, when it meets a dead launcher, waits for its replacement and retries once.
    /// Only for requests that are safe to repeat and carry no fds (kill, delete).
    pub(super) fn call_retrying(&self, request: Request) -> Result<Reply> {
        let launcher = self.launcher();
        match launcher.call(request.clone(), Vec::new()) {
            Err(Error::LauncherGone) => {
                let deadline = Instant::now() + RESPAWN_WAIT;
                while Instant::now() < deadline {
                    let now = self.launcher();
                    if now.pid != launcher.pid {
                        return now.call(request, Vec::new());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Error::LauncherGone)
            }
            other => other,
        }
    }

    /// A killed process whose exit did not reach the shim (the dead launcher may have reaped
    /// it without telling). Reported exited only if its pid is really gone.
    fn unreported_exit(&self, p: &Process) {
        let pid = p.snapshot().pid;
        if pid_gone(pid) {
            tracing::warn!(
                pid,
                id = p.event_id(),
                "exit not seen; reporting it as killed"
            );
            self.exits.forget(pid);
            p.exited(KILLED, &self.events);
        } else {
            tracing::error!(
                pid,
                id = p.event_id(),
                "still runs after SIGKILL; left RUNNING (kill and delete go through the new launcher)"
            );
        }
    }
}

/// True when `pid` has exited (no such process, or a zombie).
fn pid_gone(pid: i32) -> bool {
    use std::os::fd::AsFd;
    match ward_runtime::sys::notify::pidfd_open(pid, false) {
        Err(nix::errno::Errno::ESRCH) => true,
        Err(_) => false,
        Ok(fd) => ward_runtime::sys::notify::pidfd_wait(fd.as_fd(), 0),
    }
}
