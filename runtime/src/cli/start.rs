use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct StartArgs {
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: StartArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    g.runtime()?.start(&id)?;
    Ok(0)
}
