use anyhow::Result;
use clap::{Args, ValueEnum};
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    #[arg(long, short = 'f', value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    pub id: String,
    /// Accepted for runc compatibility (ps options); ignored.
    #[arg(trailing_var_arg = true, hide = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: PsArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    let pids = g.runtime()?.pids(&id)?;
    match a.format {
        PsFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        PsFormat::Table => {
            println!("{:>8}  CMD", "PID");
            for p in pids {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .replace('\0', " ")
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                println!("{p:>8}  {cmd}");
            }
        }
    }
    Ok(0)
}
