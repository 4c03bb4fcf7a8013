//! `linux.resources.memory.disableOOMKiller`: applied, or refused, never ignored.
//!
//! libcontainer 0.7 hard-codes `disable_oom_killer: false` when it applies the resources, so
//! the field was silently dropped. On cgroup v1 Ward writes `memory.oom_control = 1` in the
//! container's memory cgroup itself, after the cgroup exists and before the user program
//! runs. The container stays bounded by its memory limit (Ward always sets one): at the limit
//! its tasks wait for memory instead of being killed, as the spec asked.
//!
//! cgroup v2 has no way to turn the OOM killer off for a cgroup (`memory.oom.group` only makes
//! it kill the whole group, the opposite of what was asked), so there a spec asking for it is
//! refused with the field named, before anything is created. runc on v2 ignores it; Ward does
//! not run a container under a setting it cannot give.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::harden::PolicyError;
use crate::sys::SysError;

pub const FIELD: &str = "linux.resources.memory.disableOOMKiller";
const OOM_CONTROL: &str = "memory.oom_control";

fn asked(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false)
}

/// The cgroup v1 memory hierarchy's root among `mounts` (the one with memory.oom_control).
fn memory_v1(mounts: &[PathBuf]) -> Option<&Path> {
    mounts
        .iter()
        .map(PathBuf::as_path)
        .find(|m| m.join(OOM_CONTROL).is_file())
}

/// Before anything is created: refuse the field where it cannot be applied (no cgroup v1
/// memory controller). `mounts` are the cgroup mount points.
pub fn check(spec: &Spec, mounts: &[PathBuf]) -> Result<(), PolicyError> {
    if asked(spec) && memory_v1(mounts).is_none() {
        return Err(PolicyError::Spec {
            field: FIELD.into(),
            detail: "cannot be applied: this node's memory controller is cgroup v2, which has no way to turn the OOM killer off (memory.oom_control is cgroup v1 only); remove the field or set it to false".into(),
        });
    }
    Ok(())
}

/// After the container's cgroup `cgroup` (relative to each hierarchy) exists: turn the OOM
/// killer off in it when the spec asks.
pub fn apply(spec: &Spec, cgroup: &Path, mounts: &[PathBuf]) -> Result<(), SysError> {
    if !asked(spec) {
        return Ok(());
    }
    let root = memory_v1(mounts).ok_or_else(|| SysError::Io {
        op: "find the cgroup v1 memory controller for disableOOMKiller",
        path: PathBuf::from("/sys/fs/cgroup"),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let file = root
        .join(cgroup.strip_prefix("/").unwrap_or(cgroup))
        .join(OOM_CONTROL);
    std::fs::write(&file, "1").map_err(|source| SysError::Io {
        op: "write",
        path: file,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(disable: Option<bool>) -> Spec {
        let mut s = Spec::default();
        let mut m = oci_spec::runtime::LinuxMemory::default();
        m.set_disable_oom_killer(disable);
        let mut r = oci_spec::runtime::LinuxResources::default();
        r.set_memory(Some(m));
        s.linux_mut().as_mut().unwrap().set_resources(Some(r));
        s
    }

    #[test]
    fn refused_without_a_v1_memory_controller() {
        let none = tempfile::tempdir().unwrap();
        let mounts = vec![none.path().to_path_buf()];
        let e = check(&spec(Some(true)), &mounts).unwrap_err().to_string();
        assert!(e.contains(FIELD), "{e}");
        check(&spec(Some(false)), &mounts).unwrap();
        check(&spec(None), &mounts).unwrap();
        apply(&spec(Some(false)), Path::new("/x"), &mounts).unwrap();
    }

    #[test]
    fn written_in_the_container_memory_cgroup() {
        let v2 = tempfile::tempdir().unwrap();
        let mem = tempfile::tempdir().unwrap();
        std::fs::write(mem.path().join(OOM_CONTROL), "0").unwrap();
        std::fs::create_dir_all(mem.path().join("pod/c1")).unwrap();
        let mounts = vec![v2.path().to_path_buf(), mem.path().to_path_buf()];
        check(&spec(Some(true)), &mounts).unwrap();
        apply(&spec(Some(true)), Path::new("/pod/c1"), &mounts).unwrap();
        let got = std::fs::read_to_string(mem.path().join("pod/c1").join(OOM_CONTROL)).unwrap();
        assert_eq!(got, "1");
    }
}
