use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ward_runtime::oci_spec::runtime::{RootBuilder, Spec};
use ward_runtime::ContainerId;

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct SpecArgs {
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Root filesystem path, relative to the bundle.
    #[arg(long, default_value = "rootfs")]
    pub rootfs: PathBuf,
}

/// runc's default spec, passed through Ward's policy, so what is written is what will run
/// (minus the per-container uid range, which `create` allocates).
pub fn run(g: &GlobalOpts, a: SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("{}: already exists", path.display());
    }
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default()
            .path(&a.rootfs)
            .readonly(true)
            .build()?,
    ));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
    }
    let rt = g.runtime()?;
    let mut hardened = rt.preview(&ContainerId::new("spec")?, spec)?.spec;
    if let Some(l) = hardened.linux_mut() {
        // allocated per container at create time
        l.set_uid_mappings(None);
        l.set_gid_mappings(None);
        l.set_cgroups_path(None);
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&hardened)?)?;
    Ok(0)
}
