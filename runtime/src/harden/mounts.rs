//! Mounts: bind mounts of sensitive host paths are refused unless the policy names them;
//! pseudo filesystems are forced read-only where a write could reach the host; declared tmpfs
//! paths are added; every bind volume is listed so it can be idmapped and given a Landlock rule,
//! and is mounted nosuid,nodev: container root writes as host root through an idmapped
//! read-write volume, so set-id files and device nodes there must mean nothing inside either
//! (the profiles' seccomp rules keep them from being created at all).

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};

use super::{Policy, PolicyError};

/// Host paths that a bind mount may not expose (the path itself, anything above it, and for
/// most of them anything below it).
pub const SENSITIVE: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/var/run",
    "/run",
    "/run/containerd",
    "/var/run/containerd",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/crio",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/containers",
    "/etc/kubernetes",
    "/var/lib/kubelet",
    "/etc/ward",
    "/lib/modules",
];

/// Below these, paths are as sensitive as the directory itself...
pub const SENSITIVE_SUBTREES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/run/containerd",
    "/var/run/containerd",
    "/etc/kubernetes",
    "/var/lib/kubelet",
    "/etc/ward",
    "/lib/modules",
];

/// ...except these, where engines keep per-container files (hosts, resolv.conf, shm, volumes).
pub const ENGINE_PER_CONTAINER: &[&str] = &[
    "/var/lib/kubelet/pods/",
    "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/",
    "/var/run/containerd/io.containerd.grpc.v1.cri/sandboxes/",
];

/// A bind mount, to be idmapped and given a Landlock rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    /// Index into the hardened `spec.mounts` (sorted, see [`sort_by_depth`]).
    pub index: usize,
    /// Index in config.json's `mounts`, for messages.
    #[serde(default)]
    pub spec_index: usize,
    pub source: PathBuf,
    pub destination: String,
    pub writable: bool,
}

fn clean(p: &Path) -> Result<PathBuf, String> {
    if !p.is_absolute() {
        return Err("must be an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return Err("must not contain \"..\"".into()),
            Component::Prefix(_) => return Err("bad path".into()),
        }
    }
    Ok(out)
}

/// Why `source` is a sensitive host path, if it is.
pub fn sensitive_reason(source: &Path) -> Option<String> {
    let s = source.to_string_lossy();
    if s.ends_with(".sock") {
        return Some("is a container engine or daemon socket".into());
    }
    if ENGINE_PER_CONTAINER.iter().any(|p| s.starts_with(p)) {
        return None;
    }
    for sens in SENSITIVE {
        let sp = Path::new(sens);
        if source == sp {
            return Some(format!("is the host's {sens}"));
        }
        if sp.starts_with(source) {
            return Some(format!("contains the host's {sens}"));
        }
    }
    SENSITIVE_SUBTREES
        .iter()
        .find(|sub| source.starts_with(sub))
        .map(|sub| format!("is inside the host's {sub}"))
}

pub(super) fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// Bind volumes never honour set-id bits or device nodes: drop `suid`/`dev` (and the
/// recursive `rsuid`/`rdev`), add
/// `nosuid`/`nodev`.
fn force_nosuid_nodev(m: &mut Mount) {
    let opts = m.options_mut().get_or_insert_with(Vec::new);
    opts.retain(|o| !matches!(o.as_str(), "suid" | "dev" | "rsuid" | "rdev"));
    for o in ["nosuid", "nodev"] {
        if !opts.iter().any(|x| x == o) {
            opts.push(o.into());
        }
    }
}

fn force_ro(m: &mut Mount) {
    let opts = m.options_mut().get_or_insert_with(Vec::new);
    opts.retain(|o| o != "rw");
    if !opts.iter().any(|o| o == "ro") {
        opts.push("ro".into());
    }
}

/// The cleaned destination: absolute, no "..", not / itself.
fn destination(m: &Mount, field: &str) -> Result<PathBuf, PolicyError> {
    let dest = clean(m.destination()).map_err(|detail| PolicyError::Mount {
        field: format!("{field}.destination"),
        detail: format!("{}: {detail}", m.destination().display()),
    })?;
    if dest == Path::new("/") {
        return Err(PolicyError::Mount {
            field: format!("{field}.destination"),
            detail: "a mount at / would replace the read-only rootfs".into(),
        });
    }
    Ok(dest)
}

/// A mount of a kernel filesystem (not a bind): only the types a container needs, procfs
/// only at /proc, sysfs and cgroupfs read-only.
fn kernel_fs(m: &mut Mount, dest: &Path, field: &str) -> Result<(), PolicyError> {
    match m.typ().as_deref().unwrap_or("") {
        // As runc since CVE-2019-19921: a procfs anywhere but /proc has none of the
        // masked and read-only paths.
        "proc" if dest != Path::new("/proc") => {
            return Err(PolicyError::Mount {
                field: format!("{field}.destination"),
                detail: format!(
                    "proc mounted at {}: procfs is allowed only at /proc, where its sensitive files are masked",
                    dest.display()
                ),
            })
        }
        "proc" | "mqueue" | "devpts" | "tmpfs" | "shm" => {}
        "sysfs" | "cgroup" | "cgroup2" => force_ro(m),
        other => {
            return Err(PolicyError::Mount {
                field: format!("{field}.type"),
                detail: format!(
                    "mount type {other:?} at {} is not allowed (bind, tmpfs, proc, sysfs, cgroup, mqueue, devpts only)",
                    dest.display()
                ),
            })
        }
    }
    Ok(())
}

pub fn apply(spec: &mut Spec, policy: &Policy) -> Result<Vec<Volume>, PolicyError> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let mut volumes = vec![];
    for (index, m) in mounts.iter_mut().enumerate() {
        let field = format!("mounts[{index}]");
        let dest = destination(m, &field)?;
        m.set_destination(dest.clone());
        if is_bind(m) {
            let src = m.source().clone().ok_or_else(|| PolicyError::Mount {
                field: format!("{field}.source"),
                detail: "a bind mount needs a source".into(),
            })?;
            let src = clean(&src).map_err(|detail| PolicyError::Mount {
                field: format!("{field}.source"),
                detail: format!("{}: {detail}", src.display()),
            })?;
            if let Some(why) = sensitive_reason(&src) {
                if !policy.allowed_sensitive.iter().any(|a| a == &src) {
                    return Err(PolicyError::SensitiveMount {
                        field: format!("{field}.source"),
                        source_path: src,
                        reason: why,
                    });
                }
            }
            let writable = !m
                .options()
                .iter()
                .flatten()
                .any(|o| o == "ro" || o == "rro");
            force_nosuid_nodev(m);
            volumes.push(Volume {
                index,
                spec_index: index,
                source: src,
                destination: dest.to_string_lossy().into_owned(),
                writable,
            });
            continue;
        }
        kernel_fs(m, &dest, &field)?;
    }
    // Declared writable places: tmpfs of the policy, unless the spec mounts something there.
    for t in &policy.tmpfs {
        if mounts.iter().any(|m| m.destination() == Path::new(&t.path)) {
            continue;
        }
        let mut opts = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            format!("size={}", t.size_bytes),
            format!("mode={:o}", t.mode),
        ];
        if t.noexec {
            opts.push("noexec".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(&t.path)
                .typ("tmpfs")
                .source("tmpfs")
                .options(opts)
                .build()
                .expect("valid mount"),
        );
    }
    sort_by_depth(&mut mounts, &mut volumes);
    spec.set_mounts(Some(mounts));
    Ok(volumes)
}

/// Order mounts so that a parent never covers a child mounted before it (a volume at
/// `/tmp/vol` listed before the profile's `/tmp` tmpfs would be hidden, silently): stably by
/// the number of components of the destination, keeping the spec's order otherwise, as
/// containerd's CRI does. Volume indexes follow their mounts.
fn sort_by_depth(mounts: &mut Vec<Mount>, volumes: &mut [Volume]) {
    let mut order: Vec<usize> = (0..mounts.len()).collect();
    order.sort_by_key(|&i| mounts[i].destination().components().count());
    let mut new_pos = vec![0; mounts.len()];
    for (pos, &old) in order.iter().enumerate() {
        new_pos[old] = pos;
    }
    let mut taken: Vec<Option<Mount>> = std::mem::take(mounts).into_iter().map(Some).collect();
    *mounts = order
        .iter()
        .map(|&i| taken[i].take().expect("each index once"))
        .collect();
    for v in volumes.iter_mut() {
        v.index = new_pos[v.index];
    }
}

/// The container paths that are writable: tmpfs mounts and rw volumes.
pub fn writable_paths(spec: &Spec) -> Vec<(String, bool)> {
    spec.mounts()
        .iter()
        .flatten()
        .filter_map(|m| {
            let dest = m.destination().to_string_lossy().into_owned();
            let ro = m
                .options()
                .iter()
                .flatten()
                .any(|o| o == "ro" || o == "rro");
            match m.typ().as_deref() {
                // /dev is the runtime's own tmpfs of device nodes: Landlock grants only the
                // standard nodes in it, never the directory.
                Some("tmpfs") if dest == "/dev" => None,
                Some("tmpfs") | Some("shm") => Some((dest, !ro)),
                _ if is_bind(m) => Some((dest, !ro)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::test_policy;

    fn bind(src: &str, dst: &str) -> Mount {
        MountBuilder::default()
            .destination(dst)
            .source(src)
            .typ("bind")
            .options(vec!["rbind".to_string()])
            .build()
            .unwrap()
    }

    #[test]
    fn sensitive() {
        for s in [
            "/",
            "/var/run",
            "/run",
            "/run/containerd",
            "/run/containerd/containerd.sock",
            "/var/run/docker.sock",
            "/etc/kubernetes/pki",
            "/var/lib/kubelet",
            "/proc/1",
            "/sys",
            "/dev/vda",
            "/var",
            "/etc",
        ] {
            assert!(
                sensitive_reason(Path::new(s)).is_some(),
                "{s} not sensitive"
            );
        }
        for s in [
            "/home/x/data",
            "/var/lib/kubelet/pods/u/volumes/x",
            "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/x/shm",
            "/run/containers/storage/overlay-containers/x/userdata/hosts",
            "/tmp/vol",
        ] {
            assert!(sensitive_reason(Path::new(s)).is_none(), "{s} sensitive");
        }
    }

    #[test]
    fn refuses_containerd_bind_and_lists_volumes() {
        let mut s = Spec::default();
        s.set_mounts(Some(vec![bind("/var/run/containerd", "/x")]));
        let e = apply(&mut s, &test_policy()).unwrap_err();
        assert!(e.to_string().contains("/var/run/containerd"), "{e}");

        let mut s = Spec::default();
        let mut m = bind("/srv/data", "/data");
        m.set_options(Some(vec![
            "rbind".into(),
            "suid".into(),
            "dev".into(),
            "rw".into(),
        ]));
        s.set_mounts(Some(vec![m]));
        let v = apply(&mut s, &test_policy()).unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].writable);
        // A volume never honours set-id bits or devices, whatever the spec asked.
        let opts = s.mounts().as_ref().unwrap()[0].options().clone().unwrap();
        assert_eq!(opts, vec!["rbind", "rw", "nosuid", "nodev"]);
        assert!(s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/tmp")));
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let mut s = Spec::default();
        let tmpfs = |d: &str| {
            MountBuilder::default()
                .destination(d)
                .typ("tmpfs")
                .source("tmpfs")
                .build()
                .unwrap()
        };
        s.set_mounts(Some(vec![
            tmpfs("/proc"),
            bind("/srv/a", "/tmp/vol"),
            tmpfs("/dev"),
            bind("/srv/b", "/data"),
            tmpfs("/dev/shm"),
        ]));
        let v = apply(&mut s, &test_policy()).unwrap();
        let dests: Vec<String> = s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        // The policy's /tmp (appended) comes before /tmp/vol; equal depths keep spec order.
        let tmp = dests.iter().position(|d| d == "/tmp").unwrap();
        let vol = dests.iter().position(|d| d == "/tmp/vol").unwrap();
        assert!(tmp < vol, "{dests:?}");
        assert_eq!(&dests[..3], &["/proc", "/dev", "/data"], "{dests:?}");
        // Volume indexes follow their mounts; messages keep config.json's index.
        for vol in &v {
            assert_eq!(dests[vol.index], vol.destination, "{v:?}");
        }
        assert_eq!(
            (v[0].destination.as_str(), v[0].spec_index),
            ("/tmp/vol", 1)
        );
        assert_eq!((v[1].destination.as_str(), v[1].spec_index), ("/data", 3));
    }

    #[test]
    fn allowed_sensitive_and_bad_types() {
        let mut p = test_policy();
        p.allowed_sensitive.push(PathBuf::from("/run/containerd"));
        let mut s = Spec::default();
        s.set_mounts(Some(vec![bind("/run/containerd", "/x")]));
        apply(&mut s, &p).unwrap();
        let mut s = Spec::default();
        s.set_mounts(Some(vec![MountBuilder::default()
            .destination("/mnt")
            .typ("ext4")
            .source("/dev/vda")
            .build()
            .unwrap()]));
        let e = apply(&mut s, &test_policy()).unwrap_err();
        assert!(e.to_string().contains("ext4"), "{e}");
        let mut s = Spec::default();
        s.set_mounts(Some(vec![bind("/srv/../etc", "/x")]));
        assert!(apply(&mut s, &test_policy()).is_err());
    }

    fn one(m: Mount) -> Result<Vec<Volume>, PolicyError> {
        let mut s = Spec::default();
        s.set_mounts(Some(vec![m]));
        apply(&mut s, &test_policy())
    }

    #[test]
    fn nothing_mounts_over_the_rootfs() {
        for m in [
            bind("/srv/data", "/"),
            bind("/srv/data", "//./"),
            MountBuilder::default()
                .destination("/")
                .typ("tmpfs")
                .source("tmpfs")
                .build()
                .unwrap(),
        ] {
            let e = one(m).unwrap_err().to_string();
            assert_eq!(
                e,
                "mounts[0].destination: a mount at / would replace the read-only rootfs"
            );
        }
    }

    #[test]
    fn proc_only_at_proc() {
        let proc_at = |d: &str| {
            MountBuilder::default()
                .destination(d)
                .typ("proc")
                .source("proc")
                .build()
                .unwrap()
        };
        one(proc_at("/proc")).unwrap();
        one(proc_at("/proc/")).unwrap();
        for d in ["/hostproc", "/proc/self", "/tmp/p"] {
            let e = one(proc_at(d)).unwrap_err().to_string();
            assert!(
                e.starts_with("mounts[0].destination: proc mounted at "),
                "{e}"
            );
        }
    }
}
