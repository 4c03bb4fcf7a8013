//! The verbs that read or adjust a container without changing its lifecycle: `state`, `list`,
//! `ps` (pids), `events --stats`, `update`, and the container's cgroup.

use super::*;

impl Runtime {
    /// The OCI state of a container (`ward state`), with Ward's annotations: spec overrides
    /// and the supervisor's health.
    pub fn state(&self, id: &ContainerId) -> Result<State> {
        let c = self.load(id)?;
        let ws = self.ward_state(id).ok();
        let status = match c.status() {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Paused => "paused",
        };
        let spec = c.spec().ok();
        let _ = spec;
        let mut state = State {
            oci_version: "1.0.2".into(),
            id: id.to_string(),
            status: status.into(),
            pid: if c.status() == ContainerStatus::Stopped {
                0
            } else {
                c.pid().map(|p| p.as_raw()).unwrap_or(0)
            },
            bundle: ws
                .as_ref()
                .map(|w| w.bundle.clone())
                .unwrap_or_else(|| c.bundle().clone()),
            rootfs: ws
                .as_ref()
                .map(|w| w.prepared.rootfs.clone())
                .unwrap_or_default(),
            created: c.created().map(|t| t.to_rfc3339()),
            owner: c
                .creator()
                .map(|o| o.to_string_lossy().into_owned())
                .unwrap_or_default(),
            annotations: with_overrides(c.state.annotations.clone(), ws.as_ref()),
        };
        let profile = ws.as_ref().map_or("", |w| w.profile.as_str());
        crate::supervisor::annotate_state(&mut state, &self.ward_dir.join(id.as_str()), profile);
        Ok(state)
    }

    pub fn list(&self) -> Result<Vec<State>> {
        let mut out = vec![];
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("read", &self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        ids.sort();
        for name in ids {
            if let Ok(id) = ContainerId::new(name) {
                if let Ok(s) = self.state(&id) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    fn cgroup_manager(&self, id: &ContainerId) -> Result<libcgroups::common::AnyCgroupManager> {
        let c = self.load(id)?;
        let spec = c.spec().map_err(|source| Error::Container {
            op: "load config",
            source,
        })?;
        libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: spec.cgroup_path.clone(),
            systemd_cgroup: false,
            container_name: id.to_string(),
        })
        .map_err(|e| Error::Cgroup(e.to_string()))
    }

    pub fn pids(&self, id: &ContainerId) -> Result<Vec<i32>> {
        use libcgroups::common::CgroupManager;
        let m = self.cgroup_manager(id)?;
        // The container's seccomp supervisor is charged to its cgroup but is not one of its
        // processes.
        let supervisor = crate::supervisor::running_pid(&self.ward_dir.join(id.as_str()));
        m.get_all_pids()
            .map(|v| {
                v.into_iter()
                    .map(|p| p.as_raw())
                    .filter(|p| Some(*p) != supervisor)
                    .collect()
            })
            .map_err(|e| Error::Cgroup(e.to_string()))
    }

    pub fn stats(&self, id: &ContainerId) -> Result<libcgroups::stats::Stats> {
        use libcgroups::common::CgroupManager;
        self.cgroup_manager(id)?
            .stats()
            .map_err(|e| Error::Cgroup(e.to_string()))
    }

    /// The container's cgroup path (relative to each cgroup mount).
    pub fn cgroup_path(&self, id: &ContainerId) -> Result<PathBuf> {
        let c = self.load(id)?;
        c.spec()
            .map(|s| s.cgroup_path.clone())
            .map_err(|source| Error::Container {
                op: "load config",
                source,
            })
    }

    /// Update resources. Limits stay within the node policy: a pids or memory limit above the
    /// profile's default is clamped to it.
    pub fn update(
        &self,
        id: &ContainerId,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<()> {
        use libcgroups::common::{CgroupManager, ControllerOpt};
        let ws = self.ward_state(id)?;
        let profile =
            ward_profiles::load(&ws.profile, &self.node.profile_dirs).map_err(|source| {
                Error::Profile {
                    name: ws.profile.clone(),
                    source,
                }
            })?;
        let policy = self.policy(&profile)?;
        let mut spec = Spec::default();
        spec.set_linux(Some({
            let mut l = oci_spec::runtime::Linux::default();
            l.set_resources(Some(resources.clone()));
            l.set_cgroups_path(Some(self.cgroup_path(id)?));
            l
        }));
        let ctx = HardenContext::default();
        harden::cgroups::apply(&mut spec, &policy.limits, &ctx)?;
        let res = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        self.cgroup_manager(id)?
            .apply(&ControllerOpt {
                resources: &res,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        if let Some(unit) = &ws.systemd_unit {
            crate::systemd::set_limits(&self.node.cgroups, unit, &res)?;
        }
        Ok(())
    }
}
