//! `Runtime::delete`: undo a container from Ward's own record (`ward.json`) and libcontainer's,
//! whichever exist. A create killed at any point leaves a record that names what it made
//! before it made it (see `create.rs`), so `delete --force` removes everything: processes in
//! the container's cgroups (even when libcontainer's state is missing or half-written), the
//! supervisor, cgroup dirs, the state dir and the uid range claim. Mounts live in the
//! container's private mount namespace and go with its processes.

use libcontainer::container::{Container, ContainerStatus};

use super::{remove_cgroup_dirs, Runtime};
use crate::charge;
use crate::error::{io, Error, Result};
use crate::id::ContainerId;
use crate::pod;
use crate::state::WardState;

/// How long `delete --force` waits for a half-created container's processes to die.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Runtime {
    pub fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let cdir = self.root.join(id.as_str());
        let wdir = self.ward_dir.join(id.as_str());
        if !cdir.exists() && !wdir.exists() {
            return if force {
                Ok(())
            } else {
                Err(Error::NotFound(id.to_string()))
            };
        }
        let ward = WardState::load(&wdir).ok();
        // A systemd scope is stopped once: before libcontainer removes the cgroups (systemd
        // removes an emptied scope's cgroups itself), or below when libcontainer has no state.
        let mut scope_stopped = false;
        if cdir.exists() {
            match self.load(id) {
                Ok(mut c) => {
                    scope_stopped = self.delete_container(&mut c, &wdir, force, ward.as_ref())?;
                }
                // libcontainer's state is missing or half-written: a create killed while
                // building the container. Its processes are found by cgroup below.
                Err(e) if force => {
                    tracing::warn!(id = %id, error = %e, "no usable libcontainer state; removing what Ward recorded")
                }
                Err(e) => return Err(e),
            }
            let _ = std::fs::remove_dir_all(&cdir);
        }
        crate::supervisor::stop(&wdir)?;
        if let Some(ws) = &ward {
            if force && ws.cgroup_claimed {
                // Only the dirs Ward created are searched: never a cgroup it did not make.
                crate::cgroup_guard::kill_all(&ws.created_cgroup_dirs, KILL_WAIT);
            }
            if let (Some(unit), false) = (&ws.systemd_unit, scope_stopped) {
                // The scope's processes are gone (killed above).
                crate::systemd::stop(&self.node.cgroups, unit)?;
            }
            // poststop: the container's processes are gone. A failing hook is logged and
            // delete goes on (runtime spec).
            let state = crate::hook_run::HookState {
                oci_version: "1.0.2",
                id: id.as_str(),
                status: "stopped",
                pid: 0,
                bundle: &ws.bundle,
                annotations: None,
            };
            crate::hook_run::run_all_warn("poststop", &ws.hooks.poststop, &state);
            ws.prepared.undo()?;
            remove_cgroup_dirs(&ws.created_cgroup_dirs);
        }
        pod::undo_sysfs(&wdir)?;
        if wdir.exists() {
            std::fs::remove_dir_all(&wdir).map_err(io("remove", &wdir))?;
        }
        self.ensure_dirs()?;
        self.allocator().release(id.as_str())?;
        Ok(())
    }

    /// libcontainer's delete; returns whether the container's systemd scope was stopped.
    fn delete_container(
        &self,
        c: &mut Container,
        wdir: &std::path::Path,
        force: bool,
        ward: Option<&WardState>,
    ) -> Result<bool> {
        charge::prepare_delete(c, wdir, force)?;
        let unit = ward.and_then(|w| Some((w, w.systemd_unit.as_ref()?)));
        let deletable = force || c.status() == ContainerStatus::Stopped;
        let stopped = match unit {
            // As runc: the processes killed, then the unit stopped, then the cgroups removed.
            // systemd removes an emptied scope's cgroups itself; libcontainer's removal,
            // racing it, would fail on a directory that vanished under it.
            Some((ws, unit)) if deletable => {
                crate::cgroup_guard::kill_all(&ws.created_cgroup_dirs, KILL_WAIT);
                crate::systemd::stop(&self.node.cgroups, unit)?;
                true
            }
            _ => false,
        };
        c.delete(force).map_err(|source| Error::Container {
            op: "delete",
            source,
        })?;
        Ok(stopped)
    }
}
