//! Who owns a container process's stdio pipes and FIFOs (containerd's `IoUid`/`IoGid`).
//!
//! A process reopens its stdio through `/proc/self/fd/N` (`/dev/stdout`, `/dev/stderr`: the
//! official nginx image's logs are symlinks to them). For a pipe or FIFO that open is checked
//! against the inode's owner and mode, and containerd's FIFOs and the shim's pipes belong to
//! host root, mode 0600/0700: the container's root, a range uid, gets EACCES. runc's shim
//! fixes that for user-namespaced containers by handing over pipes owned by `IoUid`/`IoGid`;
//! Ward's shim does it for every container, whose uids are always remapped.
//!
//! Each one is also chmodded to the direction its fd has (0200 for an output, 0400 for an
//! input): the container's root, without CAP_DAC_OVERRIDE, reopens its stdout for writing only,
//! never for reading what else goes into a pipe the caller shares (`make | tee`).
//!
//! The `ward` CLI does the same for anonymous pipes only (an engine's, such as conmon's: no
//! path on the host reaches them), so `/dev/stdout` works as under runc, whose containers run
//! as host root. Named FIFOs are chowned only for the shim, where they are containerd's own.
//! Nothing else is ever chowned (never a regular file, a tty or a socket a caller passed),
//! and only to a host id the container's own user namespace maps: a caller cannot use this to
//! give a file to an arbitrary host user.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::harden::PolicyError;
use crate::sys::SysError;

/// The owner a caller asks for (containerd's runtime options); `None`: the host ids the
/// process's own `user.uid`/`user.gid` map to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IoOwner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Named FIFOs too (the shim: containerd's), not only anonymous pipes.
    #[serde(default)]
    pub fifos: bool,
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

/// Give each anonymous pipe among `fds` (and each named FIFO, with `fifos`) to `owner`; every
/// other kind of fd, and a closed one, is left alone.
pub fn apply<'a>(
    fds: impl IntoIterator<Item = Option<BorrowedFd<'a>>>,
    (uid, gid): (u32, u32),
    fifos: bool,
) -> Result<(), SysError> {
    for fd in fds.into_iter().flatten() {
        let chown = match crate::sys::fs::fifo_kind(fd.as_fd())? {
            Some(crate::sys::fs::FifoKind::Pipe) => true,
            Some(crate::sys::fs::FifoKind::Named) => fifos,
            None => false,
        };
        if chown {
            // Mode first: between the two the object is never the container's and wider.
            crate::sys::fs::chmod_fd_to_access(fd)?;
            crate::sys::fs::chown_fd(fd, uid, gid)?;
        }
    }
    Ok(())
}

/// Give `fds` (a process's stdio) to the host ids `user` maps to in `spec` (or the caller's
/// ids, if mapped), when the caller asked for it.
pub fn own_stdio(
    spec: &Spec,
    user: &oci_spec::runtime::User,
    owner: Option<IoOwner>,
    fds: [Option<&OwnedFd>; 3],
) -> crate::error::Result<()> {
    let Some(asked) = owner else {
        return Ok(());
    };
    let ids = resolve(spec, user.uid(), user.gid(), asked)?;
    // A stream the caller passes no fd for is this process's own, which the process inherits.
    let fds: [Option<BorrowedFd<'_>>; 3] = [0, 1, 2].map(|i| {
        Some(match fds[i] {
            Some(f) => f.as_fd(),
            // SAFETY: fd 0, 1 or 2 of this process, borrowed for this call only; a closed
            // one is skipped by `apply` (EBADF).
            None => unsafe { BorrowedFd::borrow_raw(i as i32) },
        })
    });
    apply(fds, ids, asked.fifos)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, SpecBuilder};
    use std::os::fd::{AsRawFd, FromRawFd};

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
            ..Default::default()
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
                    ..Default::default()
                },
                "IoUid",
            ),
            (
                IoOwner {
                    uid: None,
                    gid: Some(1000),
                    ..Default::default()
                },
                "IoGid",
            ),
            (
                IoOwner {
                    uid: Some(200_000 + 65536),
                    gid: None,
                    ..Default::default()
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
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo_fd = nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // SAFETY: a fresh fd from open, owned here.
        let fifo_fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fifo_fd) };
        let owner = |fd: &dyn AsRawFd| {
            let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
            (st.st_uid, st.st_gid)
        };
        let (r, w) = nix::unistd::pipe().unwrap();
        let file = tempfile::tempfile().unwrap();
        let fds = || [Some(w.as_fd()), Some(file.as_fd()), Some(fifo_fd.as_fd())];
        apply(fds(), (4242, 4343), false).unwrap();
        assert_eq!(owner(&r), (4242, 4343), "the pipe");
        let mode = nix::sys::stat::fstat(w.as_raw_fd()).unwrap().st_mode & 0o777;
        assert_eq!(
            mode, 0o200,
            "the write end's pipe is write-only when reopened"
        );
        assert_eq!(owner(&file), (0, 0), "a regular file was chowned");
        assert_eq!(
            owner(&fifo_fd),
            (0, 0),
            "a named FIFO was chowned for the CLI"
        );
        apply(fds(), (4242, 4343), true).unwrap();
        assert_eq!(owner(&fifo_fd), (4242, 4343), "the shim's FIFO");
        assert_eq!(owner(&file), (0, 0), "a regular file was chowned");
    }
}
