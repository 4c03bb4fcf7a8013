//! Regressions found by the fuzz harnesses (`fuzz_harness`), checked on the compiled program
//! and with the filter installed for real on a throwaway thread.

use super::*;
use crate::fuzz_harness::{interpret, profile_text_case};

const ALLOW_IF_NEVER: &str = r#"name = "t"
[seccomp]
default_action = "errno"
allow = ["@always", "futex", "munmap", "madvise", "rt_sigprocmask", "sigaltstack", "close"]

[[seccomp.rule]]
syscall = "getppid"
action = "allow"
args = [{ index = 0, op = "masked_eq", mask = "0xf", value = "0x10" }]
"#;

fn audit(arch: Arch) -> u32 {
    crate::fuzz_harness::bpf_audit_arch(arch)
}

/// `(arg & 0xf) == 0x10` never holds. seccompiler masks the value (`== 0x10 & 0xf`, i.e. 0),
/// so the old compiler allowed the call for every argument with a zero low nibble.
#[test]
fn masked_eq_with_bits_outside_the_mask_never_matches() {
    let p = crate::parse("t.toml", ALLOW_IF_NEVER, &[]).unwrap();
    for arch in Arch::ALL {
        let prog = &compile_seccomp(&p, arch, Mode::Enforce).unwrap().filters[0];
        let nr = arch.syscall_number("getppid").unwrap();
        for a0 in [0u64, 0x10, 0x20, 0x1_0000_0010] {
            let ret = interpret(prog, audit(arch), nr, &[a0, 0, 0, 0, 0, 0]);
            assert_eq!(
                ret,
                0x0005_0000 | libc::EPERM as u32,
                "{arch:?} arg {a0:#x}"
            );
        }
    }
    // The harness invariant (program == reference semantics) on the same text.
    profile_text_case(ALLOW_IF_NEVER, &[0x10]);
}

/// The same rule installed for real: getppid(0) must fail with the default EPERM.
#[test]
fn masked_eq_never_matching_allow_rule_denies_in_the_kernel() {
    let p = crate::parse("t.toml", ALLOW_IF_NEVER, &[]).unwrap();
    let prog = compile_seccomp(&p, Arch::native(), Mode::Enforce)
        .unwrap()
        .filters
        .remove(0);
    let r = std::thread::spawn(move || {
        seccompiler::apply_filter(&prog).expect("install filter");
        // SAFETY: getppid takes no pointer; the extra argument is ignored by the kernel
        // and only seen by the filter.
        let r = unsafe { libc::syscall(libc::SYS_getppid, 0u64) };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error())
        } else {
            Ok(r)
        }
    })
    .join()
    .expect("filtered thread");
    assert_eq!(r, Err(Some(libc::EPERM)));
}

/// The OCI path (a spec's own `linux.seccomp`) has libseccomp's reading too.
#[test]
fn oci_masked_eq_outside_the_mask_never_matches() {
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["getppid"],
        "action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":15,"valueTwo":16,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#;
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(json).unwrap();
    for arch in Arch::ALL {
        let prog = &crate::compile_oci_seccomp(&s, arch).unwrap()[0];
        let nr = arch.syscall_number("getppid").unwrap();
        let ret = interpret(prog, audit(arch), nr, &[0; 6]);
        assert_eq!(ret, 0x0005_0000 | libc::EPERM as u32, "{arch:?}");
    }
}

/// Argument conditions whose alternatives multiply past what a program can hold are refused
/// at once, with one line, instead of being expanded (the parser caps a written profile at 64
/// rules; this is the compiler's own bound for every other caller).
#[test]
fn exploding_alternatives_are_refused_quickly() {
    let all = |index| ArgCond {
        index,
        test: ArgTest::AnySet("0xffffffffffffffff".into()),
        width: ArgWidth::Auto,
    };
    let t = std::time::Instant::now();
    let e = rules_for(Arch::X86_64, &[all(0), all(1), all(2), all(3)]).unwrap_err();
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    let m = e.to_string();
    assert!(m.contains("alternatives") && !m.contains('\n'), "{m}");
    assert_eq!(
        rules_for(Arch::X86_64, &[all(0), all(1)]).unwrap().len(),
        4096
    );
}
