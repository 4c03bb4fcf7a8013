//! Every raw syscall Ward makes itself (libcontainer makes the rest), one function per step,
//! each failure its own error variant carrying the operation and the path.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::harden::IdRange;

pub mod fs;
pub mod notify;
pub mod userns;
pub mod userns_maps;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysError {
    #[error("open_tree {path}: {errno}")]
    OpenTree { path: PathBuf, errno: Errno },
    #[error("idmap {path} (mount_setattr MOUNT_ATTR_IDMAP): {errno}{hint}")]
    Idmap {
        path: PathBuf,
        errno: Errno,
        hint: &'static str,
    },
    #[error("move_mount to {path}: {errno}")]
    MoveMount { path: PathBuf, errno: Errno },
    #[error("mount {fstype} at {path}: {errno}")]
    Mount {
        fstype: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("umount {path}: {errno}")]
    Umount { path: PathBuf, errno: Errno },
    #[error("create the container's user namespace ({step}): {errno}")]
    Userns { step: &'static str, errno: Errno },
    #[error("set the container's user namespace limit {path} to {value}: {errno}")]
    UsernsLimit {
        path: PathBuf,
        value: u64,
        errno: Errno,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("flock {path}: {errno}")]
    Flock { path: PathBuf, errno: Errno },
    #[error("kill {pid}: {errno}")]
    Signal { pid: i32, errno: Errno },
    /// fstat or fchown of a process's stdio pipe/FIFO (fd number as the process gets it).
    #[error("{op} of the process's stdio (fd {fd}): {errno}")]
    Stdio {
        op: &'static str,
        fd: i32,
        errno: Errno,
    },
    #[error("{op} {path}: {errno}")]
    Namespace {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::from(c"/nonexistent"))
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount at `path` (open_tree(OPEN_TREE_CLONE)).
pub fn open_tree_clone(path: &Path) -> Result<OwnedFd, SysError> {
    let c = cpath(path);
    // SAFETY: `c` is a valid NUL-terminated string; the flags are plain integers. The kernel
    // returns a new fd that we take sole ownership of.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(SysError::OpenTree {
            path: path.into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Make the detached mount `tree` idmapped through `userns`.
pub fn idmap(tree: &OwnedFd, userns: &OwnedFd, path: &Path) -> Result<(), SysError> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `tree` is a valid open_tree fd, "" with AT_EMPTY_PATH names it, and `attr` is a
    // properly laid-out struct mount_attr whose size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        let errno = Errno::last();
        let hint = match errno {
            Errno::EINVAL => " (the filesystem does not support idmapped mounts, e.g. an overlay or a filesystem without FS_ALLOW_IDMAP)",
            Errno::EPERM => " (not permitted: Ward must run as root in the initial user namespace)",
            _ => "",
        };
        return Err(SysError::Idmap {
            path: path.into(),
            errno,
            hint,
        });
    }
    Ok(())
}

/// Attach the detached mount `tree` at `target`.
pub fn move_mount(tree: &OwnedFd, target: &Path) -> Result<(), SysError> {
    let c = cpath(target);
    // SAFETY: `tree` is a valid detached mount fd named by "" + F_EMPTY_PATH; `c` is a valid
    // NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(SysError::MoveMount {
            path: target.into(),
            errno: Errno::last(),
        });
    }
    Ok(())
}

/// A read-only (or read-write) overlay of `lowers` (upper-most first) at `target`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), SysError> {
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().replace(':', "\\:"))
        .collect::<Vec<_>>()
        .join(":");
    let mut data = format!("lowerdir={lower}");
    if let Some((u, w)) = upper_work {
        data.push_str(&format!(
            ",upperdir={},workdir={},volatile",
            u.display(),
            w.display()
        ));
    }
    use nix::mount::MsFlags;
    mount_fs(
        "overlay",
        target,
        MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        Some(&data),
    )
}

/// Mount a new filesystem of `fstype` at `target` (one error variant for every kind).
fn mount_fs(
    fstype: &str,
    target: &Path,
    flags: nix::mount::MsFlags,
    data: Option<&str>,
) -> Result<(), SysError> {
    nix::mount::mount(Some(fstype), target, Some(fstype), flags, data).map_err(|errno| {
        SysError::Mount {
            fstype: fstype.into(),
            path: target.into(),
            errno,
        }
    })
}

/// Detach the mount at `path` (MNT_DETACH); a path that is not mounted is not an error.
pub fn umount(path: &Path) -> Result<(), SysError> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(SysError::Umount {
            path: path.into(),
            errno,
        }),
    }
}

/// A user namespace whose uid and gid maps are `0 → range`, used only to idmap mounts (`ward
/// check`): see [`userns::OwnedUserns`], which `create` uses to also run the container in it.
///
/// Must be called from a single-threaded process (the `ward` CLI, the shim's launcher).
pub fn userns_for(range: &IdRange) -> Result<OwnedFd, SysError> {
    // The helper goes; the fd keeps the namespace.
    userns::OwnedUserns::create(range, &[]).map(|(_helper, fd)| fd)
}

/// An exclusive flock on `path` (created if missing), released when the file is dropped.
pub fn lock_exclusive(path: &Path) -> Result<File, SysError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| SysError::Io {
            op: "open",
            path: path.into(),
            source,
        })?;
    // SAFETY: flock on a valid fd we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if r != 0 {
        return Err(SysError::Flock {
            path: path.into(),
            errno: Errno::last(),
        });
    }
    Ok(f)
}

pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The kernel's Landlock ABI version (landlock_create_ruleset with the VERSION flag).
pub fn landlock_abi() -> Result<i64, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attr, size 0 and the VERSION flag the syscall only returns a number.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// Mark every fd from `first` on close-on-exec (close_range(CLOSE_RANGE_CLOEXEC)).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes flags of this process's descriptors.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Run `f` in a forked child and hand its `Ok(i32)` or error text back to the caller.
/// For steps that change the process irreversibly (setns into a user namespace).
/// Must be called from a single-threaded process.
pub fn in_forked_child(f: impl FnOnce() -> Result<i32, String>) -> Result<i32, String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the caller is single-threaded (documented), so the child may run ordinary code;
    // it leaves only through _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            let out = match f() {
                Ok(v) => format!("ok {v}"),
                Err(e) => format!("err {e}"),
            };
            let mut file = File::from(w);
            let _ = file.write_all(out.as_bytes());
            drop(file);
            // SAFETY: terminate the child without running the parent's destructors or atexit.
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(w);
            let mut out = String::new();
            let _ = File::from(r).read_to_string(&mut out);
            let _ = nix::sys::wait::waitpid(child, None);
            match out.split_once(' ') {
                Some(("ok", v)) => v.trim().parse().map_err(|_| format!("bad result {v:?}")),
                Some(("err", e)) => Err(e.to_string()),
                _ => Err(format!("helper process died without a result ({out:?})")),
            }
        }
    }
}

/// Copy the terminal window size of `from` to `to` (TIOCGWINSZ, TIOCSWINSZ). A `from` that is
/// not a terminal is not an error: there is nothing to copy.
pub fn copy_winsize(from: RawFd, to: RawFd) -> Result<(), Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own; the fd is only read.
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return match Errno::last() {
            Errno::ENOTTY | Errno::EBADF => Ok(()),
            e => Err(e),
        };
    }
    // SAFETY: TIOCSWINSZ reads one `winsize` from a struct we own.
    Errno::result(unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// A pidfd for `pid` (pidfd_open(2)): pollable, readable once the process has exited.
/// Send `signal` to `pid`; a process that is already gone (ESRCH) is not an error.
pub fn signal_pid(pid: i32, signal: nix::sys::signal::Signal) -> Result<(), SysError> {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(SysError::Signal { pid, errno }),
    }
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A namespace file (`/proc/<pid>/ns/<kind>` or a bind-mounted one), opened read-only.
pub fn open_ns(path: &Path) -> Result<OwnedFd, SysError> {
    std::fs::File::options()
        .read(true)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| SysError::Io {
            op: "open",
            path: path.into(),
            source,
        })
}

/// (st_dev, st_ino) of an open namespace file: its identity.
pub fn ns_identity(fd: &OwnedFd, path: &Path) -> Result<(u64, u64), SysError> {
    nix::sys::stat::fstat(fd.as_raw_fd())
        .map(|st| (st.st_dev, st.st_ino))
        .map_err(|errno| SysError::Namespace {
            op: "fstat",
            path: path.into(),
            errno,
        })
}

const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The kind of namespace `fd` refers to, as its `CLONE_NEW*` flag (ioctl NS_GET_NSTYPE).
pub fn ns_type(fd: &OwnedFd, path: &Path) -> Result<libc::c_int, SysError> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an integer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if r < 0 {
        return Err(SysError::Namespace {
            op: "ioctl(NS_GET_NSTYPE)",
            path: path.into(),
            errno: Errno::last(),
        });
    }
    Ok(r)
}

/// The user namespace that owns the namespace `fd` (ioctl NS_GET_USERNS).
pub fn ns_owner(fd: &OwnedFd, path: &Path) -> Result<OwnedFd, SysError> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd we take sole ownership of.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) };
    if r < 0 {
        return Err(SysError::Namespace {
            op: "ioctl(NS_GET_USERNS)",
            path: path.into(),
            errno: Errno::last(),
        });
    }
    // SAFETY: r is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Move the calling thread into the namespace `fd` (setns(2) with the kind as a check).
pub fn setns(fd: &OwnedFd, kind: nix::sched::CloneFlags, path: &Path) -> Result<(), SysError> {
    nix::sched::setns(fd, kind).map_err(|errno| SysError::Namespace {
        op: "setns",
        path: path.into(),
        errno,
    })
}

/// A `nosuid,nodev` tmpfs of `size` bytes at `target`, its root `mode` and root's.
pub fn mount_tmpfs(target: &Path, size: u64, mode: u32) -> Result<(), SysError> {
    use nix::mount::MsFlags;
    let data = format!("size={size},mode={mode:o}");
    mount_fs(
        "tmpfs",
        target,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(&data),
    )
}

/// A read-only sysfs at `target` for the calling thread's network namespace (sysfs tags its
/// network class with the mounter's network namespace).
pub fn mount_sysfs(target: &Path) -> Result<(), SysError> {
    use nix::mount::MsFlags;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("sysfs", target, flags, None)
}

/// Give back write access to stdout/stderr that are `/dev/null`. libcontainer 0.7 re-opens the
/// container's own /dev/null over any stdio fd that pointed at the host's, but read-only, so a
/// process started with its output sent to /dev/null (`ward run ... >/dev/null`, an engine's
/// default) got EBADF on every write. Runs in the container init, after pivot_root.
pub fn writable_dev_null_stdio() -> Result<(), Errno> {
    let null = nix::sys::stat::stat("/dev/null")?;
    for fd in [1, 2] {
        // SAFETY: fds 1 and 2 stay open in the init for its whole life; borrowed only here.
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let same = st.st_rdev == null.st_rdev && (st.st_mode & libc::S_IFMT) == libc::S_IFCHR;
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let read_only = flags & libc::O_ACCMODE == libc::O_RDONLY;
        if same && read_only {
            let w = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            // SAFETY: `w` is a fresh fd we own; dup2 onto stdio then close it.
            let r = unsafe { libc::dup2(w, bfd.as_raw_fd()) };
            let _ = nix::unistd::close(w);
            Errno::result(r)?;
        }
    }
    Ok(())
}

/// Bring the loopback interface up in the network namespace at `netns` (SIOCSIFFLAGS on
/// "lo"), from outside: enter it, set the flag, come back. The caller must be single-threaded
/// or accept that only its calling thread moves (setns of a network namespace is per thread).
pub fn loopback_up(netns: &Path) -> Result<(), SysError> {
    let err = |op: &'static str| {
        move |errno| SysError::Namespace {
            op,
            path: netns.into(),
            errno,
        }
    };
    let own = open_ns(Path::new("/proc/thread-self/ns/net"))?;
    let target = open_ns(netns)?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET).map_err(err("setns"))?;
    let r = (|| {
        let sock = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(err("socket"))?;
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the interface named in `ifr` and writes its flags into it.
        Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })
            .map_err(err("SIOCGIFFLAGS lo"))?;
        // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled in.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads the name and flags from `ifr`.
        Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) })
            .map_err(err("SIOCSIFFLAGS lo"))?;
        Ok(())
    })();
    nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).map_err(err("setns back"))?;
    r
}

/// Write the network sysctl `key` (a plain `net.…` name) in the network namespace at `netns`,
/// from outside: enter it, write /proc/sys (which shows the calling thread's network
/// namespace), come back. Same threading rule as [`loopback_up`].
pub fn write_net_sysctl(netns: &Path, key: &str, value: &str) -> Result<(), SysError> {
    let err = |op: &'static str| {
        move |errno| SysError::Namespace {
            op,
            path: netns.into(),
            errno,
        }
    };
    let own = open_ns(Path::new("/proc/thread-self/ns/net"))?;
    let target = open_ns(netns)?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWNET).map_err(err("setns"))?;
    let p = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    let r = std::fs::write(&p, value).map_err(|source| SysError::Io {
        op: "write sysctl",
        path: p,
        source,
    });
    nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).map_err(err("setns back"))?;
    r
}

/// Hand the allocator's free heap pages back to the kernel (malloc_trim). For long-lived
/// processes that keep little after a burst of work (the shim's launcher after each request).
pub fn release_free_heap() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes the allocator's
    // own locks, so it is safe at any point where malloc itself may be called.
    unsafe { libc::malloc_trim(0) };
}

/// Whether this process has one thread (`/proc/self/task` has one entry): the condition for
/// a fork whose child runs more than async-signal-safe code.
pub fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

/// The `cgroup.procs` files of the caller's own cgroups, from the text of /proc/self/cgroup:
/// on a pure cgroup v2 host the one under /sys/fs/cgroup; otherwise the cgroup2 one of a
/// hybrid host (/sys/fs/cgroup/unified), then the v1 pids hierarchy's. The first that opens
/// is used. Each is the cgroup the caller already is in, never another one.
pub fn own_cgroup_procs(proc_self_cgroup: &str, pure_v2: bool) -> Vec<PathBuf> {
    let mut unified = vec![];
    let mut v1 = vec![];
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            let mnt = if pure_v2 {
                "/sys/fs/cgroup"
            } else {
                "/sys/fs/cgroup/unified"
            };
            unified.push(Path::new(mnt).join(rel).join("cgroup.procs"));
        } else if !pure_v2 && ctrls.split(',').any(|c| c == "pids") {
            v1.push(
                Path::new("/sys/fs/cgroup")
                    .join(ctrls)
                    .join(rel)
                    .join("cgroup.procs"),
            );
        }
    }
    unified.extend(v1);
    unified
}

/// A short-lived child started by [`start_migration_warmup`]; reaped on drop.
#[derive(Debug)]
pub struct MigrationWarmup {
    child: Option<nix::unistd::Pid>,
}

impl Drop for MigrationWarmup {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // By the time a create or exec ends, the container's own migration has waited for
            // the same grace period, so the child is gone or about to be. ECHILD (a reaper of
            // all children, like the shim's launcher, got it first) is fine.
            let _ = nix::sys::wait::waitpid(child, None);
        }
    }
}

/// Start the kernel's grace period for moving a process between cgroups early, so that it
/// runs alongside Ward's own setup instead of after it.
///
/// The first write of a pid to any `cgroup.procs` (on cgroup v1 and v2 alike) waits for a full
/// RCU grace period before it takes the kernel's global cgroup_threadgroup_rwsem for writing,
/// 10-25 ms on this machine kind; writes within a grace period after another writer do not
/// wait. libcontainer's intermediate process makes that write some 10 ms into a create, and
/// then waits. This child writes "0" (itself) to the cgroup it is already in, a migration that
/// moves nothing, right at the start: the grace period then overlaps Ward's setup.
///
/// Purely an optimisation: if no file opens or the write fails, the child exits and nothing
/// else changes. Must be called from a single-threaded process.
pub fn start_migration_warmup(procs: &[PathBuf]) -> MigrationWarmup {
    let paths: Vec<CString> = procs.iter().map(|p| cpath(p)).collect();
    // SAFETY: the caller is single-threaded (documented). The child makes only async-signal-
    // safe calls (open, write, close, _exit) on memory prepared before the fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let mut code = 1;
            for p in &paths {
                // SAFETY: `p` is a valid NUL-terminated path; the fd is closed below.
                let fd = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                if fd < 0 {
                    continue;
                }
                // SAFETY: writes one byte from a static buffer to the fd opened above.
                let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
                // SAFETY: closes the fd opened above.
                unsafe { libc::close(fd) };
                if n == 1 {
                    code = 0;
                    break;
                }
            }
            // SAFETY: terminate the child without running the parent's destructors or atexit.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => MigrationWarmup { child: Some(child) },
        Err(_) => MigrationWarmup { child: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_procs_hybrid_v2_and_v1() {
        let hybrid = "10:hugetlb:/\n8:pids:/a/b\n4:memory:/a/b\n1:cpu,cpuacct:/a\n0::/a/b\n";
        assert_eq!(
            own_cgroup_procs(hybrid, false),
            vec![
                PathBuf::from("/sys/fs/cgroup/unified/a/b/cgroup.procs"),
                PathBuf::from("/sys/fs/cgroup/pids/a/b/cgroup.procs"),
            ]
        );
        assert_eq!(
            own_cgroup_procs("0::/x.slice/y.scope\n", true),
            vec![PathBuf::from("/sys/fs/cgroup/x.slice/y.scope/cgroup.procs")]
        );
        // v1 only, pids co-mounted with another controller.
        assert_eq!(
            own_cgroup_procs("3:pids,freezer:/x\ngarbage\n", false),
            vec![PathBuf::from("/sys/fs/cgroup/pids,freezer/x/cgroup.procs")]
        );
        assert!(own_cgroup_procs("", false).is_empty());
    }

    #[test]
    fn warmup_child_writes_first_openable_file_and_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing/cgroup.procs");
        let target = dir.path().join("cgroup.procs");
        let unused = dir.path().join("unused");
        std::fs::write(&target, "").unwrap();
        std::fs::write(&unused, "").unwrap();
        let w = start_migration_warmup(&[missing, target.clone(), unused.clone()]);
        let child = w.child.expect("forked");
        drop(w);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(&unused).unwrap(), "");
        // Reaped on drop: no such child any more.
        assert_eq!(
            nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
    }
}
