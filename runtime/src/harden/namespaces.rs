//! Namespaces: pid, mount, ipc, uts, net, cgroup and user are all new. Sharing a host
//! namespace (a missing pid/network/ipc entry, or a path to the host's namespace) is refused
//! unless the node's policy allows it.

use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

use super::{HardenContext, Policy, PolicyError};

fn policy_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn apply(spec: &mut Spec, policy: &Policy, ctx: &HardenContext) -> Result<(), PolicyError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let namespaces = linux.namespaces_mut().get_or_insert_with(Vec::new);
    for ns in namespaces.iter() {
        let Some(path) = ns.path() else { continue };
        let kind = policy_name(ns.typ());
        let host = ctx
            .host_namespace(ns.typ(), path)
            .map_err(|detail| PolicyError::Namespace {
                field: format!("linux.namespaces[{kind}].path"),
                detail,
            })?;
        if host && !policy.host_namespaces.contains(kind) {
            return Err(PolicyError::HostNamespace {
                kind: kind.into(),
                how: format!("path {} is the host's {kind} namespace", path.display()),
            });
        }
        if matches!(
            ns.typ(),
            LinuxNamespaceType::Mount | LinuxNamespaceType::Cgroup
        ) {
            return Err(PolicyError::Namespace {
                field: format!("linux.namespaces[{kind}].path"),
                detail: "joining an existing mount or cgroup namespace is not allowed".into(),
            });
        }
    }
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
    ] {
        let kind = policy_name(t);
        if !namespaces.iter().any(|n| n.typ() == t) && !policy.host_namespaces.contains(kind) {
            return Err(PolicyError::HostNamespace {
                kind: kind.into(),
                how: format!("linux.namespaces has no \"{}\" entry", t),
            });
        }
    }
    for t in [
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        if !namespaces.iter().any(|n| n.typ() == t) {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(t)
                    .build()
                    .expect("type set"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::{test_ctx, test_policy};
    use std::path::PathBuf;

    fn spec_with(types: &[LinuxNamespaceType]) -> Spec {
        let mut s = Spec::default();
        let ns = types
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
            .collect();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_namespaces(Some(ns));
        s
    }

    #[test]
    fn host_network_refused_unless_allowed() {
        use LinuxNamespaceType::*;
        let mut s = spec_with(&[Pid, Ipc, Mount]);
        let e = apply(&mut s, &test_policy(), &test_ctx()).unwrap_err();
        assert!(e.to_string().contains("network"), "{e}");
        let mut p = test_policy();
        p.host_namespaces.insert("network".into());
        let mut s = spec_with(&[Pid, Ipc, Mount]);
        apply(&mut s, &p, &test_ctx()).unwrap();
        let n = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        assert!(n.iter().any(|n| n.typ() == Cgroup) && n.iter().any(|n| n.typ() == Uts));
    }

    #[test]
    fn host_pid_path_refused() {
        use LinuxNamespaceType::*;
        let mut s = spec_with(&[Network, Ipc, Mount]);
        let ns = LinuxNamespaceBuilder::default()
            .typ(Pid)
            .path(PathBuf::from("/proc/1/ns/pid"))
            .build()
            .unwrap();
        s.linux_mut()
            .as_mut()
            .unwrap()
            .namespaces_mut()
            .as_mut()
            .unwrap()
            .push(ns);
        let e = apply(&mut s, &test_policy(), &test_ctx()).unwrap_err();
        assert!(e.to_string().contains("/proc/1/ns/pid"), "{e}");
    }
}
