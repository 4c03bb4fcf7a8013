//! What a container uses is charged to the container, never to host root or to no one.
//!
//! * **Per-user kernel counts** (inotify instances and watches, mqueue bytes, pending signals,
//!   processes) are charged by the kernel at every level up to the user namespace's owner. The
//!   container runs in a user namespace owned by its range's base host uid
//!   ([`ContainerUserns`], created by [`crate::sys::userns::OwnedUserns`]), with its own
//!   `user.max_inotify_*` limits; libcontainer joins it by path instead of unsharing one as
//!   root. Pod containers keep joining their sandbox's namespace (owned by the sandbox's base
//!   uid), so for them the namespace made here only idmaps their mounts.
//! * **The seccomp supervisor's CPU and memory**: it is spawned before the container's cgroup
//!   exists (libcontainer creates that during the build), and is moved in right after
//!   ([`supervisor_into_cgroup`]). On cgroup v1 it joins the hierarchies of the accounting
//!   controllers (cpu, cpuacct, cpuset, memory, pids, blkio, hugetlb), not freezer or devices
//!   alone: libcontainer lists a container's processes (`ps`, `kill --all`) from the devices
//!   hierarchy, so the supervisor is not among them. On cgroup v2 it joins the container's own
//!   cgroup, a leaf that already holds the init (no internal-process conflict); it is then
//!   frozen with the container, so `delete` thaws a paused container before it stops the
//!   supervisor ([`prepare_delete`]).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::{Container, ContainerStatus};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::config::UsernsLimits;
use crate::harden::IdRange;
use crate::host_view::HostView;
use crate::sys::userns::OwnedUserns;
use crate::sys::{self, SysError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChargeError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("the container's user namespace {path} is {got}, not the one Ward created for it ({want:?}): not started")]
    Userns {
        path: PathBuf,
        got: String,
        want: (u64, u64),
    },
    #[error("move the seccomp supervisor (pid {pid}) into the container's cgroup: {path}: {reason}: not started")]
    SupervisorCgroup {
        pid: i32,
        path: PathBuf,
        reason: String,
    },
    #[error("delete: resume the paused container before stopping its supervisor: {0}")]
    Resume(String),
}

/// The container's user namespace, held until the container has joined it.
#[derive(Debug)]
pub struct ContainerUserns {
    ns: OwnedUserns,
    /// The container joins this namespace (false for a pod container, which joins its
    /// sandbox's).
    joined: bool,
}

impl ContainerUserns {
    /// Create the namespace for `range`; `joined` when the container will run in it (then it
    /// gets the node's limits). Returns it with an fd for idmapped mounts: drop the fd before
    /// the container is cloned. Must be called from a single-threaded process.
    pub fn create(
        range: &IdRange,
        limits: &UsernsLimits,
        joined: bool,
    ) -> Result<(Self, OwnedFd), SysError> {
        let sysctls = limits.sysctls();
        let limits: &[(&str, u64)] = if joined { &sysctls } else { &[] };
        let (ns, fd) = OwnedUserns::create(range, limits)?;
        Ok((Self { ns, joined }, fd))
    }

    /// Point the spec's user namespace entry at this namespace (nothing for a pod container).
    pub fn join_in(&self, spec: &mut Spec) {
        if !self.joined {
            return;
        }
        let path = self.ns.path();
        let nss = spec
            .linux_mut()
            .as_mut()
            .and_then(|l| l.namespaces_mut().as_mut());
        for n in nss.into_iter().flatten() {
            if n.typ() == LinuxNamespaceType::User {
                n.set_path(Some(path.clone()));
            }
        }
    }

    /// Check that the container's init `pid` is in this namespace, then let the helper go.
    pub fn verify(self, pid: i32) -> Result<(), ChargeError> {
        if !self.joined {
            return Ok(());
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/user"));
        let got = sys::open_ns(&path).and_then(|fd| sys::ns_identity(&fd, &path));
        let want = self.ns.identity();
        match got {
            Ok(id) if id == want => Ok(()),
            other => Err(ChargeError::Userns {
                path,
                got: match other {
                    Ok(id) => format!("{id:?}"),
                    Err(e) => e.to_string(),
                },
                want,
            }),
        }
    }
}

/// v1 controllers whose use the supervisor must be charged for.
const ACCOUNTING: [&str; 7] = [
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "hugetlb",
];

/// The `cgroup.procs` files the supervisor joins for the container cgroup `cgroup` (relative
/// to each cgroup mount), from the text of /proc/self/mountinfo: on pure cgroup v2 the
/// cgroup2 mount's; otherwise one per v1 hierarchy with an accounting controller.
pub fn supervisor_cgroup_procs(mountinfo: &str, cgroup: &Path, pure_v2: bool) -> Vec<PathBuf> {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    let mut out: Vec<PathBuf> = vec![];
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (Some(fstype), Some(_source), Some(opts)) = (post.next(), post.next(), post.next())
        else {
            continue;
        };
        let Some(mp) = pre.split(' ').nth(4) else {
            continue;
        };
        let wanted = match (fstype, pure_v2) {
            ("cgroup2", true) => true,
            ("cgroup", false) => opts.split(',').any(|o| ACCOUNTING.contains(&o)),
            _ => false,
        };
        let file = Path::new(mp).join(rel).join("cgroup.procs");
        if wanted && !out.contains(&file) {
            out.push(file);
        }
    }
    out
}

/// Move the container's seccomp supervisor (if it has one) into the container's cgroup
/// `cgroup`. Call once libcontainer has created the cgroup; an error means the container must
/// not start (its supervisor would run uncharged).
/// The hierarchies come from the create's [`HostView`] (read once per create).
pub fn supervisor_into_cgroup(
    ward_dir: &Path,
    cgroup: &Path,
    host: &HostView,
) -> Result<(), ChargeError> {
    let Some(pid) = crate::supervisor::running_pid(ward_dir) else {
        return Ok(());
    };
    let files = supervisor_cgroup_procs(&host.mountinfo, cgroup, host.pure_v2);
    if files.is_empty() {
        return Err(ChargeError::SupervisorCgroup {
            pid,
            path: cgroup.to_path_buf(),
            reason: "no cgroup hierarchy with an accounting controller is mounted".into(),
        });
    }
    for f in files {
        // Writing to cgroup.procs creates nothing: a missing container cgroup is an error.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .and_then(|mut w| std::io::Write::write_all(&mut w, pid.to_string().as_bytes()))
            .map_err(|e| ChargeError::SupervisorCgroup {
                pid,
                path: f.clone(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// Before libcontainer deletes a container (and removes its cgroup, killing whatever is in it):
/// stop its supervisor, cleanly (a learn-mode recording is written at its exit). A paused
/// container is resumed first when `force` is given: its supervisor may be frozen with it (v2,
/// or a freezer co-mounted with an accounting controller on v1) and would not handle SIGTERM.
/// Without `force`, a container libcontainer will refuse to delete is left untouched.
pub fn prepare_delete(c: &mut Container, ward_dir: &Path, force: bool) -> Result<(), crate::Error> {
    let refused = matches!(
        c.status(),
        ContainerStatus::Creating | ContainerStatus::Running | ContainerStatus::Paused
    );
    if refused && !force {
        return Ok(());
    }
    if c.status() == ContainerStatus::Paused {
        c.resume().map_err(|e| ChargeError::Resume(e.to_string()))?;
    }
    crate::supervisor::stop(ward_dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 20 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids
31 25 0:28 / /sys/fs/cgroup/freezer rw,nosuid shared:16 - cgroup cgroup rw,freezer
32 25 0:29 / /sys/fs/cgroup/devices rw,nosuid shared:17 - cgroup cgroup rw,devices
33 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:18 - cgroup cgroup rw,net_cls,net_prio
34 25 0:31 / /sys/fs/cgroup/systemd rw,nosuid shared:19 - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn v1_accounting_hierarchies_only() {
        let got = supervisor_cgroup_procs(HYBRID, Path::new("/ward/c1"), false);
        let want: Vec<PathBuf> = ["cpu,cpuacct", "memory", "pids"]
            .iter()
            .map(|h| PathBuf::from(format!("/sys/fs/cgroup/{h}/ward/c1/cgroup.procs")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pure_v2_the_container_cgroup_itself() {
        let mi = "25 20 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            supervisor_cgroup_procs(mi, Path::new("/a/b/c1"), true),
            vec![PathBuf::from("/sys/fs/cgroup/a/b/c1/cgroup.procs")]
        );
        // The hybrid layout's cgroup2 mount is not the container's cgroup on a v1 manager.
        assert!(!supervisor_cgroup_procs(HYBRID, Path::new("/c"), false)
            .iter()
            .any(|p| p.starts_with("/sys/fs/cgroup/unified")));
    }
}
