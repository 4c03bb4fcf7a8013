//! Mounting containerd's snapshot (`CreateTaskRequest.rootfs`) on
//! `<bundle>/rootfs`, and unmounting it on delete. Runs in the launcher, which
//! is single-threaded, so the `chdir` used to shorten long overlay options
//! cannot race with another thread.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::protocol::RootfsMount;
use crate::error::{Error, Result};

/// The kernel copies at most one page of mount data.
const MAX_DATA: usize = 4096 - 512;

pub fn rootfs_dir(bundle: &Path) -> PathBuf {
    bundle.join("rootfs")
}

/// Mounts every entry of `mounts` on `<bundle>/rootfs`, in order.
pub fn mount_rootfs(bundle: &Path, mounts: &[RootfsMount]) -> Result<()> {
    let target = rootfs_dir(bundle);
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&target).map_err(Error::io("create rootfs dir", &target))?;
    for m in mounts {
        mount_one(m, &target)?;
    }
    Ok(())
}

fn mount_one(m: &RootfsMount, target: &Path) -> Result<()> {
    let (flags, data) = split_options(&m.options);
    let (chdir, data) = if m.fs_type == "overlay" && data.len() > MAX_DATA {
        compact_lowerdirs(&data)
    } else {
        (None, data)
    };
    if data.len() > 4096 {
        return Err(Error::InvalidArgument(format!(
            "mount options for {} are {} bytes, more than a page",
            target.display(),
            data.len()
        )));
    }
    let previous = match &chdir {
        Some(dir) => {
            let prev = std::env::current_dir().map_err(Error::io("getcwd", "."))?;
            std::env::set_current_dir(dir).map_err(Error::io("chdir", dir))?;
            Some(prev)
        }
        None => None,
    };
    let fs_type = if m.fs_type.is_empty() {
        None
    } else {
        Some(m.fs_type.as_str())
    };
    let data_opt = if data.is_empty() {
        None
    } else {
        Some(data.as_str())
    };
    // Propagation flags are applied in a second call, as mount(2) requires.
    let propagation =
        MsFlags::MS_SHARED | MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE | MsFlags::MS_UNBINDABLE;
    let result = mount(
        Some(m.source.as_str()),
        target,
        fs_type,
        flags - propagation,
        data_opt,
    )
    .map_err(|source| Error::Sys {
        op: "mount rootfs",
        source,
    });
    if let Some(prev) = previous {
        std::env::set_current_dir(&prev).map_err(Error::io("chdir back", &prev))?;
    }
    result?;
    if flags.intersects(propagation) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags & propagation,
            None::<&str>,
        )
        .map_err(Error::sys("set rootfs propagation"))?;
    }
    if flags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(Error::sys("remount rootfs read-only"))?;
    }
    Ok(())
}

/// Unmounts `<bundle>/rootfs` (all stacked mounts); not mounted is fine.
pub fn unmount_rootfs(bundle: &Path) -> Result<()> {
    let target = rootfs_dir(bundle);
    loop {
        match umount2(&target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            // EINVAL: not a mount point (any more); ENOENT: no rootfs dir.
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(source) => {
                return Err(Error::Sys {
                    op: "umount rootfs",
                    source,
                })
            }
        }
    }
}

/// Splits mount(8)-style options into flags and filesystem data.
pub fn split_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "private" => (MsFlags::MS_PRIVATE, MsFlags::empty()),
            "rprivate" => (MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::empty()),
            "slave" => (MsFlags::MS_SLAVE, MsFlags::empty()),
            "rslave" => (MsFlags::MS_SLAVE | MsFlags::MS_REC, MsFlags::empty()),
            "shared" => (MsFlags::MS_SHARED, MsFlags::empty()),
            "rshared" => (MsFlags::MS_SHARED | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            // containerd 2 asks for idmapped layers this way for a user-namespaced pod (its
            // Go mount code makes them; the kernel's overlay knows no such option). Ward
            // idmaps every layer itself onto the container's user namespace, which runs on
            // that same mapping, so the overlay is mounted host-owned here.
            o if o.starts_with("uidmap=") || o.starts_with("gidmap=") => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) - clear;
    }
    (flags, data.join(","))
}

/// Shortens `lowerdir=` by making every layer relative to their common parent
/// (containerd's own trick); returns the directory to mount from.
fn compact_lowerdirs(data: &str) -> (Option<PathBuf>, String) {
    let opts: Vec<&str> = data.split(',').collect();
    let Some(lower) = opts.iter().find_map(|o| o.strip_prefix("lowerdir=")) else {
        return (None, data.to_string());
    };
    let dirs: Vec<&str> = lower.split(':').collect();
    let Some(first) = dirs.first() else {
        return (None, data.to_string());
    };
    let mut common = first.len();
    for d in &dirs[1..] {
        common = first
            .bytes()
            .zip(d.bytes())
            .take(common)
            .take_while(|(a, b)| a == b)
            .count();
    }
    // Cut back to a whole directory name ('/' is ASCII: a char boundary).
    let prefix = match first.as_bytes()[..common].iter().rposition(|b| *b == b'/') {
        Some(i) => &first[..=i],
        None => "",
    };
    if prefix.len() <= 1 {
        return (None, data.to_string());
    }
    let relative: Vec<&str> = dirs.iter().map(|d| &d[prefix.len()..]).collect();
    let rebuilt: Vec<String> = opts
        .iter()
        .map(|o| {
            if o.starts_with("lowerdir=") {
                format!("lowerdir={}", relative.join(":"))
            } else {
                (*o).to_string()
            }
        })
        .collect();
    (Some(PathBuf::from(prefix)), rebuilt.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_from_data() {
        let opts: Vec<String> = ["ro", "nosuid", "lowerdir=/a:/b", "index=off"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = split_options(&opts);
        assert_eq!(flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(data, "lowerdir=/a:/b,index=off");
        let (flags, _) = split_options(&["ro".to_string(), "rw".to_string()]);
        assert!(flags.is_empty());
        let opts: Vec<String> = [
            "lowerdir=/a",
            "uidmap=0:65536:65536",
            "gidmap=0:65536:65536",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(split_options(&opts).1, "lowerdir=/a");
    }

    #[test]
    fn compacts_long_lowerdirs() {
        let base = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/";
        let lowers: Vec<String> = (1..=60).map(|i| format!("{base}{i}/fs")).collect();
        let data = format!(
            "index=off,lowerdir={},upperdir={base}61/fs",
            lowers.join(":")
        );
        let (dir, compact) = compact_lowerdirs(&data);
        assert_eq!(dir.unwrap(), PathBuf::from(base));
        assert!(compact.starts_with("index=off,lowerdir=1/fs:2/fs:"));
        assert!(compact.ends_with(&format!("upperdir={base}61/fs")));
        assert!(compact.len() < data.len() / 4);
    }

    #[test]
    fn no_common_parent_leaves_data_alone() {
        let (dir, compact) = compact_lowerdirs("lowerdir=/a/x:/b/y");
        assert!(dir.is_none());
        assert_eq!(compact, "lowerdir=/a/x:/b/y");
    }
}
