//! Checks on a compiled program: the kernel's structural rules (as `bpf_check_classic` and
//! seccomp's `seccomp_check_filter` apply them), then agreement with the reference
//! semantics ([`crate::evaluate`]) on the calls and arguments a case cares about.

use seccompiler::sock_filter;

use crate::arch::Arch;
use crate::explain::evaluate;
use crate::profile::{Action, SeccompPolicy};
use crate::seccomp::SECCOMP_RET_USER_NOTIF;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// The audit arch value the kernel puts in `seccomp_data.arch`.
pub fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 62 | 0x8000_0000 | 0x4000_0000,
        Arch::Aarch64 => 183 | 0x8000_0000 | 0x4000_0000,
    }
}

/// Structural validity: what the kernel checks when the filter is installed, so a program
/// that passes here is not refused with EINVAL at container start.
pub fn validate(prog: &[sock_filter]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > 4096 {
        return Err(format!("length {} outside 1..=4096", prog.len()));
    }
    let n = prog.len();
    for (pc, i) in prog.iter().enumerate() {
        let target_ok = |off: usize| pc + 1 + off < n;
        match i.code {
            LD_W_ABS => {
                let k = i.k;
                if k % 4 != 0 || k >= 64 {
                    return Err(format!("insn {pc}: load from offset {k}"));
                }
            }
            ALU_AND_K => {}
            JA => {
                if !target_ok(i.k as usize) {
                    return Err(format!("insn {pc}: ja {} out of the program", i.k));
                }
            }
            JEQ_K | JGT_K | JGE_K | JSET_K => {
                if !target_ok(usize::from(i.jt)) || !target_ok(usize::from(i.jf)) {
                    return Err(format!("insn {pc}: jump out of the program"));
                }
            }
            RET_K => {}
            c => return Err(format!("insn {pc}: opcode {c:#x} not emitted by Ward")),
        }
    }
    if prog[n - 1].code != RET_K {
        return Err("last instruction is not a return".into());
    }
    Ok(())
}

/// Run a (validated) program on `struct seccomp_data`.
pub fn interpret(prog: &[sock_filter], audit: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => audit,
            8 | 12 => 0,
            o => {
                let a = args[((o - 16) / 8) as usize];
                if (o - 16) % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
        }
    };
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => acc = word(i.k),
            ALU_AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            RET_K => return i.k,
            code => {
                let t = match code {
                    JEQ_K => acc == i.k,
                    JGT_K => acc > i.k,
                    JGE_K => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += usize::from(if t { i.jt } else { i.jf });
            }
        }
    }
}

/// The return value the compiled program must give for `a`.
pub fn expected_ret(a: Action, notify: bool) -> u32 {
    match a {
        Action::Errno(_) | Action::Kill if notify => SECCOMP_RET_USER_NOTIF,
        Action::Allow => RET_ALLOW,
        Action::Log => RET_LOG,
        Action::Errno(n) => RET_ERRNO | (n & 0xffff),
        Action::Kill => RET_KILL_PROCESS,
    }
}

/// Whether a return value lets the call run.
pub fn lets_through(ret: u32) -> bool {
    ret == RET_ALLOW || ret == RET_LOG
}

/// What to compare a program against.
pub struct BpfCheck<'a> {
    pub policy: &'a SeccompPolicy,
    pub arch: Arch,
    pub notify: bool,
}

/// Validate `prog` and compare it with the reference semantics for each of `names` (those
/// that exist on the arch) with each of `samples`; a foreign audit arch must be killed and,
/// on x86_64, an x32 call refused with ENOSYS.
pub fn check_program(prog: &[sock_filter], c: &BpfCheck, names: &[&str], samples: &[[u64; 6]]) {
    if let Err(e) = validate(prog) {
        panic!("{}: invalid program: {e}", c.arch.as_str());
    }
    let audit = audit_arch(c.arch);
    assert_eq!(
        interpret(prog, audit ^ 1, 0, &[0; 6]),
        RET_KILL_PROCESS,
        "foreign audit arch is not killed"
    );
    if c.arch == Arch::X86_64 {
        assert_eq!(
            interpret(prog, audit, 0x4000_0000, &[0; 6]),
            RET_ERRNO | libc::ENOSYS as u32,
            "x32 call not refused"
        );
    }
    for name in names {
        let Some(nr) = c.arch.syscall_number(name) else {
            continue;
        };
        // A call without argument rules answers the same for every argument.
        let conditional = c
            .policy
            .syscalls
            .get(*name)
            .is_some_and(|sp| !sp.rules.is_empty());
        let samples = if conditional { samples } else { &samples[..1] };
        for args in samples {
            let got = interpret(prog, audit, nr, args);
            let want = expected_ret(evaluate(c.policy, c.arch, nr, args), c.notify);
            assert_eq!(
                got,
                want,
                "{}: {name}{args:x?}: program returns {got:#x}, the policy says {want:#x}",
                c.arch.as_str()
            );
        }
    }
    // A number no table names gets the default action.
    let unnamed = 0x3fff_fff0;
    if c.arch.syscall_name(unnamed).is_none() {
        let got = interpret(prog, audit, unnamed, &[0; 6]);
        assert_eq!(
            got,
            expected_ret(c.policy.default_action, c.notify),
            "unnamed number"
        );
    }
}

/// Argument samples: zeros, all ones, the clone namespace flags, and values from the case.
pub fn samples(arch: Arch, extra: &[u64]) -> Vec<[u64; 6]> {
    let mut out = vec![[0; 6], [u64::MAX; 6]];
    for c in ["CLONE_NEWUSER", "AF_PACKET", "TIOCSTI"] {
        if let Some(v) = crate::constant(c, arch) {
            for i in 0..2 {
                let mut a = [0; 6];
                a[i] = v;
                out.push(a);
            }
        }
    }
    for (k, v) in extra.iter().enumerate() {
        let mut a = [0; 6];
        a[k % 6] = *v;
        a[(k + 1) % 6] = v.rotate_left(32);
        out.push(a);
        out.push([*v; 6]);
    }
    out
}
