//! Who owns a container process's stdio pipes and FIFOs (containerd's `IoUid`/`IoGid`).
//!
//! A process reopens its stdio through `/proc/self/fd/N` (`/dev/stdout`, `/dev/stderr`: the
//! official nginx image's logs are symlinks to them). For a pipe or FIFO that open is checked
//! against the inode's owner and mode, and containerd's FIFOs and the shim's pipes belong to
//! host root, mode 0600/0700: the container's root, a range uid, gets EACCES. runc's shim
//! fixes that for user-namespaced containers by handing over pipes owned by `IoUid`/`IoGid`;
//! Ward's shim does it for every container, whose uids are always remapped.
//!
//! Only pipes and FIFOs are ever chowned (never a regular file, a tty or a socket a caller
//! passed), and only to a host id the container's own user namespace maps: a caller cannot
//! use this to give a file to an arbitrary host user.

use std::os::fd::{AsFd, BorrowedFd};

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::harden::PolicyError;
use crate::sys::SysError;

/// The owner a caller asks for (containerd's runtime options); `None`: the host ids the
/// process's own `user.uid`/`user.gid` map to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoOwner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The host id `id` maps to under `maps` (container id → host id).
fn to_host(maps: &[LinuxIdMapping], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id())?;
        (off < m.size()).then(|| m.host_id() + off)
    })
}

/// Whether host id `host` is one that `maps` maps into the container.
fn is_mapped_host(maps: &[LinuxIdMapping], host: u32) -> bool {
    maps.iter().any(|m| {
        host.checked_sub(m.host_id())
            .is_some_and(|off| off < m.size())
    })
}

/// One of uid or gid: the caller's id if it is mapped into the container, else the host id
/// the process's own id maps to.
fn resolve_one(
    field: &str,
    asked: Option<u32>,
    own: u32,
    maps: &[LinuxIdMapping],
) -> Result<u32, PolicyError> {
    match asked {
        Some(host) if is_mapped_host(maps, host) => Ok(host),
        Some(host) => Err(PolicyError::Spec {
            field: field.into(),
            detail: format!(
                "host id {host} is not mapped into the container's user namespace: refused \
                 (stdio can only be given to the container's own ids)"
            ),
        }),
        None => to_host(maps, own).ok_or_else(|| PolicyError::Spec {
            field: field.into(),
            detail: format!("the process's id {own} is not mapped into the container"),
        }),
    }
}

/// The host uid and gid that should own the stdio of a process running as `uid`:`gid` in
/// `spec`'s user namespace (Ward's hardened spec: the mappings are always set).
pub fn resolve(spec: &Spec, uid: u32, gid: u32, asked: IoOwner) -> Result<(u32, u32), PolicyError> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gids = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    let host_uid = resolve_one("IoUid", asked.uid, uid, &uids)?;
    let host_gid = resolve_one("IoGid", asked.gid, gid, &gids)?;
    Ok((host_uid, host_gid))
}

/// Give each pipe or FIFO among `fds` to `owner`; every other kind of fd is left alone.
pub fn apply<'a>(
    fds: impl IntoIterator<Item = Option<BorrowedFd<'a>>>,
    (uid, gid): (u32, u32),
) -> Result<(), SysError> {
    for fd in fds.into_iter().flatten() {
        if crate::sys::fs::is_fifo(fd.as_fd())? {
            crate::sys::fs::chown_fd(fd, uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, SpecBuilder};
    use std::os::fd::AsRawFd;

    fn spec(host: u32) -> Spec {
        let m = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(65536u32)
            .build()
            .unwrap();
        SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .uid_mappings(vec![m])
                    .gid_mappings(vec![m])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn the_process_user_maps_to_its_host_ids() {
        let s = spec(200_000);
        assert_eq!(
            resolve(&s, 0, 0, IoOwner::default()).unwrap(),
            (200_000, 200_000)
        );
        assert_eq!(
            resolve(&s, 101, 102, IoOwner::default()).unwrap(),
            (200_101, 200_102)
        );
    }

    #[test]
    fn a_caller_id_inside_the_mapping_is_used() {
        let s = spec(200_000);
        let asked = IoOwner {
            uid: Some(200_000),
            gid: Some(200_005),
        };
        assert_eq!(resolve(&s, 7, 7, asked).unwrap(), (200_000, 200_005));
    }

    #[test]
    fn a_caller_id_outside_the_mapping_is_refused_naming_it() {
        let s = spec(200_000);
        for (asked, field) in [
            (
                IoOwner {
                    uid: Some(0),
                    gid: None,
                },
                "IoUid",
            ),
            (
                IoOwner {
                    uid: None,
                    gid: Some(1000),
                },
                "IoGid",
            ),
            (
                IoOwner {
                    uid: Some(200_000 + 65536),
                    gid: None,
                },
                "IoUid",
            ),
        ] {
            let e = resolve(&s, 0, 0, asked).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("not mapped"), "{e}");
        }
    }

    #[test]
    fn an_unmapped_process_user_is_refused() {
        let s = spec(200_000);
        let e = resolve(&s, 70_000, 0, IoOwner::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("IoUid") && e.contains("70000"), "{e}");
    }

    #[test]
    fn only_pipes_are_chowned() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP only_pipes_are_chowned: needs root (chown)");
            return;
        }
        let (r, w) = nix::unistd::pipe().unwrap();
        let file = tempfile::tempfile().unwrap();
        apply(
            [Some(r.as_fd()), Some(w.as_fd()), Some(file.as_fd())],
            (4242, 4343),
        )
        .unwrap();
        let st = nix::sys::stat::fstat(w.as_raw_fd()).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (4242, 4343));
        let st = nix::sys::stat::fstat(file.as_raw_fd()).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (0, 0), "a regular file was chowned");
    }
}
