use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ward_runtime::{ContainerId, CreateOptions};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Bundle directory (holds config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Refused: the sandbox needs pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    pub id: String,
}

impl CreateArgs {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
            no_pivot: self.no_pivot,
            // Anonymous stdio pipes (an engine's) go to the container's ids: see stdio_owner.rs.
            io_owner: Some(Default::default()),
            ..Default::default()
        }
    }
}

pub fn run(g: &GlobalOpts, a: CreateArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    g.runtime()?.create(&id, a.options())?;
    Ok(0)
}
