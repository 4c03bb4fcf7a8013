//! Raw syscalls of seccomp user notification: installing a filter with a listener,
//! passing the listener fd over a unix socket (SCM_RIGHTS), and the supervisor's side
//! (receive, answer, re-validate, read the caller's memory, signal through a pidfd).
//!
//! The functions the container init calls after its filter is installed
//! ([`install_listener_filter`], [`send_fd`]) allocate nothing: in learn mode every
//! syscall but the protocol ones waits for the supervisor, which does not have the
//! listener yet.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// The notification data of one intercepted call.
pub type Notif = libc::seccomp_notif;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): wake the supervisor on the caller's CPU.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// Set no_new_privs, then install `program` as a seccomp filter with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`; returns the listener fd (close-on-exec).
///
/// Allocates nothing. The filter applies to the calling thread from the moment this returns.
pub fn install_listener_filter(program: &[seccompiler::sock_filter]) -> Result<OwnedFd, Errno> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let prog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] {u16, u8, u8, u32}, the kernel's layout,
        // the same as libc's.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: prctl with integer arguments only changes this process's flags.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies the
    // program. On success it returns a new fd that nobody else owns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh fd from the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Send `fd` over the connected unix socket `sock` (one data byte + SCM_RIGHTS).
/// Allocates nothing (the control buffer is on the stack).
pub fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), Errno> {
    #[repr(C, align(8))]
    struct Cmsg([u8; 64]);
    let mut cbuf = Cmsg([0; 64]);
    let mut byte = [b'L'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
    let (space, clen) = unsafe {
        (
            libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize,
            libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize,
        )
    };
    // SAFETY: an all-zero msghdr is a valid empty message; we fill in the fields below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at a buffer of `space` (<= 64) aligned bytes, so the first
    // header and its data fit; CMSG_FIRSTHDR/CMSG_DATA stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = clen;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: `msg` and everything it points to live until the call returns.
        let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Receive one fd sent with [`send_fd`]. `Ok(None)` at end of stream (peer closed).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    #[repr(C, align(8))]
    struct Cmsg([u8; 64]);
    let mut cbuf = Cmsg([0; 64]);
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: an all-zero msghdr is a valid empty message; we fill in the fields below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    // SAFETY: `msg` points at live buffers; MSG_CMSG_CLOEXEC makes received fds close-on-exec.
    let r = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if r < 0 {
        return Err(Errno::last());
    }
    if r == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed headers;
    // the CMSG_* walk stays within them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                return Ok(Some(OwnedFd::from_raw_fd(fd)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Err(Errno::EBADMSG)
}

/// Ask the kernel to wake the supervisor on the notifying task's CPU (Linux >= 6.6; older
/// kernels refuse with EINVAL, which only costs latency).
pub fn notif_sync_wakeup(listener: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: an ioctl with an integer argument on a listener fd.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Receive the next notification (blocks unless the listener polled readable).
pub fn notif_recv(listener: BorrowedFd<'_>) -> Result<Notif, Errno> {
    // SAFETY: the kernel requires a zeroed struct; all-zero is a valid seccomp_notif.
    let mut n: Notif = unsafe { std::mem::zeroed() };
    // SAFETY: `n` is a properly sized, writable seccomp_notif.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut Notif,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(n)
    }
}

/// How to answer a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Let the call run as if no filter had matched (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
    /// Fail the call with this errno.
    Errno(i32),
}

/// Answer notification `id`. ENOENT means the caller is gone (killed, or its call interrupted).
pub fn notif_send(listener: BorrowedFd<'_>, id: u64, answer: Answer) -> Result<(), Errno> {
    let (error, flags) = match answer {
        Answer::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Errno(e) => (-e, 0),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags,
    };
    // SAFETY: `resp` is a valid seccomp_notif_resp for the duration of the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Whether notification `id` is still pending (its task still waits in that call).
/// Used after reading the task's memory or opening a pidfd to it: if it is still valid,
/// the pid was not reused in between.
pub fn notif_id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut v = id;
    // SAFETY: the ioctl reads a u64 from a valid pointer.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut v as *mut u64,
        )
    };
    r == 0
}

/// A pidfd for `pid`: with `thread`, for that thread (PIDFD_THREAD, Linux >= 6.9; falls back
/// to a process pidfd, which needs `pid` to lead its thread group, on older kernels).
pub fn pidfd_open(pid: i32, thread: bool) -> Result<OwnedFd, Errno> {
    let open = |flags: libc::c_uint| {
        // SAFETY: pidfd_open with integer arguments; returns a new fd on success.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
        if fd < 0 {
            Err(Errno::last())
        } else {
            // SAFETY: a fresh fd from the kernel, owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
        }
    };
    if !thread {
        return open(0);
    }
    match open(libc::PIDFD_THREAD) {
        Err(Errno::EINVAL) => open(0),
        other => other,
    }
}

/// Wait up to `timeout_ms` for a pidfd to report that its process exited.
pub fn pidfd_wait(pidfd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut fds = [libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    matches!(poll(&mut fds, timeout_ms), Ok(n) if n > 0)
}

/// poll(2), retried on EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> Result<usize, Errno> {
    loop {
        // SAFETY: `fds` is a valid, writable array of pollfd of the length we pass.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

/// Send `sig` through a pidfd (SIGKILL to a thread kills its whole process).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> Result<(), Errno> {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Read up to `buf.len()` bytes of `pid`'s memory at `addr` (what `/proc/<pid>/mem`
/// exposes, read with process_vm_readv: it needs only the ptrace access check, which
/// CAP_SYS_PTRACE passes, where opening `/proc/<pid>/mem` of a task of another uid would
/// also need a DAC capability).
pub fn read_mem(pid: u32, addr: u64, buf: &mut [u8]) -> Result<usize, Errno> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own writable buffer; the remote iovec is only an address
    // in the other process, checked by the kernel.
    let r = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// Close every fd of this process except those in `keep` (close_range over the gaps).
pub fn close_all_except(keep: &[RawFd]) -> Result<(), Errno> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|f| **f >= 0)
        .map(|f| *f as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 0u32;
    for k in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if k > next {
            let last = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range only closes this process's descriptors; none of the
            // closed ones is used afterwards (the caller owns only those in `keep`).
            let r = unsafe { libc::syscall(libc::SYS_close_range, next, last, 0u32) };
            if r < 0 {
                return Err(Errno::last());
            }
        }
        next = k.saturating_add(1);
    }
    Ok(())
}
