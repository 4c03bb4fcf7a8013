//! Supplementary groups: exactly `process.user.additionalGids`, as runc sets them (it calls
//! setgroups with that list, the primary gid included when the engine lists it: containerd
//! always does), for the init and for every exec'd process; never the caller's own.
//!
//! - libcontainer skips setgroups when the list is empty, so the init inherited the groups of
//!   whoever ran Ward (`sudo`'s, a daemon's): host groups, shown as 65534 inside but counted
//!   as the host's by every permission check. Ward clears its own groups before the clone.
//! - libcontainer's exec path refuses any supplementary group from inside a user namespace
//!   (it takes itself for an unprivileged user there), and Ward used to drop them, so
//!   `kubectl exec` and exec probes lost fsGroup and supplementalGroups. Ward's exec helper,
//!   once inside the container's user namespace (where it holds CAP_SETGID), sets them itself;
//!   the exec'd process inherits them and libcontainer is handed an empty list.

use nix::unistd::Gid;
use oci_spec::runtime::Process;

use crate::sys::SysError;

/// Before the container's init is cloned: the caller's own supplementary groups go, so an
/// init whose spec lists none has none.
pub fn clear_callers() -> Result<(), SysError> {
    nix::unistd::setgroups(&[]).map_err(|errno| SysError::Io {
        op: "setgroups([])",
        path: "/proc/self/status".into(),
        source: errno.into(),
    })
}

/// Take `additionalGids` out of an exec'd process (libcontainer must not see them); the
/// exec helper sets them with [`set_in_container`].
pub fn take_for_exec(process: &mut Process) -> Vec<u32> {
    let mut user = process.user().clone();
    let gids = user.additional_gids().clone().unwrap_or_default();
    user.set_additional_gids(None);
    process.set_user(user);
    gids
}

/// In the exec helper, after it joined the container's user namespace: exactly `gids`
/// (container ids) as supplementary groups, inherited by the process it builds.
pub fn set_in_container(gids: &[u32]) -> Result<(), String> {
    let g: Vec<Gid> = gids.iter().copied().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&g).map_err(|e| {
        format!("process.user.additionalGids {gids:?}: setgroups in the container's user namespace: {e}")
    })
}
