//! The container's own cgroup is made by Ward, never adopted. libcontainer joins whatever
//! directory `linux.cgroupsPath` names, creating it only when missing: a path naming a host
//! cgroup would hand that cgroup to the container (its limits rewritten, `ps` listing host
//! processes, `pause` freezing them, `delete --force` killing them).
//!
//! So [`refuse_taken`] refuses, before anything is allocated, a path whose leaf exists in any
//! mounted hierarchy (v1 controllers, named hierarchies, cgroup2), and [`claim`] creates the
//! leaf in each with mkdir, which fails if it appeared since: the directory is then the
//! container's, made for it alone. Existing *ancestors* are fine (the pod cgroup an engine
//! lays out above its containers).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::harden::{self, HardenContext};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupGuardError {
    #[error("linux.cgroupsPath: {}: already exists and was not created by Ward for this container; refusing to take over a cgroup", path.display())]
    Taken { path: PathBuf },
    #[error("linux.cgroupsPath: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Mount points of cgroup hierarchies (v1 and/or v2) in mountinfo text.
pub fn mounts_from(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mp))
        })
        .collect()
}

/// Where [`claim`] will make `cgroup`'s leaf, in every hierarchy (recorded before it does).
pub fn planned_leaves(cgroup: &Path, mounts: &[PathBuf]) -> Vec<PathBuf> {
    mounts.iter().map(|m| under(m, cgroup)).collect()
}

/// Mount points of the cgroup hierarchies Ward sees.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    mounts_from(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The processes left in `cgroup` (across `mounts`) once some hierarchy no longer has it (systemd
/// removes an emptied scope's cgroups where it manages them); `None` while every hierarchy
/// still has it.
pub fn pids_where_partly_gone(cgroup: &Path, mounts: &[PathBuf]) -> Option<Vec<i32>> {
    let dirs: Vec<PathBuf> = mounts.iter().map(|m| under(m, cgroup)).collect();
    if dirs.iter().all(|d| d.is_dir()) {
        return None;
    }
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Some(pids)
}

/// `cgroup` (relative to every hierarchy) under `mount`.
fn under(mount: &Path, cgroup: &Path) -> PathBuf {
    mount.join(cgroup.strip_prefix("/").unwrap_or(cgroup))
}

/// The first hierarchy in which `cgroup` already exists.
fn existing(cgroup: &Path, mounts: &[PathBuf]) -> Option<PathBuf> {
    mounts
        .iter()
        .map(|m| under(m, cgroup))
        .find(|d| std::fs::symlink_metadata(d).is_ok())
}

/// Refuse a spec whose cgroup (as harden will set it) already exists. Call before anything
/// is allocated: the refusal then leaves nothing to undo. `mounts`: [`cgroup_mounts`].
pub fn refuse_taken(spec: &Spec, ctx: &HardenContext, mounts: &[PathBuf]) -> crate::Result<()> {
    let asked = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let cgroup = harden::cgroups::path(asked.as_deref(), ctx)?;
    match existing(&cgroup, mounts) {
        Some(path) => Err(CgroupGuardError::Taken { path }.into()),
        None => Ok(()),
    }
}

/// SIGKILL every process in the cgroup directories `dirs` (absolute, Ward-made: a container's
/// leaves), until they are empty or `timeout` passes. For `delete --force` after a create that
/// was killed half-way, when libcontainer's state is missing or partial and cannot list them.
pub fn kill_all(dirs: &[PathBuf], timeout: std::time::Duration) {
    let end = std::time::Instant::now() + timeout;
    loop {
        let mut any = false;
        for d in dirs.iter().filter(|d| d.starts_with("/sys/fs/cgroup")) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !any || std::time::Instant::now() >= end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Create the leaf `cgroup` (and missing ancestors) in every hierarchy. A leaf that exists
/// already is refused, and the leaves made so far are removed again. Returns the leaf
/// directories made (to be removed with the container).
/// `mounts`: [`cgroup_mounts`].
pub fn claim(cgroup: &Path, mounts: &[PathBuf]) -> Result<Vec<PathBuf>, CgroupGuardError> {
    let mut made: Vec<PathBuf> = vec![];
    let undo = |made: &[PathBuf]| {
        for d in made {
            let _ = std::fs::remove_dir(d);
        }
    };
    if let Some(path) = existing(cgroup, mounts) {
        return Err(CgroupGuardError::Taken { path });
    }
    for m in mounts {
        let leaf = under(m, cgroup);
        let parent = leaf.parent().unwrap_or(m);
        let step = std::fs::create_dir_all(parent)
            .map_err(|source| CgroupGuardError::Io {
                op: "mkdir",
                path: parent.to_path_buf(),
                source,
            })
            .and_then(|()| {
                std::fs::create_dir(&leaf).map_err(|source| {
                    if source.kind() == std::io::ErrorKind::AlreadyExists {
                        CgroupGuardError::Taken { path: leaf.clone() }
                    } else {
                        CgroupGuardError::Io {
                            op: "mkdir",
                            path: leaf.clone(),
                            source,
                        }
                    }
                })
            });
        match step {
            Ok(()) => made.push(leaf),
            // A hierarchy mounted read-only here: nobody makes cgroups through it, and an
            // existing leaf in it was refused above.
            Err(CgroupGuardError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EROFS) => {}
            Err(e) => {
                undo(&made);
                return Err(e);
            }
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_of_every_cgroup_kind() {
        let mi = "25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                  26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                  27 25 0:24 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
                  28 30 0:25 / /proc rw - proc proc rw\n";
        assert_eq!(
            mounts_from(mi),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified"),
                PathBuf::from("/sys/fs/cgroup/pids")
            ]
        );
    }

    #[test]
    fn claim_refuses_an_existing_leaf_and_undoes_its_own() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::create_dir_all(b.join("pod/victim")).unwrap();
        let mounts = [a.clone(), b.clone()];
        // Ancestors may exist; the leaf is made in every hierarchy.
        let made = claim(Path::new("/pod/c1"), &mounts).unwrap();
        assert_eq!(made, vec![a.join("pod/c1"), b.join("pod/c1")]);
        // A leaf that exists in one hierarchy: refused, and the other one's leaf is gone.
        let e = claim(Path::new("/pod/victim"), &mounts).unwrap_err();
        assert!(matches!(&e, CgroupGuardError::Taken { path } if *path == b.join("pod/victim")));
        assert!(e.to_string().starts_with("linux.cgroupsPath: "), "{e}");
        assert!(!a.join("pod/victim").exists());
        assert!(b.join("pod/victim").exists());
        assert_eq!(
            existing(Path::new("/pod/victim"), &mounts),
            Some(b.join("pod/victim"))
        );
        assert_eq!(existing(Path::new("/pod/new"), &mounts), None);
    }

    /// A systemd-style path lands in the nested slice dirs of every hierarchy: each v1
    /// controller (and the named and unified ones) on the hybrid layout, the one unified root
    /// on pure v2; the guard still refuses an existing scope.
    #[test]
    fn systemd_path_in_v1_hybrid_and_v2_layouts() {
        let p = crate::harden::systemd_path::SystemdPath::parse(
            "kubepods-burstable-podu1.slice:cri-containerd:c1",
        )
        .unwrap()
        .cgroup();
        let rel = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice/cri-containerd-c1.scope";
        let t = tempfile::tempdir().unwrap();
        let hybrid: Vec<PathBuf> = ["memory", "cpu,cpuacct", "pids", "systemd", "unified"]
            .iter()
            .map(|c| t.path().join("v1").join(c))
            .collect();
        let v2 = vec![t.path().join("v2")];
        for mounts in [&hybrid, &v2] {
            let made = claim(&p, mounts).unwrap();
            assert_eq!(made, mounts.iter().map(|m| m.join(rel)).collect::<Vec<_>>());
            assert!(made.iter().all(|d| d.is_dir()));
            let e = claim(&p, mounts).unwrap_err();
            assert!(matches!(e, CgroupGuardError::Taken { .. }), "{e}");
        }
    }
}
