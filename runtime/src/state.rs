//! Ward's own per-container state, beside libcontainer's: `<root>/.ward/<id>/ward.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::harden::IdRange;
use crate::rootfs::Prepared;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WardState {
    pub id: String,
    /// The bundle the caller gave (libcontainer sees Ward's hardened copy).
    pub bundle: PathBuf,
    pub profile: String,
    pub profile_hash: String,
    pub range: IdRange,
    pub prepared: Prepared,
    /// cgroup directories Ward's cgroup path created above the container's own (removed on delete).
    pub created_cgroup_dirs: Vec<PathBuf>,
    pub dropped_caps: Vec<String>,
    /// Node config in force at create (exec uses the same).
    pub config_path: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Created as a pod sandbox (annotation `io.kubernetes.cri.container-type: sandbox`):
    /// only such a container may be joined by a pod container (see `pod_trust.rs`).
    #[serde(default)]
    pub sandbox: bool,
    /// Ward made the container's leaf cgroups (`created_cgroup_dirs` lists them): their
    /// processes are the container's, for `delete --force` to kill. Until then the leaves
    /// listed are only planned, and are removed only if empty.
    #[serde(default)]
    pub cgroup_claimed: bool,
    /// The transient scope systemd made for the container (systemd cgroup driver): stopped on
    /// delete. Recorded once systemd made it (before, a killed create leaves an empty scope,
    /// which systemd stops by itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// What the spec asked that Ward applied differently (see `harden/overrides.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<crate::harden::overrides::Override>,
    /// Host-side hooks Ward runs itself (`hook_run.rs`); libcontainer never sees them.
    #[serde(default, skip_serializing_if = "crate::hook_run::HostHooks::is_empty")]
    pub hooks: crate::hook_run::HostHooks,
}

impl WardState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("ward.json")
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("ward.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("serializable"))?;
        std::fs::rename(tmp, Self::path(dir))
    }

    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let b = std::fs::read(Self::path(dir))?;
        serde_json::from_slice(&b).map_err(std::io::Error::other)
    }
}

/// The OCI state document (`ward state`), with the caller's bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub status: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: Option<String>,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}
