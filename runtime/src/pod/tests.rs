//! Unit tests of pod joins (`pod.rs`).

use super::*;
use oci_spec::runtime::{LinuxNamespaceBuilder, MountBuilder};

fn spec_with(paths: &[(LinuxNamespaceType, &str)], sandbox: Option<&str>) -> Spec {
    let mut s = Spec::default();
    let linux = s.linux_mut().get_or_insert_with(Default::default);
    let nss = linux.namespaces_mut().get_or_insert_with(Vec::new);
    for (t, p) in paths {
        nss.retain(|n| n.typ() != *t);
        nss.push(
            LinuxNamespaceBuilder::default()
                .typ(*t)
                .path(PathBuf::from(p))
                .build()
                .unwrap(),
        );
    }
    if let Some(sid) = sandbox {
        let mut a = std::collections::HashMap::new();
        a.insert(SANDBOX_ID_ANNOTATION.to_string(), sid.to_string());
        s.set_annotations(Some(a));
    }
    s
}

/// The context `Runtime::context` would build: our namespaces are the host's.
fn host_ctx() -> HardenContext {
    let mut ctx = HardenContext::default();
    for kind in ["pid", "net", "ipc", "uts", "user"] {
        let p = PathBuf::from(format!("/proc/self/ns/{kind}"));
        let fd = sys::open_ns(&p).unwrap();
        let id = sys::ns_identity(&fd, &p).unwrap();
        ctx.host_ns.insert(kind.into(), vec![id]);
        ctx.path_ns.insert(p, Ok(id));
    }
    ctx
}

fn no_sandbox(_: &str) -> Result<PodSandbox, String> {
    Err("is not a Ward container here".into())
}

#[test]
fn no_paths_nothing_to_join() {
    let j = plan(&Spec::default(), "c", &host_ctx(), no_sandbox).unwrap();
    assert!(!j.joins_netns() && j.sandbox.is_none() && j.expected.is_empty());
}

#[test]
fn host_owned_network_namespace_is_joined_by_ward() {
    // Our own network namespace is owned by the host user namespace (this test runs there).
    let s = spec_with(&[(LinuxNamespaceType::Network, "/proc/self/ns/net")], None);
    let mut j = plan(&s, "c", &host_ctx(), no_sandbox).unwrap();
    assert!(j.joins_netns());
    let mut s2 = s.clone();
    s2.set_mounts(Some(vec![MountBuilder::default()
        .destination("/sys")
        .typ("sysfs")
        .source("sysfs")
        .build()
        .unwrap()]));
    j.rewrite(&mut s2, Path::new("/w/c")).unwrap();
    let l = s2.linux().as_ref().unwrap();
    assert!(!l
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Network));
    let m = &s2.mounts().as_ref().unwrap()[0];
    assert_eq!(m.source().as_deref(), Some(Path::new("/w/c/sys")));
    assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
}

#[test]
fn net_sysctls_move_to_ward_and_must_be_plain_names() {
    let s = spec_with(&[(LinuxNamespaceType::Network, "/proc/self/ns/net")], None);
    // Pretend the host's network namespace is another one: ours stands in for a pod's.
    let mut ctx = host_ctx();
    ctx.host_ns.insert("net".into(), vec![(0, 0)]);
    let mut j = plan(&s, "c", &ctx, no_sandbox).unwrap();
    let mut s2 = s.clone();
    let mut m = std::collections::HashMap::new();
    m.insert(
        "net.ipv4.ip_unprivileged_port_start".to_string(),
        "80".to_string(),
    );
    m.insert("kernel.shmmax".to_string(), "1".to_string());
    s2.linux_mut().as_mut().unwrap().set_sysctl(Some(m.clone()));
    j.rewrite(&mut s2, Path::new("/w/c")).unwrap();
    assert_eq!(
        j.net_sysctls,
        vec![(
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "80".to_string()
        )]
    );
    let left = s2.linux().as_ref().unwrap().sysctl().clone().unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), vec!["kernel.shmmax"]);
    for bad in [
        "net./../kernel.core_pattern",
        "net.ipv4..x",
        "net/ipv4/ip_forward",
        "net.",
    ] {
        let mut s3 = s.clone();
        let mut m = std::collections::HashMap::new();
        m.insert(bad.to_string(), "1".to_string());
        s3.linux_mut().as_mut().unwrap().set_sysctl(Some(m));
        let e = j
            .rewrite(&mut s3, Path::new("/w/c"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.sysctl"), "{bad}: {e}");
    }
}

#[test]
fn no_net_sysctl_in_the_hosts_network_namespace() {
    let sysctl = |s: &mut Spec| {
        let mut m = std::collections::HashMap::new();
        m.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
        s.linux_mut().as_mut().unwrap().set_sysctl(Some(m));
    };
    // The host's own network namespace by path (a node allowing it): joined, but no sysctl.
    let mut s = spec_with(&[(LinuxNamespaceType::Network, "/proc/self/ns/net")], None);
    let mut j = plan(&s, "c", &host_ctx(), no_sandbox).unwrap();
    sysctl(&mut s);
    let e = j
        .rewrite(&mut s, Path::new("/w/c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("linux.sysctl") && e.contains("host"), "{e}");
    // No network entry at all (host network allowed): /sys bound from Ward, no sysctl.
    let mut s = spec_with(&[], None);
    s.linux_mut()
        .as_mut()
        .unwrap()
        .namespaces_mut()
        .as_mut()
        .unwrap()
        .retain(|n| n.typ() != LinuxNamespaceType::Network);
    s.set_mounts(Some(vec![MountBuilder::default()
        .destination("/sys")
        .typ("sysfs")
        .source("sysfs")
        .build()
        .unwrap()]));
    let mut j = plan(&s, "c", &host_ctx(), no_sandbox).unwrap();
    j.rewrite(&mut s.clone(), Path::new("/w/c")).unwrap();
    assert!(j.sysfs && !j.joins_netns());
    let mut s2 = s.clone();
    j.rewrite(&mut s2, Path::new("/w/c")).unwrap();
    assert_eq!(
        s2.mounts().as_ref().unwrap()[0].source().as_deref(),
        Some(Path::new("/w/c/sys"))
    );
    sysctl(&mut s);
    assert!(j.rewrite(&mut s, Path::new("/w/c")).is_err());
    // A network namespace of its own: nothing to do.
    let mut s = Spec::default();
    let mut j = plan(&s, "c", &host_ctx(), no_sandbox).unwrap();
    j.rewrite(&mut s, Path::new("/w/c")).unwrap();
    assert!(!j.sysfs);
}

#[test]
fn host_owned_ipc_namespace_is_refused() {
    // /proc/self/ns/ipc is the host's: harden's business, skipped here ...
    let s = spec_with(&[(LinuxNamespaceType::Ipc, "/proc/self/ns/ipc")], None);
    assert!(plan(&s, "c", &host_ctx(), no_sandbox)
        .unwrap()
        .expected
        .is_empty());
    // ... while a host-owned ipc namespace that is not the host's is refused here. Pretend
    // the host's is another one so ours counts as "some host-owned namespace".
    let mut ctx = host_ctx();
    ctx.host_ns.insert("ipc".into(), vec![(0, 0)]);
    let e = plan(&s, "c", &ctx, no_sandbox).unwrap_err().to_string();
    assert!(e.contains("linux.namespaces[ipc].path"), "{e}");
    assert!(e.contains("owned by the host user namespace"), "{e}");
}

#[test]
fn wrong_kind_is_refused() {
    let s = spec_with(&[(LinuxNamespaceType::Network, "/proc/self/ns/uts")], None);
    let e = plan(&s, "c", &host_ctx(), no_sandbox)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a network namespace"), "{e}");
    let s = spec_with(&[(LinuxNamespaceType::Network, "/etc/hostname")], None);
    let e = plan(&s, "c", &host_ctx(), no_sandbox)
        .unwrap_err()
        .to_string();
    assert!(e.contains("linux.namespaces[network].path"), "{e}");
}

#[test]
fn unknown_sandbox_is_refused() {
    let s = spec_with(
        &[(LinuxNamespaceType::Network, "/proc/self/ns/net")],
        Some("pod1"),
    );
    let e = plan(&s, "c", &host_ctx(), no_sandbox)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pod1") && e.contains("not a Ward container"),
        "{e}"
    );
    // The sandbox container itself carries its own id: nothing to look up.
    let j = plan(&s, "pod1", &host_ctx(), no_sandbox).unwrap();
    assert!(j.sandbox.is_none() && j.joins_netns());
}

#[test]
fn sandbox_network_must_match() {
    let s = spec_with(
        &[(LinuxNamespaceType::Network, "/proc/self/ns/net")],
        Some("pod1"),
    );
    // The "sandbox" is our own process: same network namespace, so it matches.
    let me = std::process::id() as i32;
    let sb = |_: &str| {
        Ok(PodSandbox {
            id: "pod1".into(),
            pid: me,
            range: IdRange {
                host_start: 1 << 20,
                size: 65536,
            },
        })
    };
    let mut j = plan(&s, "c", &host_ctx(), sb).unwrap();
    assert!(j.joins_netns());
    assert_eq!(j.sandbox.as_ref().unwrap().id, "pod1");
    let mut s2 = s.clone();
    s2.linux_mut()
        .as_mut()
        .unwrap()
        .namespaces_mut()
        .as_mut()
        .unwrap()
        .push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
    j.rewrite(&mut s2, Path::new("/w/c")).unwrap();
    let user = s2
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .unwrap()
        .path()
        .clone();
    assert_eq!(user, Some(PathBuf::from(format!("/proc/{me}/ns/user"))));
    // verify: this process is in the planned net and user namespaces.
    j.verify(me).unwrap();
    // pid 1 of another network namespace would not be (skip if pid 1 shares ours).
    if proc_ns(1, "net").ok() != proc_ns(me, "net").ok() {
        assert!(j.verify(1).is_err());
    }
}
