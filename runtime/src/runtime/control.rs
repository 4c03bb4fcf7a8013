//! The verbs that signal or freeze a container's processes: `kill`, `pause`, `resume`.

use super::*;

impl Runtime {
    pub fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        let mut c = self.load(id)?;
        match c.kill(signal.as_nix(), all) {
            Ok(()) => Ok(()),
            // systemd stops a scope whose processes have all exited and removes its cgroups
            // in the hierarchies it manages (the D-Bus driver), where libcontainer looks:
            // signal what is left in the others, and the init if it still runs.
            Err(source) if all => {
                let Some(left) = self.cgroup_leftovers(&c) else {
                    return Err(Error::Container { op: "kill", source });
                };
                tracing::debug!(id = %id, error = %source, pids = ?left, "kill --all: part of the container's cgroup is gone");
                let init = (c.status() != ContainerStatus::Stopped)
                    .then(|| c.pid().map(|p| p.as_raw()))
                    .flatten();
                for pid in left.into_iter().chain(init) {
                    sys::signal_pid(pid, signal.as_nix())?;
                }
                Ok(())
            }
            Err(source) => Err(Error::Container { op: "kill", source }),
        }
    }

    /// The processes in what is left of the container's cgroup, when some hierarchy no
    /// longer has it; `None` while every hierarchy still does.
    fn cgroup_leftovers(&self, c: &Container) -> Option<Vec<i32>> {
        let spec = c.spec().ok()?;
        crate::cgroup_guard::pids_where_partly_gone(&spec.cgroup_path, &cgroup_mounts())
    }

    pub fn pause(&self, id: &ContainerId) -> Result<()> {
        self.load(id)?.pause().map_err(|source| Error::Container {
            op: "pause",
            source,
        })
    }

    pub fn resume(&self, id: &ContainerId) -> Result<()> {
        self.load(id)?.resume().map_err(|source| Error::Container {
            op: "resume",
            source,
        })
    }
}
