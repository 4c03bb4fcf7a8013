//! import/export, lint, diff, the compiled-filter cache, notification rewriting, drafts.

mod common;

use std::collections::BTreeMap;

use common::{audit_arch, ret_of, run};
use ward_profiles::*;

const FIXTURE: &str = include_str!("fixtures/docker-default.json");

#[test]
fn oci_import_export_roundtrip() {
    let p = import_oci_json(FIXTURE, "docker").unwrap();
    let pol = p.seccomp();
    assert_eq!(pol.default_action, Action::Errno(1));
    assert_eq!(unconditional(pol, "clone3"), Some(Action::Errno(38)));
    assert_eq!(unconditional(pol, "unshare"), Some(Action::Errno(1)));
    assert_eq!(unconditional(pol, "read"), Some(Action::Allow));
    for arch in Arch::ALL {
        let exported = export_oci(&p, arch).to_string();
        let again = import_oci_json(&exported, "docker").unwrap();
        // Same decisions, and the same compiled program, after the round trip.
        let a = compile_seccomp(&p, arch, Mode::Enforce).unwrap();
        let b = compile_seccomp(&again, arch, Mode::Enforce).unwrap();
        let clone = arch.syscall_number("clone").unwrap();
        let pers = arch.syscall_number("personality").unwrap();
        let ns = constant("CLONE_NEWUSER", arch).unwrap();
        for (nr, args) in [
            (clone, [ns | 17, 0, 0, 0, 0, 0]),
            (clone, [0x3d0f00, 0, 0, 0, 0, 0]),
            (pers, [8, 0, 0, 0, 0, 0]),
            (pers, [0x400000, 0, 0, 0, 0, 0]),
            (arch.syscall_number("socket").unwrap(), [40, 1, 0, 0, 0, 0]),
            (arch.syscall_number("socket").unwrap(), [2, 1, 0, 0, 0, 0]),
            (arch.syscall_number("mount").unwrap(), [0; 6]),
        ] {
            let want = ret_of(evaluate(p.seccomp(), arch, nr, &args));
            assert_eq!(run(&a.filters[0], audit_arch(arch), nr, &args), want);
            assert_eq!(run(&b.filters[0], audit_arch(arch), nr, &args), want);
            assert_eq!(
                evaluate(again.seccomp(), arch, nr, &args),
                evaluate(pol, arch, nr, &args)
            );
        }
    }
    // Export of a builtin carries defaultAction and errno.
    let v = export_oci(&load("restricted", &[]).unwrap(), Arch::X86_64);
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    assert_eq!(v["architectures"][0], "SCMP_ARCH_X86_64");
}

#[test]
fn lint_flags_threats() {
    let clean: Vec<_> = lint(&load("strict", &[]).unwrap());
    assert!(
        clean.iter().all(|f| f.severity != Severity::Error),
        "{clean:?}"
    );
    let d = lint(&load("default", &[]).unwrap());
    assert!(d.iter().all(|f| f.severity != Severity::Error), "{d:?}");
    let bad = parse(
        "bad.toml",
        "capabilities = [\"CAP_SYS_ADMIN\"]\n[seccomp]\ndefault_action = \"allow\"\ndeny = [\"mount\"]\n",
        &[],
    )
    .unwrap();
    let f = lint(&bad);
    let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
    assert!(
        msgs.iter().any(|m| m.starts_with("unshare is allowed")),
        "{msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| m.starts_with("mount is allowed")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("clone is allowed without")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("ioctl")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("personality")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("CAP_SYS_ADMIN")), "{msgs:?}");
    // The imported Docker-like profile restricts ioctl nowhere: a warning, not silence.
    let docker = lint(&import_oci_json(FIXTURE, "docker").unwrap());
    assert!(
        docker.iter().any(|f| f.message.contains("ioctl")),
        "{docker:?}"
    );
}

#[test]
fn diff_reports_changes() {
    let a = load("restricted", &[]).unwrap();
    let b = load("python-worker", &[]).unwrap();
    assert!(diff(&a, &a.clone()).is_empty());
    let d = diff(&a, &b).to_string();
    assert!(d.contains("+ tmpfs /dev/shm"), "{d}");
    assert!(d.contains("~ limits.memory_bytes"), "{d}");
    assert!(d.contains("~ landlock.tcp_bind: None -> Some([])"), "{d}");
    let d = diff(&load("default", &[]).unwrap(), &a).to_string();
    assert!(
        d.contains("~ seccomp.default_action: allow -> errno:EPERM"),
        "{d}"
    );
    assert!(d.contains("+ syscall read: allow"), "{d}");
    assert!(d.contains("+ rule ioctl allow when"), "{d}");
}

#[test]
fn cache_roundtrip_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let p = load("strict", &[]).unwrap();
    let fresh = compile_seccomp(&p, Arch::X86_64, Mode::Enforce).unwrap();
    let first = compile_seccomp_cached(&p, Arch::X86_64, Mode::Enforce, dir.path()).unwrap();
    assert_eq!(first, fresh);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let file = &files[0];
    assert!(file
        .to_str()
        .unwrap()
        .ends_with(&format!("{}-x86_64-enforce.bpf", p.hash())));
    assert_eq!(
        compile_seccomp_cached(&p, Arch::X86_64, Mode::Enforce, dir.path()).unwrap(),
        fresh
    );
    // Truncated file: ignored and rewritten.
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..bytes.len() - 3]).unwrap();
    assert_eq!(
        compile_seccomp_cached(&p, Arch::X86_64, Mode::Enforce, dir.path()).unwrap(),
        fresh
    );
    assert_eq!(std::fs::read(file).unwrap(), bytes);
}

#[test]
fn notification_modes() {
    let p = load("default", &[]).unwrap();
    for arch in Arch::ALL {
        let report = compile_seccomp(&p, arch, Mode::EnforceAndReport).unwrap();
        let f = &report.filters[0];
        let unshare = arch.syscall_number("unshare").unwrap();
        let getpid = arch.syscall_number("getpid").unwrap();
        let aa = audit_arch(arch);
        assert_eq!(run(f, aa, unshare, &[0; 6]), SECCOMP_RET_USER_NOTIF);
        assert_eq!(run(f, aa, getpid, &[0; 6]), common::RET_ALLOW);
        assert!(
            f.iter().all(|i| !(i.code == 0x06 && i.k == 0x0003_0000)),
            "no Trap left"
        );
        let rec = compile_seccomp(&p, arch, Mode::Record).unwrap();
        let f = &rec.filters[0];
        assert_eq!(run(f, aa, getpid, &[0; 6]), SECCOMP_RET_USER_NOTIF);
        for s in NOTIFY_PROTOCOL_SYSCALLS {
            let nr = arch.syscall_number(s).unwrap();
            assert_eq!(run(f, aa, nr, &[0; 6]), common::RET_ALLOW, "{s}");
        }
    }
    // A profile denying part of the protocol cannot run in report mode.
    let p = parse(
        "t.toml",
        "[seccomp]\ndefault_action = \"allow\"\ndeny = [\"sendmsg\"]\n",
        &[],
    )
    .unwrap();
    assert!(matches!(
        compile_seccomp(&p, Arch::X86_64, Mode::EnforceAndReport),
        Err(ProfileError::Mode { .. })
    ));
    let mut prog = vec![seccompiler::sock_filter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0x0003_0000,
    }];
    assert_eq!(rewrite_trap_to_notify(&mut prog), 1);
    assert_eq!(prog[0].k, SECCOMP_RET_USER_NOTIF);
}

#[test]
fn draft_from_a_recording_parses() {
    let arch = Arch::native();
    let mut seen: BTreeMap<String, Vec<[u64; 6]>> = BTreeMap::new();
    for s in group("@signal").unwrap().syscalls {
        if arch.syscall_number(s).is_some() {
            seen.insert((*s).into(), vec![[0; 6]]);
        }
    }
    seen.insert("read".into(), vec![[0; 6]]);
    seen.insert(
        "socket".into(),
        vec![[1, 1, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0]],
    );
    seen.insert("clone".into(), vec![[0x3d0f00, 0, 0, 0, 0, 0]]);
    let text = draft_from_recording("learned", &seen, &["/var/lib/app".into()]);
    assert!(text.contains("\"@signal\""), "{text}");
    assert!(!text.contains("\"rt_sigaction\""), "{text}");
    let p = parse("learned.toml", &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let socket = arch.syscall_number("socket").unwrap();
    assert_eq!(
        evaluate(p.seccomp(), arch, socket, &[1, 1, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, socket, &[10, 1, 0, 0, 0, 0]),
        Action::Errno(1)
    );
    let clone = arch.syscall_number("clone").unwrap();
    assert_eq!(
        evaluate(p.seccomp(), arch, clone, &[0x3d0f11, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, clone, &[0x4000_0011, 0, 0, 0, 0, 0]),
        Action::Errno(1)
    );
    // Thread flags never seen (glibc's fallback from clone3) are allowed, namespace flags not.
    assert_eq!(
        evaluate(p.seccomp(), arch, clone, &[0x7d0f00, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, clone, &[0x1000_0000, 0, 0, 0, 0, 0]),
        Action::Errno(1)
    );
    assert_eq!(unconditional(p.seccomp(), "read"), Some(Action::Allow));
    assert_eq!(unconditional(p.seccomp(), "write"), Some(Action::Errno(1)));
    assert_eq!(p.landlock().write, ["/var/lib/app"]);
}

/// The set-id rules are part of every enforcing builtin's policy, so `explain` and `lint`
/// show them; a profile without them gets a lint warning.
#[test]
fn set_id_rules_visible_in_explain_and_lint() {
    for name in builtin_names().iter().filter(|n| **n != "record") {
        let p = load(name, &[]).unwrap();
        for arch in Arch::ALL {
            for (call, idx) in SET_ID_MODE_CALLS {
                let Some(nr) = arch.syscall_number(call) else {
                    continue;
                };
                let mut args = [0u64; 6];
                args[*idx as usize] = 0o4755;
                // open and openat look at the mode only when the flags create a file.
                let creating = match *call {
                    "open" => Some(1),
                    "openat" => Some(2),
                    _ => None,
                };
                if let Some(flags) = creating {
                    let plain = evaluate(p.seccomp(), arch, nr, &args);
                    assert!(
                        !matches!(plain, Action::Errno(1)) || name != &"default",
                        "{name}/{arch}: {call} O_RDONLY with S_ISUID refused"
                    );
                    args[flags] = 0o100; // O_CREAT
                }
                assert!(
                    matches!(evaluate(p.seccomp(), arch, nr, &args), Action::Errno(1)),
                    "{name}/{arch}: {call} with S_ISUID"
                );
            }
        }
        let f = lint(&p);
        assert!(
            !f.iter()
                .any(|f| f.message.contains("S_ISUID") || f.message.contains("openat2")),
            "{name}: {f:?}"
        );
    }
    let e = explain(&load("default", &[]).unwrap(), "chmod", Arch::X86_64)
        .unwrap()
        .to_string();
    assert!(e.contains("depends on arguments"), "{e}");
    assert!(
        e.contains(r#"errno:EPERM when { index = 1, op = "any_set", mask = "S_ISUID|S_ISGID" }"#),
        "{e}"
    );
    let bare = parse("bare.toml", "[seccomp]\ndefault_action = \"allow\"\n", &[]).unwrap();
    let msgs: Vec<String> = lint(&bare).into_iter().map(|f| f.message).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("chmod") && m.contains("S_ISUID")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("openat2 is allowed")),
        "{msgs:?}"
    );
}

#[test]
fn draft_keeps_default_denials_and_allows_clone_fallback() {
    let arch = Arch::native();
    let mut seen: BTreeMap<String, Vec<[u64; 6]>> = BTreeMap::new();
    seen.insert("clone3".into(), vec![[0; 6]]);
    seen.insert("unshare".into(), vec![[0x1000_0000, 0, 0, 0, 0, 0]]);
    seen.insert("read".into(), vec![[0; 6]]);
    let text = draft_from_recording("t", &seen, &[]);
    assert!(
        text.contains("kept denied: clone3, unshare"),
        "denied calls are named in a comment:\n{text}"
    );
    assert!(
        !text.contains("\"clone3\",") && !text.contains("\"unshare\","),
        "{text}"
    );
    let p = parse("t.toml", &text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    // Threads seen as clone3 get clone (glibc's fallback once clone3 says ENOSYS).
    let clone = arch.syscall_number("clone").unwrap();
    assert_eq!(
        evaluate(p.seccomp(), arch, clone, &[0x3d0f00, 0, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        unconditional(p.seccomp(), "clone3"),
        Some(Action::Errno(38))
    );
}
