use anyhow::Result;
use clap::{Args, ValueEnum};

use super::GlobalOpts;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(g: &GlobalOpts, a: ListArgs) -> Result<i32> {
    let all = g.runtime()?.list()?;
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&all)?),
        ListFormat::Table => {
            println!(
                "{:<24} {:>8} {:<8} {:<40} CREATED",
                "ID", "PID", "STATUS", "BUNDLE"
            );
            for s in all {
                println!(
                    "{:<24} {:>8} {:<8} {:<40} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created.unwrap_or_default()
                );
            }
        }
    }
    Ok(0)
}
