//! Kernel attack surface that seccomp and capabilities must keep out of
//! reach. Where the real call would change the host (reboot, kexec, modules,
//! swap, time, accounting) an invalid argument is passed that the kernel only
//! looks at *after* its permission check: EINVAL/ENOENT/EBADF then prove the
//! call was permitted, EPERM/ENOSYS prove it was not.

use crate::report::{errno_name, is_defence, Outcome, Verdict};
use crate::sys::{self, cs};
use crate::Ctx;

fn after_check(o: Outcome, what: &str) -> Outcome {
    match o.results.last().and_then(|c| c.errno) {
        Some(e) if !is_defence(e) => {
            let call = o.results.last().map(|c| c.call.clone()).unwrap_or_default();
            o.escaped(format!(
                "{call} passed the permission check (then {} on the harmless argument): {what}",
                errno_name(e)
            ))
        }
        _ => o.by_last(what, Verdict::Escaped),
    }
}

#[repr(C)]
struct BpfMapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    rest: [u8; 64],
}

pub fn bpf(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("bpf", "bpf(BPF_MAP_CREATE, array map)");
    let attr = BpfMapCreate {
        map_type: 2, // BPF_MAP_TYPE_ARRAY
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        rest: [0; 64],
    };
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0, // BPF_MAP_CREATE
            &attr as *const BpfMapCreate,
            std::mem::size_of::<BpfMapCreate>(),
        )
    };
    o.rec("bpf(BPF_MAP_CREATE)", fd);
    sys::close(fd);
    o.by_last("eBPF object created", Verdict::NotApplicable)
}

pub fn perf_event_open(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "perf-event-open",
        "perf_event_open(PERF_TYPE_SOFTWARE cpu-clock, self)",
    );
    let mut attr = [0u8; 128];
    // type = PERF_TYPE_SOFTWARE (1), size, config = PERF_COUNT_SW_CPU_CLOCK (0)
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    // flags: disabled(bit0) | exclude_kernel(bit5) | exclude_hv(bit6)
    attr[40..48].copy_from_slice(&(1u64 | 1 << 5 | 1 << 6).to_ne_bytes());
    // SAFETY: `attr` is a zeroed perf_event_attr of the size it declares.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    o.rec("perf_event_open", fd);
    sys::close(fd);
    o.by_last(
        "perf event opened (kernel attack surface)",
        Verdict::NotApplicable,
    )
}

pub fn userfaultfd(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("userfaultfd", "userfaultfd(O_CLOEXEC|UFFD_USER_MODE_ONLY)");
    const UFFD_USER_MODE_ONLY: i32 = 1;
    // SAFETY: flag word only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY) };
    o.rec("userfaultfd", fd);
    sys::close(fd);
    o.by_last(
        "userfaultfd obtained (race-widening primitive)",
        Verdict::NotApplicable,
    )
}

pub fn io_uring(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "io-uring",
        "io_uring_setup(4) (+ io_uring_enter/register on a bad fd)",
    );
    let mut params = [0u8; 120];
    // SAFETY: `params` is a zeroed io_uring_params of 120 bytes.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    o.rec("io_uring_setup", fd);
    sys::close(fd);
    let ok = fd >= 0;
    // SAFETY: plain integers; -1 is an invalid fd by design.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_enter, -1, 0, 0, 0, 0usize, 0) };
    o.rec("io_uring_enter(-1)", r);
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_io_uring_register, -1, 0, 0usize, 0) };
    o.rec("io_uring_register(-1)", r);
    if ok {
        return o.escaped("io_uring instance created");
    }
    let e = o.results[0].errno.unwrap_or(0);
    if is_defence(e) {
        o.blocked(format!("io_uring_setup failed with {}", errno_name(e)))
    } else {
        o.na(format!("io_uring_setup failed with {}", errno_name(e)))
    }
}

pub fn keyctl(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "keyctl",
        "keyctl(KEYCTL_GET_KEYRING_ID, session keyring, create)",
    );
    const KEYCTL_GET_KEYRING_ID: i64 = 0;
    const KEY_SPEC_SESSION_KEYRING: i64 = -3;
    // SAFETY: plain integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            1,
        )
    };
    o.rec("keyctl(GET_KEYRING_ID)", r);
    o.by_last("kernel keyring reachable", Verdict::NotApplicable)
}

pub fn add_key(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "add-key",
        "add_key(\"user\", \"ward-probe\", ..., process keyring)",
    );
    let (t, d) = (cs("user"), cs("ward-probe"));
    const KEY_SPEC_PROCESS_KEYRING: i64 = -2;
    // SAFETY: strings NUL-terminated; payload pointer/length describe `d`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            t.as_ptr(),
            d.as_ptr(),
            d.as_ptr(),
            4usize,
            KEY_SPEC_PROCESS_KEYRING,
        )
    };
    o.rec("add_key", r);
    o.by_last("key added to a kernel keyring", Verdict::NotApplicable)
}

pub fn request_key(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "request-key",
        "request_key(\"user\", \"ward-probe-missing\")",
    );
    let (t, d) = (cs("user"), cs("ward-probe-missing"));
    // SAFETY: strings NUL-terminated; no callout info.
    let r = unsafe { libc::syscall(libc::SYS_request_key, t.as_ptr(), d.as_ptr(), 0usize, 0) };
    o.rec("request_key", r);
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::ENOKEY) => o.escaped("request_key reached the keyring search (ENOKEY)"),
        _ => o.by_last("request_key", Verdict::NotApplicable),
    }
}

pub fn kexec_load(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "kexec-load",
        "kexec_load(0, 1000 segments, NULL, invalid flags); kexec_file_load(-1, -1, invalid flags)",
    );
    // SAFETY: the segment count is over KEXEC_SEGMENT_MAX and flags invalid:
    // the kernel rejects it after the CAP_SYS_BOOT check, nothing is loaded.
    let r = unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 1000usize, 0usize, 0x8000usize) };
    o.rec("kexec_load", r);
    let first = o.results[0].clone();
    // SAFETY: invalid fds and flags; rejected without loading anything.
    let r2 = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            -1,
            -1,
            0usize,
            0usize,
            0x8000usize,
        )
    };
    o.rec("kexec_file_load", r2);
    if first.errno.is_some_and(|e| !is_defence(e)) {
        return o.escaped(
            "kexec_load passed the CAP_SYS_BOOT check (rejected only for the invalid argument)",
        );
    }
    after_check(o, "kexec_file_load reachable")
}

pub fn init_module(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "init-module",
        "init_module(NULL, 0, \"\"); finit_module(-1, \"\", 0)",
    );
    let e = cs("");
    // SAFETY: a zero-length image is rejected after the CAP_SYS_MODULE check.
    let r = unsafe { libc::syscall(libc::SYS_init_module, 0usize, 0usize, e.as_ptr()) };
    o.rec("init_module", r);
    let first = o.results[0].clone();
    // SAFETY: -1 is an invalid fd by design.
    let r2 = unsafe { libc::syscall(libc::SYS_finit_module, -1, e.as_ptr(), 0) };
    o.rec("finit_module(-1)", r2);
    if first.errno.is_some_and(|e| !is_defence(e)) {
        return o.escaped("init_module passed the CAP_SYS_MODULE check");
    }
    after_check(o, "finit_module reachable")
}

pub fn delete_module(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "delete-module",
        "delete_module(\"ward_probe_missing\", O_NONBLOCK) (ENOENT = permitted)",
    );
    let n = cs("ward_probe_missing");
    // SAFETY: `n` is NUL-terminated; the module does not exist.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, n.as_ptr(), libc::O_NONBLOCK) };
    o.rec("delete_module", r);
    after_check(o, "modules could be unloaded")
}

/// Shocker (2014): open_by_handle_at with CAP_DAC_READ_SEARCH opens any inode
/// of a filesystem that has a file bind-mounted into the container.
pub fn open_by_handle_at(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "open-by-handle-at",
        "name_to_handle_at(volume) + open_by_handle_at(ext4 root inode 2)",
    );
    let dir = c.volume.clone().unwrap_or_else(|| "/".into());
    let mnt = sys::open(&dir, libc::O_RDONLY | libc::O_DIRECTORY);
    o.rec(&format!("open {dir}"), mnt);
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[128]; }
    let mut fh = [0u8; 136];
    fh[0..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id = 0i32;
    let p = cs(&dir);
    // SAFETY: `fh` is a file_handle with 128 bytes of room; `mount_id` writable.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            p.as_ptr(),
            fh.as_mut_ptr(),
            &mut mount_id,
            0,
        )
    };
    o.rec("name_to_handle_at", r);
    // Root inode of an ext4 filesystem: FILEID_INO32_GEN (1), ino 2, gen 0.
    let mut root = [0u8; 16];
    root[0..4].copy_from_slice(&8u32.to_ne_bytes());
    root[4..8].copy_from_slice(&1i32.to_ne_bytes());
    root[8..12].copy_from_slice(&2u32.to_ne_bytes());
    // SAFETY: `root` is a valid 8-byte file_handle; `mnt` an fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mnt as i32,
            root.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
    };
    o.rec("open_by_handle_at(ino 2)", fd);
    sys::close(mnt);
    if fd >= 0 {
        let mut names = Vec::new();
        if let Ok(rd) = std::fs::read_dir(format!("/proc/self/fd/{fd}")) {
            names = rd
                .flatten()
                .take(6)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
        }
        sys::close(fd);
        return o.escaped(format!(
            "opened the volume filesystem's root inode: {names:?}"
        ));
    }
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EACCES) => o.by_last("", Verdict::NotApplicable),
        Some(libc::ESTALE) | Some(libc::EINVAL) => o.escaped(
            "open_by_handle_at passed the CAP_DAC_READ_SEARCH check (handle itself not valid on this filesystem)",
        ),
        _ => o.by_last("open_by_handle_at", Verdict::NotApplicable),
    }
}

pub fn iopl(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("iopl", "iopl(3)");
    // SAFETY: raises the I/O privilege level of this short-lived child only.
    let r = unsafe { libc::syscall(libc::SYS_iopl, 3) };
    o.rec("iopl(3)", r);
    o.by_last("raw port I/O allowed", Verdict::NotApplicable)
}

pub fn ioperm(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("ioperm", "ioperm(0x80, 1, 1)");
    // SAFETY: grants this short-lived child access to one port; no I/O done.
    let r = unsafe { libc::syscall(libc::SYS_ioperm, 0x80usize, 1usize, 1) };
    o.rec("ioperm", r);
    o.by_last("I/O port access granted", Verdict::NotApplicable)
}

pub fn swapon(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "swapon",
        "swapon(MISSING, 0); swapoff(MISSING) (ENOENT = permitted)",
    );
    let p = cs("/ward-probe-missing-swap");
    // SAFETY: the path does not exist; the call fails after its capability check.
    let r = unsafe { libc::syscall(libc::SYS_swapon, p.as_ptr(), 0) };
    o.rec("swapon", r);
    let first = o.results[0].clone();
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_swapoff, p.as_ptr()) };
    o.rec("swapoff", r);
    if first.errno.is_some_and(|e| !is_defence(e)) {
        return o.escaped("swapon passed the CAP_SYS_ADMIN check");
    }
    after_check(o, "swapoff reachable")
}

pub fn reboot(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "reboot",
        "reboot(bad magic) (EINVAL = CAP_SYS_BOOT present; never reboots)",
    );
    // SAFETY: wrong magic numbers: the kernel returns EINVAL after the
    // capability check and never acts on `cmd`.
    let r = unsafe { libc::syscall(libc::SYS_reboot, 0x1234usize, 0x5678usize, 0usize, 0usize) };
    o.rec("reboot(bad magic)", r);
    after_check(o, "reboot reachable")
}

pub fn settimeofday(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "settimeofday",
        "settimeofday(NULL, NULL) (success = CAP_SYS_TIME; changes nothing)",
    );
    // SAFETY: both pointers null: the kernel checks CAP_SYS_TIME and sets nothing.
    let r = unsafe { libc::syscall(libc::SYS_settimeofday, 0usize, 0usize) };
    o.rec("settimeofday(NULL,NULL)", r);
    o.by_last("the host clock could be set", Verdict::NotApplicable)
}

pub fn clock_settime(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "clock-settime",
        "clock_settime(CLOCK_REALTIME, now) (sets the clock to the time just read)",
    );
    // SAFETY: zeroed timespec is valid.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // SAFETY: `ts` is a valid timespec.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clock_settime,
            libc::CLOCK_REALTIME,
            &ts as *const libc::timespec,
        )
    };
    o.rec("clock_settime(REALTIME)", r);
    o.by_last("the host clock was set", Verdict::NotApplicable)
}

pub fn adjtimex(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "adjtimex",
        "adjtimex(modes=ADJ_TICK, tick=1) (EINVAL = CAP_SYS_TIME present)",
    );
    // SAFETY: zeroed timex is valid.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = libc::ADJ_TICK;
    tx.tick = 1;
    // SAFETY: `tx` is a valid timex; tick=1 is out of range and rejected
    // after the capability check.
    let r = unsafe { libc::syscall(libc::SYS_adjtimex, &mut tx as *mut libc::timex) };
    o.rec("adjtimex(ADJ_TICK)", r);
    after_check(o, "clock discipline adjustable")
}

pub fn acct(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("acct", "acct(MISSING) (ENOENT = CAP_SYS_PACCT present)");
    let p = cs("/ward-probe-missing/acct");
    // SAFETY: the path does not exist; nothing is switched on.
    let r = unsafe { libc::syscall(libc::SYS_acct, p.as_ptr()) };
    o.rec("acct", r);
    after_check(o, "process accounting could be redirected")
}

pub fn quotactl(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "quotactl",
        "quotactl(Q_QUOTAON, \"/dev/ward-probe-missing\")",
    );
    let p = cs("/dev/ward-probe-missing");
    let cmd = 0x800002u32 << 8; // QCMD(Q_QUOTAON, USRQUOTA = 0)
                                // SAFETY: the special file does not exist; nothing is switched on.
    let r = unsafe { libc::syscall(libc::SYS_quotactl, cmd as i32, p.as_ptr(), 0, 0usize) };
    o.rec("quotactl(Q_QUOTAON)", r);
    match o.results.last().and_then(|c| c.errno) {
        Some(e) if is_defence(e) => o.by_last("", Verdict::NotApplicable),
        Some(e) => o.na(format!(
            "quotactl is reachable ({}) but no quota device exists to act on; changes need CAP_SYS_ADMIN",
            errno_name(e)
        )),
        None => o.escaped("quota switched on"),
    }
}

pub fn syslog(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("syslog", "syslog(SYSLOG_ACTION_READ_ALL, 256 bytes)");
    let mut buf = [0u8; 256];
    // SAFETY: `buf` has 256 writable bytes.
    let r = unsafe { libc::syscall(libc::SYS_syslog, 3, buf.as_mut_ptr(), 256) };
    o.rec("syslog(READ_ALL)", r);
    if r > 0 {
        return o.escaped(format!("read {r} bytes of the host kernel log"));
    }
    o.by_last("kernel log readable", Verdict::NotApplicable)
}

pub fn personality(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "personality",
        "personality(ADDR_NO_RANDOMIZE|READ_IMPLIES_EXEC) (disables ASLR for children)",
    );
    // SAFETY: changes the execution domain of this short-lived child only.
    let r = unsafe {
        libc::personality((libc::ADDR_NO_RANDOMIZE | libc::READ_IMPLIES_EXEC) as libc::c_ulong)
    } as i64;
    o.rec("personality", r);
    // SAFETY: 0xffffffff queries without changing.
    let now = unsafe { libc::personality(0xffffffff) };
    if r >= 0 && now & libc::ADDR_NO_RANDOMIZE != 0 {
        return o.escaped("ASLR disabled via personality()");
    }
    o.by_last("personality", Verdict::Blocked)
}

pub fn lookup_dcookie(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("lookup-dcookie", "lookup_dcookie(0, buf, 64)");
    let mut buf = [0u8; 64];
    // SAFETY: `buf` has 64 writable bytes.
    let r = unsafe { libc::syscall(libc::SYS_lookup_dcookie, 0u64, buf.as_mut_ptr(), 64usize) };
    o.rec("lookup_dcookie", r);
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::ENOSYS) => o.na(
            "ENOSYS: removed from this kernel (6.8+) or denied by seccomp; not distinguishable",
        ),
        _ => after_check(o, "lookup_dcookie reachable"),
    }
}

/// Dirty Pipe / page-cache bugs live behind splice, vmsplice and tee. A
/// shared kernel cannot stop a bug in an allowed call; this reports whether
/// the profile keeps them reachable.
pub fn splice_surface(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "splice-page-cache",
        "pipe + splice(/bin/busybox -> pipe, 1 byte) (Dirty Pipe surface)",
    );
    let mut p = [0i32; 2];
    // SAFETY: `p` is a 2-element array for pipe2 to fill.
    let r = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } as i64;
    if o.rec("pipe2", r).errno.is_some() {
        return o.by_last("", Verdict::NotApplicable);
    }
    let fd = sys::open("/bin/busybox", libc::O_RDONLY);
    let mut off: i64 = 0;
    // SAFETY: valid fds and offset pointer.
    let r = unsafe { libc::splice(fd as i32, &mut off, p[1], std::ptr::null_mut(), 1, 0) } as i64;
    o.rec("splice(file -> pipe)", r);
    sys::close(fd);
    sys::close(p[0] as i64);
    sys::close(p[1] as i64);
    match o.results.last().and_then(|c| c.errno) {
        None => o.na(
            "splice is reachable: page-cache bugs in allowed syscalls (Dirty Pipe, CVE-2022-0847) are only \
             stopped by a patched kernel on a shared-kernel runtime",
        ),
        Some(e) if is_defence(e) => o.blocked(format!("splice denied ({})", errno_name(e))),
        Some(e) => o.na(format!("splice failed with {}", errno_name(e))),
    }
}
