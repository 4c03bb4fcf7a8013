//! `harden(spec, policy) -> HardenedSpec`: the pure step every container goes through,
//! whatever its config.json asked. One module per defence; each owns its validation, its
//! contribution to the hardened spec and its errors. No I/O happens here.

pub mod caps;
pub mod cgroups;
pub mod devices;
pub mod masks;
pub mod mount_idmap;
pub mod mounts;
pub mod namespaces;
pub mod overrides;
pub mod systemd_path;
pub mod userns;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp, Spec};

pub use mounts::Volume;
pub use userns::IdRange;

/// One refusal, naming the field and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("process.capabilities (Kubernetes: securityContext.capabilities.add): {name} is denied by this node's policy (profile {profile})")]
    DeniedCapability { name: String, profile: String },
    #[error("{field}: unknown capability {name:?}")]
    UnknownCapability { field: String, name: String },
    #[error("process.capabilities (Kubernetes: securityContext.privileged): a privileged container (all capabilities) is refused")]
    Privileged,
    #[error("{field}: {detail}")]
    UserMapping { field: String, detail: String },
    #[error(
        "linux.namespaces{}: sharing the host's {kind} namespace is refused by policy ({how})",
        k8s_host_field(kind)
    )]
    HostNamespace { kind: String, how: String },
    #[error("{field}: {detail}")]
    Namespace { field: String, detail: String },
    #[error("{field} (Kubernetes: a hostPath volume): bind mount of {} refused: it {reason}", source_path.display())]
    SensitiveMount {
        field: String,
        source_path: PathBuf,
        reason: String,
    },
    #[error("{field}: {detail}")]
    Mount { field: String, detail: String },
    #[error("linux.devices: device {path} is not in the standard set (null, zero, full, random, urandom, tty, ptmx, pts)")]
    Device { path: String },
    #[error("{field}: {detail}")]
    Cgroup { field: String, detail: String },
    #[error("linux.sysctl: {key} is not a namespaced sysctl a container may set")]
    Sysctl { key: String },
    #[error("{field}: {detail}")]
    Spec { field: String, detail: String },
}

/// The Kubernetes pod field that asks for the host's `kind` namespace, for refusal messages.
fn k8s_host_field(kind: &str) -> &'static str {
    match kind {
        "pid" => " (Kubernetes: spec.hostPID)",
        "network" => " (Kubernetes: spec.hostNetwork)",
        "ipc" => " (Kubernetes: spec.hostIPC)",
        _ => "",
    }
}

/// Default cgroup limits (a spec's own limit is kept when tighter).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    pub pids: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: Option<u64>,
}

/// A writable tmpfs the policy declares.
#[derive(Debug, Clone, PartialEq)]
pub struct Tmpfs {
    pub path: String,
    pub size_bytes: u64,
    pub mode: u32,
    pub noexec: bool,
}

/// What a container on this node may be given: node config + chosen profile, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub profile_name: String,
    pub allowed_caps: BTreeSet<String>,
    pub denied_caps: BTreeSet<String>,
    pub strict_caps: bool,
    pub tmpfs: Vec<Tmpfs>,
    pub limits: Limits,
    /// Host namespaces that may be shared: "pid", "network", "ipc".
    pub host_namespaces: BTreeSet<String>,
    pub allowed_sensitive: Vec<PathBuf>,
    /// The size of a writable rootfs's layer when the profile allows one (`[rootfs]`); `None`:
    /// the rootfs is read-only whatever the spec asks.
    pub writable_rootfs: Option<u64>,
}

/// Facts about the host that harden needs, gathered by the caller beforehand.
#[derive(Debug, Clone, Default)]
pub struct HardenContext {
    pub id: String,
    /// The caller's own cgroup (relative cgroupsPath goes below it).
    pub own_cgroup: PathBuf,
    /// (dev, ino) of the host's namespaces, by kind ("pid", "net", ...).
    pub host_ns: BTreeMap<String, Vec<(u64, u64)>>,
    /// Container paths of the cgroup hierarchies, made read-only when the spec mounts cgroupfs.
    pub cgroup_dirs: Vec<String>,
    /// (dev, ino) of each namespace path named in the spec, or why it could not be read.
    pub path_ns: BTreeMap<PathBuf, Result<(u64, u64), String>>,
    /// `--systemd-cgroup`: `cgroupsPath` must be (or defaults to) `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// systemd makes this node's scopes (node config `[cgroups]`: it runs, or the driver is
    /// forced): a systemd-style path is asked of it over D-Bus (`crate::systemd`), at the
    /// same cgroup path as elsewhere.
    pub systemd_running: bool,
}

impl HardenContext {
    pub(crate) fn host_namespace(
        &self,
        t: LinuxNamespaceType,
        path: &Path,
    ) -> Result<bool, String> {
        match self.path_ns.get(path) {
            None => Err(format!("{} was not inspected", path.display())),
            Some(Err(e)) => Err(format!("{}: {e}", path.display())),
            Some(Ok(id)) => match self.host_ns.get(&t.to_string()) {
                // Fail closed: without the host's identity we cannot tell, so refuse.
                None => Err(format!(
                    "cannot read the host's {t} namespace to compare {} with",
                    path.display()
                )),
                Some(host) => Ok(host.contains(id)),
            },
        }
    }
}

/// The spec Ward will run, and what the later steps need to know about it.
#[derive(Debug, Clone)]
pub struct HardenedSpec {
    pub spec: Spec,
    /// Bind mounts, to be idmapped.
    pub volumes: Vec<Volume>,
    /// The spec's own `linux.seccomp`, installed in addition to the profile's filter.
    pub spec_seccomp: Option<LinuxSeccomp>,
    /// Capabilities the spec asked for that the policy dropped (reported, not silent).
    pub dropped_caps: Vec<String>,
    /// Every field Ward did not honour as asked (reported once each, never silent).
    pub overrides: Vec<overrides::Override>,
    /// The rootfs is writable (the profile allows it and the spec asked): the size of the
    /// tmpfs its writes go to. `None`: read-only.
    pub writable_rootfs: Option<u64>,
}

const NAMESPACED_SYSCTL_PREFIXES: &[&str] = &["net.", "fs.mqueue."];
const NAMESPACED_SYSCTLS: &[&str] = &[
    "kernel.shmmax",
    "kernel.shmall",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
];

/// Apply every defence to `spec`.
pub fn harden(
    mut spec: Spec,
    policy: &Policy,
    range: &IdRange,
    ctx: &HardenContext,
) -> Result<HardenedSpec, PolicyError> {
    if !spec.version().starts_with("1.") {
        return Err(PolicyError::Spec {
            field: "ociVersion".into(),
            detail: format!("{:?} is not a 1.x runtime spec version", spec.version()),
        });
    }
    let root = spec.root().clone().ok_or_else(|| PolicyError::Spec {
        field: "root".into(),
        detail: "missing".into(),
    })?;
    if root.path().as_os_str().is_empty() {
        return Err(PolicyError::Spec {
            field: "root.path".into(),
            detail: "empty".into(),
        });
    }
    let process = spec.process().as_ref().ok_or_else(|| PolicyError::Spec {
        field: "process".into(),
        detail: "missing".into(),
    })?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(PolicyError::Spec {
            field: "process.args".into(),
            detail: "must name a program to run".into(),
        });
    }
    if !process.cwd().is_absolute() {
        return Err(PolicyError::Spec {
            field: "process.cwd".into(),
            detail: format!("{} must be an absolute path", process.cwd().display()),
        });
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for key in sysctl.keys() {
            let ok = NAMESPACED_SYSCTL_PREFIXES
                .iter()
                .any(|p| key.starts_with(p))
                || NAMESPACED_SYSCTLS.contains(&key.as_str());
            if !ok {
                return Err(PolicyError::Sysctl { key: key.clone() });
            }
        }
    }

    let before = spec.clone();
    // no_new_privs always; a read-only rootfs unless the profile allows a writable one and
    // the spec asks for it.
    if let Some(p) = spec.process_mut() {
        p.set_no_new_privileges(Some(true));
        // additionalGids are kept as given (engines list the primary gid too, and runc keeps
        // it); see groups.rs for how the init and exec get exactly them.
    }
    let writable_rootfs = rootfs_writable(root.readonly(), policy);
    let mut root = root;
    root.set_readonly(Some(writable_rootfs.is_none()));
    spec.set_root(Some(root));

    namespaces::apply(&mut spec, policy, ctx)?;
    userns::apply(&mut spec, range)?;
    let dropped_caps = caps::apply(&mut spec, policy)?;
    mount_idmap::apply(&mut spec, range)?;
    let volumes = mounts::apply(&mut spec, policy)?;
    masks::apply(&mut spec, &ctx.cgroup_dirs);
    devices::apply(&mut spec)?;
    cgroups::apply(&mut spec, &policy.limits, ctx)?;
    let spec_seccomp = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.seccomp_mut().take());
    let overrides = overrides::detect(&before, &spec, &dropped_caps, &policy.profile_name);
    Ok(HardenedSpec {
        spec,
        volumes,
        spec_seccomp,
        dropped_caps,
        overrides,
        writable_rootfs,
    })
}

/// The writable layer's size when the rootfs is to be writable: the spec asks
/// (`root.readonly` false, or left out: the runtime spec's default, and what engines send for
/// a pod without `readOnlyRootFilesystem`) and the profile allows it. Else read-only.
pub fn rootfs_writable(spec_readonly: Option<bool>, policy: &Policy) -> Option<u64> {
    if spec_readonly == Some(true) {
        return None;
    }
    policy.writable_rootfs
}

#[cfg(test)]
pub(crate) fn test_policy() -> Policy {
    Policy {
        profile_name: "default".into(),
        allowed_caps: BTreeSet::new(),
        denied_caps: crate::config::DEFAULT_DENIED_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        strict_caps: false,
        tmpfs: vec![Tmpfs {
            path: "/tmp".into(),
            size_bytes: 64 << 20,
            mode: 0o1777,
            noexec: false,
        }],
        limits: Limits {
            pids: Some(1024),
            memory_bytes: Some(512 << 20),
            cpu_shares: Some(1024),
            ..Default::default()
        },
        host_namespaces: BTreeSet::new(),
        allowed_sensitive: vec![],
        writable_rootfs: None,
    }
}

#[cfg(test)]
pub(crate) fn test_ctx() -> HardenContext {
    let mut c = HardenContext {
        id: "c1".into(),
        own_cgroup: "/own".into(),
        ..Default::default()
    };
    c.host_ns.insert("pid".into(), vec![(4, 1)]);
    c.host_ns.insert("net".into(), vec![(4, 2)]);
    c.path_ns.insert("/proc/1/ns/pid".into(), Ok((4, 1)));
    c.path_ns.insert("/proc/77/ns/net".into(), Ok((4, 99)));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runc_like() -> Spec {
        // oci-spec's default is runc's `runc spec`: pid, network, ipc, uts, mount namespaces,
        // a default capability set, /proc, /dev, ... mounts.
        Spec::default()
    }

    #[test]
    fn default_spec_is_hardened() {
        let range = IdRange {
            host_start: 1 << 20,
            size: 65536,
        };
        let h = harden(runc_like(), &test_policy(), &range, &test_ctx()).unwrap();
        let s = &h.spec;
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        let c = p.capabilities().as_ref().unwrap();
        assert!(c.bounding().as_ref().unwrap().is_empty());
        assert!(c.effective().as_ref().unwrap().is_empty());
        assert!(!h.dropped_caps.is_empty());
        let l = s.linux().as_ref().unwrap();
        let ns = l.namespaces().as_ref().unwrap();
        for t in [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
        ] {
            assert!(ns.iter().any(|n| n.typ() == t), "{t:?}");
        }
        assert!(l
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".into()));
    }

    #[test]
    fn writable_rootfs_needs_policy_and_spec() {
        let range = IdRange {
            host_start: 1 << 20,
            size: 65536,
        };
        let spec = |ro: Option<bool>| {
            let mut s = runc_like();
            let mut r = s.root().clone().unwrap();
            r.set_readonly(ro);
            s.set_root(Some(r));
            s
        };
        let ro = |h: &HardenedSpec| h.spec.root().as_ref().unwrap().readonly();
        let reported = |h: &HardenedSpec| h.overrides.iter().any(|o| o.field == "root.readonly");
        let mut allow = test_policy();
        allow.writable_rootfs = Some(8 << 20);
        // Profile allows, spec asks (explicitly or by leaving the field out): writable.
        for asked in [Some(false), None] {
            let h = harden(spec(asked), &allow, &range, &test_ctx()).unwrap();
            assert_eq!(ro(&h), Some(false), "{asked:?}");
            assert_eq!(h.writable_rootfs, Some(8 << 20));
            assert!(!reported(&h), "{:?}", h.overrides);
        }
        // Profile allows, spec wants read-only: read-only.
        let h = harden(spec(Some(true)), &allow, &range, &test_ctx()).unwrap();
        assert_eq!((ro(&h), h.writable_rootfs), (Some(true), None));
        assert!(!reported(&h));
        // Spec asks, profile does not allow: read-only, and the override is reported.
        let h = harden(spec(Some(false)), &test_policy(), &range, &test_ctx()).unwrap();
        assert_eq!((ro(&h), h.writable_rootfs), (Some(true), None));
        let o = h
            .overrides
            .iter()
            .find(|o| o.field == "root.readonly")
            .unwrap();
        assert!(o.applied.contains("[rootfs]"), "{}", o.line());
    }

    #[test]
    fn bad_specs() {
        let range = IdRange {
            host_start: 1 << 20,
            size: 65536,
        };
        let mut s = runc_like();
        s.set_process(None);
        let e = harden(s, &test_policy(), &range, &test_ctx()).unwrap_err();
        assert!(e.to_string().starts_with("process:"), "{e}");
        let mut s = runc_like();
        s.set_version("0.9".into());
        assert!(harden(s, &test_policy(), &range, &test_ctx()).is_err());
        let mut s = runc_like();
        let mut m = std::collections::HashMap::new();
        m.insert("kernel.core_pattern".to_string(), "|/x".to_string());
        s.linux_mut().as_mut().unwrap().set_sysctl(Some(m));
        let e = harden(s, &test_policy(), &range, &test_ctx()).unwrap_err();
        assert!(e.to_string().contains("kernel.core_pattern"), "{e}");
    }
}
