//! The ttrpc Task service (task API v2): thin adapters from protobuf requests
//! to [`Service`] methods. Errors become ttrpc codes in `error.rs`, once.

use std::path::PathBuf;
use std::sync::Arc;

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, Status,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::{Task, TtrpcContext, TtrpcResult};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::types::task::ProcessInfo;

use crate::error::Error;
use crate::events::timestamp;
use crate::io::StdioPaths;
use crate::options::RuntimeOptions;
use crate::process;
use crate::service::{CreateTask, Service};

pub struct TaskService {
    service: Arc<Service>,
}

impl TaskService {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

/// containerd's "" exec id means the container's init.
fn exec_id(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// An `Any` holding JSON (OCI process/resources as containerd sends them).
fn json_of(any: &MessageField<Any>, what: &str) -> Result<serde_json::Value, Error> {
    let any = any
        .as_ref()
        .ok_or_else(|| Error::InvalidArgument(format!("{what} is missing")))?;
    serde_json::from_slice(&any.value).map_err(|e| Error::InvalidArgument(format!("{what}: {e}")))
}

fn status_of(s: process::Status) -> Status {
    match s {
        process::Status::Created => Status::CREATED,
        process::Status::Running => Status::RUNNING,
        process::Status::Paused => Status::PAUSED,
        process::Status::Stopped => Status::STOPPED,
    }
}

impl Task for TaskService {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> TtrpcResult<CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented("restore from checkpoint").into());
        }
        let options = RuntimeOptions::from_any(req.options.as_ref())?
            .with_config_default(std::env::var_os(crate::options::CONFIG_ENV))?;
        if options.handler_config {
            let path = std::path::Path::new(&req.bundle).join("config.json");
            let text = ward_runtime::bounded::read_text(&path, ward_runtime::bounded::Follow::No)
                .map_err(Error::io("read", &path))?;
            let spec: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
            crate::options::refuse_pod_userns_on_config_path(&options, &spec)?;
        }
        let pid = self.service.create(CreateTask {
            stdio: StdioPaths::new(&req.stdin, &req.stdout, &req.stderr, req.terminal),
            id: req.id,
            bundle: PathBuf::from(req.bundle),
            rootfs: req.rootfs,
            options,
        })?;
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let pid = self.service.start(&req.id, exec_id(&req.exec_id))?;
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        let (pid, status, at) = self.service.delete(&req.id, exec_id(&req.exec_id))?;
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: status,
            exited_at: at.map(timestamp).unwrap_or_default(),
            ..Default::default()
        })
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let processes = self
            .service
            .pids(&req.id)?
            .into_iter()
            .map(|pid| ProcessInfo {
                pid: pid as u32,
                ..Default::default()
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.service.pause(&req.id)?;
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.service.resume(&req.id)?;
        Ok(Empty::new())
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.service
            .kill(&req.id, exec_id(&req.exec_id), req.signal, req.all)?;
        Ok(Empty::new())
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        let spec = json_of(&req.spec, "exec process spec")?;
        let stdio = StdioPaths::new(&req.stdin, &req.stdout, &req.stderr, req.terminal);
        self.service.exec(&req.id, &req.exec_id, stdio, spec)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        self.service
            .resize_pty(&req.id, exec_id(&req.exec_id), req.width, req.height)?;
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        if req.stdin {
            self.service.close_io(&req.id, exec_id(&req.exec_id))?;
        }
        Ok(Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let resources = json_of(&req.resources, "resources")?;
        self.service.update(&req.id, resources)?;
        Ok(Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let (status, at) = self.service.wait(&req.id, exec_id(&req.exec_id))?;
        Ok(WaitResponse {
            exit_status: status,
            exited_at: at.map(timestamp).unwrap_or_default(),
            ..Default::default()
        })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let stats = self.service.stats(&req.id)?;
        Ok(StatsResponse {
            stats: MessageField::some(stats),
            ..Default::default()
        })
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        let (process, st, bundle) = self.service.state(&req.id, exec_id(&req.exec_id))?;
        Ok(StateResponse {
            id: req.id,
            bundle: bundle.display().to_string(),
            pid: st.pid as u32,
            status: status_of(st.status).into(),
            stdin: process.stdio.stdin_str(),
            stdout: process.stdio.stdout_str(),
            stderr: process.stdio.stderr_str(),
            terminal: process.stdio.terminal,
            exit_status: st.exit_status,
            exited_at: st.exited_at.map(timestamp).unwrap_or_default(),
            exec_id: req.exec_id,
            ..Default::default()
        })
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: self.service.task_pid(&req.id).unwrap_or(0) as u32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        if !self.service.shutdown() {
            tracing::debug!("shutdown requested while containers remain; staying up");
        }
        Ok(Empty::new())
    }
}
