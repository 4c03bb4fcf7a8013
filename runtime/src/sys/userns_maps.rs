//! What a user namespace nobody runs in maps: containerd 2 makes a user-namespaced pod's
//! network namespace inside a user namespace of its own (the kubelet's mapping), and its
//! creating process is gone by the time Ward sees the namespace. A forked child joins the
//! namespace (`setns`; root in the parent namespace may) and reads its own `uid_map` and
//! `gid_map`, which then show the mapping onto the parent namespace's ids.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

use super::SysError;

/// NS_GET_PARENT (linux/nsfs.h): the parent of a user namespace.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

fn err(step: &'static str) -> impl FnOnce(Errno) -> SysError {
    move |errno| SysError::Userns { step, errno }
}

/// The parent of user namespace `userns`.
pub fn parent(userns: &OwnedFd) -> Result<OwnedFd, SysError> {
    // SAFETY: NS_GET_PARENT takes no argument and returns a new fd we take sole ownership of.
    let r = unsafe { libc::ioctl(userns.as_raw_fd(), NS_GET_PARENT) };
    if r < 0 {
        return Err(err("ioctl(NS_GET_PARENT)")(Errno::last()));
    }
    // SAFETY: r is a fresh descriptor returned by the kernel and owned by nobody else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(r) })
}

/// `(uid_map, gid_map)` of user namespace `userns`, as text. Must be called from a
/// single-threaded process (the create path, which also forks the container's namespace
/// helper).
pub fn read_maps(userns: &OwnedFd) -> Result<(String, String), SysError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(err("pipe"))?;
    // SAFETY: the caller is single-threaded (documented); the child makes only raw syscalls
    // on memory prepared before the fork and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.map_err(err("fork"))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            child(userns, w)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut out = Vec::new();
            let read = std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut out);
            let status = nix::sys::wait::waitpid(child, None).map_err(err("waitpid"))?;
            let ok = matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0));
            let text = String::from_utf8_lossy(&out).into_owned();
            match (read, ok, text.split_once('\0')) {
                (Ok(_), true, Some((u, g))) => Ok((u.to_string(), g.to_string())),
                _ => Err(err("read the namespace's uid_map and gid_map")(Errno::EIO)),
            }
        }
    }
}

/// Child: join `userns`, write `uid_map NUL gid_map` to `w`, exit 0 (1 on any failure).
fn child(userns: &OwnedFd, w: OwnedFd) -> ! {
    let mut buf = [0u8; 4096];
    let mut ok = true;
    // SAFETY: setns on a namespace fd we hold; this process is single-threaded.
    ok &= unsafe { libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) } == 0;
    for (i, path) in [c"/proc/self/uid_map", c"/proc/self/gid_map"]
        .into_iter()
        .enumerate()
    {
        if !ok {
            break;
        }
        // SAFETY: a NUL-terminated literal path; the fd is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        ok &= fd >= 0;
        if ok {
            // SAFETY: reading into a stack buffer of the given length from our own fd.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            ok &= n >= 0;
            if n > 0 {
                // SAFETY: writing the n bytes just read to our own pipe end.
                ok &= unsafe { libc::write(w.as_raw_fd(), buf.as_ptr().cast(), n as usize) } == n;
            }
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
        }
        if i == 0 && ok {
            // SAFETY: one NUL byte from a static to our own pipe end.
            ok &= unsafe { libc::write(w.as_raw_fd(), c"".as_ptr().cast(), 1) } == 1;
        }
    }
    // SAFETY: leaving the forked child without running the parent's destructors.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}
