//! Pods: joining the namespaces a container engine prepared (containerd's CRI).
//!
//! containerd creates a pod's network namespace in the **host** user namespace (a bind-mounted
//! `/var/run/netns/cni-…` file), sets it up with CNI and names it in the sandbox container's
//! spec; the pod's other containers name the sandbox's namespaces
//! (`/proc/<sandbox pid>/ns/{net,ipc,uts}`, and `pid` when the pod shares it). Ward always gives
//! a container a user namespace, which libcontainer enters first, and from there a process has no
//! CAP_SYS_ADMIN over namespaces another user namespace owns: `setns` fails with EPERM. So:
//!
//! * **A network namespace owned by the host user namespace** (the pod network an engine made):
//!   Ward, a single-threaded process, enters it itself right before libcontainer clones, removes
//!   the entry from the spec libcontainer sees (the container inherits the namespace) and returns
//!   to its own namespace afterwards ([`Entered`]). The container's root has no capability over
//!   that namespace: it cannot change addresses, routes or firewall rules (stricter than runc,
//!   where it can). The container cannot mount sysfs for such a namespace either, so Ward mounts
//!   a read-only sysfs for it at `<state>/<id>/sys` and the spec binds that at `/sys`.
//! * **Namespaces owned by another user namespace**: only those of the container's own pod
//!   sandbox, i.e. the Ward container (same state root) that the annotation
//!   `io.kubernetes.cri.sandbox-id` names, and only namespaces owned by that sandbox's user
//!   namespace. The container then joins the sandbox's user namespace and shares its uid range
//!   (`alloc.rs`: the range is freed when the last of them is deleted).
//! * **Anything else** (another container's namespaces, an ipc/uts/pid namespace owned by the
//!   host user namespace, a sandbox that is not a Ward container of this root) is refused,
//!   naming the field. The host's own namespaces stay harden's business (refused unless the
//!   node policy allows them).
//!
//! After libcontainer created the container, [`Joins::verify`] checks from /proc that it is in
//! exactly the planned namespaces (a sandbox pid recycled between planning and joining would
//! show here) before anything of the container's own runs.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};

use crate::harden::{HardenContext, IdRange, PolicyError};
use crate::sys::{self, SysError};

/// The annotation containerd's CRI puts on every container of a pod (the sandbox's own id on
/// the sandbox container).
pub const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// Where the sysfs of a joined network namespace is mounted, under the container's Ward dir.
pub const SYSFS_DIR: &str = "sys";

type NsId = (u64, u64);

/// A running Ward container of the same state root: the pod sandbox named by the annotation.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    pub id: String,
    pub pid: i32,
    pub range: IdRange,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PodError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("the container is in {kind} namespace {got:?}, not the one planned ({want:?}); the pod sandbox may have exited: not started")]
    Verify {
        kind: &'static str,
        got: String,
        want: NsId,
    },
}

/// What `create` must do about the namespace paths in a spec.
#[derive(Debug, Default)]
pub struct Joins {
    /// A network namespace owned by the host user namespace, which Ward enters itself.
    netns: Option<(PathBuf, OwnedFd, NsId)>,
    /// The pod sandbox whose user namespace (and uid range) the container joins.
    pub sandbox: Option<PodSandbox>,
    sandbox_userns: Option<NsId>,
    /// Namespaces the container must end up in: (kind as in /proc/<pid>/ns, identity).
    expected: Vec<(&'static str, NsId)>,
    /// `net.*` sysctls of the spec, which Ward writes in the joined network namespace.
    net_sysctls: Vec<(String, String)>,
    /// The joined network namespace is the host's own (the node allows it).
    host_net: bool,
    /// The container does not own its network namespace: Ward mounts its `/sys`.
    sysfs: bool,
}

fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    }
}

fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// One namespace path of the spec, opened and identified.
struct Named {
    kind: LinuxNamespaceType,
    path: PathBuf,
    fd: OwnedFd,
    id: NsId,
    owner: NsId,
}

/// The name the spec and harden's errors use ("network", not "net").
fn spec_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Mount => "mount",
        other => proc_name(other),
    }
}

fn field(kind: LinuxNamespaceType) -> String {
    format!("linux.namespaces[{}].path", spec_name(kind))
}

fn refuse(kind: LinuxNamespaceType, detail: String) -> PodError {
    PolicyError::Namespace {
        field: field(kind),
        detail,
    }
    .into()
}

fn open_named(kind: LinuxNamespaceType, path: &Path) -> Result<Named, PodError> {
    let fd = sys::open_ns(path).map_err(|e| refuse(kind, e.to_string()))?;
    let actual = sys::ns_type(&fd, path).map_err(|e| {
        refuse(
            kind,
            format!("{e} (not a namespace file: {})", path.display()),
        )
    })?;
    if actual != clone_flag(kind) {
        return Err(refuse(
            kind,
            format!("{} is not a {} namespace", path.display(), spec_name(kind)),
        ));
    }
    let id = sys::ns_identity(&fd, path)?;
    let owner_fd = sys::ns_owner(&fd, path)?;
    let owner = sys::ns_identity(&owner_fd, path)?;
    Ok(Named {
        kind,
        path: path.to_path_buf(),
        fd,
        id,
        owner,
    })
}

fn proc_ns(pid: i32, kind: &str) -> Result<NsId, SysError> {
    let p = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
    let fd = sys::open_ns(&p)?;
    sys::ns_identity(&fd, &p)
}

/// Decide how the container gets into the namespaces its spec names. `sandbox` looks up the
/// pod sandbox a `io.kubernetes.cri.sandbox-id` annotation names (`Err` says why it cannot be
/// joined). Paths to the host's own namespaces other than the network are left to harden.
pub fn plan(
    spec: &Spec,
    own_id: &str,
    ctx: &HardenContext,
    sandbox: impl FnOnce(&str) -> Result<PodSandbox, String>,
) -> Result<Joins, PodError> {
    let mut named = vec![];
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let kind = ns.typ();
        let Some(path) = ns.path() else { continue };
        // User, mount and cgroup paths are refused by harden, with its own message.
        if matches!(
            kind,
            LinuxNamespaceType::User | LinuxNamespaceType::Mount | LinuxNamespaceType::Cgroup
        ) {
            continue;
        }
        // The host's own pid/ipc/uts/time namespaces: harden refuses them (or the node allows
        // them and libcontainer joins them as before).
        if kind != LinuxNamespaceType::Network && ctx.host_namespace(kind, path) == Ok(true) {
            continue;
        }
        named.push(open_named(kind, path)?);
    }
    let mut joins = Joins::default();
    if named.is_empty() {
        return Ok(joins);
    }
    let host_userns: Vec<NsId> = ctx.host_ns.get("user").cloned().unwrap_or_default();
    if host_userns.is_empty() {
        return Err(refuse(
            named[0].kind,
            "cannot read the host's user namespace to tell who owns the namespace to join".into(),
        ));
    }
    let annotation = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(SANDBOX_ID_ANNOTATION))
        .filter(|s| s.as_str() != own_id);
    if let Some(sid) = annotation {
        let sb = sandbox(sid).map_err(|why| {
            refuse(
                named[0].kind,
                format!(
                    "joins the namespaces of pod sandbox {sid:?} (annotation {SANDBOX_ID_ANNOTATION}), which {why}"
                ),
            )
        })?;
        joins.sandbox_userns = Some(proc_ns(sb.pid, "user")?);
        let sandbox_net = proc_ns(sb.pid, "net")?;
        joins.sandbox = Some(sb);
        for n in &named {
            if n.kind == LinuxNamespaceType::Network && n.id != sandbox_net {
                return Err(refuse(
                    n.kind,
                    format!(
                        "{} is not the network namespace of pod sandbox {sid:?}",
                        n.path.display()
                    ),
                ));
            }
        }
    }
    for n in named {
        let by_host = host_userns.contains(&n.owner)
            || (n.kind == LinuxNamespaceType::Network
                && crate::pod_userns::engine_netns(spec, &n.fd, &n.path, &host_userns)?);
        if by_host && n.kind == LinuxNamespaceType::Network {
            if joins.netns.is_some() {
                return Err(refuse(n.kind, "named twice".into()));
            }
            joins.expected.push(("net", n.id));
            joins.host_net = ctx.host_namespace(n.kind, &n.path) == Ok(true);
            joins.netns = Some((n.path, n.fd, n.id));
        } else if joins.sandbox_userns == Some(n.owner) {
            joins.expected.push((proc_name(n.kind), n.id));
        } else if by_host {
            return Err(refuse(
                n.kind,
                format!(
                    "{} ({} namespace) is owned by the host user namespace: Ward joins only a network namespace of that kind (the pod network an engine prepares); other namespaces must belong to the container's pod sandbox",
                    n.path.display(),
                    spec_name(n.kind)
                ),
            ));
        } else {
            let hint = match annotation {
                Some(sid) => format!("pod sandbox {sid:?}'s"),
                None => format!(
                    "the host's nor, for a pod container (annotation {SANDBOX_ID_ANNOTATION}), its Ward sandbox's"
                ),
            };
            return Err(refuse(
                n.kind,
                format!(
                    "{} belongs to another container: it is owned by a user namespace that is not {hint}",
                    n.path.display()
                ),
            ));
        }
    }
    if let Some(u) = joins.sandbox_userns {
        joins.expected.push(("user", u));
    }
    Ok(joins)
}

impl Joins {
    /// Whether Ward itself enters a network namespace for this container.
    pub fn joins_netns(&self) -> bool {
        self.netns.is_some()
    }

    /// The spec libcontainer sees: the Ward-joined network entry removed (inherited instead),
    /// `/sys` bound from Ward's sysfs of that namespace, `net.*` sysctls taken out (Ward
    /// writes them there: the container's root cannot), the sandbox's user namespace by path.
    pub fn rewrite(&mut self, spec: &mut Spec, ward_dir: &Path) -> Result<(), PodError> {
        let listed = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        // Without an entry the container stays in the host's network namespace (the node
        // allows it); with a path, Ward joins it. Either way the container does not own it.
        self.sysfs = self.netns.is_some() || !listed;
        if self.netns.is_some() {
            self.net_sysctls = take_net_sysctls(spec)?;
            if !self.host_net && self.sandbox.is_none() && crate::pod_trust::is_sandbox(spec) {
                let spec_sysctls = std::mem::take(&mut self.net_sysctls);
                self.net_sysctls = crate::netns::pod_sandbox_sysctls(spec_sysctls);
            }
        }
        if self.host_net || !listed {
            if let Some(key) = spec
                .linux()
                .as_ref()
                .and_then(|l| l.sysctl().as_ref())
                .and_then(|m| m.keys().find(|k| k.starts_with("net")).cloned())
                .or_else(|| self.net_sysctls.first().map(|(k, _)| k.clone()))
            {
                return Err(PolicyError::Spec {
                    field: format!("linux.sysctl[{key:?}]"),
                    detail: "a network sysctl in the host's network namespace would change the host's network settings".into(),
                }
                .into());
            }
        }
        if let Some(linux) = spec.linux_mut() {
            if let Some(nss) = linux.namespaces_mut() {
                if self.netns.is_some() {
                    nss.retain(|n| n.typ() != LinuxNamespaceType::Network);
                }
                if let Some(sb) = &self.sandbox {
                    for n in nss.iter_mut() {
                        if n.typ() == LinuxNamespaceType::User {
                            n.set_path(Some(PathBuf::from(format!("/proc/{}/ns/user", sb.pid))));
                        }
                    }
                }
            }
        }
        if !self.sysfs {
            return Ok(());
        }
        let source = ward_dir.join(SYSFS_DIR);
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts.iter_mut() {
                if m.typ().as_deref() != Some("sysfs") {
                    continue;
                }
                *m = MountBuilder::default()
                    .destination(m.destination().clone())
                    .typ("bind")
                    .source(source.clone())
                    .options(
                        ["bind", "ro", "nosuid", "nodev", "noexec"]
                            .map(String::from)
                            .to_vec(),
                    )
                    .build()
                    .expect("all fields set");
            }
        }
        Ok(())
    }

    /// Enter the network namespace Ward joins for this container (if any), write its `net.*`
    /// sysctls, and mount the sysfs of the network namespace the container will be in under
    /// `ward_dir` when the container does not own that namespace. The caller must be single-threaded and clone the
    /// container while the returned guard lives; dropping it returns to the caller's own
    /// network namespace.
    pub fn enter(&self, ward_dir: &Path) -> Result<Option<Entered>, SysError> {
        let entered = match &self.netns {
            Some((path, fd, _)) => {
                let own = PathBuf::from("/proc/thread-self/ns/net");
                let original = sys::open_ns(&own)?;
                sys::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET, path)?;
                Some(Entered { original, own })
            }
            None => None,
        };
        for (key, value) in &self.net_sysctls {
            // /proc/sys/net is the calling thread's network namespace's: the pod's now.
            let p = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&p, value).map_err(|source| SysError::Io {
                op: "write sysctl",
                path: p.clone(),
                source,
            })?;
        }
        if self.sysfs {
            // The sysfs of the network namespace the container will be in (tagged at mount).
            let sysfs = ward_dir.join(SYSFS_DIR);
            std::fs::create_dir_all(&sysfs).map_err(|source| SysError::Io {
                op: "mkdir",
                path: sysfs.clone(),
                source,
            })?;
            sys::mount_sysfs(&sysfs)?;
        }
        Ok(entered)
    }

    /// Check that the new container's init `pid` is in exactly the planned namespaces.
    pub fn verify(&self, pid: i32) -> Result<(), PodError> {
        for (kind, want) in &self.expected {
            let p = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
            let got = sys::open_ns(&p).and_then(|fd| sys::ns_identity(&fd, &p));
            if got.as_ref().ok() != Some(want) {
                return Err(PodError::Verify {
                    kind,
                    got: match got {
                        Ok(id) => format!("{id:?}"),
                        Err(e) => e.to_string(),
                    },
                    want: *want,
                });
            }
        }
        Ok(())
    }
}

/// Move the spec's `net.*` sysctls out. Keys become paths under /proc/sys written by a
/// privileged process, so only plain `net.<a>.<b>...` names pass (no `/`, no empty or dot
/// components that could walk out of /proc/sys/net).
fn take_net_sysctls(spec: &mut Spec) -> Result<Vec<(String, String)>, PodError> {
    let Some(sysctl) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.sysctl_mut().as_mut())
    else {
        return Ok(vec![]);
    };
    let keys: Vec<String> = sysctl
        .keys()
        .filter(|k| k.starts_with("net.") || k.starts_with("net/"))
        .cloned()
        .collect();
    let mut out = vec![];
    for key in keys {
        let plain = key.split('.').skip(1).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !plain || !key.starts_with("net.") || key == "net." {
            return Err(PolicyError::Spec {
                field: format!("linux.sysctl[{key:?}]"),
                detail: "a network sysctl must be dot-separated [A-Za-z0-9_-] names (net.ipv4.ip_forward)".into(),
            }
            .into());
        }
        let value = sysctl.remove(&key).unwrap_or_default();
        out.push((key, value));
    }
    Ok(out)
}

/// Exec into a container whose saved spec has no network entry (Ward joined the network
/// namespace for it, or the node allows the host's): join the init's network namespace while
/// still in the host user namespace, since libcontainer's exec path joins only the namespaces
/// the spec lists. Call in the forked exec helper, before it enters the container's user
/// namespace.
pub fn enter_inherited_netns(spec: &Spec, init_pid: i32) -> Result<(), SysError> {
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if listed {
        return Ok(());
    }
    let p = PathBuf::from(format!("/proc/{init_pid}/ns/net"));
    let fd = sys::open_ns(&p)?;
    sys::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET, &p)
}

/// Unmount the sysfs [`Joins::enter`] mounted for a container (no-op if there is none).
pub fn undo_sysfs(ward_dir: &Path) -> Result<(), SysError> {
    sys::umount(&ward_dir.join(SYSFS_DIR))
}

/// The caller is inside a joined network namespace until this is dropped.
#[derive(Debug)]
pub struct Entered {
    original: OwnedFd,
    own: PathBuf,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = sys::setns(
            &self.original,
            nix::sched::CloneFlags::CLONE_NEWNET,
            &self.own,
        ) {
            // A Ward process left in a pod's network namespace would judge the next container's
            // "host namespace" against the wrong one: stop rather than go on.
            tracing::error!(error = %e, "cannot return to Ward's own network namespace; aborting");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests;
