use anyhow::Result;
use clap::Args;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct CheckArgs {}

pub fn run(_g: &GlobalOpts, _a: CheckArgs) -> Result<i32> {
    anyhow::bail!("check: not wired yet")
}
