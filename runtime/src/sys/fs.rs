//! Handle-based filesystem syscalls for host-side resolution and preparation: open a host path
//! without following symlinks (openat2), identify the object behind an fd, clone its mount
//! from the fd (open_tree with AT_EMPTY_PATH), set mount attributes, and switch between the
//! host's and a private mount namespace.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::SysError;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How [`open_path`] walks a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// No symlink and no magic link in any component.
    NoSymlinks,
    /// As `NoSymlinks`, and never above the starting directory (no `..` out, no absolute path).
    Beneath,
}

/// Open `path` (relative to `dir`, or absolute / relative to the cwd when `dir` is None) as an
/// `O_PATH` handle, refusing symlinks in every component (openat2). A symlink anywhere gives
/// `ELOOP`, an escape from `dir` with [`Walk::Beneath`] gives `EXDEV`.
pub fn open_path(dir: Option<BorrowedFd<'_>>, path: &Path, walk: Walk) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    if walk == Walk::Beneath {
        resolve |= RESOLVE_BENEATH;
    }
    let how = OpenHow {
        // No O_NOFOLLOW: with O_PATH it would open a trailing symlink itself; without it,
        // RESOLVE_NO_SYMLINKS refuses a trailing symlink too.
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a valid NUL-terminated string and `how` a properly laid-out struct
    // open_how whose size we pass; the kernel returns a new fd that we take sole ownership of.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Open `path` as the container will see it: `O_PATH`, resolved inside `root` (openat2
/// RESOLVE_IN_ROOT: absolute symlinks and `..` stay within `root`), following symlinks as
/// a process chrooted there would. For checks before launch only (what exists, what kind).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `c` is a valid NUL-terminated string and `how` a properly laid-out struct
    // open_how whose size we pass; the kernel returns a new fd that we take sole ownership of.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The first component of absolute `path` that is a symlink (for error messages only).
pub fn first_symlink(path: &Path) -> Option<PathBuf> {
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(cur);
        }
    }
    None
}

/// What an fd refers to: (st_dev, st_ino), the file type bits, owner and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Object {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub fn id(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// fstat of an (O_PATH) fd.
pub fn object(fd: BorrowedFd<'_>, path: &Path) -> Result<Object, SysError> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|errno| SysError::Io {
        op: "fstat",
        path: path.into(),
        source: errno.into(),
    })?;
    Ok(Object {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

/// An anonymous pipe (pipefs) or a FIFO with a name on a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoKind {
    Pipe,
    Named,
}

/// What kind of FIFO `fd` is, if it is one (S_IFIFO); a closed fd is none.
pub fn fifo_kind(fd: BorrowedFd<'_>) -> Result<Option<FifoKind>, SysError> {
    const PIPEFS_MAGIC: i64 = 0x5049_5045;
    let err = |op| {
        move |errno| SysError::Stdio {
            op,
            fd: fd.as_raw_fd(),
            errno,
        }
    };
    let st = match nix::sys::stat::fstat(fd.as_raw_fd()) {
        Err(Errno::EBADF) => return Ok(None),
        r => r.map_err(err("fstat"))?,
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Ok(None);
    }
    let fs = nix::sys::statfs::fstatfs(fd).map_err(err("fstatfs"))?;
    Ok(Some(if fs.filesystem_type().0 == PIPEFS_MAGIC {
        FifoKind::Pipe
    } else {
        FifoKind::Named
    }))
}

/// The stdio fds (0-2) that are FIFOs on a real filesystem (containerd's), with whether each
/// is open for reading and for writing. Pipes (pipefs) are left out: Landlock never restricts
/// reopening them, and refuses them as rule objects.
pub fn stdio_fifos() -> Vec<(BorrowedFd<'static>, bool, bool)> {
    let mut out = vec![];
    for fd in [0, 1, 2] {
        // SAFETY: fds 0-2 stay open in the container's process until execve (which keeps
        // them); the borrow is used only to build its Landlock ruleset before that. A closed
        // one is none (EBADF).
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        if !matches!(fifo_kind(bfd), Ok(Some(FifoKind::Named))) {
            continue;
        }
        let Ok(flags) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL) else {
            continue;
        };
        let mode = flags & libc::O_ACCMODE;
        out.push((bfd, mode != libc::O_WRONLY, mode != libc::O_RDONLY));
    }
    out
}

/// fchmod of the object behind `fd` to what its open mode allows (0400 read, 0200 write,
/// 0600 both): reopened through /proc/self/fd, it then opens only in the direction the fd has.
pub fn chmod_fd_to_access(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let err = |op| {
        move |errno| SysError::Stdio {
            op,
            fd: fd.as_raw_fd(),
            errno,
        }
    };
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
        .map_err(err("fcntl F_GETFL"))?;
    let mode = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => 0o400,
        libc::O_WRONLY => 0o200,
        _ => 0o600,
    };
    nix::sys::stat::fchmod(
        fd.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )
    .map_err(err("fchmod"))
}

/// fchown of the object behind `fd`.
pub fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), SysError> {
    nix::unistd::fchown(
        fd.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|errno| SysError::Stdio {
        op: "fchown",
        fd: fd.as_raw_fd(),
        errno,
    })
}

/// The filesystem magic of the object behind `fd` (fstatfs f_type).
pub fn fd_fs_magic(fd: BorrowedFd<'_>, path: &Path) -> Result<i64, SysError> {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| s.filesystem_type().0)
        .map_err(|errno| SysError::Io {
            op: "fstatfs",
            path: path.into(),
            source: errno.into(),
        })
}

/// Where the kernel says the object behind `fd` is (readlink of /proc/self/fd/N).
pub fn real_path(fd: BorrowedFd<'_>, path: &Path) -> Result<PathBuf, SysError> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|source| SysError::Io {
        op: "readlink /proc/self/fd of",
        path: path.into(),
        source,
    })
}

/// The parent directory of the directory `fd` (openat "..", O_PATH).
pub fn parent(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: ".." is a valid NUL-terminated string and `fd` a valid directory fd; the kernel
    // returns a new fd that we take sole ownership of.
    let r = unsafe {
        libc::openat(
            fd.as_raw_fd(),
            c"..".as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: r is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// The mount id of the mount `fd` is on (statx STATX_MNT_ID).
pub fn mount_id(fd: BorrowedFd<'_>, path: &Path) -> Result<u64, SysError> {
    const STATX_MNT_ID: libc::c_uint = 0x1000;
    // SAFETY: an all-zero statx is a valid value of this plain C struct.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: "" with AT_EMPTY_PATH names `fd`; `stx` is a valid, writable struct statx.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_MNT_ID,
            &mut stx,
        )
    };
    if r < 0 {
        return Err(SysError::Io {
            op: "statx",
            path: path.into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(stx.stx_mnt_id)
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// A detached copy of the mount tree at the object `fd` refers to (open_tree(fd, "",
/// OPEN_TREE_CLONE | AT_EMPTY_PATH), plus AT_RECURSIVE for an rbind). No path is walked: the
/// object is the one that was checked.
pub fn clone_tree(fd: BorrowedFd<'_>, recursive: bool, path: &Path) -> Result<OwnedFd, SysError> {
    let mut flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: "" with AT_EMPTY_PATH names `fd`; the kernel returns a new fd we take sole
    // ownership of.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if r < 0 {
        return Err(SysError::OpenTree {
            path: path.into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: r is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set `attrs` (MOUNT_ATTR_*) on the detached tree `tree`, on every mount of it when
/// `recursive`.
pub fn set_mount_attrs(
    tree: BorrowedFd<'_>,
    attrs: u64,
    recursive: bool,
    path: &Path,
) -> Result<(), SysError> {
    change_mount_attrs(tree, attrs, 0, recursive, path)
}

/// Set `set` and clear `clr` (MOUNT_ATTR_*; clearing MOUNT_ATTR__ATIME selects the atime mode
/// in `set`) on the detached tree `tree`, on every mount of it when `recursive`.
pub fn change_mount_attrs(
    tree: BorrowedFd<'_>,
    set: u64,
    clr: u64,
    recursive: bool,
    path: &Path,
) -> Result<(), SysError> {
    let attrs = set;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `tree` is a valid mount fd named by "" + AT_EMPTY_PATH and `attr` a properly
    // laid-out struct mount_attr whose size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(SysError::Mount {
            fstype: format!("mount_setattr({attrs:#x})"),
            path: path.into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// The calling thread's mount namespace, to come back to after [`enter_private_mounts`].
pub fn current_mount_ns() -> Result<OwnedFd, SysError> {
    super::open_ns(Path::new("/proc/thread-self/ns/mnt"))
}

/// Move the calling thread into a new mount namespace of its own whose mounts do not
/// propagate back to the host's (unshare(CLONE_NEWNS), then `/` recursively slave: the host's
/// later mounts still show here, nothing mounted here shows there).
pub fn enter_private_mounts() -> Result<(), SysError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|errno| {
        SysError::Namespace {
            op: "unshare(CLONE_NEWNS)",
            path: "/proc/thread-self/ns/mnt".into(),
            errno,
        }
    })?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|errno| SysError::Mount {
        fstype: "rslave".into(),
        path: "/".into(),
        errno,
    })
}

/// Return the calling thread to the mount namespace `ns` (from [`current_mount_ns`]).
pub fn return_to_mount_ns(ns: &OwnedFd) -> Result<(), SysError> {
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS).map_err(|errno| {
        SysError::Namespace {
            op: "setns(CLONE_NEWNS)",
            path: "/proc/thread-self/ns/mnt".into(),
            errno,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn open_path_refuses_symlinks_and_escapes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        symlink("/", d.path().join("link")).unwrap();
        assert!(open_path(None, &d.path().join("real"), Walk::NoSymlinks).is_ok());
        assert_eq!(
            open_path(None, &d.path().join("link"), Walk::NoSymlinks).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            open_path(None, &d.path().join("link/etc"), Walk::NoSymlinks).unwrap_err(),
            Errno::ELOOP
        );
        assert_eq!(
            first_symlink(&d.path().join("link/etc")),
            Some(d.path().join("link"))
        );
        let dir = open_path(None, d.path(), Walk::NoSymlinks).unwrap();
        assert_eq!(
            open_path(Some(dir.as_fd()), Path::new("../.."), Walk::Beneath).unwrap_err(),
            Errno::EXDEV
        );
        assert_eq!(
            open_path(Some(dir.as_fd()), Path::new("/etc"), Walk::Beneath).unwrap_err(),
            Errno::EXDEV
        );
        let real = open_path(Some(dir.as_fd()), Path::new("real"), Walk::Beneath).unwrap();
        assert!(object(real.as_fd(), Path::new("real")).unwrap().is_dir());
        assert_eq!(
            real_path(real.as_fd(), Path::new("real")).unwrap(),
            d.path().canonicalize().unwrap().join("real")
        );
        let up = parent(real.as_fd()).unwrap();
        assert_eq!(
            object(up.as_fd(), d.path()).unwrap().id(),
            object(dir.as_fd(), d.path()).unwrap().id()
        );
    }
}
