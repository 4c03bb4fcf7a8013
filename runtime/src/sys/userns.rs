//! The container's user namespace, owned by the range's base host uid, not by host root.
//!
//! The kernel charges per-user counts (inotify instances and watches, mqueue bytes, pending
//! signals, processes) at every level up to the namespace's owner (`inc_ucount`). A namespace
//! that root creates is owned by uid 0, so a container could use up host root's counts. Here a
//! forked helper becomes the range's base uid and gid (no supplementary groups) and unshares
//! `CLONE_NEWUSER`; the namespace's owner is then that uid. The helper keeps its capabilities
//! through the uid change (`SECBIT_NO_SETUID_FIXUP`), so the creation is a privileged one (no
//! dependence on unprivileged user namespaces being allowed) and the helper holds
//! CAP_SYS_RESOURCE in the new namespace, which it needs to set that namespace's own limits
//! (`/proc/sys/user/max_*`, writable only from inside). Ward (root in the parent namespace)
//! writes the uid and gid maps.
//!
//! The helper stays alive, blocked in `pause`, while Ward idmaps mounts with the namespace and
//! libcontainer joins it by path (`/proc/<helper>/ns/user`); dropping [`OwnedUserns`] kills and
//! reaps it. It also dies with Ward (parent-death signal), so a crashed create leaves no helper.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::SysError;
use crate::harden::IdRange;

/// `SECBIT_NO_SETUID_FIXUP` (linux/securebits.h): keep capabilities across uid changes.
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

/// The helper's report when every step succeeded.
const REPORT_OK: u32 = u32::MAX;

/// Steps of the helper, as reported to the parent (index into [`STEPS`]; sysctls follow).
const STEPS: [&str; 6] = [
    "setgroups([])",
    "setresgid(base)",
    "prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP)",
    "setresuid(base)",
    "prctl(PR_SET_PDEATHSIG)",
    "unshare(CLONE_NEWUSER)",
];

/// A user namespace mapped `0 → range`, owned by `range.host_start`, held by a helper process.
#[derive(Debug)]
pub struct OwnedUserns {
    child: Option<Pid>,
    id: (u64, u64),
}

impl OwnedUserns {
    /// Create the namespace and set its per-namespace limits: `limits` are file names under
    /// `/proc/sys/user` with their values. Returns the holder and an fd to the namespace (for
    /// idmapped mounts; close it before cloning the container, so that no container process
    /// inherits it). Must be called from a single-threaded process.
    pub fn create(range: &IdRange, limits: &[(&str, u64)]) -> Result<(Self, OwnedFd), SysError> {
        let sysctls: Vec<(CString, Vec<u8>)> = limits
            .iter()
            .map(|(name, v)| {
                let p = Path::new("/proc/sys/user").join(name);
                (super::cpath(&p), format!("{v}\n").into_bytes())
            })
            .collect();
        let (report_r, report_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| SysError::Userns {
                step: "pipe",
                errno,
            })?;
        let parent = nix::unistd::getpid();
        // SAFETY: the caller is single-threaded (documented); the child runs only `helper`,
        // which makes raw syscalls on memory prepared before the fork and never returns.
        match unsafe { nix::unistd::fork() } {
            Err(errno) => Err(SysError::Userns {
                step: "fork",
                errno,
            }),
            Ok(nix::unistd::ForkResult::Child) => {
                drop(report_r);
                helper(range.host_start, parent, &sysctls, report_w)
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(report_w);
                let mut me = Self {
                    child: Some(child),
                    id: (0, 0),
                };
                let fd = me.finish(range, limits, report_r)?;
                Ok((me, fd))
            }
        }
    }

    /// Parent side: read the helper's report, write the maps, open the namespace.
    fn finish(
        &mut self,
        range: &IdRange,
        limits: &[(&str, u64)],
        report: OwnedFd,
    ) -> Result<OwnedFd, SysError> {
        let child = self.child.expect("set by create");
        let mut buf = [0u8; 8];
        if std::fs::File::from(report).read_exact(&mut buf).is_err() {
            return Err(SysError::Userns {
                step: "helper exited before reporting",
                errno: Errno::ECHILD,
            });
        }
        let step = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
        let errno = Errno::from_raw(i32::from_le_bytes(buf[4..].try_into().expect("4 bytes")));
        let step = (step != REPORT_OK).then_some(step as usize);
        if let Some(step) = step.filter(|s| *s < STEPS.len()) {
            return Err(SysError::Userns {
                step: STEPS[step],
                errno,
            });
        }
        if let Some(step) = step {
            let (name, value) = limits.get(step - STEPS.len()).copied().unwrap_or(("?", 0));
            return Err(SysError::UsernsLimit {
                path: Path::new("/proc/sys/user").join(name),
                value,
                errno,
            });
        }
        let map = format!("0 {} {}\n", range.host_start, range.size);
        for file in ["uid_map", "gid_map"] {
            let p = PathBuf::from(format!("/proc/{child}/{file}"));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|mut f| f.write_all(map.as_bytes()))
                .map_err(|source| SysError::Io {
                    op: "write",
                    path: p.clone(),
                    source,
                })?;
        }
        let p = self.path();
        let fd = super::open_ns(&p)?;
        self.id = super::ns_identity(&fd, &p)?;
        Ok(fd)
    }

    /// The path by which another process joins the namespace while the helper lives.
    pub fn path(&self) -> PathBuf {
        let pid = self.child.map_or(0, Pid::as_raw);
        PathBuf::from(format!("/proc/{pid}/ns/user"))
    }

    /// (st_dev, st_ino) of the namespace.
    pub fn identity(&self) -> (u64, u64) {
        self.id
    }

    /// The uid owning a user namespace file (ioctl NS_GET_OWNER_UID), in the caller's
    /// user namespace.
    pub fn owner_uid(ns: &OwnedFd, path: &Path) -> Result<u32, SysError> {
        const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
        let mut uid: libc::uid_t = 0;
        // SAFETY: NS_GET_OWNER_UID writes one uid_t into the variable we pass.
        let r = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_OWNER_UID, &mut uid) };
        if r < 0 {
            return Err(SysError::Namespace {
                op: "ioctl(NS_GET_OWNER_UID)",
                path: path.into(),
                errno: Errno::last(),
            });
        }
        Ok(uid)
    }
}

impl Drop for OwnedUserns {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // Our own unreaped child: the pid cannot name another process.
            let _ = nix::sys::signal::kill(child, nix::sys::signal::SIGKILL);
            // ECHILD: a reaper of all children (the shim's launcher) got it first.
            let _ = nix::sys::wait::waitpid(child, None);
        }
    }
}

/// The helper child: become `base` (keeping capabilities), unshare the user namespace, set
/// its limits, report, then wait to be killed. Raw syscalls only; never returns.
fn helper(base: u32, parent: Pid, sysctls: &[(CString, Vec<u8>)], report: OwnedFd) -> ! {
    let fail = |step: usize| -> ! {
        let errno = Errno::last_raw();
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(step as u32).to_le_bytes());
        msg[4..].copy_from_slice(&errno.to_le_bytes());
        // SAFETY: writes 8 bytes from a stack buffer to a pipe we own, then leaves the child
        // without running any destructor of the parent's state.
        unsafe {
            libc::write(report.as_raw_fd(), msg.as_ptr().cast(), 8);
            libc::_exit(1)
        }
    };
    // SAFETY: setgroups with size 0 and a null list drops every supplementary group.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        fail(0);
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(base, base, base) } != 0 {
        fail(1);
    }
    // SAFETY: plain integer arguments; changes only this process's securebits.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) } != 0 {
        fail(2);
    }
    // SAFETY: plain integer arguments. The namespace unshared below is owned by this euid.
    if unsafe { libc::setresuid(base, base, base) } != 0 {
        fail(3);
    }
    // The uid change cleared any parent-death signal: set it now, then make sure the parent
    // did not exit before (the signal would never come).
    // SAFETY: plain integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0
        || nix::unistd::getppid() != parent
    {
        fail(4);
    }
    // SAFETY: plain flag argument; affects only this process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        fail(5);
    }
    for (i, (path, value)) in sysctls.iter().enumerate() {
        // /proc/sys/user is the calling process's user namespace's: the new one now.
        // SAFETY: `path` is a valid NUL-terminated string prepared before the fork.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            fail(STEPS.len() + i);
        }
        // SAFETY: writes `value` (prepared before the fork) to the fd opened above.
        let n = unsafe { libc::write(fd, value.as_ptr().cast(), value.len()) };
        if n != value.len() as isize {
            fail(STEPS.len() + i);
        }
        // SAFETY: closes the fd opened above.
        unsafe { libc::close(fd) };
    }
    let mut ok = [0u8; 8];
    ok[..4].copy_from_slice(&REPORT_OK.to_le_bytes());
    // SAFETY: writes 8 bytes from a stack buffer to a pipe we own.
    unsafe { libc::write(report.as_raw_fd(), ok.as_ptr().cast(), 8) };
    drop(report);
    loop {
        // SAFETY: pause only waits for a signal; SIGKILL (from Ward, or at Ward's death) ends it.
        unsafe { libc::pause() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root (CAP_SETUID, CAP_SETPCAP): skipped, visibly, otherwise.
    #[test]
    fn namespace_is_owned_by_the_range_base_and_has_its_limits() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let range = IdRange {
            host_start: 3_000_000,
            size: 65536,
        };
        let (ns, fd) = OwnedUserns::create(&range, &[("max_inotify_instances", 7)]).unwrap();
        let fd = &fd;
        assert_eq!(OwnedUserns::owner_uid(fd, &ns.path()).unwrap(), 3_000_000);
        let pid = ns.path().parent().unwrap().parent().unwrap().to_path_buf();
        let map = std::fs::read_to_string(pid.join("uid_map")).unwrap();
        assert_eq!(
            map.split_whitespace().collect::<Vec<_>>(),
            ["0", "3000000", "65536"]
        );
        // The limit is the namespace's own: read it from inside, in a forked child (raw
        // syscalls only: the test harness is multi-threaded).
        let got = read_in_userns(fd, c"/proc/sys/user/max_inotify_instances");
        assert_eq!(got.trim(), "7");
        let helper = pid.clone();
        drop(ns);
        assert!(!helper.exists(), "helper {} left behind", helper.display());
    }

    fn read_in_userns(userns: &OwnedFd, path: &std::ffi::CStr) -> String {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child makes only raw syscalls on memory prepared before the fork.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                // SAFETY: raw syscalls on fds and a buffer of this child; leaves with _exit.
                if libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) == 0 {
                    let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
                    let mut buf = [0u8; 32];
                    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                    if n > 0 {
                        libc::write(w.as_raw_fd(), buf.as_ptr().cast(), n as usize);
                    }
                }
                libc::_exit(0)
            },
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut out = String::new();
                std::fs::File::from(r).read_to_string(&mut out).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                out
            }
        }
    }

    #[test]
    fn unknown_limit_names_the_file() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let range = IdRange {
            host_start: 3_000_000,
            size: 65536,
        };
        let e = OwnedUserns::create(&range, &[("max_bogus", 1)]).unwrap_err();
        assert!(e.to_string().contains("/proc/sys/user/max_bogus"), "{e}");
    }
}
