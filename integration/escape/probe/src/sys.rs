//! Thin wrappers over the raw calls the techniques make. Every `unsafe`
//! block in the probe lives here or right at a raw `libc::syscall` site.

use std::ffi::CString;

pub fn cs(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new("/").expect("static"))
}

/// open(2) returning the raw result; the caller closes a valid fd.
pub fn open(path: &str, flags: i32) -> i64 {
    let p = cs(path);
    // SAFETY: `p` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) as i64 }
}

pub fn openat(dirfd: i32, path: &str, flags: i32) -> i64 {
    let p = cs(path);
    // SAFETY: `p` is a valid NUL-terminated string; dirfd is a plain integer.
    unsafe { libc::openat(dirfd, p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) as i64 }
}

pub fn close(fd: i64) {
    if fd >= 0 {
        // SAFETY: closing an fd this process opened and owns.
        unsafe { libc::close(fd as i32) };
    }
}

pub fn fstat(fd: i32) -> Option<libc::stat> {
    // SAFETY: zeroed `stat` is a valid value for this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer.
    let r = unsafe { libc::fstat(fd, &mut st) };
    (r == 0).then_some(st)
}

pub fn stat(path: &str) -> Option<libc::stat> {
    let p = cs(path);
    // SAFETY: zeroed `stat` is a valid value for this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is NUL-terminated and `st` writable.
    let r = unsafe { libc::stat(p.as_ptr(), &mut st) };
    (r == 0).then_some(st)
}

pub fn lstat(path: &str) -> Option<libc::stat> {
    let p = cs(path);
    // SAFETY: zeroed `stat` is a valid value for this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `p` is NUL-terminated and `st` writable.
    let r = unsafe { libc::lstat(p.as_ptr(), &mut st) };
    (r == 0).then_some(st)
}

/// Read up to `n` bytes from an fd.
pub fn read_some(fd: i32, n: usize) -> (i64, Vec<u8>) {
    let mut buf = vec![0u8; n];
    // SAFETY: `buf` has `n` writable bytes.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), n) } as i64;
    if r > 0 {
        buf.truncate(r as usize);
    } else {
        buf.clear();
    }
    (r, buf)
}

pub fn write_all(fd: i32, data: &[u8]) -> i64 {
    // SAFETY: `data` is a valid readable slice.
    unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) as i64 }
}

pub fn errno() -> i32 {
    crate::report::last_errno()
}

/// fork(2): Some(0) in the child, Some(pid) in the parent.
pub fn fork() -> Option<i32> {
    // SAFETY: the probe is single-threaded when it forks (techniques that
    // start threads do so only after their own fork), so the child may run
    // arbitrary code.
    let pid = unsafe { libc::fork() };
    (pid >= 0).then_some(pid)
}

/// waitpid returning the raw status.
pub fn wait(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r >= 0 || errno() != libc::EINTR {
            return status;
        }
    }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns; it skips atexit handlers, which is what a
    // forked child wants.
    unsafe { libc::_exit(code) }
}

pub fn kill(pid: i32, sig: i32) -> i64 {
    // SAFETY: plain integer arguments.
    unsafe { libc::kill(pid, sig) as i64 }
}

/// Read a small text file fully, or None.
pub fn read_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A field of /proc/self/status, e.g. "CapEff".
pub fn status_field(name: &str) -> Option<String> {
    let s = read_text("/proc/self/status")?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

/// CPUs in our affinity mask.
pub fn cpus_allowed() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is writable and its size is passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 1;
    }
    // SAFETY: `set` was filled by the kernel.
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}
