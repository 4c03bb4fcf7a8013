//! Namespaces: pid, mount, ipc, uts, net, cgroup and user are all new. Sharing a host
//! namespace (a missing pid/network/ipc entry, or a path to the host's namespace) is refused
//! unless the node's policy allows it.

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Spec};

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
    refuse_duplicates(namespaces)?;
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

/// One entry per namespace type. libcontainer keeps the last entry of a type (a map by
/// clone flag), while these checks and `userns` look at the first: a second `user` (or
/// `pid`, ...) entry with a path would otherwise be joined unchecked.
fn refuse_duplicates(namespaces: &[LinuxNamespace]) -> Result<(), PolicyError> {
    for (i, ns) in namespaces.iter().enumerate() {
        if let Some(first) = namespaces[..i].iter().position(|n| n.typ() == ns.typ()) {
            return Err(PolicyError::Namespace {
                field: format!("linux.namespaces[{i}]"),
                detail: format!(
                    "the {} namespace is listed twice (entries {first} and {i})",
                    policy_name(ns.typ())
                ),
            });
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

    #[test]
    fn a_type_listed_twice_is_refused() {
        use LinuxNamespaceType::*;
        let mut s = spec_with(&[Pid, Network, Ipc, User]);
        let ns = LinuxNamespaceBuilder::default()
            .typ(User)
            .path(PathBuf::from("/proc/77/ns/user"))
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
        assert_eq!(
            e.to_string(),
            "linux.namespaces[4]: the user namespace is listed twice (entries 3 and 4)"
        );
    }
}
