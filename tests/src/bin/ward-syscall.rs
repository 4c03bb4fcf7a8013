//! A tiny helper run inside test containers: makes raw syscalls and prints what the kernel
//! (and the container's seccomp filter) answered, one line each: `NAME errno=EPERM` or
//! `NAME ret=N`.
//!
//! - `ward-syscall NAME [ARG...]`: one call (args are decimal, 0x-hex or 0o-octal, default 0;
//!   an argument starting with `/` is passed as a pointer to that path, NUL-terminated).
//! - `ward-syscall threats`: each THREATS.md syscall once, with harmless arguments.
//! - `ward-syscall loop N NAME [ARG...]`: the call N times; prints a summary line
//!   `NAME x N errno=E` (first errno seen) and the nanoseconds per call.
//! - `ward-syscall hold SECS N NAME [ARG...]`: the call up to N times, keeping what each
//!   returned (fds stay open) and stopping at the first error; prints `NAME held K errno=E`
//!   (E the errno that stopped it, or none), then keeps them SECS seconds before exiting.

use std::time::Instant;

/// Syscall numbers of the native architecture.
fn nr(name: &str) -> Option<libc::c_long> {
    use libc::*;
    Some(match name {
        "getppid" => SYS_getppid,
        #[cfg(target_arch = "x86_64")]
        "open" => SYS_open,
        "openat" => SYS_openat,
        "getpid" => SYS_getpid,
        "socket" => SYS_socket,
        "unshare" => SYS_unshare,
        "setns" => SYS_setns,
        "clone3" => SYS_clone3,
        "mount" => SYS_mount,
        "umount2" => SYS_umount2,
        "pivot_root" => SYS_pivot_root,
        "fsopen" => SYS_fsopen,
        "fsconfig" => SYS_fsconfig,
        "fsmount" => SYS_fsmount,
        "move_mount" => SYS_move_mount,
        "open_tree" => SYS_open_tree,
        "mount_setattr" => SYS_mount_setattr,
        "bpf" => SYS_bpf,
        "perf_event_open" => SYS_perf_event_open,
        "userfaultfd" => SYS_userfaultfd,
        "io_uring_setup" => SYS_io_uring_setup,
        "io_uring_enter" => SYS_io_uring_enter,
        "io_uring_register" => SYS_io_uring_register,
        "keyctl" => SYS_keyctl,
        "add_key" => SYS_add_key,
        "request_key" => SYS_request_key,
        "kexec_load" => SYS_kexec_load,
        "kexec_file_load" => SYS_kexec_file_load,
        "init_module" => SYS_init_module,
        "finit_module" => SYS_finit_module,
        "delete_module" => SYS_delete_module,
        "open_by_handle_at" => SYS_open_by_handle_at,
        "name_to_handle_at" => SYS_name_to_handle_at,
        "ptrace" => SYS_ptrace,
        "process_vm_readv" => SYS_process_vm_readv,
        "process_vm_writev" => SYS_process_vm_writev,
        "pidfd_getfd" => SYS_pidfd_getfd,
        #[cfg(target_arch = "x86_64")]
        "iopl" => SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        "ioperm" => SYS_ioperm,
        "swapon" => SYS_swapon,
        "swapoff" => SYS_swapoff,
        "reboot" => SYS_reboot,
        "settimeofday" => SYS_settimeofday,
        "clock_settime" => SYS_clock_settime,
        "adjtimex" => SYS_adjtimex,
        "acct" => SYS_acct,
        "quotactl" => SYS_quotactl,
        #[cfg(target_arch = "x86_64")]
        "lookup_dcookie" => SYS_lookup_dcookie,
        "syslog" => SYS_syslog,
        "vmsplice" => SYS_vmsplice,
        "inotify_init1" => SYS_inotify_init1,
        _ => return None,
    })
}

/// THREATS.md's syscalls, each with arguments that do nothing harmful if a call got through
/// (invalid pointers or flags: EFAULT/EINVAL rather than an effect).
const THREATS: &[(&str, [u64; 6])] = &[
    ("unshare", [0x1000_0000, 0, 0, 0, 0, 0]), // CLONE_NEWUSER
    ("setns", [u64::MAX, 0, 0, 0, 0, 0]),
    ("clone3", [0, 0, 0, 0, 0, 0]),
    ("mount", [0, 0, 0, 0, 0, 0]),
    ("umount2", [0, 0, 0, 0, 0, 0]),
    ("pivot_root", [0, 0, 0, 0, 0, 0]),
    ("fsopen", [0, 0, 0, 0, 0, 0]),
    ("fsconfig", [u64::MAX, 0, 0, 0, 0, 0]),
    ("fsmount", [u64::MAX, 0, 0, 0, 0, 0]),
    ("move_mount", [u64::MAX, 0, u64::MAX, 0, 0, 0]),
    ("open_tree", [u64::MAX, 0, 0, 0, 0, 0]),
    ("mount_setattr", [u64::MAX, 0, 0, 0, 0, 0]),
    ("bpf", [u64::MAX, 0, 0, 0, 0, 0]),
    ("perf_event_open", [0, 0, 0, 0, 0, 0]),
    ("userfaultfd", [u64::MAX, 0, 0, 0, 0, 0]),
    ("io_uring_setup", [0, 0, 0, 0, 0, 0]),
    ("io_uring_enter", [u64::MAX, 0, 0, 0, 0, 0]),
    ("io_uring_register", [u64::MAX, 0, 0, 0, 0, 0]),
    ("keyctl", [u64::MAX, 0, 0, 0, 0, 0]),
    ("add_key", [0, 0, 0, 0, 0, 0]),
    ("request_key", [0, 0, 0, 0, 0, 0]),
    ("kexec_load", [0, 0, 0, u64::MAX, 0, 0]),
    ("kexec_file_load", [u64::MAX, u64::MAX, 0, 0, u64::MAX, 0]),
    ("init_module", [0, 0, 0, 0, 0, 0]),
    ("finit_module", [u64::MAX, 0, u64::MAX, 0, 0, 0]),
    ("delete_module", [0, 0, 0, 0, 0, 0]),
    ("open_by_handle_at", [u64::MAX, 0, 0, 0, 0, 0]),
    ("name_to_handle_at", [u64::MAX, 0, 0, 0, 0, 0]),
    ("ptrace", [u64::MAX, 0, 0, 0, 0, 0]),
    ("process_vm_readv", [0, 0, 0, 0, 0, 0]),
    ("process_vm_writev", [0, 0, 0, 0, 0, 0]),
    ("pidfd_getfd", [u64::MAX, 0, 0, 0, 0, 0]),
    #[cfg(target_arch = "x86_64")]
    ("iopl", [0, 0, 0, 0, 0, 0]),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", [0, 0, 0, 0, 0, 0]),
    ("swapon", [0, 0, 0, 0, 0, 0]),
    ("swapoff", [0, 0, 0, 0, 0, 0]),
    ("reboot", [0, 0, 0, 0, 0, 0]),
    ("settimeofday", [0, 0, 0, 0, 0, 0]),
    ("clock_settime", [u64::MAX, 0, 0, 0, 0, 0]),
    ("adjtimex", [0, 0, 0, 0, 0, 0]),
    ("acct", [1, 0, 0, 0, 0, 0]),
    ("quotactl", [0, 0, 0, 0, 0, 0]),
    #[cfg(target_arch = "x86_64")]
    ("lookup_dcookie", [0, 0, 0, 0, 0, 0]),
    ("syslog", [u64::MAX, 0, 0, 0, 0, 0]),
    ("vmsplice", [u64::MAX, 0, 0, 0, 0, 0]),
];

fn parse(s: &str) -> u64 {
    let r = match (s.strip_prefix("0x"), s.strip_prefix("0o")) {
        (Some(h), _) => u64::from_str_radix(h, 16),
        (_, Some(o)) => u64::from_str_radix(o, 8),
        _ => s.parse::<i64>().map(|v| v as u64),
    };
    r.unwrap_or_else(|_| {
        eprintln!("ward-syscall: bad number {s:?}");
        std::process::exit(2)
    })
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::EACCES => "EACCES".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EBADF => "EBADF".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        libc::EMFILE => "EMFILE".into(),
        other => format!("E{other}"),
    }
}

fn call(n: libc::c_long, a: &[u64; 6]) -> Result<i64, i32> {
    // SAFETY: a raw syscall with integer arguments; the callers pass invalid pointers only
    // where the kernel checks them (EFAULT) and nothing here relies on memory being changed.
    let r = unsafe { libc::syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn report(name: &str, r: Result<i64, i32>) {
    match r {
        Ok(v) => println!("{name} ret={v}"),
        Err(e) => println!("{name} errno={}", errno_name(e)),
    }
}

fn args_of(rest: &[String]) -> [u64; 6] {
    let mut a = [0u64; 6];
    for (i, s) in rest.iter().take(6).enumerate() {
        a[i] = if s.starts_with('/') {
            // Leaked on purpose: the process makes a handful of calls and exits.
            let c = std::ffi::CString::new(s.as_str()).unwrap_or_else(|_| {
                eprintln!("ward-syscall: NUL in path {s:?}");
                std::process::exit(2)
            });
            c.into_raw() as u64
        } else {
            parse(s)
        };
    }
    a
}

fn lookup(name: &str) -> libc::c_long {
    nr(name).unwrap_or_else(|| {
        eprintln!("ward-syscall: unknown syscall {name:?}");
        std::process::exit(2)
    })
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("threats") => {
            for (name, a) in THREATS {
                report(name, call(lookup(name), a));
            }
        }
        Some("loop") if argv.len() >= 3 => {
            let count = parse(&argv[1]);
            let name = &argv[2];
            let n = lookup(name);
            let a = args_of(&argv[3..]);
            let mut first = None;
            let t = Instant::now();
            for _ in 0..count {
                if let Err(e) = call(n, &a) {
                    first.get_or_insert(e);
                }
            }
            let ns = t.elapsed().as_nanos() / u128::from(count.max(1));
            let e = first.map_or("none".into(), errno_name);
            println!("{name} x {count} errno={e} ns_per_call={ns}");
        }
        Some("hold") if argv.len() >= 4 => {
            let secs = parse(&argv[1]);
            let count = parse(&argv[2]);
            let name = &argv[3];
            let (n, a) = (lookup(name), args_of(&argv[4..]));
            let mut held = 0;
            let mut stop = None;
            while held < count {
                match call(n, &a) {
                    Ok(_) => held += 1,
                    Err(e) => {
                        stop = Some(e);
                        break;
                    }
                }
            }
            let e = stop.map_or("none".into(), errno_name);
            println!("{name} held {held} errno={e}");
            std::thread::sleep(std::time::Duration::from_secs(secs));
        }
        Some(name) => report(name, call(lookup(name), &args_of(&argv[1..]))),
        None => {
            eprintln!("usage: ward-syscall NAME [ARG...] | threats | loop N NAME [ARG...]");
            std::process::exit(2)
        }
    }
}
