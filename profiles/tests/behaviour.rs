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

/// A rw volume is idmapped, so container root creates files there as host root: every
/// enforcing builtin refuses set-id mode bits and device nodes, for real on this kernel,
/// while plain modes still work (where the profile allows the call at all).
#[test]
fn set_id_files_and_devices_refused_by_every_enforcing_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let c = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    for name in builtin_names().iter().filter(|n| **n != "record") {
        let (f, nf, nd, dev) = (
            c(&file),
            c(&dir.path().join(format!("new-{name}"))),
            c(&dir.path().join(format!("dir-{name}"))),
            c(&dir.path().join(format!("dev-{name}"))),
        );
        // Pointers to CStrings that live until the filtered thread has joined.
        let (pf, pnf, pnd, pdev) = (
            f.as_ptr() as u64,
            nf.as_ptr() as u64,
            nd.as_ptr() as u64,
            dev.as_ptr() as u64,
        );
        let at = libc::AT_FDCWD as u64;
        let r = under_filter(program(name, Mode::Enforce), move || {
            [
                (
                    "chmod 04755",
                    sys(libc::SYS_fchmodat, [at, pf, 0o4755, 0, 0, 0]),
                ),
                (
                    "chmod 02755",
                    sys(libc::SYS_fchmodat, [at, pf, 0o2755, 0, 0, 0]),
                ),
                (
                    "openat O_CREAT 04755",
                    sys(
                        libc::SYS_openat,
                        [
                            at,
                            pnf,
                            (libc::O_CREAT | libc::O_WRONLY) as u64,
                            0o4755,
                            0,
                            0,
                        ],
                    ),
                ),
                (
                    "mkdirat 02755",
                    sys(libc::SYS_mkdirat, [at, pnd, 0o2755, 0, 0, 0]),
                ),
                (
                    "mknodat S_IFREG|04755",
                    sys(
                        libc::SYS_mknodat,
                        [at, pdev, (libc::S_IFREG | 0o4755) as u64, 0, 0, 0],
                    ),
                ),
                (
                    "mknodat S_IFCHR 1:3",
                    sys(
                        libc::SYS_mknodat,
                        [
                            at,
                            pdev,
                            (libc::S_IFCHR | 0o600) as u64,
                            libc::makedev(1, 3),
                            0,
                            0,
                        ],
                    ),
                ),
                (
                    "mknodat S_IFBLK 7:0",
                    sys(
                        libc::SYS_mknodat,
                        [
                            at,
                            pdev,
                            (libc::S_IFBLK | 0o600) as u64,
                            libc::makedev(7, 0),
                            0,
                            0,
                        ],
                    ),
                ),
                // Upper garbage bits do not hide the set-id bit (mode is compared as 32 bits).
                (
                    "chmod 04755 with high bits",
                    sys(
                        libc::SYS_fchmodat,
                        [at, pf, 0xdead_0000_0000_0000 | 0o4755, 0, 0, 0],
                    ),
                ),
            ]
        });
        for (what, res) in r {
            assert_eq!(res, Err(EPERM), "{name}: {what}");
        }
        let r = under_filter(program(name, Mode::Enforce), move || {
            sys(libc::SYS_openat2, [at, pnf, 0, 0, 0, 0])
        });
        assert_eq!(r, Err(libc::ENOSYS), "{name}: openat2");
        let meta = std::fs::metadata(&file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o6000,
            0,
            "{name}: set-id bit set"
        );
        assert!(!dir.path().join(format!("dev-{name}")).exists(), "{name}");
    }
    // Plain modes pass the same rules (default allows every call here).
    let (f, nf, nd) = (
        c(&file),
        c(&dir.path().join("plain")),
        c(&dir.path().join("plain-dir")),
    );
    let (pf, pnf, pnd) = (f.as_ptr() as u64, nf.as_ptr() as u64, nd.as_ptr() as u64);
    let at = libc::AT_FDCWD as u64;
    let r = under_filter(program("default", Mode::Enforce), move || {
        let fd = sys(
            libc::SYS_openat,
            [
                at,
                pnf,
                (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u64,
                0o644,
                0,
                0,
            ],
        );
        if let Ok(fd) = fd {
            let _ = sys(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        }
        (
            sys(libc::SYS_fchmodat, [at, pf, 0o1755, 0, 0, 0]),
            fd.map(|_| 0),
            sys(libc::SYS_mkdirat, [at, pnd, 0o755, 0, 0, 0]),
        )
    });
    assert_eq!(r, (Ok(0), Ok(0), Ok(0)));
}

/// open/openat ignore their mode unless the flags create a file (O_CREAT, O_TMPFILE), so the
/// register may hold anything there (busybox sh's `open("/dev/null", O_RDONLY)` passed a stale
/// S_ISUID): the set-id rules refuse a creating open only, in every enforcing builtin.
#[test]
fn set_id_rules_look_at_open_mode_only_when_creating() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let c = |p: &std::path::Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    for name in builtin_names().iter().filter(|n| **n != "record") {
        let (f, nf, d) = (
            c(&file),
            c(&dir.path().join(format!("new-{name}"))),
            c(dir.path()),
        );
        let (pf, pnf, pd) = (f.as_ptr() as u64, nf.as_ptr() as u64, d.as_ptr() as u64);
        let at = libc::AT_FDCWD as u64;
        let cl = |fd: Result<i64, i32>| {
            if let Ok(fd) = fd {
                // SAFETY: fd was just returned by the kernel to this thread and is closed once.
                unsafe { libc::close(fd as i32) };
            }
            fd.map(|_| ())
        };
        let r = under_filter(program(name, Mode::Enforce), move || {
            let o = |flags: i32, mode: u64, p: u64| {
                cl(sys(libc::SYS_openat, [at, p, flags as u64, mode, 0, 0]))
            };
            [
                ("O_RDONLY 04755", o(libc::O_RDONLY, 0o4755, pf), Ok(())),
                ("O_RDWR 02755", o(libc::O_RDWR, 0o2755, pf), Ok(())),
                (
                    "O_DIRECTORY 06755",
                    o(libc::O_RDONLY | libc::O_DIRECTORY, 0o6755, pd),
                    Ok(()),
                ),
                (
                    "O_CREAT|O_WRONLY 04755",
                    o(libc::O_CREAT | libc::O_WRONLY, 0o4755, pnf),
                    Err(EPERM),
                ),
                (
                    "O_TMPFILE|O_RDWR 02755",
                    o(libc::O_TMPFILE | libc::O_RDWR, 0o2755, pd),
                    Err(EPERM),
                ),
                (
                    "O_TMPFILE|O_RDWR 0600",
                    o(libc::O_TMPFILE | libc::O_RDWR, 0o600, pd),
                    Ok(()),
                ),
            ]
        });
        for (what, got, want) in r {
            assert_eq!(got, want, "{name}: openat {what}");
        }
        assert!(!dir.path().join(format!("new-{name}")).exists(), "{name}");
        #[cfg(target_arch = "x86_64")]
        {
            let r = under_filter(program(name, Mode::Enforce), move || {
                [
                    cl(sys(libc::SYS_open, [pf, 0, 0o4755, 0, 0, 0])),
                    cl(sys(libc::SYS_open, [pf, 0, 0, 0, 0, 0])),
                    cl(sys(
                        libc::SYS_open,
                        [
                            pnf,
                            (libc::O_CREAT | libc::O_WRONLY) as u64,
                            0o4755,
                            0,
                            0,
                            0,
                        ],
                    )),
                ]
            });
            // An allowlist profile may leave `open` out entirely: then the mode changes nothing.
            assert_eq!(r[0], r[1], "{name}: open O_RDONLY with 04755 vs 0");
            assert_eq!(r[2], Err(EPERM), "{name}: open O_CREAT 04755");
        }
    }
}
