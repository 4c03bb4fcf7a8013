//! Who tells the shim that its launcher died, and what the shim then does.
//!
//! The launcher is the shim's child, so the containerd-shim crate's SIGCHLD reaper (in this
//! process) reaps it and publishes `(pid, status)` on the crate's pid monitor; the launcher's
//! socket ending says the same. Either starts [`Service::launcher_died`] (once per launcher).
//! After that death the launcher's children (container inits, exec'd processes, supervisors)
//! are the shim's, as its subreaper: their exits arrive on the same monitor and are routed to
//! the processes the shim tracks, with their real status.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::launcher::client::Launcher;
use crate::launcher::{respawn, LauncherProcess};
use crate::process::ExitTable;
use crate::service::Service;

/// Launchers a shim starts after its first one, at most (one dying at start would otherwise
/// be replaced forever).
const MAX_RESPAWNS: u32 = 5;

/// What builds a [`Launcher`] client for a launcher process: exits go to the exit queue, the
/// end of its socket to the watcher.
#[derive(Clone)]
pub struct LauncherFactory {
    exit_tx: Sender<(i32, i32)>,
    death_tx: Sender<i32>,
}

impl LauncherFactory {
    pub fn connect(&self, process: LauncherProcess) -> Result<Launcher> {
        let exit_tx = self.exit_tx.clone();
        let death_tx = self.death_tx.clone();
        Launcher::new(
            process,
            move |pid, code| {
                if exit_tx.send((pid, code)).is_err() {
                    tracing::error!(pid, "exit thread is gone");
                }
            },
            move |pid| {
                let _ = death_tx.send(pid);
            },
        )
    }
}

/// The watcher, before the service exists: subscribe to the crate's monitor first, so no
/// exit reaped from now on is missed.
pub struct Watch {
    subscription: containerd_shim::monitor::Subscription,
    factory: LauncherFactory,
    deaths: std::sync::mpsc::Receiver<i32>,
}

impl Watch {
    pub fn subscribe(exit_tx: Sender<(i32, i32)>) -> Result<Self> {
        let subscription = monitor_subscribe(Topic::Pid)
            .map_err(|e| Error::Protocol(format!("subscribe to the shim's reaper: {e}")))?;
        let (death_tx, deaths) = channel();
        Ok(Self {
            subscription,
            factory: LauncherFactory { exit_tx, death_tx },
            deaths,
        })
    }

    pub fn factory(&self) -> &LauncherFactory {
        &self.factory
    }

    /// Starts the two watcher threads: `reaped` (the crate's monitor) and `launcher-watch`
    /// (replaces a dead launcher: it blocks on calls to the new one, so not on `reaped`).
    pub fn start(
        self,
        service: Arc<Service>,
        exits: Arc<ExitTable>,
        events: EventSink,
        namespace: String,
        debug: bool,
    ) -> Result<()> {
        let Watch {
            subscription,
            factory,
            deaths,
        } = self;
        let death_tx = factory.death_tx.clone();
        let svc = service.clone();
        std::thread::Builder::new()
            .name("reaped".into())
            .spawn(move || {
                for ev in subscription.rx.iter() {
                    let Subject::Pid(pid) = ev.subject else {
                        continue;
                    };
                    if pid == svc.launcher_pid() {
                        tracing::error!(pid, status = ev.exit_code, "the launcher exited");
                        let _ = death_tx.send(pid);
                    } else {
                        exits.dispatch_orphan(pid, ev.exit_code, &events);
                    }
                }
            })
            .map_err(Error::io("spawn thread", "reaped"))?;
        std::thread::Builder::new()
            .name("launcher-watch".into())
            .spawn(move || {
                let mut started = 0;
                for dead in deaths.iter() {
                    service.launcher_died(dead, || {
                        started += 1;
                        if started > MAX_RESPAWNS {
                            return Err(Error::FailedPrecondition(format!(
                                "{MAX_RESPAWNS} launchers started already; not another"
                            )));
                        }
                        factory.connect(respawn::respawn(&namespace, debug)?)
                    });
                }
            })
            .map_err(Error::io("spawn thread", "launcher-watch"))?;
        Ok(())
    }
}
