//! Compile a profile's seccomp policy to classic BPF.
//!
//! Each distinct action becomes one seccompiler filter (match = action, mismatch = allow),
//! plus one allow-list filter (match = allow, mismatch = default action) when the default
//! is not `allow`. The filters are then chained into one program: every `ret ALLOW` of a
//! filter but the last becomes a jump to the start of the next filter. Order: kill, errno
//! (by errno), log, allow-list, so the first non-allow result is the most restrictive,
//! which is the policy's semantics (see [`SeccompPolicy`]). One program also means one
//! filter for the kernel to run, and one place for a user-notification listener.
//!
//! On x86_64 a guard in front refuses every x32-ABI call (nr >= 0x40000000) with ENOSYS;
//! calls made with another audit arch (i386) are killed.
//!
//! **Dispatch prefix.** Before the chain, a binary search over syscall-number ranges answers
//! every syscall whose result does not depend on arguments (the policy's unconditional
//! action, or its default action for a call it does not name) and sends only the
//! argument-filtered ones (clone, socket, ioctl, ...) into the chain. Results are the same;
//! what changes is the walk length: the kernel emulates the program for every syscall number
//! when it installs it (to fill its action cache), at about 2 µs per instruction walked per
//! number here, so a linear chain of ~130 comparisons cost ~250 µs at install; the prefix
//! walks ~2·log2(ranges).

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule,
};

use crate::arch::Arch;
use crate::constants;
use crate::error::ProfileError;
use crate::profile::{Action, ArgCond, ArgTest, ArgWidth, CmpOp, Profile, SeccompPolicy};

/// `SECCOMP_RET_USER_NOTIF`: hand the call to the supervisor holding the listener fd.
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const BPF_RET_K: u16 = 0x06;
const BPF_JMP_JA: u16 = 0x05;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JEQ_K: u16 = 0x15;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
/// Placeholder `k` of a prefix leaf that continues into the chain (patched once the prefix
/// length is known).
const TO_CHAIN: u32 = u32::MAX;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const BPF_MAXINSNS: usize = 4096;

/// Calls that never notify in [`Mode::Record`] and that a profile must allow for
/// [`Mode::EnforceAndReport`]: the runtime sends the listener fd with `sendmsg`, may wait
/// with `recvmsg`, closes it, and a process must always be able to exit and return from
/// signal handlers, whether or not the supervisor is alive.
pub const NOTIFY_PROTOCOL_SYSCALLS: &[&str] = &[
    "close",
    "exit",
    "exit_group",
    "recvmsg",
    "restart_syscall",
    "rt_sigreturn",
    "sendmsg",
];

/// How denied calls are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Deny in the kernel with the profile's action.
    Enforce,
    /// Allowed calls stay in the kernel (fast path, the action cache keeps them free);
    /// calls the profile answers with an errno or `kill` go to the user-notification
    /// supervisor, which reports them and replies with the profile's errno, or kills the
    /// caller (see [`evaluate`](crate::evaluate)). Install with
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER`. Without a listener the kernel fails notified
    /// calls with ENOSYS: they stay refused.
    EnforceAndReport,
    /// Learn mode: every call except [`NOTIFY_PROTOCOL_SYSCALLS`] goes to the supervisor,
    /// which records it and lets it continue. The profile is ignored.
    Record,
}

impl Mode {
    /// Name used in cache file names and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::EnforceAndReport => "report",
            Mode::Record => "record",
        }
    }
}

/// BPF programs to install, in order, all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompProgram {
    /// The programs. Ward's compiler always emits exactly one.
    pub filters: Vec<BpfProgram>,
}

fn compile_err(arch: Arch, e: impl std::fmt::Display) -> ProfileError {
    ProfileError::Compile {
        arch: arch.as_str(),
        message: e.to_string(),
    }
}

fn value(expr: &str, arch: Arch) -> Result<u64, ProfileError> {
    constants::eval(expr, arch).map_err(|m| compile_err(arch, m))
}

fn cond(
    arch: Arch,
    c: &ArgCond,
    op: SeccompCmpOp,
    v: u64,
    extra: u64,
) -> Result<SeccompCondition, ProfileError> {
    let fits = v <= u64::from(u32::MAX) && extra <= u64::from(u32::MAX);
    let len = match c.width {
        ArgWidth::Auto if fits => SeccompCmpArgLen::Dword,
        ArgWidth::Auto | ArgWidth::Bits64 => SeccompCmpArgLen::Qword,
        ArgWidth::Bits32 if fits => SeccompCmpArgLen::Dword,
        ArgWidth::Bits32 => {
            return Err(compile_err(
                arch,
                format!("arg {}: value {v:#x} does not fit 32 bits", c.index),
            ))
        }
    };
    SeccompCondition::new(c.index, len, op, v).map_err(|e| compile_err(arch, e))
}

/// The alternatives (OR) of condition sets (AND) one argument test stands for.
fn alternatives(arch: Arch, c: &ArgCond) -> Result<Vec<SeccompCondition>, ProfileError> {
    Ok(match &c.test {
        ArgTest::Cmp(op, v) => {
            let op2 = match op {
                CmpOp::Eq => SeccompCmpOp::Eq,
                CmpOp::Ne => SeccompCmpOp::Ne,
                CmpOp::Lt => SeccompCmpOp::Lt,
                CmpOp::Le => SeccompCmpOp::Le,
                CmpOp::Gt => SeccompCmpOp::Gt,
                CmpOp::Ge => SeccompCmpOp::Ge,
            };
            vec![cond(arch, c, op2, value(v, arch)?, 0)?]
        }
        ArgTest::MaskedEq { mask, value: v } => {
            let m = value(mask, arch)?;
            let v = value(v, arch)?;
            if v & !m != 0 {
                // `(arg & mask) == value` can never hold (libseccomp's reading, and
                // `evaluate`'s). seccompiler would mask the value and match
                // `(arg & mask) == (value & mask)` instead: a broader test, which for an
                // allow rule lets calls through that the profile does not allow.
                return Ok(vec![]);
            }
            vec![cond(arch, c, SeccompCmpOp::MaskedEq(m), v, m)?]
        }
        ArgTest::In(vs) => vs
            .iter()
            .map(|v| cond(arch, c, SeccompCmpOp::Eq, value(v, arch)?, 0))
            .collect::<Result<_, _>>()?,
        ArgTest::AnySet(mask) => {
            let m = value(mask, arch)?;
            (0..64)
                .map(|b| 1u64 << b)
                .filter(|bit| m & bit != 0)
                .map(|bit| cond(arch, c, SeccompCmpOp::MaskedEq(bit), bit, m))
                .collect::<Result<_, _>>()?
        }
        ArgTest::AllSet(mask) => {
            let m = value(mask, arch)?;
            vec![cond(arch, c, SeccompCmpOp::MaskedEq(m), m, m)?]
        }
        ArgTest::NoneSet(mask) => {
            let m = value(mask, arch)?;
            vec![cond(arch, c, SeccompCmpOp::MaskedEq(m), 0, m)?]
        }
    })
}

/// Cartesian product: one seccompiler rule per combination of alternatives.
pub(crate) fn rules_for(arch: Arch, args: &[ArgCond]) -> Result<Vec<SeccompRule>, ProfileError> {
    let mut sets: Vec<Vec<SeccompCondition>> = vec![vec![]];
    for c in args {
        let alts = alternatives(arch, c)?;
        // Each alternative costs instructions: more than the kernel's program limit cannot
        // compile, and building them all first would take unbounded time and memory.
        let n = sets.len().saturating_mul(alts.len());
        if n > BPF_MAXINSNS {
            return Err(compile_err(
                arch,
                format!("argument conditions expand to {n} alternatives, the kernel accepts {BPF_MAXINSNS} instructions"),
            ));
        }
        let mut next = Vec::with_capacity(sets.len() * alts.len());
        for s in &sets {
            for a in &alts {
                let mut s2 = s.clone();
                s2.push(a.clone());
                next.push(s2);
            }
        }
        sets = next;
    }
    sets.into_iter()
        .map(|s| SeccompRule::new(s).map_err(|e| compile_err(arch, e)))
        .collect()
}

/// A syscall's chain in one filter: unconditional, or a list of rules.
#[derive(Debug)]
enum Chain {
    Always,
    Rules(Vec<SeccompRule>),
}

#[derive(Default, Debug)]
struct Chains(BTreeMap<i64, Chain>);

impl Chains {
    fn always(&mut self, nr: i64) {
        self.0.insert(nr, Chain::Always);
    }
    /// Add rules (alternatives) for `nr`. No rules means a test that never holds: nothing
    /// is added (an empty rule list would make seccompiler match unconditionally).
    fn add(&mut self, nr: i64, mut rules: Vec<SeccompRule>) {
        if rules.is_empty() {
            return;
        }
        match self.0.entry(nr).or_insert_with(|| Chain::Rules(vec![])) {
            Chain::Always => {}
            Chain::Rules(r) => r.append(&mut rules),
        }
    }
    fn into_map(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        self.0
            .into_iter()
            .map(|(k, c)| match c {
                Chain::Always => (k, vec![]),
                Chain::Rules(r) => (k, r),
            })
            .collect()
    }
}

/// Sort key giving the chaining order: kill, errno (ascending), log.
fn order(a: Action) -> (u8, u32) {
    match a {
        Action::Kill => (0, 0),
        Action::Errno(n) => (1, n),
        Action::Log => (2, 0),
        Action::Allow => (3, 0),
    }
}

fn build(
    arch: Arch,
    chains: Chains,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, ProfileError> {
    let filter = SeccompFilter::new(chains.into_map(), mismatch, matched, arch.target())
        .map_err(|e| compile_err(arch, e))?;
    BpfProgram::try_from(filter).map_err(|e| compile_err(arch, e))
}

fn x32_guard() -> Vec<sock_filter> {
    vec![
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: BPF_JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
    ]
}

/// What the dispatch prefix does for a range of syscall numbers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leaf {
    Ret(u32),
    Chain,
}

fn ret_value(a: Action, notify: bool) -> u32 {
    match a {
        Action::Errno(_) | Action::Kill if notify => SECCOMP_RET_USER_NOTIF,
        Action::Allow => SECCOMP_RET_ALLOW,
        Action::Log => SECCOMP_RET_LOG,
        Action::Errno(n) => SECCOMP_RET_ERRNO | (n & 0xffff),
        Action::Kill => SECCOMP_RET_KILL_PROCESS,
    }
}

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Binary search over `ranges` (start, leaf), sorted by start; the first starts at 0 and
/// each runs up to the next start (the last one to the end of the number space). The
/// accumulator holds the syscall number.
fn dispatch_tree(ranges: &[(u32, Leaf)], out: &mut Vec<sock_filter>) {
    if let [(_, leaf)] = ranges {
        out.push(match leaf {
            Leaf::Ret(k) => ins(BPF_RET_K, 0, 0, *k),
            Leaf::Chain => ins(BPF_JMP_JA, 0, 0, TO_CHAIN),
        });
        return;
    }
    let mid = ranges.len() / 2;
    let mut left = Vec::new();
    dispatch_tree(&ranges[..mid], &mut left);
    let mut right = Vec::new();
    dispatch_tree(&ranges[mid..], &mut right);
    match u8::try_from(left.len()) {
        // nr >= start of the right half: skip the left code.
        Ok(n) => out.push(ins(BPF_JMP_JGE_K, n, 0, ranges[mid].0)),
        Err(_) => {
            out.push(ins(BPF_JMP_JGE_K, 0, 1, ranges[mid].0));
            out.push(ins(BPF_JMP_JA, 0, 0, left.len() as u32));
        }
    }
    out.extend(left);
    out.extend(right);
}

/// The dispatch prefix: arch check, load nr, binary search; leaves return the unconditional
/// result or fall through (jump) to the chain that follows the prefix.
fn dispatch_prefix(policy: &SeccompPolicy, arch: Arch, notify: bool) -> Vec<sock_filter> {
    let default = Leaf::Ret(ret_value(policy.default_action, notify));
    let mut by_nr: BTreeMap<u32, Leaf> = BTreeMap::new();
    for (name, sp) in &policy.syscalls {
        let Some(nr) = arch.syscall_number(name) else {
            continue;
        };
        let leaf = if sp.rules.is_empty() {
            Leaf::Ret(ret_value(
                sp.action.unwrap_or(policy.default_action),
                notify,
            ))
        } else {
            Leaf::Chain
        };
        by_nr.insert(nr, leaf);
    }
    // Ranges of equal leaves; numbers the policy does not name get the default.
    let mut ranges: Vec<(u32, Leaf)> = vec![(0, default)];
    let mut push = |start: u32, leaf: Leaf| {
        let last = ranges.last_mut().expect("non-empty");
        if last.1 == leaf {
            return;
        }
        if last.0 == start {
            last.1 = leaf;
            // Merge with the range before if they now match.
            if ranges.len() >= 2 && ranges[ranges.len() - 2].1 == leaf {
                ranges.pop();
            }
        } else {
            ranges.push((start, leaf));
        }
    };
    let mut prev: Option<u32> = None;
    for (nr, leaf) in &by_nr {
        if let Some(p) = prev {
            if *nr > p + 1 {
                push(p + 1, default);
            }
        } else if *nr > 0 {
            push(0, default);
        }
        push(*nr, *leaf);
        prev = Some(*nr);
    }
    if let Some(p) = prev {
        push(p.saturating_add(1), default);
    }
    let mut out = vec![
        ins(BPF_LD_W_ABS, 0, 0, 4),
        ins(BPF_JMP_JEQ_K, 1, 0, arch.audit_arch()),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        ins(BPF_LD_W_ABS, 0, 0, 0),
    ];
    dispatch_tree(&ranges, &mut out);
    let len = out.len();
    for (i, x) in out.iter_mut().enumerate() {
        if x.code == BPF_JMP_JA && x.k == TO_CHAIN {
            x.k = (len - i - 1) as u32;
        }
    }
    out
}

/// Chain programs: each `ret ALLOW` of a program but the last jumps to the next one.
fn chain(arch: Arch, parts: Vec<BpfProgram>) -> Result<BpfProgram, ProfileError> {
    let total: usize = parts.iter().map(Vec::len).sum();
    if total > BPF_MAXINSNS {
        return Err(compile_err(
            arch,
            format!("program has {total} instructions, the kernel accepts {BPF_MAXINSNS}"),
        ));
    }
    let n = parts.len();
    let mut out = Vec::with_capacity(total);
    for (i, mut part) in parts.into_iter().enumerate() {
        if i + 1 < n {
            let len = part.len();
            for (j, ins) in part.iter_mut().enumerate() {
                if ins.code == BPF_RET_K && ins.k == SECCOMP_RET_ALLOW {
                    *ins = sock_filter {
                        code: BPF_JMP_JA,
                        jt: 0,
                        jf: 0,
                        k: (len - j - 1) as u32,
                    };
                }
            }
        }
        out.extend(part);
    }
    Ok(out)
}

/// Replace the marker action (`SECCOMP_RET_TRAP`) by `SECCOMP_RET_USER_NOTIF` in every
/// return instruction. seccompiler has no user-notification action, so notification
/// programs are generated with Trap as a marker (Trap is never used otherwise).
pub fn rewrite_trap_to_notify(program: &mut [sock_filter]) -> usize {
    let mut n = 0;
    for ins in program.iter_mut() {
        if ins.code == BPF_RET_K && ins.k == SECCOMP_RET_TRAP {
            ins.k = SECCOMP_RET_USER_NOTIF;
            n += 1;
        }
    }
    n
}

/// Compile a profile for `arch` in `mode`.
pub fn compile_seccomp(
    profile: &Profile,
    arch: Arch,
    mode: Mode,
) -> Result<SeccompProgram, ProfileError> {
    let program = match mode {
        Mode::Enforce => compile_policy(profile.seccomp(), arch, false)?,
        Mode::EnforceAndReport => {
            for s in NOTIFY_PROTOCOL_SYSCALLS {
                if arch.syscall_number(s).is_some()
                    && crate::explain::unconditional(profile.seccomp(), s) != Some(Action::Allow)
                {
                    return Err(ProfileError::Mode {
                        mode: mode.as_str(),
                        message: format!(
                            "profile {:?} does not allow {s:?} unconditionally; the notification protocol needs it",
                            profile.name()
                        ),
                    });
                }
            }
            compile_policy(profile.seccomp(), arch, true)?
        }
        Mode::Record => {
            let mut chains = Chains::default();
            for s in NOTIFY_PROTOCOL_SYSCALLS {
                if let Some(nr) = arch.syscall_number(s) {
                    chains.always(i64::from(nr));
                }
            }
            let mut p = build(arch, chains, SeccompAction::Trap, SeccompAction::Allow)?;
            rewrite_trap_to_notify(&mut p);
            let mut parts = Vec::new();
            if arch == Arch::X86_64 {
                parts.push(x32_guard());
            }
            parts.push(p);
            chain(arch, parts)?
        }
    };
    Ok(SeccompProgram {
        filters: vec![program],
    })
}

/// Compile a policy to one program. With `notify`, errno and kill results become USER_NOTIF.
pub(crate) fn compile_policy(
    policy: &SeccompPolicy,
    arch: Arch,
    notify: bool,
) -> Result<BpfProgram, ProfileError> {
    let marker = |a: Action| match a {
        Action::Errno(_) | Action::Kill if notify => SeccompAction::Trap,
        other => other.to_seccompiler(),
    };
    // Key: the seccompiler action the filter returns on match (as u32 for ordering).
    let mut deny: BTreeMap<(u8, u32), (SeccompAction, Chains)> = BTreeMap::new();
    let mut allow = Chains::default();
    for (name, sp) in &policy.syscalls {
        let Some(nr) = arch.syscall_number(name) else {
            continue;
        };
        // The dispatch prefix answers every call without argument rules; only the others
        // reach the chain.
        if sp.rules.is_empty() {
            continue;
        }
        let nr = i64::from(nr);
        if let Some(a) = sp.action {
            if a == Action::Allow {
                allow.always(nr);
            } else {
                let key = if notify && matches!(a, Action::Errno(_) | Action::Kill) {
                    (1, 0)
                } else {
                    order(a)
                };
                deny.entry(key)
                    .or_insert_with(|| (marker(a), Chains::default()))
                    .1
                    .always(nr);
            }
        }
        for r in &sp.rules {
            let rules = rules_for(arch, &r.args)?;
            if r.action == Action::Allow {
                allow.add(nr, rules);
            } else {
                let key = if notify && matches!(r.action, Action::Errno(_) | Action::Kill) {
                    (1, 0)
                } else {
                    order(r.action)
                };
                deny.entry(key)
                    .or_insert_with(|| (marker(r.action), Chains::default()))
                    .1
                    .add(nr, rules);
            }
        }
    }
    let mut parts = Vec::new();
    for (_, (action, chains)) in deny {
        parts.push(build(arch, chains, SeccompAction::Allow, action)?);
    }
    if policy.default_action != Action::Allow {
        parts.push(build(
            arch,
            allow,
            marker(policy.default_action),
            SeccompAction::Allow,
        )?);
    } else if parts.is_empty() {
        // Nothing to deny: still install a program (arch check, x32 guard) so that a
        // container always runs under a filter.
        parts.push(build(
            arch,
            Chains::default(),
            SeccompAction::Allow,
            SeccompAction::KillProcess,
        )?);
    }
    let mut chained = chain(arch, parts)?;
    if notify {
        rewrite_trap_to_notify(&mut chained);
    }
    let mut program = if arch == Arch::X86_64 {
        x32_guard()
    } else {
        Vec::new()
    };
    program.extend(dispatch_prefix(policy, arch, notify));
    program.extend(chained);
    if program.len() > BPF_MAXINSNS {
        return Err(compile_err(
            arch,
            format!(
                "program has {} instructions, the kernel accepts {BPF_MAXINSNS}",
                program.len()
            ),
        ));
    }
    Ok(program)
}

#[cfg(test)]
mod tests;
