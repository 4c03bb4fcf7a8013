//! The pod network namespace of a user-namespaced pod (`hostUsers: false`). containerd 2
//! makes it inside a user namespace of its own with the kubelet's mapping, so the namespace
//! is not owned by the host's user namespace. Ward joins it as the pod's network namespace
//! only when its owner is a direct child of the host's user namespace mapping exactly the
//! range the spec asks for: the range Ward then holds node-wide for this pod (the create fails
//! if any other container holds a part of it), so no other container's namespace can pass.

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::harden::{self, IdRange};
use crate::pod::PodError;
use crate::sys::{self, userns_maps};

/// Whether the network namespace `netns` (opened from `path`) is the one an engine made for
/// this user-namespaced pod; `host_userns` are the host user namespace's identities.
pub fn engine_netns(
    spec: &Spec,
    netns: &OwnedFd,
    path: &Path,
    host_userns: &[(u64, u64)],
) -> Result<bool, PodError> {
    let Some(range) = harden::userns::requested(spec)? else {
        return Ok(false);
    };
    let owner = sys::ns_owner(netns, path)?;
    engine_userns(&owner, path, &range, host_userns)
}

/// Whether user namespace `userns` is an engine's for this pod: a direct child of the host's
/// mapping exactly `range`.
fn engine_userns(
    userns: &OwnedFd,
    path: &Path,
    range: &IdRange,
    host_userns: &[(u64, u64)],
) -> Result<bool, PodError> {
    let parent = userns_maps::parent(userns)?;
    if !host_userns.contains(&sys::ns_identity(&parent, path)?) {
        return Ok(false);
    }
    let (uid, gid) = userns_maps::read_maps(userns)?;
    Ok(maps_exactly(&uid, range) && maps_exactly(&gid, range))
}

/// containerd 2 also names its own user namespace (`linux.namespaces[user].path`) for a
/// user-namespaced pod's sandbox. Ward does not join it: when it is the engine's namespace on
/// exactly the range the spec asks for, the path is dropped and the container gets Ward's own
/// user namespace on that same mapping (owned by the range's base uid, as every Ward
/// container's), and Ward says so. Any other user namespace path is left for harden to
/// refuse.
pub fn adopt_engine_userns(
    spec: &mut Spec,
    id: &str,
    host_userns: &[(u64, u64)],
) -> Result<(), PodError> {
    let Some(range) = harden::userns::requested(spec)? else {
        return Ok(());
    };
    let Some(ns) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
        .and_then(|nss| {
            nss.iter_mut()
                .find(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some())
        })
    else {
        return Ok(());
    };
    let path = ns.path().clone().expect("filtered");
    let Ok(fd) = sys::open_ns(&path) else {
        return Ok(());
    };
    if sys::ns_type(&fd, &path).ok() != Some(libc::CLONE_NEWUSER)
        || !engine_userns(&fd, &path, &range, host_userns)?
    {
        return Ok(());
    }
    ns.set_path(None);
    tracing::info!(
        id,
        path = %path.display(),
        host_start = range.host_start,
        size = range.size,
        "linux.namespaces[user].path: the engine's user namespace is not joined; the container gets Ward's own on the same mapping"
    );
    Ok(())
}

/// Whether a `uid_map`/`gid_map` text is the single line `0 <start> <size>`.
fn maps_exactly(text: &str, r: &IdRange) -> bool {
    let lines: Vec<Vec<u64>> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .filter(|v: &Vec<u64>| !v.is_empty())
        .collect();
    lines == [vec![0, u64::from(r.host_start), u64::from(r.size)]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_single_mapping_matches() {
        let r = IdRange {
            host_start: 1 << 20,
            size: 65536,
        };
        assert!(maps_exactly("         0    1048576      65536\n", &r));
        assert!(!maps_exactly("0 1048576 65535\n", &r));
        assert!(!maps_exactly("0 1048576 65536\n65536 1000 1\n", &r));
        assert!(!maps_exactly("", &r));
    }
}
