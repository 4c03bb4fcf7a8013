//! The compiled BPF agrees with the reference interpreter of the policy semantics
//! (`ward_profiles::evaluate`) for every syscall of every builtin on both architectures.

mod common;

use common::{audit_arch, ret_of, run, RET_KILL_PROCESS};
use ward_profiles::*;

fn arg_samples(arch: Arch) -> Vec<[u64; 6]> {
    let mut vals: Vec<u64> = vec![
        0,
        1,
        2,
        3,
        8,
        10,
        16,
        17,
        0xffff_ffff,
        0x20000,
        0x20008,
        0x1_0000_0002,
    ];
    for c in [
        "CLONE_NEWUSER",
        "CLONE_NEWNS",
        "CLONE_NEWNET",
        "CLONE_NEWTIME",
        "CLONE_VM",
        "TIOCSTI",
        "TCGETS",
        "FIONBIO",
        "READ_IMPLIES_EXEC",
        "PR_SET_NAME",
    ] {
        vals.push(constant(c, arch).unwrap());
    }
    vals.push(constant("CLONE_NEWUSER", arch).unwrap() | 0xdead_0000_0000_0011);
    let mut out = vec![[0; 6]];
    for v in &vals {
        for i in 0..3 {
            let mut a = [0u64; 6];
            a[i] = *v;
            out.push(a);
        }
        out.push([2, *v, 0, 0, 0, 0]);
        out.push([10, *v, 0, 0, 0, 0]);
    }
    out
}

#[test]
fn compiled_filters_match_the_reference_semantics() {
    for name in builtin_names() {
        let p = load(name, &[]).unwrap();
        for arch in Arch::ALL {
            let prog = &compile_seccomp(&p, arch, Mode::Enforce).unwrap().filters[0];
            let samples = arg_samples(arch);
            for (sys, _) in arch.syscall_names().map(|s| (s, ())) {
                let nr = arch.syscall_number(sys).unwrap();
                for args in &samples {
                    let got = run(prog, audit_arch(arch), nr, args);
                    let want = ret_of(evaluate(p.seccomp(), arch, nr, args));
                    assert_eq!(
                        got, want,
                        "{name}/{arch}: {sys}{args:x?}: bpf {got:#x} vs policy {want:#x}"
                    );
                }
            }
            // Wrong audit arch (e.g. i386 via int 0x80) is killed.
            assert_eq!(run(prog, 0x4000_0003, 1, &[0; 6]), RET_KILL_PROCESS);
            if arch == Arch::X86_64 {
                // x32 ABI refused.
                assert_eq!(
                    run(prog, audit_arch(arch), 0x4000_0000 | 39, &[0; 6]),
                    0x0005_0000 | 38
                );
            }
        }
    }
}

#[test]
fn default_denies_every_threats_syscall() {
    let p = load("default", &[]).unwrap();
    for arch in Arch::ALL {
        for s in WARD_DANGEROUS {
            let Ok(e) = explain(&p, s, arch) else {
                continue;
            };
            assert!(
                matches!(e.verdict, Verdict::Denied(Action::Errno(_))),
                "{arch}: {e}"
            );
        }
        let e = explain(&p, "clone3", arch).unwrap();
        assert_eq!(e.verdict, Verdict::Denied(Action::Errno(38)), "{e}");
        // Argument-level THREATS items.
        let ns = constant("CLONE_NEWUSER", arch).unwrap();
        let clone = arch.syscall_number("clone").unwrap();
        assert_eq!(
            evaluate(p.seccomp(), arch, clone, &[ns | 17, 0, 0, 0, 0, 0]),
            Action::Errno(1)
        );
        assert_eq!(
            evaluate(p.seccomp(), arch, clone, &[0x3d0f00, 0, 0, 0, 0, 0]),
            Action::Allow
        );
        let socket = arch.syscall_number("socket").unwrap();
        assert_eq!(
            evaluate(p.seccomp(), arch, socket, &[17, 3, 0, 0, 0, 0]),
            Action::Errno(97)
        );
        let pers = arch.syscall_number("personality").unwrap();
        assert_eq!(
            evaluate(p.seccomp(), arch, pers, &[0x0040_0000, 0, 0, 0, 0, 0]),
            Action::Errno(1)
        );
        assert_eq!(
            evaluate(p.seccomp(), arch, pers, &[0xffff_ffff, 0, 0, 0, 0, 0]),
            Action::Allow
        );
        for s in ["execve", "exit_group", "read", "getpid"] {
            assert_eq!(unconditional(p.seccomp(), s), Some(Action::Allow), "{s}");
        }
    }
}

#[test]
fn explain_names_the_group() {
    let p = load("default", &[]).unwrap();
    let e = explain(&p, "fsconfig", Arch::X86_64).unwrap();
    assert!(
        e.reason.contains("@ward-dangerous") || e.reason.contains("@mount"),
        "{e}"
    );
    assert!(e.to_string().contains("denied (errno:EPERM)"), "{e}");
    let e = explain(&p, "clone", Arch::Aarch64).unwrap();
    assert!(matches!(e.verdict, Verdict::Conditional { .. }), "{e}");
    assert!(e.to_string().contains("any_set"), "{e}");
    assert!(explain(&p, "open", Arch::Aarch64).is_err());
}

/// Report mode: the same results, except that errno and kill results become user
/// notifications (the supervisor answers them); numbers no table names get the default.
#[test]
fn report_mode_programs_match_the_reference_semantics() {
    for name in builtin_names() {
        let p = load(name, &[]).unwrap();
        for arch in Arch::ALL {
            let Ok(prog) = compile_seccomp(&p, arch, Mode::EnforceAndReport) else {
                continue; // a profile that denies part of the notification protocol
            };
            let prog = &prog.filters[0];
            let samples = arg_samples(arch);
            let want_of = |a: Action| match a {
                Action::Errno(_) | Action::Kill => SECCOMP_RET_USER_NOTIF,
                other => ret_of(other),
            };
            for sys in arch.syscall_names() {
                let nr = arch.syscall_number(sys).unwrap();
                for args in &samples {
                    let got = run(prog, audit_arch(arch), nr, args);
                    let want = want_of(evaluate(p.seccomp(), arch, nr, args));
                    assert_eq!(got, want, "{name}/{arch}: {sys}{args:x?}");
                }
            }
            for nr in [1000, 4095, 0x3fff_ffff] {
                let got = run(prog, audit_arch(arch), nr, &[0; 6]);
                let want = want_of(evaluate(p.seccomp(), arch, nr, &[0; 6]));
                assert_eq!(got, want, "{name}/{arch}: unnamed nr {nr}");
            }
            assert_eq!(run(prog, 0x4000_0003, 1, &[0; 6]), RET_KILL_PROCESS);
        }
    }
}
