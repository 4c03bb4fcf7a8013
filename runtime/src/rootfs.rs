//! Ownership without copying: the rootfs and every bind volume are mounted idmapped onto the
//! container's id range, so container root sees its files as root-owned and nothing is
//! chowned. The rootfs becomes an overlay of idmapped lower layers (an overlay itself cannot be
//! idmapped) with a fresh upper layer in Ward's state dir, remounted read-only by the launcher
//! once mount points exist.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::harden::{IdRange, Volume};
use crate::sys::{self, SysError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootfsError {
    #[error("root.path: {path} does not exist or is not a directory")]
    Missing { path: PathBuf },
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
    #[error("mounts[{index}].source: {path} does not exist")]
    VolumeMissing { index: usize, path: PathBuf },
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

/// The layers (upper first, then lowers) of the overlay mounted at `mountpoint`, from
/// /proc/self/mountinfo text.
pub fn overlay_layers(mountinfo: &str, mountpoint: &Path) -> Option<Vec<PathBuf>> {
    let mut found = None;
    for line in mountinfo.lines() {
        let (pre, post) = line.split_once(" - ")?;
        let mp = unescape(pre.split(' ').nth(4)?);
        if Path::new(&mp) != mountpoint {
            continue;
        }
        let mut it = post.split(' ');
        if it.next()? != "overlay" {
            continue;
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
        found = Some(all); // the last entry for a mount point is the visible one
    }
    found.filter(|v| !v.is_empty())
}

fn mkdir(p: &Path) -> Result<(), SysError> {
    std::fs::create_dir_all(p).map_err(|source| SysError::Io {
        op: "mkdir",
        path: p.into(),
        source,
    })
}

fn idmapped_copy(src: &Path, userns: &OwnedFd, target: &Path) -> Result<(), SysError> {
    let tree = sys::open_tree_clone(src)?;
    sys::idmap(&tree, userns, src)?;
    sys::move_mount(&tree, target)
}

/// Build the container's rootfs under `state_dir` and idmapped copies of its volumes.
/// On error everything mounted so far is undone.
pub fn prepare(
    rootfs: &Path,
    state_dir: &Path,
    range: &IdRange,
    userns: &OwnedFd,
    volumes: &[Volume],
    allow_unmapped: bool,
) -> Result<Prepared, RootfsError> {
    let mut p = Prepared {
        rootfs: state_dir.join("rootfs"),
        idmapped: true,
        ..Default::default()
    };
    let r = prepare_inner(
        rootfs,
        state_dir,
        range,
        userns,
        volumes,
        allow_unmapped,
        &mut p,
    );
    if r.is_err() {
        let _ = p.undo();
    }
    r.map(|()| p)
}

fn prepare_inner(
    rootfs: &Path,
    state_dir: &Path,
    range: &IdRange,
    userns: &OwnedFd,
    volumes: &[Volume],
    allow_unmapped: bool,
    p: &mut Prepared,
) -> Result<(), RootfsError> {
    if !rootfs.is_dir() {
        return Err(RootfsError::Missing {
            path: rootfs.into(),
        });
    }
    let layers = if sys::fs_magic(rootfs)? == sys::OVERLAYFS_SUPER_MAGIC {
        let mi =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| SysError::Io {
                op: "read",
                path: "/proc/self/mountinfo".into(),
                source,
            })?;
        overlay_layers(&mi, rootfs).ok_or_else(|| RootfsError::OverlayLayers {
            rootfs: rootfs.into(),
        })?
    } else {
        vec![rootfs.to_path_buf()]
    };
    let mut lowers = vec![];
    for (i, layer) in layers.iter().enumerate() {
        let target = state_dir.join("layers").join(i.to_string());
        mkdir(&target)?;
        match idmapped_copy(layer, userns, &target) {
            Ok(()) => {
                p.mounts.push(target.clone());
                lowers.push(target);
            }
            Err(e @ SysError::Idmap { .. }) if allow_unmapped => {
                tracing::warn!(layer = %layer.display(), error = %e, "rootfs layer NOT idmapped (allowed by mounts.allow_unmapped): files show as uid 65534");
                p.idmapped = false;
                lowers.push(layer.clone());
            }
            Err(source) => {
                return Err(RootfsError::IdmapRootfs {
                    rootfs: rootfs.into(),
                    layer: layer.clone(),
                    source,
                })
            }
        }
    }
    let upper = state_dir.join("upper");
    let work = state_dir.join("work");
    for d in [&upper, &work, &p.rootfs] {
        mkdir(d)?;
    }
    // The overlay's root directory takes its owner and mode from the upper layer: make the
    // (empty, Ward-owned) upper belong to the container's root with the image root's mode, so
    // the container sees `/` as its own, as on the idmapped lowers. Nothing of the image is
    // chowned.
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let top = std::fs::metadata(&layers[0]).map_err(|source| SysError::Io {
            op: "stat",
            path: layers[0].clone(),
            source,
        })?;
        let (uid, gid) = if p.idmapped {
            (range.host_start + top.uid(), range.host_start + top.gid())
        } else {
            (top.uid(), top.gid())
        };
        std::os::unix::fs::chown(&upper, Some(uid), Some(gid)).map_err(|source| SysError::Io {
            op: "chown",
            path: upper.clone(),
            source,
        })?;
        std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(top.mode() & 0o7777))
            .map_err(|source| SysError::Io {
                op: "chmod",
                path: upper.clone(),
                source,
            })?;
    }
    sys::mount_overlay(&lowers, Some((&upper, &work)), &p.rootfs)?;
    p.mounts.push(p.rootfs.clone());

    for v in volumes {
        if !v.source.exists() {
            return Err(RootfsError::VolumeMissing {
                index: v.index,
                path: v.source.clone(),
            });
        }
        let target = state_dir.join("volumes").join(v.index.to_string());
        if v.source.is_dir() {
            mkdir(&target)?;
        } else {
            mkdir(target.parent().expect("has parent"))?;
            std::fs::write(&target, b"").map_err(|source| SysError::Io {
                op: "create",
                path: target.clone(),
                source,
            })?;
        }
        match idmapped_copy(&v.source, userns, &target) {
            Ok(()) => {
                p.mounts.push(target.clone());
                p.volume_sources.push((v.index, target));
            }
            Err(e @ SysError::Idmap { .. }) if allow_unmapped => {
                tracing::warn!(volume = %v.source.display(), error = %e, "volume NOT idmapped (allowed by mounts.allow_unmapped)");
                p.idmapped = false;
            }
            Err(source) => {
                return Err(RootfsError::IdmapVolume {
                    index: v.index,
                    volume: v.source.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_layers_from_mountinfo() {
        let mi = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
100 27 0:50 / /var/lib/x/merged rw,relatime - overlay overlay rw,lowerdir=/l/a:/l/b,upperdir=/u/diff,workdir=/u/work\n\
101 27 0:51 / /other\\040dir rw - overlay overlay rw,lowerdir=/q\\054r\n";
        assert_eq!(
            overlay_layers(mi, Path::new("/var/lib/x/merged")).unwrap(),
            vec![
                PathBuf::from("/u/diff"),
                PathBuf::from("/l/a"),
                PathBuf::from("/l/b")
            ]
        );
        assert_eq!(
            overlay_layers(mi, Path::new("/other dir")).unwrap(),
            vec![PathBuf::from("/q,r")]
        );
        assert!(overlay_layers(mi, Path::new("/")).is_none());
    }
}
