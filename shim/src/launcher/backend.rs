//! The seam between the launcher and the container strategy: the runtime
//! library's contract, narrowed to what the shim needs. The production
//! implementation is [`super::ward::WardBackend`]; a host-process backend
//! exists only for plumbing tests (`feature = "testing"`).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::protocol::{CgroupPaths, CgroupStats};
use crate::error::Result;

/// The container's stdio, each fd with exactly one owner (moved into the runtime).
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug)]
pub struct CreateArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub config_path: Option<PathBuf>,
    /// containerd's IO owner; the stdio pipes/FIFOs go to the process's own ids without it.
    pub io_owner: ward_runtime::stdio_owner::IoOwner,
    pub console_socket: Option<PathBuf>,
    pub stdio: Stdio,
}

#[derive(Debug)]
pub struct ExecArgs {
    pub id: String,
    pub process: serde_json::Value,
    pub console_socket: Option<PathBuf>,
    pub stdio: Stdio,
}

/// Everything here runs in the single-threaded launcher: implementations may
/// fork. Processes they start must be children of the calling process.
pub trait Backend {
    /// Creates the container; its init is a waitable child of the caller.
    fn create(&mut self, args: CreateArgs) -> Result<(i32, CgroupPaths)>;
    fn start(&mut self, id: &str) -> Result<()>;
    /// Starts a process in the container; it is a waitable child of the caller.
    fn exec(&mut self, args: ExecArgs) -> Result<i32>;
    fn kill(&mut self, id: &str, signal: i32, all: bool) -> Result<()>;
    /// Force-deletes the container; a container that does not exist is not an error.
    /// `bundle` is containerd's bundle dir (what `create` recorded there tells a fresh
    /// launcher, in the `delete` action, which node config and state root apply).
    fn delete(&mut self, id: &str, bundle: &Path) -> Result<()>;
    /// Takes over a container created by another launcher (one that died), so that kill,
    /// delete and the rest find it. The default knows no way to: an error.
    fn adopt(&mut self, id: &str, _bundle: &Path) -> Result<()> {
        Err(crate::error::Error::FailedPrecondition(format!(
            "container {id}: this backend cannot take over a container"
        )))
    }
    fn pause(&mut self, id: &str) -> Result<()>;
    fn resume(&mut self, id: &str) -> Result<()>;
    fn update(&mut self, id: &str, resources: &serde_json::Value) -> Result<()>;
    fn pids(&mut self, id: &str) -> Result<Vec<i32>>;
    fn stats(&mut self, id: &str) -> Result<CgroupStats>;
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn create(&mut self, args: CreateArgs) -> Result<(i32, CgroupPaths)> {
        (**self).create(args)
    }
    fn start(&mut self, id: &str) -> Result<()> {
        (**self).start(id)
    }
    fn exec(&mut self, args: ExecArgs) -> Result<i32> {
        (**self).exec(args)
    }
    fn kill(&mut self, id: &str, signal: i32, all: bool) -> Result<()> {
        (**self).kill(id, signal, all)
    }
    fn delete(&mut self, id: &str, bundle: &Path) -> Result<()> {
        (**self).delete(id, bundle)
    }
    fn adopt(&mut self, id: &str, bundle: &Path) -> Result<()> {
        (**self).adopt(id, bundle)
    }
    fn pause(&mut self, id: &str) -> Result<()> {
        (**self).pause(id)
    }
    fn resume(&mut self, id: &str) -> Result<()> {
        (**self).resume(id)
    }
    fn update(&mut self, id: &str, resources: &serde_json::Value) -> Result<()> {
        (**self).update(id, resources)
    }
    fn pids(&mut self, id: &str) -> Result<Vec<i32>> {
        (**self).pids(id)
    }
    fn stats(&mut self, id: &str) -> Result<CgroupStats> {
        (**self).stats(id)
    }
}
