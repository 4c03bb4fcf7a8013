//! The shim's one error type and its single mapping onto ttrpc status codes.

use std::path::PathBuf;

use containerd_shim_protos::ttrpc;
use serde::{Deserialize, Serialize};

/// What kind of failure, as containerd should see it (a ttrpc/gRPC code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    Unimplemented,
    Internal,
}

/// Errors of the shim and of its launcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("process {exec_id} of container {id} not found")]
    ProcessNotFound { id: String, exec_id: String },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0} is not implemented by containerd-shim-ward-v2")]
    Unimplemented(&'static str),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Sys {
        op: &'static str,
        source: nix::Error,
    },
    #[error("launcher protocol: {0}")]
    Protocol(String),
    #[error("launcher is gone")]
    LauncherGone,
    /// Ward's runtime library (in the launcher).
    #[error(transparent)]
    Runtime(#[from] ward_runtime::Error),
    /// An error raised inside the launcher (mostly the runtime library's), carried over the socket.
    #[error("{message}")]
    Remote { kind: Kind, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub fn sys(op: &'static str) -> impl FnOnce(nix::Error) -> Self {
        move |source| Error::Sys { op, source }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::ContainerNotFound(_) | Error::ProcessNotFound { .. } => Kind::NotFound,
            Error::AlreadyExists(_) => Kind::AlreadyExists,
            Error::InvalidArgument(_) => Kind::InvalidArgument,
            Error::FailedPrecondition(_) => Kind::FailedPrecondition,
            Error::Unimplemented(_) => Kind::Unimplemented,
            Error::Remote { kind, .. } => *kind,
            Error::Runtime(e) => runtime_kind(e),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Kind::NotFound
            }
            Error::Io { .. } | Error::Sys { .. } | Error::Protocol(_) | Error::LauncherGone => {
                Kind::Internal
            }
        }
    }
}

fn runtime_kind(e: &ward_runtime::Error) -> Kind {
    use ward_runtime::Error as R;
    match e {
        R::NotFound(_) => Kind::NotFound,
        R::Exists(_) => Kind::AlreadyExists,
        R::InvalidId(_) | R::Spec { .. } | R::Config(_) | R::Profile { .. } => {
            Kind::InvalidArgument
        }
        // A policy refusal: the request is well-formed, the node does not allow it.
        R::Policy(_)
        | R::Pod(ward_runtime::pod::PodError::Policy(_))
        | R::ProfileNotAllowed { .. }
        | R::State { .. } => Kind::FailedPrecondition,
        R::Unsupported(_) => Kind::Unimplemented,
        _ => Kind::Internal,
    }
}

/// The one place where domain errors become ttrpc status codes.
impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        use ttrpc::Code;
        let code = match e.kind() {
            Kind::NotFound => Code::NOT_FOUND,
            Kind::AlreadyExists => Code::ALREADY_EXISTS,
            Kind::InvalidArgument => Code::INVALID_ARGUMENT,
            Kind::FailedPrecondition => Code::FAILED_PRECONDITION,
            Kind::Unimplemented => Code::UNIMPLEMENTED,
            Kind::Internal => Code::INTERNAL,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kinds_to_ttrpc_codes() {
        let e: ttrpc::Error = Error::ContainerNotFound("c1".into()).into();
        match e {
            ttrpc::Error::RpcStatus(s) => {
                assert_eq!(s.code(), ttrpc::Code::NOT_FOUND);
                assert_eq!(s.message(), "container c1 not found");
            }
            other => panic!("unexpected {other:?}"),
        }
        let e: ttrpc::Error = Error::Remote {
            kind: Kind::FailedPrecondition,
            message: "x".into(),
        }
        .into();
        assert!(
            matches!(e, ttrpc::Error::RpcStatus(s) if s.code() == ttrpc::Code::FAILED_PRECONDITION)
        );
    }
}
