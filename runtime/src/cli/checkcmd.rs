use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ward_runtime::check::{self, CheckOptions};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A directory on the snapshotter's filesystem (probed for idmapped mounts).
    #[arg(long, default_value = "/var/lib/containerd")]
    pub snapshotter_root: PathBuf,
    /// containerd's config file.
    #[arg(long, default_value = "/etc/containerd/config.toml")]
    pub containerd_config: PathBuf,
}

/// Print the node readiness table; exit 1 when something required is missing.
pub fn run(_g: &GlobalOpts, a: CheckArgs) -> Result<i32> {
    let report = check::run(&CheckOptions {
        snapshotter_root: a.snapshotter_root,
        containerd_config: a.containerd_config,
        ..Default::default()
    });
    print!("{report}");
    Ok(if report.ok() { 0 } else { 1 })
}
