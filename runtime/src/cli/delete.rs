use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first; a missing container is not an error.
    #[arg(long, short = 'f')]
    pub force: bool,
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: DeleteArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    g.runtime()?.delete(&id, a.force)?;
    Ok(0)
}
