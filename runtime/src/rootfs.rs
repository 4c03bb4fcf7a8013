//! Ownership without copying: the rootfs and every bind volume are mounted idmapped onto the
//! container's id range, so container root sees its files as root-owned and nothing is
//! chowned. The rootfs becomes an overlay of idmapped lower layers (an overlay itself cannot be
//! idmapped) with a fresh upper layer in Ward's state dir, remounted read-only by the launcher
//! once mount points exist. Where the profile allows a writable rootfs and the spec asks for
//! one, the upper layer lives on a size-limited tmpfs mounted over `<state dir>/rw` inside the
//! private mount namespace (never on the host's disk, never visible on the host, gone with the
//! container), and the rootfs stays read-write.
//!
//! Two phases, so no host user can reach any of it: [`detach`] clones each checked handle
//! (from `resolve`) into a detached, idmapped, `nosuid,nodev` mount (layers read-only) in the
//! host's mount namespace; [`attach`] mounts them and the overlay inside Ward's private mount
//! namespace (see `prepare`), which the container's init inherits.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::harden::IdRange;
use crate::resolve::{Handle, Resolved, ResolvedVolume};
use crate::sys::fs::{self as sysfs, Object};
use crate::sys::{self, SysError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootfsError {
    #[error("root.path: cannot idmap layer {layer} of {rootfs}: {source} (set mounts.allow_unmapped in the node config to run with host-owned files shown as uid 65534)")]
    IdmapRootfs {
        rootfs: PathBuf,
        layer: PathBuf,
        source: SysError,
    },
    #[error("mounts[{index}]: cannot idmap volume {volume}: {source} (set mounts.allow_unmapped in the node config to allow it unmapped)")]
    IdmapVolume {
        index: usize,
        volume: PathBuf,
        source: SysError,
    },
    #[error("mounts[{index}].options: cannot set [{options}] on volume {volume}: {source}")]
    VolumeAttrs {
        index: usize,
        volume: PathBuf,
        options: String,
        source: Box<SysError>,
    },
    #[error("root.path: layer {layer} of overlay {rootfs}: {errno}")]
    Layer {
        rootfs: PathBuf,
        layer: PathBuf,
        errno: Errno,
    },
    #[error(
        "root.path: {rootfs} is an overlay whose layers cannot be read from /proc/self/mountinfo"
    )]
    OverlayLayers { rootfs: PathBuf },
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// What was mounted, to be undone in reverse order.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    /// The rootfs to hand to the launcher.
    pub rootfs: PathBuf,
    /// Mount points Ward created, in mount order.
    pub mounts: Vec<PathBuf>,
    /// volume index -> new source path
    pub volume_sources: Vec<(usize, PathBuf)>,
    /// Whether everything is idmapped (false only when the node allows unmapped mounts).
    pub idmapped: bool,
    /// Mounted in Ward's private mount namespace: nothing to unmount on the host, the mounts
    /// go with the container's mount namespace.
    #[serde(default)]
    pub private: bool,
}

impl Prepared {
    /// Unmount everything, last first. Keeps going on errors and returns the first.
    pub fn undo(&self) -> Result<(), SysError> {
        let mut first = None;
        for m in self.mounts.iter().rev() {
            if let Err(e) = sys::umount(m) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Unescape a mountinfo field (`\040` for space, `\054` for comma, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The layers (upper first, then lowers) of the overlay mount with mount id `mount_id`, from
/// /proc/self/mountinfo text, when `real` (the kernel's name of the rootfs handle) is that
/// mount's root.
pub fn overlay_layers(mountinfo: &str, mount_id: u64, real: &Path) -> Option<Vec<PathBuf>> {
    for line in mountinfo.lines() {
        let (pre, post) = line.split_once(" - ")?;
        let mut f = pre.split(' ');
        if f.next()?.parse::<u64>().ok()? != mount_id {
            continue;
        }
        let root = f.nth(2)?;
        let mp = unescape(f.next()?);
        if root != "/" || Path::new(&mp) != real {
            return None;
        }
        let mut it = post.split(' ');
        if it.next()? != "overlay" {
            return None;
        }
        let opts = it.nth(1)?;
        let mut upper = None;
        let mut lowers = vec![];
        for o in opts.split(',') {
            if let Some(v) = o.strip_prefix("upperdir=") {
                upper = Some(PathBuf::from(unescape(v)));
            } else if let Some(v) = o.strip_prefix("lowerdir=") {
                lowers.extend(unescape(v).split(':').map(PathBuf::from));
            } else if let Some(v) = o.strip_prefix("lowerdir+=") {
                lowers.push(PathBuf::from(unescape(v)));
            }
        }
        let mut all: Vec<PathBuf> = upper.into_iter().collect();
        all.extend(lowers);
        return Some(all).filter(|v| !v.is_empty());
    }
    None
}

fn mkdir(p: &Path) -> Result<(), SysError> {
    std::fs::create_dir_all(p).map_err(|source| SysError::Io {
        op: "mkdir",
        path: p.into(),
        source,
    })
}

/// The container's layers and volumes as detached mounts: cloned from the checked handles
/// (no path is walked again), idmapped onto the range, `nosuid,nodev`, layers read-only. A
/// detached mount is reachable through no host path: nothing here is visible to another host
/// user. Made in the host's mount namespace (open_tree clones only mounts of the caller's).
#[derive(Debug)]
pub struct Detached {
    /// Rootfs layers, upper-most first.
    layers: Vec<OwnedFd>,
    /// Owner and mode of the rootfs's top directory.
    top: Object,
    /// (volume index, detached mount, source is a directory)
    volumes: Vec<(usize, OwnedFd, bool)>,
    idmapped: bool,
}

/// Clone `src`'s mount, idmap it (or, where the node allows it, leave it unmapped) and set
/// `attrs` on it.
fn detached_copy(
    src: &Handle,
    recursive: bool,
    userns: &OwnedFd,
    attrs: u64,
    allow_unmapped: bool,
) -> Result<(OwnedFd, bool), SysError> {
    let tree = sysfs::clone_tree(src.fd.as_fd(), recursive, &src.real)?;
    // Only the top mount is idmapped: submounts of an rbind keep host ids (files owned by host
    // users show as the overflow id and are not writable as them).
    let idmapped = match sys::idmap(&tree, userns, &src.real) {
        Ok(()) => true,
        Err(e @ SysError::Idmap { .. }) if allow_unmapped => {
            tracing::warn!(path = %src.real.display(), error = %e, "NOT idmapped (allowed by mounts.allow_unmapped): host-owned files show as uid 65534");
            false
        }
        Err(e) => return Err(e),
    };
    sysfs::set_mount_attrs(tree.as_fd(), attrs, recursive, &src.real)?;
    Ok((tree, idmapped))
}

/// The layers of the rootfs: itself, or, for an overlay mount (containerd's snapshotter,
/// podman), the overlay's layers read from /proc/self/mountinfo by the handle's mount id.
fn rootfs_layers(rootfs: &Handle) -> Result<Vec<Handle>, RootfsError> {
    if sysfs::fd_fs_magic(rootfs.fd.as_fd(), &rootfs.real)? != sys::OVERLAYFS_SUPER_MAGIC {
        let fd = rootfs.fd.try_clone().map_err(|source| SysError::Io {
            op: "dup",
            path: rootfs.real.clone(),
            source,
        })?;
        return Ok(vec![Handle {
            fd,
            spelled: rootfs.spelled.clone(),
            real: rootfs.real.clone(),
            object: rootfs.object,
        }]);
    }
    let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| SysError::Io {
        op: "read",
        path: "/proc/self/mountinfo".into(),
        source,
    })?;
    let id = sysfs::mount_id(rootfs.fd.as_fd(), &rootfs.real)?;
    let paths =
        overlay_layers(&mi, id, &rootfs.real).ok_or_else(|| RootfsError::OverlayLayers {
            rootfs: rootfs.spelled.clone(),
        })?;
    paths
        .iter()
        .map(|p| {
            let fd = crate::resolve::overlay_layer(p).map_err(|errno| RootfsError::Layer {
                rootfs: rootfs.spelled.clone(),
                layer: p.clone(),
                errno,
            })?;
            let object = sysfs::object(fd.as_fd(), p)?;
            Ok(Handle {
                fd,
                spelled: p.clone(),
                real: p.clone(),
                object,
            })
        })
        .collect()
}

/// The volume's own atime and recursive attributes, set on its detached clone from the host's
/// user namespace, where nothing is locked yet (see `mount_attrs`).
fn set_volume_attrs(tree: &OwnedFd, v: &ResolvedVolume) -> Result<(), RootfsError> {
    let a = v.attrs;
    for (attrs, recursive) in [(a.top, false), (a.recursive, v.recursive)] {
        if attrs.is_empty() {
            continue;
        }
        sysfs::change_mount_attrs(
            tree.as_fd(),
            attrs.set,
            attrs.clr,
            recursive,
            &v.handle.real,
        )
        .map_err(|source| RootfsError::VolumeAttrs {
            index: v.spec_index,
            volume: v.handle.spelled.clone(),
            options: v.options.join(","),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// Phase one, in the host's mount namespace: every layer and volume as a detached mount.
pub fn detach(
    resolved: &Resolved,
    userns: &OwnedFd,
    allow_unmapped: bool,
) -> Result<Detached, RootfsError> {
    let layers = rootfs_layers(&resolved.rootfs)?;
    let mut d = Detached {
        layers: vec![],
        top: layers[0].object,
        volumes: vec![],
        idmapped: true,
    };
    let ro = sysfs::MOUNT_ATTR_RDONLY | sysfs::MOUNT_ATTR_NOSUID | sysfs::MOUNT_ATTR_NODEV;
    for layer in &layers {
        let (tree, mapped) =
            detached_copy(layer, false, userns, ro, allow_unmapped).map_err(|source| {
                RootfsError::IdmapRootfs {
                    rootfs: resolved.rootfs.spelled.clone(),
                    layer: layer.real.clone(),
                    source,
                }
            })?;
        d.idmapped &= mapped;
        d.layers.push(tree);
    }
    let rw = sysfs::MOUNT_ATTR_NOSUID | sysfs::MOUNT_ATTR_NODEV;
    for v in &resolved.volumes {
        let (tree, mapped) = detached_copy(&v.handle, v.recursive, userns, rw, allow_unmapped)
            .map_err(|source| RootfsError::IdmapVolume {
                index: v.spec_index,
                volume: v.handle.spelled.clone(),
                source,
            })?;
        set_volume_attrs(&tree, v)?;
        d.idmapped &= mapped;
        d.volumes.push((v.index, tree, v.handle.object.is_dir()));
    }
    Ok(d)
}

/// Whether a hardened spec's rootfs is writable (harden set `root.readonly` false: the profile
/// allows it and the spec asked).
pub fn spec_writable(spec: &oci_spec::runtime::Spec) -> bool {
    spec.root().as_ref().and_then(|r| r.readonly()) == Some(false)
}

/// Phase two, inside Ward's private mount namespace: attach the detached layers and volumes
/// under `state_dir` and build the overlay rootfs over the layers. Nothing attached here
/// shows in the host's mount namespace; the container's init inherits it. `writable`: the
/// size of the tmpfs that holds a writable rootfs's upper layer.
/// The host id an on-disk owner `id` of the top layer's root stands for, seen through the
/// container's idmap: `range.host_start + id`, except for an id already inside the range,
/// which is a host id. containerd 2 chowns the root of a user-namespaced pod's writable
/// snapshot to the pod's range (it does not idmap the upper layer); idmapping that owner again
/// would leave the container's `/` to an unmapped id (nobody), not writable by its root.
fn owner_through_idmap(id: u32, range: &IdRange) -> u32 {
    if range.contains(id, 1) {
        id
    } else {
        range.host_start.saturating_add(id)
    }
}

pub fn attach(
    d: Detached,
    state_dir: &Path,
    range: &IdRange,
    writable: Option<u64>,
) -> Result<Prepared, RootfsError> {
    let mut p = Prepared {
        rootfs: state_dir.join("rootfs"),
        idmapped: d.idmapped,
        private: true,
        ..Default::default()
    };
    let r = attach_inner(d, state_dir, range, writable, &mut p);
    if r.is_err() {
        let _ = p.undo();
    }
    r.map(|()| p)
}

fn attach_inner(
    d: Detached,
    state_dir: &Path,
    range: &IdRange,
    writable: Option<u64>,
    p: &mut Prepared,
) -> Result<(), RootfsError> {
    let mut lowers = vec![];
    for (i, tree) in d.layers.iter().enumerate() {
        let target = state_dir.join("layers").join(i.to_string());
        mkdir(&target)?;
        sys::move_mount(tree, &target)?;
        p.mounts.push(target.clone());
        lowers.push(target);
    }
    if let Some(size) = writable {
        // The writable layer: a tmpfs of the profile's size, root's and 0700 like the dir it
        // covers. Mounted here, in the private namespace: the host's `rw` stays an empty dir.
        // Its pages are charged to the memory cgroup of whoever writes them (the container).
        let rw = state_dir.join("rw");
        sys::mount_tmpfs(&rw, size, 0o700)?;
        p.mounts.push(rw);
    }
    let upper = state_dir.join("rw/upper");
    let work = state_dir.join("rw/work");
    for dir in [&upper, &work, &p.rootfs] {
        mkdir(dir)?;
    }
    // The overlay's root directory takes its owner and mode from the upper layer: make the
    // (empty, Ward-owned) upper belong to the container's root with the image root's mode, so
    // the container sees `/` as its own, as on the idmapped lowers. Nothing of the image is
    // chowned.
    {
        use std::os::unix::fs::PermissionsExt;
        let (uid, gid) = if d.idmapped {
            (
                owner_through_idmap(d.top.uid, range),
                owner_through_idmap(d.top.gid, range),
            )
        } else {
            (d.top.uid, d.top.gid)
        };
        std::os::unix::fs::chown(&upper, Some(uid), Some(gid)).map_err(|source| SysError::Io {
            op: "chown",
            path: upper.clone(),
            source,
        })?;
        std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(d.top.mode & 0o7777))
            .map_err(|source| SysError::Io {
                op: "chmod",
                path: upper.clone(),
                source,
            })?;
    }
    sys::mount_overlay(&lowers, Some((&upper, &work)), &p.rootfs)?;
    p.mounts.push(p.rootfs.clone());

    for (index, tree, is_dir) in &d.volumes {
        let target = state_dir.join("volumes").join(index.to_string());
        if *is_dir {
            mkdir(&target)?;
        } else {
            mkdir(target.parent().expect("has parent"))?;
            std::fs::write(&target, b"").map_err(|source| SysError::Io {
                op: "create",
                path: target.clone(),
                source,
            })?;
        }
        sys::move_mount(tree, &target)?;
        p.mounts.push(target.clone());
        p.volume_sources.push((*index, target));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_inside_the_range_is_already_a_host_id() {
        let r = IdRange {
            host_start: 643_497_984,
            size: 65536,
        };
        assert_eq!(owner_through_idmap(0, &r), 643_497_984);
        assert_eq!(owner_through_idmap(101, &r), 643_497_984 + 101);
        // containerd 2's remapped upper root: not mapped a second time.
        assert_eq!(owner_through_idmap(643_497_984, &r), 643_497_984);
        assert_eq!(owner_through_idmap(u32::MAX, &r), u32::MAX);
    }

    #[test]
    fn overlay_layers_from_mountinfo() {
        let mi = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
100 27 0:50 / /var/lib/x/merged rw,relatime - overlay overlay rw,lowerdir=/l/a:/l/b,upperdir=/u/diff,workdir=/u/work\n\
101 27 0:51 / /other\\040dir rw - overlay overlay rw,lowerdir=/q\\054r\n";
        assert_eq!(
            overlay_layers(mi, 100, Path::new("/var/lib/x/merged")).unwrap(),
            vec![
                PathBuf::from("/u/diff"),
                PathBuf::from("/l/a"),
                PathBuf::from("/l/b")
            ]
        );
        assert_eq!(
            overlay_layers(mi, 101, Path::new("/other dir")).unwrap(),
            vec![PathBuf::from("/q,r")]
        );
        assert!(overlay_layers(mi, 27, Path::new("/")).is_none());
        // The id's mount point must be the handle's real path.
        assert!(overlay_layers(mi, 100, Path::new("/elsewhere")).is_none());
    }
}
