use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct StateArgs {
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: StateArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    let s = g.runtime()?.state(&id)?;
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(0)
}
