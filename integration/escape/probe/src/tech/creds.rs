//! Credentials: capabilities, uid mapping, no_new_privs and setuid binaries,
//! and reaching processes outside the container (ptrace, process_vm_*).

use crate::report::{errno_name, Outcome, Verdict};
use crate::sys;
use crate::Ctx;

pub fn capabilities(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "capabilities",
        "read CapEff/CapBnd/CapAmb from /proc/self/status",
    );
    let eff = sys::status_field("CapEff");
    let bnd = sys::status_field("CapBnd").unwrap_or_default();
    let amb = sys::status_field("CapAmb").unwrap_or_default();
    o.rec("read /proc/self/status", if eff.is_some() { 0 } else { -1 });
    let Some(eff) = eff else {
        return o.na("/proc/self/status unreadable");
    };
    let v = u64::from_str_radix(&eff, 16).unwrap_or(u64::MAX);
    if v != 0 {
        return o.escaped(format!(
            "CapEff={eff} (CapBnd={bnd}, CapAmb={amb}): the process holds capabilities"
        ));
    }
    o.blocked(format!("CapEff=0 (CapBnd={bnd})"))
}

pub fn uid_map(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "uid0-host-root",
        "read /proc/self/uid_map: is uid 0 host uid 0?",
    );
    let m = std::fs::read_to_string("/proc/self/uid_map");
    o.rec_io("read uid_map", &m);
    let Ok(m) = m else {
        return o.na("uid_map unreadable");
    };
    for l in m.lines() {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [inside, outside, count] = f[..] {
            if inside == 0 && outside == 0 {
                return o.escaped(format!("container uid 0 is host uid 0 (map: {})", l.trim()));
            }
            if inside == 0 || (inside < 1 && inside + count > 0) {
                return o.blocked(format!("container uid 0 maps to host uid {outside}"));
            }
        }
    }
    o.blocked(format!("uid 0 is not mapped to host root: {}", m.trim()))
}

pub fn no_new_privs(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("no-new-privs", "read NoNewPrivs from /proc/self/status");
    let v = sys::status_field("NoNewPrivs");
    o.rec("read NoNewPrivs", if v.is_some() { 0 } else { -1 });
    match v.as_deref() {
        Some("1") => o.blocked("no_new_privs is set: setuid/file caps cannot raise privilege"),
        Some(x) => o.escaped(format!(
            "NoNewPrivs={x}: exec of a setuid binary can gain privilege"
        )),
        None => o.na("field not present"),
    }
}

/// Drop to uid 65534, exec the setuid-root copy of the probe the runner
/// planted at /bin/ward-probe-suid, and read the euid it reports.
pub fn setuid_exec(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "setuid-exec",
        "setresuid(65534) then exec /bin/ward-probe-suid (mode 4755, owner root) and read its euid",
    );
    let suid = "/bin/ward-probe-suid";
    let Some(st) = sys::stat(suid) else {
        return o.na("no setuid binary planted at /bin/ward-probe-suid");
    };
    o.rec("stat suid binary", 0);
    // The euid comes back through a file in /tmp: a pipe is not always
    // allowed (strict profiles deny pipe2 to processes that never need one).
    let mut dirs = vec!["/tmp".to_string(), "/dev/shm".to_string()];
    dirs.extend(c.volume.clone());
    let mut found = None;
    for d in dirs {
        let f = format!("{d}/ward-probe-euid");
        let _ = std::fs::remove_file(&f);
        let fd = sys::open(&f, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC);
        if o.rec(&format!("open {f}"), fd).errno.is_none() {
            found = Some((f, fd));
            break;
        }
    }
    let Some((outfile, out_fd)) = found else {
        return o.na("no writable directory to collect the setuid child's output");
    };
    let outfile = outfile.as_str();
    let p = [-1, out_fd as i32];
    let Some(pid) = sys::fork() else {
        return o.na("fork failed");
    };
    if pid == 0 {
        // SAFETY: plain integers; dup2 onto stdout of this child.
        unsafe {
            // Strict profiles may drop dup2/dup3: fall back to fcntl(F_DUPFD).
            if libc::dup3(p[1], 1, 0) < 0 && libc::dup2(p[1], 1) < 0 {
                libc::close(1);
                libc::fcntl(p[1], libc::F_DUPFD, 1);
            }
            if libc::getuid() == 0 {
                libc::setgroups(0, std::ptr::null());
                libc::setresgid(65534, 65534, 65534);
                libc::setresuid(65534, 65534, 65534);
            }
            if libc::getuid() == 0 || libc::geteuid() == 0 {
                // Still root: a setuid-root binary proves nothing.
                libc::write(1, b"still-root\n".as_ptr().cast(), 11);
                sys::exit(0);
            }
        }
        let prog = sys::cs(suid);
        let a1 = sys::cs("euid");
        let argv = [prog.as_ptr(), a1.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: argv and envp are NULL-terminated arrays of valid strings.
        unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let msg = format!("exec-failed {}\n", sys::errno());
        sys::write_all(1, msg.as_bytes());
        sys::exit(127);
    }
    sys::close(p[1] as i64);
    let status = sys::wait(pid);
    let out = std::fs::read(outfile).unwrap_or_default();
    let _ = std::fs::remove_file(outfile);
    let euid: Option<u32> = String::from_utf8_lossy(&out).trim().parse().ok();
    o.rec("exec suid binary", if euid.is_some() { 0 } else { -1 });
    let nnp = sys::status_field("NoNewPrivs").unwrap_or_default();
    match euid {
        Some(0) => o.escaped(format!(
            "an unprivileged process became euid 0 through a setuid binary (owner uid {}, NoNewPrivs={nnp})",
            st.st_uid
        )),
        Some(e) => o.blocked(format!("setuid bit had no effect: euid stayed {e} (NoNewPrivs={nnp}, owner uid {})", st.st_uid)),
        None if String::from_utf8_lossy(&out).starts_with("exec-failed") => {
            let e: i32 = String::from_utf8_lossy(&out)
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            if crate::report::is_defence(e) {
                o.blocked(format!("exec of the setuid binary was denied ({})", errno_name(e)))
            } else {
                o.na(format!("exec of the setuid binary failed ({})", errno_name(e)))
            }
        }
        None if String::from_utf8_lossy(&out).contains("still-root") => {
            o.na("could not drop to an unprivileged uid (no CAP_SETUID); the runner runs this technique as uid 65534")
        }
        None => o.na(format!(
            "the setuid binary printed no euid (status {status:#x}, output {:?})",
            String::from_utf8_lossy(&out)
        )),
    }
}

fn host_pid(o: &mut Outcome, c: &Ctx) -> Option<i32> {
    let p = c.host_pid?;
    let fd = sys::open(&format!("/proc/{p}/stat"), libc::O_RDONLY);
    o.rec(&format!("open /proc/{p}/stat"), fd);
    sys::close(fd);
    Some(p)
}

pub fn ptrace_host(c: &Ctx) -> Outcome {
    let mut o = Outcome::new("ptrace-host", "ptrace(PTRACE_SEIZE, HOSTPID) then detach");
    let Some(pid) = host_pid(&mut o, c) else {
        return o.na("runner did not pass --host-pid");
    };
    // SAFETY: integer arguments; a successful seize is undone below.
    let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) } as i64;
    o.rec("ptrace(SEIZE)", r);
    if r == 0 {
        // SAFETY: detach the tracee we just seized.
        unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0usize, 0usize) };
        sys::wait(pid);
        // SAFETY: as above.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
        return o.escaped(format!("attached to host process {pid}"));
    }
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::ESRCH) => o.blocked("host process not visible (separate pid namespace)"),
        _ => o.by_last("", Verdict::NotApplicable),
    }
}

fn first_mapping(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|m| {
            let l = m.lines().next()?.to_string();
            usize::from_str_radix(l.split('-').next()?, 16).ok()
        })
        .unwrap_or(0x400000)
}

pub fn process_vm(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "process-vm-rw",
        "process_vm_readv(HOSTPID) and process_vm_writev of the same bytes back",
    );
    let Some(pid) = host_pid(&mut o, c) else {
        return o.na("runner did not pass --host-pid");
    };
    let addr = first_mapping(pid);
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 8,
    };
    // SAFETY: `local` describes our 8-byte buffer; the remote iovec is only
    // interpreted by the kernel in the target's address space.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as i64;
    o.rec("process_vm_readv", r);
    if r == 8 {
        // SAFETY: writes back exactly the bytes just read.
        let w = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) } as i64;
        o.rec("process_vm_writev (same bytes)", w);
        return o.escaped(format!("read host process {pid} memory at {addr:#x}"));
    }
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::ESRCH) => o.blocked("host process not visible (separate pid namespace)"),
        Some(e @ libc::EFAULT) => o.escaped(format!("permission check passed ({})", errno_name(e))),
        _ => o.by_last("", Verdict::NotApplicable),
    }
}

pub fn pidfd_getfd(c: &Ctx) -> Outcome {
    let mut o = Outcome::new("pidfd-getfd", "pidfd_open(HOSTPID) + pidfd_getfd(pidfd, 0)");
    let Some(pid) = host_pid(&mut o, c) else {
        return o.na("runner did not pass --host-pid");
    };
    // SAFETY: integer arguments.
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    o.rec("pidfd_open", pfd);
    if pfd < 0 {
        return match o.results.last().and_then(|c| c.errno) {
            Some(libc::ESRCH) => o.blocked("host process not visible (separate pid namespace)"),
            _ => o.by_last("", Verdict::NotApplicable),
        };
    }
    // SAFETY: `pfd` is our pidfd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pfd, 0, 0) };
    o.rec("pidfd_getfd(0)", fd);
    sys::close(fd);
    sys::close(pfd);
    o.by_last("stole an fd of a host process", Verdict::NotApplicable)
}
