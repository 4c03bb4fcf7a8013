use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct PauseArgs {
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: PauseArgs) -> Result<i32> {
    g.runtime()?.pause(&ContainerId::new(&a.id)?)?;
    Ok(0)
}
