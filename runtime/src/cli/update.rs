use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ward_runtime::oci_spec::runtime::{LinuxPidsBuilder, LinuxResources};
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// LinuxResources JSON file, or - for stdin.
    #[arg(long, short = 'r')]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    #[arg(long)]
    pub memory_swap: Option<i64>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: UpdateArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    let mut res: LinuxResources = match &a.resources {
        Some(p) => {
            let mut text = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = ward_profiles::bounded::read_text(p, ward_profiles::bounded::Follow::Yes)
                    .with_context(|| format!("--resources {}", p.display()))?;
            }
            serde_json::from_str(&text).with_context(|| format!("--resources {}", p.display()))?
        }
        None => LinuxResources::default(),
    };
    if a.memory.is_some() || a.memory_swap.is_some() {
        let mut m = (*res.memory()).unwrap_or_default();
        if let Some(v) = a.memory {
            m.set_limit(Some(v));
        }
        if let Some(v) = a.memory_swap {
            m.set_swap(Some(v));
        }
        res.set_memory(Some(m));
    }
    if let Some(v) = a.pids_limit {
        res.set_pids(Some(LinuxPidsBuilder::default().limit(v).build()?));
    }
    if a.cpu_shares.is_some() || a.cpu_quota.is_some() || a.cpu_period.is_some() {
        let mut c = res.cpu().clone().unwrap_or_default();
        if let Some(v) = a.cpu_shares {
            c.set_shares(Some(v));
        }
        if let Some(v) = a.cpu_quota {
            c.set_quota(Some(v));
        }
        if let Some(v) = a.cpu_period {
            c.set_period(Some(v));
        }
        res.set_cpu(Some(c));
    }
    g.runtime()?.update(&id, &res)?;
    Ok(0)
}
