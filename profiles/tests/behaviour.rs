//! Filters installed for real, on a throwaway thread.

mod common;

use common::{sys, under_filter};
use ward_profiles::*;

const EPERM: i32 = libc::EPERM;

fn program(name: &str, mode: Mode) -> Vec<seccompiler::BpfProgram> {
    let p = load(name, &[]).unwrap();
    compile_seccomp(&p, Arch::native(), mode).unwrap().filters
}

#[test]
fn default_blocks_namespaces_and_keeps_basics() {
    let r = under_filter(program("default", Mode::Enforce), || {
        (
            sys(
                libc::SYS_unshare,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            ),
            sys(libc::SYS_clone3, [0; 6]),
            sys(libc::SYS_getpid, [0; 6]),
            sys(libc::SYS_setns, [u64::MAX, 0, 0, 0, 0, 0]),
            sys(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0, 0]),
            sys(libc::SYS_fsopen, [0; 6]),
            // clone with a namespace flag is refused before anything is created.
            sys(
                libc::SYS_clone,
                [(libc::CLONE_NEWNET | libc::SIGCHLD) as u64, 0, 0, 0, 0, 0],
            ),
            sys(
                libc::SYS_socket,
                [libc::AF_PACKET as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0],
            ),
            // Garbage in the upper half does not smuggle AF_PACKET past the rule.
            sys(
                libc::SYS_socket,
                [
                    0xabcd_0000_0000_0000 | libc::AF_PACKET as u64,
                    3,
                    0,
                    0,
                    0,
                    0,
                ],
            ),
            sys(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
            sys(
                libc::SYS_personality,
                [libc::READ_IMPLIES_EXEC as u64, 0, 0, 0, 0, 0],
            ),
        )
    });
    assert_eq!(r.0, Err(EPERM), "unshare");
    assert_eq!(r.1, Err(libc::ENOSYS), "clone3");
    assert_eq!(r.2, Ok(std::process::id() as i64), "getpid");
    assert_eq!(r.3, Err(EPERM), "setns");
    assert_eq!(r.4, Err(EPERM), "io_uring_setup");
    assert_eq!(r.5, Err(EPERM), "fsopen");
    assert_eq!(r.6, Err(EPERM), "clone(CLONE_NEWNET)");
    assert_eq!(r.7, Err(libc::EAFNOSUPPORT), "socket(AF_PACKET)");
    assert_eq!(
        r.8,
        Err(libc::EAFNOSUPPORT),
        "socket(AF_PACKET) with high bits"
    );
    assert!(r.9.is_ok(), "personality query: {:?}", r.9);
    assert_eq!(r.10, Err(EPERM), "personality(READ_IMPLIES_EXEC)");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_calls_are_refused() {
    let r = under_filter(program("default", Mode::Enforce), || {
        sys(0x4000_0000 | libc::SYS_getpid, [0; 6])
    });
    assert_eq!(r, Err(libc::ENOSYS));
}

#[test]
fn strict_allows_only_unix_sockets() {
    let r = under_filter(program("strict", Mode::Enforce), || {
        let inet = sys(
            libc::SYS_socket,
            [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        );
        let unix = sys(
            libc::SYS_socket,
            [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        );
        if let Ok(fd) = unix {
            let _ = sys(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        }
        let unshare = sys(libc::SYS_unshare, [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]);
        let getppid = sys(libc::SYS_getppid, [0; 6]);
        (inet, unix, unshare, getppid)
    });
    assert_eq!(r.0, Err(EPERM), "socket(AF_INET)");
    assert!(r.1.is_ok(), "socket(AF_UNIX): {:?}", r.1);
    assert_eq!(r.2, Err(EPERM), "unshare");
    assert!(r.3.is_ok(), "getppid");
}

#[test]
fn report_mode_notifies_denied_calls() {
    // Installed without a listener, USER_NOTIF results fail with ENOSYS: proof that the
    // denied calls carry SECCOMP_RET_USER_NOTIF while allowed calls stay allowed.
    let r = under_filter(program("default", Mode::EnforceAndReport), || {
        (
            sys(
                libc::SYS_unshare,
                [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
            ),
            sys(libc::SYS_getpid, [0; 6]),
        )
    });
    assert_eq!(r.0, Err(libc::ENOSYS));
    assert!(r.1.is_ok());
}

#[test]
fn oci_spec_seccomp_is_enforced() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "syscalls": [
            {"names": ["getpid", "futex", "munmap", "madvise", "mmap", "mprotect", "exit",
                       "exit_group", "sigaltstack", "rt_sigprocmask", "sched_yield", "rseq",
                       "set_robust_list"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    }"#;
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(json).unwrap();
    let filters = compile_oci_seccomp(&s, Arch::native()).unwrap();
    let r = under_filter(filters, || {
        let unix = sys(
            libc::SYS_socket,
            [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        );
        (
            sys(libc::SYS_getpid, [0; 6]),
            sys(libc::SYS_getppid, [0; 6]),
            sys(libc::SYS_getuid, [0; 6]),
            unix.is_ok(),
            sys(
                libc::SYS_socket,
                [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
            ),
        )
    });
    assert!(r.0.is_ok());
    assert_eq!(r.1, Err(libc::EACCES), "not listed: defaultErrnoRet");
    assert_eq!(r.2, Err(libc::ENOSYS), "errnoRet");
    assert!(r.3, "socket(AF_UNIX) allowed by arg rule");
    assert_eq!(r.4, Err(libc::EACCES), "socket(AF_INET) falls to default");
}

#[test]
fn oci_unsupported_fields_are_named() {
    let bad = [
        (r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "defaultAction"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_TRACE"}]}"#,
            "syscalls[0].action",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            "syscalls[0].args[0].index",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#,
            "listenerPath",
        ),
    ];
    for (json, field) in bad {
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(json).unwrap();
        let e = compile_oci_seccomp(&s, Arch::native())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{json}: {e}");
    }
    // Names unknown here (other-arch or removed syscalls, e.g. podman's pciconfig_iobase) are
    // skipped, as runc/libseccomp do, not refused.
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid","pciconfig_iobase"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    assert!(compile_oci_seccomp(&s, Arch::native()).is_ok());
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["socketcall","getppid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let f = compile_oci_seccomp(&s, Arch::native()).unwrap();
    let r = under_filter(f, || sys(libc::SYS_getppid, [0; 6]));
    assert_eq!(r, Err(EPERM));
}
