//! The production backend: Ward's runtime library, called in-process (in the
//! launcher). Same policy, profiles and sandbox as the `ward` CLI.

use std::path::PathBuf;

use super::backend::{Backend, CreateArgs, ExecArgs};
use super::protocol::{CgroupPaths, CgroupStats};
use crate::error::{Error, Result};

pub struct WardBackend {
    root: PathBuf,
}

impl WardBackend {
    /// `root` is the runtime's state directory for this containerd namespace.
    pub fn new(root: PathBuf) -> Result<Self> {
        Ok(Self { root })
    }

    fn unavailable(&self) -> Error {
        Error::FailedPrecondition(format!(
            "Ward's runtime library (state root {}) does not provide Runtime yet",
            self.root.display()
        ))
    }
}

impl Backend for WardBackend {
    fn create(&mut self, _args: CreateArgs) -> Result<(i32, CgroupPaths)> {
        Err(self.unavailable())
    }
    fn start(&mut self, _id: &str) -> Result<()> {
        Err(self.unavailable())
    }
    fn exec(&mut self, _args: ExecArgs) -> Result<i32> {
        Err(self.unavailable())
    }
    fn kill(&mut self, _id: &str, _signal: i32, _all: bool) -> Result<()> {
        Err(self.unavailable())
    }
    fn delete(&mut self, _id: &str) -> Result<()> {
        Ok(())
    }
    fn pause(&mut self, _id: &str) -> Result<()> {
        Err(self.unavailable())
    }
    fn resume(&mut self, _id: &str) -> Result<()> {
        Err(self.unavailable())
    }
    fn update(&mut self, _id: &str, _resources: &serde_json::Value) -> Result<()> {
        Err(self.unavailable())
    }
    fn pids(&mut self, _id: &str) -> Result<Vec<i32>> {
        Err(self.unavailable())
    }
    fn stats(&mut self, _id: &str) -> Result<CgroupStats> {
        Err(self.unavailable())
    }
}
