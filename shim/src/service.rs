//! The shim's domain: containers and their processes, over the launcher.
//! ttrpc methods (task.rs) are thin adapters onto these methods.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use containerd_shim::ExitSignal;
use containerd_shim_protos::api::Mount;
use containerd_shim_protos::events::task::{TaskCreate, TaskIO};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::io::{ProcessIo, StdioPaths};
use crate::launcher::client::Launcher;
use crate::launcher::protocol::{Reply, Request, RootfsMount};
use crate::oom::{self, OomWatch};
use crate::options::RuntimeOptions;
use crate::process::{ExitTable, ProcState, Process, Status};

mod failsafe;

/// How long the runtime has to send a pty master after create/exec.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

struct Container {
    bundle: PathBuf,
    init: Arc<Process>,
    execs: HashMap<String, Arc<Process>>,
    _oom: Option<OomWatch>,
}

pub struct CreateTask {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Vec<Mount>,
    pub stdio: StdioPaths,
    pub options: RuntimeOptions,
}

pub struct Service {
    /// Replaced when the launcher dies (see failsafe.rs).
    launcher: RwLock<Arc<Launcher>>,
    events: EventSink,
    exits: Arc<ExitTable>,
    containers: Mutex<HashMap<String, Container>>,
    exit_signal: Arc<ExitSignal>,
}

impl Service {
    pub fn new(
        launcher: Launcher,
        events: EventSink,
        exits: Arc<ExitTable>,
        exit_signal: Arc<ExitSignal>,
    ) -> Self {
        Self {
            launcher: RwLock::new(Arc::new(launcher)),
            events,
            exits,
            containers: Mutex::default(),
            exit_signal,
        }
    }

    fn launcher(&self) -> Arc<Launcher> {
        self.launcher
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn process(&self, id: &str, exec_id: Option<&str>) -> Result<Arc<Process>> {
        let containers = self.lock();
        let c = containers
            .get(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        match exec_id {
            None => Ok(c.init.clone()),
            Some(e) => c
                .execs
                .get(e)
                .cloned()
                .ok_or_else(|| Error::ProcessNotFound {
                    id: id.to_string(),
                    exec_id: e.to_string(),
                }),
        }
    }

    pub fn create(&self, req: CreateTask) -> Result<i32> {
        if self.lock().contains_key(&req.id) {
            return Err(Error::AlreadyExists(format!("container {}", req.id)));
        }
        let (handoff, io) = ProcessIo::prepare(&req.stdio)?;
        let rootfs = req
            .rootfs
            .iter()
            .map(|m| RootfsMount {
                fs_type: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let reply = self.launcher().call(
            Request::Create {
                id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs,
                config_path: req.options.config_path.clone(),
                io_owner: req.options.io_owner,
                console_socket: handoff.console.as_ref().map(|c| c.path().to_path_buf()),
                stdio: handoff.slots,
            },
            handoff.fds,
        )?;
        let Reply::Created { pid, cgroup } = reply else {
            return Err(Error::Protocol(format!(
                "unexpected reply to create: {reply:?}"
            )));
        };
        if let Some(console) = &handoff.console {
            let attached = console
                .receive_master(CONSOLE_TIMEOUT)
                .and_then(|master| io.attach_console(master));
            if let Err(e) = attached {
                self.discard(&req.id, &req.bundle);
                return Err(e);
            }
        }
        let init = Arc::new(Process::new(&req.id, None, req.stdio.clone(), None, pid));
        init.set_io(io);
        let oom = oom::watch(&req.id, &cgroup, self.events.clone()).unwrap_or_else(|e| {
            tracing::warn!(id = %req.id, error = %e, "no OOM notifications for this container");
            None
        });
        self.lock().insert(
            req.id.clone(),
            Container {
                bundle: req.bundle.clone(),
                init: init.clone(),
                execs: HashMap::new(),
                _oom: oom,
            },
        );
        self.exits.register(pid, init);
        self.events.create(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.display().to_string(),
            rootfs: req.rootfs,
            io: MessageField::some(TaskIO {
                stdin: req.stdio.stdin_str(),
                stdout: req.stdio.stdout_str(),
                stderr: req.stdio.stderr_str(),
                terminal: req.stdio.terminal,
                ..Default::default()
            }),
            pid: pid as u32,
            ..Default::default()
        });
        tracing::info!(id = %req.id, pid, "container created");
        Ok(pid)
    }

    /// Best-effort cleanup of a container whose create did not complete.
    fn discard(&self, id: &str, bundle: &std::path::Path) {
        let req = Request::Delete {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
        };
        if let Err(e) = self.launcher().call(req, Vec::new()) {
            tracing::warn!(id, error = %e, "cleanup after failed create");
        }
    }

    pub fn start(&self, id: &str, exec_id: Option<&str>) -> Result<i32> {
        let process = self.process(id, exec_id)?;
        process.begin_start().map_err(|s| {
            Error::FailedPrecondition(format!("cannot start a process that is {s:?}"))
        })?;
        let result = match exec_id {
            None => self.start_init(id, &process),
            Some(exec_id) => self.start_exec(id, exec_id, &process),
        };
        match result {
            Ok(pid) => Ok(pid),
            Err(e) => {
                process.end_start(None, &self.events, |_| {});
                if exec_id.is_some() {
                    // An exec that failed to start never runs: release Wait.
                    process.abandon(255);
                }
                Err(e)
            }
        }
    }

    fn start_init(&self, id: &str, init: &Arc<Process>) -> Result<i32> {
        self.launcher()
            .call(Request::Start { id: id.to_string() }, Vec::new())?;
        let pid = init.snapshot().pid;
        init.end_start(Some(pid), &self.events, |pid| self.events.start(id, pid));
        tracing::info!(id, pid, "container started");
        Ok(pid)
    }

    fn start_exec(&self, id: &str, exec_id: &str, process: &Arc<Process>) -> Result<i32> {
        let (handoff, io) = ProcessIo::prepare(&process.stdio)?;
        let reply = self.launcher().call(
            Request::Exec {
                id: id.to_string(),
                process: process.spec.clone().unwrap_or_default(),
                console_socket: handoff.console.as_ref().map(|c| c.path().to_path_buf()),
                stdio: handoff.slots,
            },
            handoff.fds,
        )?;
        let Reply::Pid(pid) = reply else {
            return Err(Error::Protocol(format!(
                "unexpected reply to exec: {reply:?}"
            )));
        };
        if let Some(console) = &handoff.console {
            // The process runs already: on failure it is killed, and reported.
            let attached = console
                .receive_master(CONSOLE_TIMEOUT)
                .and_then(|master| io.attach_console(master));
            if let Err(e) = attached {
                tracing::warn!(id, exec_id, error = %e, "exec terminal");
            }
        }
        process.set_io(io);
        process.end_start(Some(pid), &self.events, |pid| {
            self.events.exec_started(id, exec_id, pid)
        });
        // Registered after TaskExecStarted is queued: its exit comes after.
        self.exits.register(pid, process.clone());
        Ok(pid)
    }

    pub fn exec(
        &self,
        id: &str,
        exec_id: &str,
        stdio: StdioPaths,
        spec: serde_json::Value,
    ) -> Result<()> {
        let mut containers = self.lock();
        let c = containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        if c.init.snapshot().status == Status::Stopped {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is stopped"
            )));
        }
        if c.execs.contains_key(exec_id) {
            return Err(Error::AlreadyExists(format!("exec {exec_id} in {id}")));
        }
        let process = Process::new(id, Some(exec_id), stdio, Some(spec), 0);
        c.execs.insert(exec_id.to_string(), Arc::new(process));
        drop(containers);
        self.events.exec_added(id, exec_id);
        Ok(())
    }

    /// Deletes a process: returns its (pid, exit status, exit time).
    pub fn delete(
        &self,
        id: &str,
        exec_id: Option<&str>,
    ) -> Result<(i32, u32, Option<SystemTime>)> {
        let process = self.process(id, exec_id)?;
        let st = process.snapshot();
        if matches!(st.status, Status::Running | Status::Paused) {
            return Err(Error::FailedPrecondition(format!(
                "cannot delete {} while it is {:?}",
                process.event_id(),
                st.status
            )));
        }
        if let Some(exec_id) = exec_id {
            if let Some(c) = self.lock().get_mut(id) {
                c.execs.remove(exec_id);
            }
            self.exits.forget(st.pid);
            process.close_io();
            process.abandon(st.exit_status);
            return Ok((st.pid, st.exit_status, st.exited_at));
        }
        let bundle = self
            .lock()
            .get(id)
            .map(|c| c.bundle.clone())
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))?;
        self.call_retrying(Request::Delete {
            id: id.to_string(),
            bundle,
        })?;
        if let Some(c) = self.lock().remove(id) {
            for p in c.execs.values() {
                self.exits.forget(p.snapshot().pid);
                p.close_io();
                p.abandon(128 + libc::SIGKILL as u32);
            }
        }
        self.exits.forget(st.pid);
        process.close_io();
        // Deleting a created-but-never-started container kills its init: 137.
        let st = process.snapshot();
        let (status, at) = if st.status == Status::Stopped {
            (st.exit_status, st.exited_at)
        } else {
            (128 + libc::SIGKILL as u32, Some(SystemTime::now()))
        };
        process.abandon(status);
        self.events.delete(id, st.pid, status, at);
        tracing::info!(id, "container deleted");
        Ok((st.pid, status, at))
    }

    pub fn kill(&self, id: &str, exec_id: Option<&str>, signal: u32, all: bool) -> Result<()> {
        let process = self.process(id, exec_id)?;
        let st = process.snapshot();
        if st.status == Status::Stopped && all && exec_id.is_none() {
            // The init is gone, but processes it started may live on: a pod container shares
            // the sandbox's pid namespace, so its init's death does not end them. `all` reaches
            // them through the container's cgroup (as `runc kill --all` does). containerd 2's
            // CRI sends this after the init's exit and waits for the container's stdio to close
            // before it records the exit: without it StopContainer never returns.
            let signal = i32::try_from(signal)
                .map_err(|_| Error::InvalidArgument(format!("signal {signal}")))?;
            let request = Request::Kill {
                id: id.to_string(),
                signal,
                all,
            };
            return self.call_retrying(request).map(|_| ());
        }
        if st.status == Status::Stopped {
            return Err(Error::ContainerNotFound(format!(
                "{}: process already finished",
                process.event_id()
            )));
        }
        let signal = i32::try_from(signal)
            .map_err(|_| Error::InvalidArgument(format!("signal {signal}")))?;
        let request = match exec_id {
            None => Request::Kill {
                id: id.to_string(),
                signal,
                all,
            },
            Some(_) if st.pid == 0 => {
                return Err(Error::FailedPrecondition(format!(
                    "{} is not started",
                    process.event_id()
                )))
            }
            Some(_) => Request::KillPid {
                pid: st.pid,
                signal,
            },
        };
        self.call_retrying(request).map(|_| ())
    }

    pub fn resize_pty(
        &self,
        id: &str,
        exec_id: Option<&str>,
        width: u32,
        height: u32,
    ) -> Result<()> {
        let process = self.process(id, exec_id)?;
        let io = process
            .io()
            .ok_or_else(|| Error::FailedPrecondition("process has no stdio".into()))?;
        io.resize(width, height)
    }

    pub fn close_io(&self, id: &str, exec_id: Option<&str>) -> Result<()> {
        let process = self.process(id, exec_id)?;
        match process.io() {
            Some(io) => io.close_stdin(),
            None => Ok(()),
        }
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        self.process(id, None)?;
        match self
            .launcher()
            .call(Request::Pids { id: id.to_string() }, Vec::new())?
        {
            Reply::Pids(p) => Ok(p),
            other => Err(Error::Protocol(format!(
                "unexpected reply to pids: {other:?}"
            ))),
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let init = self.process(id, None)?;
        self.launcher()
            .call(Request::Pause { id: id.to_string() }, Vec::new())?;
        init.set_status(Status::Paused);
        self.events.paused(id);
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let init = self.process(id, None)?;
        self.launcher()
            .call(Request::Resume { id: id.to_string() }, Vec::new())?;
        if init.snapshot().status == Status::Paused {
            init.set_status(Status::Running);
        }
        self.events.resumed(id);
        Ok(())
    }

    pub fn update(&self, id: &str, resources: serde_json::Value) -> Result<()> {
        self.process(id, None)?;
        self.launcher()
            .call(
                Request::Update {
                    id: id.to_string(),
                    resources,
                },
                Vec::new(),
            )
            .map(|_| ())
    }

    pub fn stats(&self, id: &str) -> Result<Any> {
        self.process(id, None)?;
        match self
            .launcher()
            .call(Request::Stats { id: id.to_string() }, Vec::new())?
        {
            Reply::Stats(s) => crate::metrics::to_any(&s),
            other => Err(Error::Protocol(format!(
                "unexpected reply to stats: {other:?}"
            ))),
        }
    }

    pub fn wait(&self, id: &str, exec_id: Option<&str>) -> Result<(u32, Option<SystemTime>)> {
        Ok(self.process(id, exec_id)?.wait())
    }

    pub fn state(
        &self,
        id: &str,
        exec_id: Option<&str>,
    ) -> Result<(Arc<Process>, ProcState, PathBuf)> {
        let process = self.process(id, exec_id)?;
        let bundle = self
            .lock()
            .get(id)
            .map(|c| c.bundle.clone())
            .unwrap_or_default();
        let st = process.snapshot();
        Ok((process, st, bundle))
    }

    /// The init's pid, if the container exists.
    pub fn task_pid(&self, id: &str) -> Option<i32> {
        self.lock().get(id).map(|c| c.init.snapshot().pid)
    }

    /// Shutdown: the shim exits once it serves no container.
    pub fn shutdown(&self) -> bool {
        if !self.lock().is_empty() {
            return false;
        }
        self.exit_signal.signal();
        true
    }
}
