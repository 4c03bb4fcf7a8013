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
    if v == 0 {
        return o.blocked(format!("CapEff=0 (CapBnd={bnd})"));
    }
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let init_userns = map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    if init_userns {
        return o.escaped(format!(
            "CapEff={eff} (CapBnd={bnd}, CapAmb={amb}): capabilities in the host's user namespace"
        ));
    }
    // In a user namespace of its own, a capability acts only on what that
    // namespace owns. Still, these reach the kernel or weaken the volume and
    // device defences, so no profile should leave them.
    const MATTER: &[(u32, &str)] = &[
        (1, "DAC_OVERRIDE"),
        (2, "DAC_READ_SEARCH"),
        (3, "FOWNER"),
        (4, "FSETID"),
        (9, "LINUX_IMMUTABLE"),
        (12, "NET_ADMIN"),
        (13, "NET_RAW"),
        (16, "SYS_MODULE"),
        (17, "SYS_RAWIO"),
        (18, "SYS_CHROOT"),
        (19, "SYS_PTRACE"),
        (21, "SYS_ADMIN"),
        (22, "SYS_BOOT"),
        (24, "SYS_RESOURCE"),
        (25, "SYS_TIME"),
        (27, "MKNOD"),
        (30, "AUDIT_CONTROL"),
        (31, "SETFCAP"),
        (32, "MAC_OVERRIDE"),
        (33, "MAC_ADMIN"),
        (34, "SYSLOG"),
        (38, "PERFMON"),
        (39, "BPF"),
    ];
    let bad: Vec<&str> = MATTER
        .iter()
        .filter(|(b, _)| v & (1u64 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    if !bad.is_empty() {
        return o.escaped(format!(
            "CapEff={eff}: holds {bad:?} (in its own user namespace, but they reach the kernel or bypass file and device defences)"
        ));
    }
    o.blocked(format!(
        "CapEff={eff}: only capabilities the profile grants, inside the container's own user namespace (map {}), none of the kernel-reaching ones",
        map.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
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

/// What an unprivileged exec of a privileged binary printed.
enum ExecOutcome {
    Printed(String),
    /// exec itself failed with this errno.
    ExecFailed(i32),
    /// Could not drop to an unprivileged uid first.
    StillRoot,
    NoOutput(i32, String),
    NotTried(String),
}

/// Drop to uid 65534 (if root), exec `bin` with `arg`, and collect what it
/// prints. Output comes back through a file: a pipe is not always allowed
/// (strict profiles deny pipe2 to processes that never need one).
fn exec_unprivileged(o: &mut Outcome, c: &Ctx, bin: &str, arg: &str) -> ExecOutcome {
    let mut dirs = vec!["/tmp".to_string(), "/dev/shm".to_string()];
    dirs.extend(c.volume.clone());
    let mut found = None;
    for d in dirs {
        let f = format!("{d}/ward-probe-out");
        let _ = std::fs::remove_file(&f);
        let fd = sys::open(&f, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC);
        if o.rec(&format!("open {f}"), fd).errno.is_none() {
            found = Some((f, fd));
            break;
        }
    }
    let Some((outfile, out_fd)) = found else {
        return ExecOutcome::NotTried("no writable directory to collect the child's output".into());
    };
    let Some(pid) = sys::fork() else {
        return ExecOutcome::NotTried("fork failed".into());
    };
    if pid == 0 {
        let out = out_fd as i32;
        // SAFETY: plain integers; dup2 onto stdout of this child.
        unsafe {
            // Strict profiles may drop dup2/dup3: fall back to fcntl(F_DUPFD).
            if libc::dup3(out, 1, 0) < 0 && libc::dup2(out, 1) < 0 {
                libc::close(1);
                libc::fcntl(out, libc::F_DUPFD, 1);
            }
            if libc::getuid() == 0 {
                libc::setgroups(0, std::ptr::null());
                libc::setresgid(65534, 65534, 65534);
                libc::setresuid(65534, 65534, 65534);
            }
            if libc::getuid() == 0 || libc::geteuid() == 0 {
                // Still root: a privileged binary proves nothing.
                libc::write(1, b"still-root\n".as_ptr().cast(), 11);
                sys::exit(0);
            }
        }
        let prog = sys::cs(bin);
        let a1 = sys::cs(arg);
        let argv = [prog.as_ptr(), a1.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: argv and envp are NULL-terminated arrays of valid strings.
        unsafe { libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let msg = format!("exec-failed {}\n", sys::errno());
        sys::write_all(1, msg.as_bytes());
        sys::exit(127);
    }
    sys::close(out_fd);
    let status = sys::wait(pid);
    let out = String::from_utf8_lossy(&std::fs::read(&outfile).unwrap_or_default()).into_owned();
    let _ = std::fs::remove_file(&outfile);
    if let Some(e) = out.strip_prefix("exec-failed ") {
        return ExecOutcome::ExecFailed(e.trim().parse().unwrap_or(0));
    }
    if out.contains("still-root") {
        return ExecOutcome::StillRoot;
    }
    if out.trim().is_empty() {
        return ExecOutcome::NoOutput(status, out);
    }
    ExecOutcome::Printed(out.trim().to_string())
}

fn exec_failure(o: Outcome, what: &str, r: ExecOutcome) -> Outcome {
    match r {
        ExecOutcome::ExecFailed(e) if crate::report::is_defence(e) => {
            o.blocked(format!("exec of the {what} was denied ({})", errno_name(e)))
        }
        ExecOutcome::ExecFailed(e) => {
            o.na(format!("exec of the {what} failed ({})", errno_name(e)))
        }
        ExecOutcome::StillRoot => o.na(
            "could not drop to an unprivileged uid (no CAP_SETUID); the runner runs this technique as uid 65534",
        ),
        ExecOutcome::NoOutput(status, out) => o.na(format!(
            "the {what} printed nothing (status {status:#x}, output {out:?})"
        )),
        ExecOutcome::NotTried(why) => o.na(why),
        ExecOutcome::Printed(p) => o.na(format!("unexpected output {p:?}")),
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
    let r = exec_unprivileged(&mut o, c, suid, "euid");
    let nnp = sys::status_field("NoNewPrivs").unwrap_or_default();
    let euid = match &r {
        ExecOutcome::Printed(p) => p.parse::<u32>().ok(),
        _ => None,
    };
    o.rec("exec suid binary", if euid.is_some() { 0 } else { -1 });
    match euid {
        Some(0) => o.escaped(format!(
            "an unprivileged process became euid 0 through a setuid binary (owner uid {}, NoNewPrivs={nnp})",
            st.st_uid
        )),
        Some(e) => o.blocked(format!("setuid bit had no effect: euid stayed {e} (NoNewPrivs={nnp}, owner uid {})", st.st_uid)),
        None => exec_failure(o, "setuid binary", r),
    }
}

/// Drop to uid 65534 and exec /bin/ward-probe-fcap, a copy of the probe the
/// runner gave the file capability cap_dac_override+ep (security.capability
/// v2): does the exec'd process hold it?
pub fn file_caps_exec(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "file-caps-exec",
        "setresuid(65534) then exec /bin/ward-probe-fcap (file capability cap_dac_override+ep) and read its CapEff",
    );
    let bin = "/bin/ward-probe-fcap";
    if sys::stat(bin).is_none() {
        return o.na("no file-capability binary planted at /bin/ward-probe-fcap");
    }
    o.rec("stat fcap binary", 0);
    let r = exec_unprivileged(&mut o, c, bin, "capeff");
    let nnp = sys::status_field("NoNewPrivs").unwrap_or_default();
    let eff = match &r {
        ExecOutcome::Printed(p) => u64::from_str_radix(p, 16).ok(),
        _ => None,
    };
    o.rec("exec fcap binary", if eff.is_some() { 0 } else { -1 });
    match eff {
        Some(0) => o.blocked(format!(
            "the file capability had no effect: CapEff=0 after exec (NoNewPrivs={nnp})"
        )),
        Some(v) => o.escaped(format!(
            "an unprivileged process gained capabilities through a file capability: CapEff={v:016x} (NoNewPrivs={nnp})"
        )),
        // The kernel refuses to run a binary whose file capabilities carry
        // the effective bit but cannot all be granted (no_new_privs or the
        // bounding set withholds them): the defence acting, not a missing file.
        None if matches!(r, ExecOutcome::ExecFailed(libc::EPERM)) => o.blocked(format!(
            "exec refused with EPERM: its file capability cannot be granted (NoNewPrivs={nnp}), so the kernel will not run it"
        )),
        None => exec_failure(o, "file-capability binary", r),
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
