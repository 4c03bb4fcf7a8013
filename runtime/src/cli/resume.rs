use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct ResumeArgs {
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: ResumeArgs) -> Result<i32> {
    g.runtime()?.resume(&ContainerId::new(&a.id)?)?;
    Ok(0)
}
