//! What a network namespace of the container gets from Ward, from the host side.
//!
//! Ward drops NET_BIND_SERVICE with every other capability, so root in the container could
//! not bind ports below 1024: nginx or httpd on :80 died with EACCES. containerd 2 sets
//! `net.ipv4.ip_unprivileged_port_start=0` in every pod network namespace by default
//! (`enable_unprivileged_ports`); Ward does the same in a network namespace that is the
//! container's own and in the pod network it joins for a pod sandbox, unless the spec's
//! `linux.sysctl` sets the key itself. A namespace a person named by path (not a pod's) and
//! the host's own are left as they are. Only the binding is opened: the container still has
//! no capability over the namespace's interfaces, routes or firewall.

use std::path::PathBuf;

use oci_spec::runtime::Spec;

use crate::sys::{self, SysError};

/// The sysctl that lets any user bind ports at and above its value.
pub const UNPRIVILEGED_PORT_START: &str = "net.ipv4.ip_unprivileged_port_start";

/// Whether the spec's `linux.sysctl` sets `key`.
fn spec_sets(spec: &Spec, key: &str) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .is_some_and(|m| m.contains_key(key))
}

/// A new network namespace of the container's own, after the init exists and before the
/// user program runs: loopback up (libcontainer leaves it down, as runc and crun do not) and
/// unprivileged ports from 0, unless the spec sets that sysctl (libcontainer then wrote it
/// inside). The caller is single-threaded (setns moves the calling thread only).
pub fn setup_own(init_pid: i32, spec: &Spec) -> Result<(), SysError> {
    let ns = PathBuf::from(format!("/proc/{init_pid}/ns/net"));
    sys::loopback_up(&ns)?;
    if !spec_sets(spec, UNPRIVILEGED_PORT_START) {
        sys::write_net_sysctl(&ns, UNPRIVILEGED_PORT_START, "0")?;
    }
    Ok(())
}

/// The `net.*` sysctls Ward writes in a pod network it joins for a pod sandbox: the spec's,
/// plus unprivileged ports from 0 unless they set it. The pod's other containers share the
/// namespace and leave it as the sandbox set it.
pub fn pod_sandbox_sysctls(mut spec_sysctls: Vec<(String, String)>) -> Vec<(String, String)> {
    if !spec_sysctls
        .iter()
        .any(|(k, _)| k == UNPRIVILEGED_PORT_START)
    {
        spec_sysctls.push((UNPRIVILEGED_PORT_START.into(), "0".into()));
    }
    spec_sysctls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_default_unless_the_spec_sets_it() {
        let got = pod_sandbox_sysctls(vec![("net.ipv4.ip_forward".into(), "1".into())]);
        assert_eq!(
            got,
            vec![
                ("net.ipv4.ip_forward".into(), "1".into()),
                (UNPRIVILEGED_PORT_START.into(), "0".into())
            ]
        );
        let own = vec![(UNPRIVILEGED_PORT_START.to_string(), "1024".to_string())];
        assert_eq!(pod_sandbox_sysctls(own.clone()), own);
    }
}
