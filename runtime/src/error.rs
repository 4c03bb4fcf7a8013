//! The library's error: one line, naming the field or path and the reason.

use std::path::PathBuf;

use libcontainer::error::LibcontainerError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    InvalidId(#[from] crate::id::InvalidId),
    #[error("{path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("profile {name:?}: {source}")]
    Profile {
        name: String,
        source: ward_profiles::ProfileError,
    },
    #[error("annotations[ward.dev/profile]: profile {name:?} is not in this node's allowed_profiles {allowed:?}")]
    ProfileNotAllowed { name: String, allowed: Vec<String> },
    #[error(transparent)]
    Policy(#[from] crate::harden::PolicyError),
    #[error(transparent)]
    Alloc(#[from] crate::alloc::AllocError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    #[error(transparent)]
    Sys(#[from] crate::sys::SysError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Pod(#[from] crate::pod::PodError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    CgroupGuard(#[from] crate::cgroup_guard::CgroupGuardError),
    #[error(transparent)]
    Systemd(#[from] crate::systemd::ScopeError),
    #[error(transparent)]
    Charge(#[from] crate::charge::ChargeError),
    #[error(transparent)]
    HookRun(#[from] crate::hook_run::HookRunError),
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::SupervisorError),
    #[error("{op}: {source}")]
    Container {
        op: &'static str,
        source: LibcontainerError,
    },
    #[error("exec: {0}")]
    Exec(String),
    /// The container's program did not start (reported by its init before `start` returned).
    #[error("start: {0}")]
    ProgramStart(String),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("container {id} is {status}: {what}")]
    State {
        id: String,
        status: String,
        what: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
