use anyhow::Result;
use clap::Args;
use ward_runtime::{ContainerId, Signal};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container, not only its init.
    #[arg(long, short = 'a')]
    pub all: bool,
    pub id: String,
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(g: &GlobalOpts, a: KillArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    let sig: Signal = a.signal.parse()?;
    g.runtime()?.kill(&id, sig, a.all)?;
    Ok(0)
}
