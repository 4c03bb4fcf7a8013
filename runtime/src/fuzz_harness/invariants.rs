//! The sandbox invariants a hardened spec must satisfy, whatever config.json asked.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

use super::assert_one_line;
use crate::harden::{cgroups, devices, masks, mounts, HardenedSpec, IdRange, Policy};

/// Top-level config.json fields an error message may start with.
const FIELDS: &[&str] = &[
    "ociVersion",
    "root",
    "process",
    "linux",
    "mounts",
    "annotations",
    "hostname",
    "hooks",
];

/// A refusal is one line that names the config.json field it is about.
pub fn check_error(message: &str) {
    assert_one_line("harden", message);
    assert!(
        FIELDS.iter().any(|f| message.starts_with(f)),
        "harden error does not start with a config.json field: {message:?}"
    );
}

fn cap_names(
    set: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>,
) -> Vec<String> {
    set.iter()
        .flatten()
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{c:?}"))
        })
        .collect()
}

/// Every invariant of an accepted spec.
pub fn check(original: &Spec, h: &HardenedSpec, policy: &Policy, range: &IdRange) {
    let s = &h.spec;
    let linux = s.linux().as_ref().expect("linux section");
    let process = s.process().as_ref().expect("process section");
    let root = s.root().as_ref().expect("root section");

    assert_eq!(process.no_new_privileges(), Some(true), "noNewPrivileges");
    // Writable only when the profile allows it and the spec did not ask for read-only.
    let spec_ro = original.root().as_ref().and_then(|r| r.readonly());
    let may_write = policy.writable_rootfs.is_some() && spec_ro != Some(true);
    assert_eq!(root.readonly(), Some(!may_write), "root.readonly");
    assert_eq!(h.writable_rootfs.is_some(), may_write, "writable_rootfs");

    namespaces(s, policy, range);

    let caps = process.capabilities().as_ref().expect("capabilities set");
    for (name, set) in [
        ("bounding", caps.bounding()),
        ("effective", caps.effective()),
        ("permitted", caps.permitted()),
    ] {
        for c in cap_names(set) {
            assert!(
                policy.allowed_caps.contains(&c),
                "{name} has {c}, not allowed by the policy"
            );
        }
    }
    assert!(cap_names(caps.inheritable()).is_empty(), "inheritable caps");
    assert!(cap_names(caps.ambient()).is_empty(), "ambient caps");

    let masked = linux.masked_paths().clone().unwrap_or_default();
    for p in masks::MASKED {
        assert!(masked.iter().any(|m| m == p), "masked path {p} missing");
    }
    let ro = linux.readonly_paths().clone().unwrap_or_default();
    for p in masks::READONLY {
        assert!(ro.iter().any(|m| m == p), "readonly path {p} missing");
    }

    mounts_ok(h, policy);
    cgroup_ok(s, policy);
    devices_ok(s);

    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        assert!(
            key.starts_with("net.")
                || key.starts_with("fs.mqueue.")
                || key.starts_with("kernel.shm")
                || key.starts_with("kernel.msg")
                || key == "kernel.sem",
            "sysctl {key} kept"
        );
    }
    assert!(
        linux.seccomp().is_none(),
        "linux.seccomp left for libcontainer to ignore"
    );
    let asked = original.linux().as_ref().and_then(|l| l.seccomp().clone());
    assert_eq!(
        h.spec_seccomp, asked,
        "the spec's own seccomp is carried, not dropped"
    );
}

fn namespaces(s: &Spec, policy: &Policy, range: &IdRange) {
    let linux = s.linux().as_ref().expect("linux");
    let ns = linux.namespaces().clone().unwrap_or_default();
    let mut seen = BTreeSet::new();
    for n in &ns {
        assert!(
            seen.insert(n.typ().to_string()),
            "namespace {} listed twice: {ns:?}",
            n.typ()
        );
    }
    let user: Vec<_> = ns
        .iter()
        .filter(|n| n.typ() == LinuxNamespaceType::User)
        .collect();
    assert_eq!(user.len(), 1, "one user namespace");
    assert!(user[0].path().is_none(), "user namespace joined by path");
    for t in [LinuxNamespaceType::Mount, LinuxNamespaceType::Cgroup] {
        let n = ns
            .iter()
            .find(|n| n.typ() == t)
            .unwrap_or_else(|| panic!("no {t} namespace"));
        assert!(n.path().is_none(), "{t} namespace joined by path");
    }
    for (t, kind) in [
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Network, "network"),
        (LinuxNamespaceType::Ipc, "ipc"),
    ] {
        if !policy.host_namespaces.contains(kind) {
            assert!(ns.iter().any(|n| n.typ() == t), "no {kind} namespace");
        }
    }
    for (field, maps) in [("uid", linux.uid_mappings()), ("gid", linux.gid_mappings())] {
        let maps = maps.as_ref().expect("mappings set");
        assert!(!maps.is_empty(), "{field} mappings empty");
        for m in maps {
            assert!(m.host_id() != 0, "{field} map to host 0");
            assert!(
                m.size() > 0 && range.contains(m.host_id(), m.size()),
                "{field} map {m:?} outside {range:?}"
            );
        }
    }
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

fn clean_absolute(p: &Path) -> bool {
    p.is_absolute() && !p.components().any(|c| matches!(c, Component::ParentDir))
}

fn mounts_ok(h: &HardenedSpec, policy: &Policy) {
    let list = h.spec.mounts().clone().unwrap_or_default();
    for m in &list {
        assert!(
            clean_absolute(m.destination()),
            "destination {:?}",
            m.destination()
        );
        // Nothing replaces the read-only rootfs.
        assert_ne!(m.destination(), Path::new("/"), "a mount over /: {m:?}");
        let opts: Vec<&str> = m.options().iter().flatten().map(String::as_str).collect();
        if is_bind(m) {
            let src = m.source().as_ref().expect("bind source");
            assert!(clean_absolute(src), "bind source {src:?}");
            if mounts::sensitive_reason(src).is_some() {
                assert!(
                    policy.allowed_sensitive.iter().any(|a| a == src),
                    "sensitive bind {src:?}"
                );
            }
            for o in ["nosuid", "nodev"] {
                assert!(opts.contains(&o), "bind {src:?} without {o}: {opts:?}");
            }
            for o in ["suid", "dev", "rsuid", "rdev"] {
                assert!(!opts.contains(&o), "bind {src:?} with {o}");
            }
            continue;
        }
        let t = m.typ().as_deref().unwrap_or("");
        assert!(
            ["proc", "mqueue", "devpts", "tmpfs", "shm", "sysfs", "cgroup", "cgroup2"].contains(&t),
            "mount type {t:?} kept"
        );
        // A procfs elsewhere would have none of the masked and read-only paths.
        if t == "proc" {
            assert_eq!(
                m.destination(),
                Path::new("/proc"),
                "proc mounted elsewhere"
            );
        }
        if ["sysfs", "cgroup", "cgroup2"].contains(&t) {
            assert!(
                opts.contains(&"ro") && !opts.contains(&"rw"),
                "{t} not read-only"
            );
        }
    }
    for v in &h.volumes {
        let m = &list[v.index];
        assert!(is_bind(m), "volume {v:?} is not a bind mount");
        assert_eq!(
            m.destination().to_string_lossy(),
            v.destination,
            "volume index"
        );
        assert_eq!(
            m.source().as_deref(),
            Some(v.source.as_path()),
            "volume source"
        );
    }
    assert_eq!(
        h.volumes.len(),
        list.iter().filter(|m| is_bind(m)).count(),
        "every bind is a volume"
    );
}

fn cgroup_ok(s: &Spec, policy: &Policy) {
    let linux = s.linux().as_ref().expect("linux");
    let cg = linux.cgroups_path().as_ref().expect("cgroupsPath set");
    assert!(
        clean_absolute(cg) && cg != Path::new("/"),
        "cgroupsPath {cg:?}"
    );
    let r = linux.resources().as_ref().expect("resources");
    if let Some(max) = policy.limits.pids {
        let l = r.pids().as_ref().expect("pids").limit();
        assert!(l > 0 && l <= max, "pids limit {l}");
    }
    if let Some(max) = policy.limits.memory_bytes {
        let l = r
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .expect("memory limit");
        assert!(l > 0 && l <= max, "memory limit {l}");
    }
    let cpu = r.cpu().as_ref().expect("cpu");
    let (q, p) = (cpu.quota().expect("quota"), cpu.period().expect("period"));
    assert!(q > 0 && p > 0, "cpu quota {q}/{p}");
    let pq = policy
        .limits
        .cpu_quota_us
        .unwrap_or(cgroups::DEFAULT_CPU_QUOTA_US);
    let pp = policy
        .limits
        .cpu_period_us
        .unwrap_or(cgroups::DEFAULT_CPU_PERIOD_US);
    assert!(
        i128::from(q) * i128::from(pp) <= i128::from(pq) * i128::from(p),
        "cpu {q}/{p} above the policy's {pq}/{pp}"
    );
}

fn devices_ok(s: &Spec) {
    let linux = s.linux().as_ref().expect("linux");
    for d in linux.devices().iter().flatten() {
        let ok = devices::STANDARD.iter().any(|(p, t, maj, min)| {
            d.path().as_os_str() == *p
                && matches!(d.typ(), LinuxDeviceType::C | LinuxDeviceType::U)
                && *t == 'c'
                && d.major() == *maj
                && d.minor() == *min
        });
        assert!(ok, "device {d:?} is not a standard device");
    }
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("device cgroup rules");
    assert!(
        !rules[0].allow() && rules[0].typ().is_none() && rules[0].major().is_none(),
        "deny-all first"
    );
    for r in &rules[1..] {
        assert!(r.allow() && r.typ() == Some(LinuxDeviceType::C), "{r:?}");
        let std = devices::STANDARD
            .iter()
            .any(|(_, _, maj, min)| r.major() == Some(*maj) && r.minor() == Some(*min));
        assert!(
            std || (r.major() == Some(136) && r.minor().is_none()),
            "device rule {r:?}"
        );
    }
}
