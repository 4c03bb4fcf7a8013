//! Resolve: every host path a config.json names (`root.path`, bind mount sources) becomes an
//! opened, checked handle before anything is mounted. A check on a path string proves nothing
//! about what a later syscall reaches, so:
//! - each path is opened once with openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
//!   (a relative `root.path` also RESOLVE_BENEATH the bundle): a symlink in any component is
//!   refused, naming the field and the link;
//! - the policy runs on the opened object: its identity (st_dev, st_ino) against the host's
//!   protected directories and their ancestors, the directories above it (walked with `..`
//!   from the handle, not from the spelling), and the kernel's own name for it;
//! - the preparation step mounts from the handle (`open_tree(fd, "", AT_EMPTY_PATH)`), so what
//!   was checked is what gets mounted, whatever the path's components are changed to meanwhile.
//!
//! `harden` stays the pure policy over the spec's spelling; this step runs after it.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Spec;

use crate::harden::mounts::{
    sensitive_reason, ENGINE_PER_CONTAINER, SENSITIVE, SENSITIVE_SUBTREES,
};
use crate::harden::Volume;
use crate::sys::fs::{self as sysfs, Object, Walk};
use crate::sys::SysError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("{field}: {} runs through the symlink {}: Ward does not follow symlinks in host paths (name the real path)", path.display(), link.display())]
    Symlink {
        field: String,
        path: PathBuf,
        link: PathBuf,
    },
    #[error("{field}: {} leads outside the bundle {} (use an absolute path)", path.display(), bundle.display())]
    Escapes {
        field: String,
        path: PathBuf,
        bundle: PathBuf,
    },
    #[error("{field}: {}: {errno}", path.display())]
    Open {
        field: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("{field}: {} refused: it {reason}", path.display())]
    Protected {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{field}: {} is not a directory", path.display())]
    NotDir { field: String, path: PathBuf },
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// An opened host object: the fd every later step uses, with what was checked about it.
#[derive(Debug)]
pub struct Handle {
    pub fd: OwnedFd,
    /// The path as the spec spelled it (for messages).
    pub spelled: PathBuf,
    /// The kernel's name for the object when it was opened.
    pub real: PathBuf,
    pub object: Object,
}

/// A bind volume's source, opened and checked.
#[derive(Debug)]
pub struct ResolvedVolume {
    /// Index into the hardened spec's mounts.
    pub index: usize,
    /// Index in config.json's mounts, for messages.
    pub spec_index: usize,
    pub handle: Handle,
    /// `rbind`: clone the whole mount tree under the source, not only its top mount.
    pub recursive: bool,
    /// Attributes of its options to set on the clone (atime, recursive ones).
    pub attrs: crate::mount_attrs::VolumeAttrs,
    /// The mount's options as the spec gave them (for messages).
    pub options: Vec<String>,
}

/// Everything the preparation step mounts from.
#[derive(Debug)]
pub struct Resolved {
    pub rootfs: Handle,
    pub volumes: Vec<ResolvedVolume>,
}

/// The host objects a container may not be given, by identity.
#[derive(Debug, Default)]
pub struct Protected {
    /// object -> "the host's /etc"
    exact: BTreeMap<(u64, u64), String>,
    /// ancestors of protected objects -> "contains the host's /etc"
    above: BTreeMap<(u64, u64), String>,
    /// a bind source below one of these is refused
    subtrees: BTreeMap<(u64, u64), String>,
    /// ...unless it is below one of these first (engines' per-container dirs)
    exceptions: BTreeMap<(u64, u64), String>,
    /// a rootfs below one of these is refused
    rootfs_subtrees: BTreeMap<(u64, u64), String>,
    /// objects the node config allows anyway (mounts.allowed_sensitive)
    allowed: Vec<(u64, u64)>,
}

fn stat_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Where a rootfs may never be, beyond the protected objects themselves.
const ROOTFS_FORBIDDEN_SUBTREES: &[&str] = &["/etc", "/proc", "/sys", "/dev", "/boot", "/root"];

/// `stat` of host paths, each path asked once per [`Protected::new`]: the lists share most of
/// their paths and all of their ancestors (`/` alone was asked 15 times).
#[derive(Default)]
struct StatMemo(std::collections::HashMap<PathBuf, Option<(u64, u64)>>);

impl StatMemo {
    fn id(&mut self, p: &Path) -> Option<(u64, u64)> {
        if let Some(id) = self.0.get(p) {
            return *id;
        }
        let id = stat_id(p);
        self.0.insert(p.to_path_buf(), id);
        id
    }
}

impl Protected {
    /// The host's protected set: Ward's lists of sensitive paths plus Ward's own state
    /// (`own`: the state root, the node-wide claims dir), as objects. Built afresh for every
    /// create (see [`StatMemo`] for what one build shares): a set kept from an earlier create
    /// would miss a protected directory made or replaced since.
    pub fn new(own: &[&Path], allowed_sensitive: &[PathBuf]) -> Self {
        let mut p = Protected::default();
        let mut memo = StatMemo::default();
        let named = |s: &Path| format!("the host's {}", s.display());
        let own_names: Vec<(PathBuf, String)> = own
            .iter()
            .map(|o| (o.to_path_buf(), format!("Ward's own state {}", o.display())))
            .collect();
        let lists = SENSITIVE
            .iter()
            .map(|s| (PathBuf::from(s), named(Path::new(s))))
            .chain(own_names.iter().cloned());
        for (path, name) in lists {
            let Some(id) = memo.id(&path) else { continue };
            p.exact.entry(id).or_insert_with(|| name.clone());
            let real = std::fs::canonicalize(&path).unwrap_or(path);
            for anc in real.ancestors().skip(1) {
                if let Some(aid) = memo.id(anc) {
                    p.above
                        .entry(aid)
                        .or_insert_with(|| format!("contains {name}"));
                }
            }
        }
        let mut subtree = |list: &mut BTreeMap<(u64, u64), String>, path: &Path, name: String| {
            if let Some(id) = memo.id(path) {
                list.entry(id).or_insert(name);
            }
        };
        for s in SENSITIVE_SUBTREES {
            subtree(&mut p.subtrees, Path::new(s), named(Path::new(s)));
        }
        for s in ROOTFS_FORBIDDEN_SUBTREES {
            subtree(&mut p.rootfs_subtrees, Path::new(s), named(Path::new(s)));
        }
        for (path, name) in &own_names {
            subtree(&mut p.subtrees, path, name.clone());
            subtree(&mut p.rootfs_subtrees, path, name.clone());
        }
        for e in ENGINE_PER_CONTAINER {
            subtree(&mut p.exceptions, Path::new(e), named(Path::new(e)));
        }
        p.allowed = allowed_sensitive
            .iter()
            .filter_map(|a| memo.id(a))
            .collect();
        p
    }

    /// Why the object `h` may not be a bind source (`None`: it may).
    fn volume_reason(&self, h: &Handle) -> Result<Option<String>, SysError> {
        if self.allowed.contains(&h.object.id()) {
            return Ok(None);
        }
        if let Some(why) = self.exact_or_above(h) {
            return Ok(Some(why));
        }
        if let Some(why) = self.below(h, &self.subtrees, true)? {
            return Ok(Some(why));
        }
        // The kernel's own name for it, through the same lexical policy harden applied to the
        // spelling (catches what the spelling hid, e.g. `..`).
        Ok(sensitive_reason(&h.real))
    }

    /// Why the object `h` may not be a container's rootfs.
    fn rootfs_reason(&self, h: &Handle) -> Result<Option<String>, SysError> {
        if let Some(why) = self.exact_or_above(h) {
            return Ok(Some(why));
        }
        self.below(h, &self.rootfs_subtrees, false)
    }

    fn exact_or_above(&self, h: &Handle) -> Option<String> {
        let id = h.object.id();
        if let Some(name) = self.exact.get(&id) {
            return Some(format!("is {name}"));
        }
        self.above.get(&id).cloned()
    }

    /// Walk up from `h` with `..` (the object's real ancestors, whatever the spelling said).
    fn below(
        &self,
        h: &Handle,
        list: &BTreeMap<(u64, u64), String>,
        exceptions: bool,
    ) -> Result<Option<String>, SysError> {
        let mut cur = if h.object.is_dir() {
            sysfs::parent(h.fd.as_fd())
        } else {
            // A file's parent: reopen the directory the kernel names, without symlinks.
            let dir = h.real.parent().unwrap_or(Path::new("/"));
            sysfs::open_path(None, dir, Walk::NoSymlinks)
        }
        .map_err(|errno| SysError::Io {
            op: "open parent of",
            path: h.real.clone(),
            source: errno.into(),
        })?;
        let mut last = None;
        for _ in 0..4096 {
            let id = sysfs::object(cur.as_fd(), &h.real)?.id();
            if last == Some(id) {
                break; // "/" is its own parent
            }
            if exceptions && self.exceptions.contains_key(&id) {
                return Ok(None);
            }
            if let Some(name) = list.get(&id) {
                return Ok(Some(format!("is inside {name}")));
            }
            last = Some(id);
            cur = sysfs::parent(cur.as_fd()).map_err(|errno| SysError::Io {
                op: "open parent of",
                path: h.real.clone(),
                source: errno.into(),
            })?;
        }
        Ok(None)
    }
}

/// Open `path` for `field` without symlinks (beneath `dir` when given).
fn open(
    field: &str,
    path: &Path,
    beneath: Option<(&OwnedFd, &Path)>,
) -> Result<Handle, ResolveError> {
    let fd = sysfs::open_path(beneath.map(|(d, _)| d.as_fd()), path, {
        if beneath.is_some() {
            Walk::Beneath
        } else {
            Walk::NoSymlinks
        }
    })
    .map_err(|errno| {
        let full = match beneath {
            Some((_, dir)) => dir.join(path),
            None => path.to_path_buf(),
        };
        match errno {
            Errno::ELOOP => match sysfs::first_symlink(&full) {
                Some(link) => ResolveError::Symlink {
                    field: field.into(),
                    path: path.into(),
                    link,
                },
                None => ResolveError::Open {
                    field: field.into(),
                    path: path.into(),
                    errno,
                },
            },
            Errno::EXDEV if beneath.is_some() => ResolveError::Escapes {
                field: field.into(),
                path: path.into(),
                bundle: beneath.map(|(_, b)| b.to_path_buf()).unwrap_or_default(),
            },
            errno => ResolveError::Open {
                field: field.into(),
                path: full,
                errno,
            },
        }
    })?;
    let object = sysfs::object(fd.as_fd(), path)?;
    let real = sysfs::real_path(fd.as_fd(), path)?;
    Ok(Handle {
        fd,
        spelled: path.to_path_buf(),
        real,
        object,
    })
}

/// Open a layer path the kernel reports for an overlay rootfs (its mount options in
/// /proc/self/mountinfo, as the engine gave them when it mounted the overlay). No symlink is
/// followed, with one exception engines rely on: podman's storage names lower layers by short
/// links (`overlay/l/ABC -> ../<layer>/diff`). A link as the last component is read and its
/// target resolved beneath the link's grandparent (the storage dir), symlink-free.
pub fn overlay_layer(path: &Path) -> Result<OwnedFd, Errno> {
    match sysfs::open_path(None, path, Walk::NoSymlinks) {
        Err(Errno::ELOOP) => {}
        other => return other,
    }
    let parent = path.parent().ok_or(Errno::ELOOP)?;
    let storage = parent.parent().ok_or(Errno::ELOOP)?;
    // The directories on the way must themselves be symlink-free.
    let storage_fd = sysfs::open_path(None, storage, Walk::NoSymlinks)?;
    let target = std::fs::read_link(path).map_err(|_| Errno::ELOOP)?;
    if target.is_absolute() {
        return Err(Errno::ELOOP);
    }
    // parent/target, lexically, must stay inside `storage`.
    let mut rel: Vec<std::path::Component> = parent
        .strip_prefix(storage)
        .map_err(|_| Errno::ELOOP)?
        .components()
        .collect();
    for c in target.components() {
        match c {
            std::path::Component::ParentDir => {
                rel.pop().ok_or(Errno::EXDEV)?;
            }
            std::path::Component::Normal(_) => rel.push(c),
            std::path::Component::CurDir => {}
            _ => return Err(Errno::ELOOP),
        }
    }
    let rel: PathBuf = rel.iter().collect();
    sysfs::open_path(Some(storage_fd.as_fd()), &rel, Walk::Beneath)
}

/// Open and check the rootfs: `root.path` relative to the bundle stays beneath it; an
/// absolute one is walked from `/`. Either way no symlink is followed and the object may not
/// be (or contain, or lie inside) a protected host directory.
pub fn rootfs(bundle: &Path, root: &Path, protected: &Protected) -> Result<Handle, ResolveError> {
    const FIELD: &str = "root.path";
    let h = if root.is_absolute() {
        open(FIELD, root, None)?
    } else {
        let dir = sysfs::open_path(None, bundle, Walk::NoSymlinks).map_err(|errno| {
            ResolveError::Open {
                field: "bundle".into(),
                path: bundle.into(),
                errno,
            }
        })?;
        open(FIELD, root, Some((&dir, bundle)))?
    };
    if !h.object.is_dir() {
        return Err(ResolveError::NotDir {
            field: FIELD.into(),
            path: h.spelled,
        });
    }
    if let Some(reason) = protected.rootfs_reason(&h)? {
        return Err(ResolveError::Protected {
            field: FIELD.into(),
            path: h.spelled,
            reason,
        });
    }
    Ok(h)
}

/// Open and check every bind volume's source.
pub fn volumes(
    spec: &Spec,
    volumes: &[Volume],
    protected: &Protected,
) -> Result<Vec<ResolvedVolume>, ResolveError> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    volumes
        .iter()
        .map(|v| {
            let field = format!("mounts[{}].source", v.spec_index);
            let handle = open(&field, &v.source, None)?;
            if let Some(reason) = protected.volume_reason(&handle)? {
                return Err(ResolveError::Protected {
                    field,
                    path: v.source.clone(),
                    reason,
                });
            }
            let options = mounts
                .get(v.index)
                .and_then(|m| m.options().clone())
                .unwrap_or_default();
            let recursive = options.iter().any(|o| o == "rbind");
            let attrs =
                crate::mount_attrs::VolumeAttrs::from_options(options.iter().map(String::as_str));
            Ok(ResolvedVolume {
                index: v.index,
                spec_index: v.spec_index,
                handle,
                recursive,
                attrs,
                options,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn vol(index: usize, source: &Path) -> Volume {
        Volume {
            index,
            spec_index: index,
            source: source.into(),
            destination: format!("/v{index}"),
            writable: true,
        }
    }

    fn spec_with_binds(n: usize) -> Spec {
        let mut s = Spec::default();
        let m: Vec<_> = (0..n)
            .map(|i| {
                oci_spec::runtime::MountBuilder::default()
                    .destination(format!("/v{i}"))
                    .typ("bind")
                    .source("/x")
                    .options(vec!["rbind".to_string()])
                    .build()
                    .unwrap()
            })
            .collect();
        s.set_mounts(Some(m));
        s
    }

    #[test]
    fn symlinked_and_protected_sources_are_refused_by_object() {
        let d = tempfile::tempdir().unwrap();
        let ok = d.path().join("data");
        std::fs::create_dir(&ok).unwrap();
        symlink("/etc", d.path().join("L")).unwrap();
        let app = d.path().join("app");
        std::fs::create_dir(&app).unwrap();
        symlink("/", app.join("cache")).unwrap();
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let prot = Protected::new(&[&state], &[]);
        let spec = spec_with_binds(4);

        let r = volumes(&spec, &[vol(0, &ok)], &prot).unwrap();
        assert!(r[0].recursive);
        let e = volumes(&spec, &[vol(1, &d.path().join("L"))], &prot).unwrap_err();
        assert!(
            matches!(e, ResolveError::Symlink { .. }) && e.to_string().contains("mounts[1].source"),
            "{e}"
        );
        let e = volumes(&spec, &[vol(2, &app.join("cache"))], &prot).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // Ward's own state and anything inside it.
        std::fs::create_dir(state.join("c1")).unwrap();
        let e = volumes(&spec, &[vol(3, &state.join("c1"))], &prot).unwrap_err();
        assert!(e.to_string().contains("inside Ward's own state"), "{e}");
        // A host directory by another name (`..` spelling) is caught by object.
        let dotdot = d.path().join("data/../../../../../../../../etc");
        let e = volumes(&spec, &[vol(0, &dotdot)], &prot).unwrap_err();
        assert!(e.to_string().contains("the host's /etc"), "{e}");
    }

    #[test]
    fn overlay_short_links_resolve_beneath_the_storage_only() {
        let d = tempfile::tempdir().unwrap();
        let st = d.path().join("overlay");
        std::fs::create_dir_all(st.join("l")).unwrap();
        std::fs::create_dir_all(st.join("abc/diff")).unwrap();
        symlink("../abc/diff", st.join("l/SHORT")).unwrap();
        symlink("../../../../../etc", st.join("l/OUT")).unwrap();
        symlink("/etc", st.join("l/ABS")).unwrap();
        let fd = overlay_layer(&st.join("l/SHORT")).unwrap();
        assert_eq!(
            sysfs::real_path(fd.as_fd(), Path::new("x")).unwrap(),
            st.canonicalize().unwrap().join("abc/diff")
        );
        assert!(overlay_layer(&st.join("l/OUT")).is_err());
        assert!(overlay_layer(&st.join("l/ABS")).is_err());
        assert!(overlay_layer(&st.join("abc/diff")).is_ok());
    }

    #[test]
    fn rootfs_of_host_root_or_escaping_the_bundle_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        symlink("/", d.path().join("hostroot")).unwrap();
        let prot = Protected::new(&[], &[]);
        assert!(rootfs(d.path(), Path::new("rootfs"), &prot).is_ok());
        let e = rootfs(d.path(), Path::new("/"), &prot).unwrap_err();
        assert!(e.to_string().contains("is the host's /"), "{e}");
        let e = rootfs(d.path(), Path::new("hostroot"), &prot).unwrap_err();
        assert!(matches!(e, ResolveError::Symlink { .. }), "{e}");
        let e = rootfs(d.path(), Path::new("../../.."), &prot).unwrap_err();
        assert!(matches!(e, ResolveError::Escapes { .. }), "{e}");
        let e = rootfs(d.path(), Path::new("/etc/ssl"), &prot).unwrap_err();
        assert!(e.to_string().contains("inside the host's /etc"), "{e}");
    }
}
