//! Prepare: the host-side half of a create between resolve and launch. Ward's own objects on
//! the host are attack surface, so:
//! - the container's state dir is made under the uid-range lock, with its claim (see
//!   `alloc::Allocator::claim_new`): a second create of the same id fails there and touches
//!   nothing of the first;
//! - every mount of the container (idmapped layers, overlay rootfs, volume clones, a pod's
//!   sysfs) is made inside a mount namespace private to this create ([`PrivateMounts`]),
//!   which the container's init inherits: none of them exists in the host's mount namespace,
//!   so no host user can walk into them, and they go away with the container;
//! - the state dir is `0711` (the container's unprivileged root must traverse it to reach its
//!   rootfs mount point); what is inside is root's only (`0600` files, `0700` dirs), and the
//!   mount points are empty directories on the host.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::sys::fs as sysfs;
use crate::sys::SysError;

/// The calling thread is in a mount namespace of its own until this is dropped (then it is
/// back in the one it came from). Single-threaded callers only: the container is cloned while
/// this lives, so its init starts from the private mounts.
#[derive(Debug)]
pub struct PrivateMounts {
    host: OwnedFd,
}

impl PrivateMounts {
    pub fn enter() -> Result<Self, SysError> {
        let host = sysfs::current_mount_ns()?;
        sysfs::enter_private_mounts()?;
        Ok(Self { host })
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        if let Err(e) = sysfs::return_to_mount_ns(&self.host) {
            // A Ward process left in a container's private mount namespace would prepare the
            // next container from the wrong view of the host: stop rather than go on.
            tracing::error!(error = %e, "cannot return to the host's mount namespace; aborting");
            std::process::abort();
        }
    }
}

/// Make a container's state dir (not its parents): `0711`, root's. `Exists` when it is there.
pub fn make_state_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(0o711).create(dir)?;
    // The mode is not subject to the umask here: set it exactly.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))?;
    for private in ["layers", "rw"] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.join(private))?;
    }
    Ok(())
}

/// Undo [`make_state_dir`] for a create refused right after it: only empty directories are
/// removed, so a state dir that is in use stays.
pub fn remove_fresh_state_dir(dir: &Path) {
    for private in ["layers", "rw"] {
        let _ = std::fs::remove_dir(dir.join(private));
    }
    let _ = std::fs::remove_dir(dir);
}

/// Write a state file readable by root only (config.json carries the container's environment).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_dir_modes_and_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("c");
        make_state_dir(&s).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&s), 0o711);
        assert_eq!(mode(&s.join("layers")), 0o700);
        assert_eq!(mode(&s.join("rw")), 0o700);
        assert_eq!(
            make_state_dir(&s).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        write_private(&s.join("config.json"), b"{}").unwrap();
        assert_eq!(mode(&s.join("config.json")), 0o600);
    }

    #[test]
    fn private_mounts_do_not_show_on_the_host() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP private_mounts_do_not_show_on_the_host: needs root");
            return;
        }
        // In a thread of its own: unshare(CLONE_NEWNS) changes only the calling thread.
        let d = tempfile::tempdir().unwrap();
        let target = d.path().to_path_buf();
        let t = target.clone();
        std::thread::spawn(move || {
            // A thread shares its fs_struct with the process; unshare it first.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).unwrap();
            let g = PrivateMounts::enter().unwrap();
            nix::mount::mount(
                Some("tmpfs"),
                &t,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            std::fs::write(t.join("inside"), b"x").unwrap();
            assert!(t.join("inside").exists());
            drop(g);
            assert!(!t.join("inside").exists(), "back on the host: not visible");
        })
        .join()
        .unwrap();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mi.contains(target.to_str().unwrap()));
        assert!(!target.join("inside").exists());
    }
}
