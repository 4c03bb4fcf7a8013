//! What a profile does with a syscall: a reference interpreter of the policy semantics
//! (used by `explain`, by the notification supervisor to pick the errno, and by tests to
//! check the compiled BPF), and the human-readable explanation.

use std::fmt;

use crate::arch::Arch;
use crate::constants;
use crate::error::ProfileError;
use crate::profile::{
    render_arg, Action, ArgCond, ArgRule, ArgTest, ArgWidth, CmpOp, Profile, SeccompPolicy,
};

fn order(a: Action) -> (u8, u32) {
    match a {
        Action::Kill => (0, 0),
        Action::Errno(n) => (1, n),
        Action::Log => (2, 0),
        Action::Allow => (3, 0),
    }
}

fn first(a: Option<Action>, b: Action) -> Action {
    match a {
        Some(x) if order(x) <= order(b) => x,
        _ => b,
    }
}

/// Whether the comparison uses only the low 32 bits (mirrors the compiler's choice).
fn is32(width: ArgWidth, v: u64, extra: u64) -> bool {
    let fits = v <= u64::from(u32::MAX) && extra <= u64::from(u32::MAX);
    match width {
        ArgWidth::Auto | ArgWidth::Bits32 => fits,
        ArgWidth::Bits64 => false,
    }
}

fn masked_eq(width: ArgWidth, arg: u64, mask: u64, v: u64, extra: u64) -> bool {
    if is32(width, v, extra) {
        (arg as u32) & (mask as u32) == v as u32
    } else {
        arg & mask == v
    }
}

fn cond_holds(c: &ArgCond, arch: Arch, args: &[u64; 6]) -> bool {
    let arg = args[usize::from(c.index)];
    let val = |e: &str| constants::eval(e, arch).unwrap_or(0);
    match &c.test {
        ArgTest::Cmp(op, v) => {
            let v = val(v);
            let (a, v) = if is32(c.width, v, 0) {
                (u64::from(arg as u32), v)
            } else {
                (arg, v)
            };
            match op {
                CmpOp::Eq => a == v,
                CmpOp::Ne => a != v,
                CmpOp::Lt => a < v,
                CmpOp::Le => a <= v,
                CmpOp::Gt => a > v,
                CmpOp::Ge => a >= v,
            }
        }
        ArgTest::MaskedEq { mask, value } => {
            let m = val(mask);
            masked_eq(c.width, arg, m, val(value), m)
        }
        ArgTest::In(vs) => vs.iter().any(|v| {
            let v = val(v);
            if is32(c.width, v, 0) {
                arg as u32 == v as u32
            } else {
                arg == v
            }
        }),
        ArgTest::AnySet(mask) => {
            let m = val(mask);
            (0..64)
                .map(|b| 1u64 << b)
                .filter(|bit| m & bit != 0)
                .any(|bit| masked_eq(c.width, arg, bit, bit, m))
        }
        ArgTest::AllSet(mask) => {
            let m = val(mask);
            masked_eq(c.width, arg, m, m, m)
        }
        ArgTest::NoneSet(mask) => {
            let m = val(mask);
            masked_eq(c.width, arg, m, 0, m)
        }
    }
}

fn rule_holds(r: &ArgRule, arch: Arch, args: &[u64; 6]) -> bool {
    r.args.iter().all(|c| cond_holds(c, arch, args))
}

/// The action the compiled filter takes for call `nr` with `args` on `arch`.
pub fn evaluate(policy: &SeccompPolicy, arch: Arch, nr: u32, args: &[u64; 6]) -> Action {
    if arch == Arch::X86_64 && nr >= 0x4000_0000 {
        return Action::Errno(libc::ENOSYS as u32);
    }
    let Some(sp) = arch.syscall_name(nr).and_then(|n| policy.syscalls.get(n)) else {
        return policy.default_action;
    };
    let mut deny: Option<Action> = None;
    let mut allowed = false;
    match sp.action {
        Some(Action::Allow) => allowed = true,
        Some(a) => deny = Some(a),
        None => {}
    }
    for r in &sp.rules {
        if rule_holds(r, arch, args) {
            if r.action == Action::Allow {
                allowed = true;
            } else {
                deny = Some(first(deny, r.action));
            }
        }
    }
    match deny {
        Some(a) => a,
        None if allowed => Action::Allow,
        None => policy.default_action,
    }
}

/// The action for `name` when it does not depend on arguments, else `None`.
pub fn unconditional(policy: &SeccompPolicy, name: &str) -> Option<Action> {
    let Some(sp) = policy.syscalls.get(name) else {
        return Some(policy.default_action);
    };
    let base_deny = sp.action.filter(|a| *a != Action::Allow);
    let base = match sp.action {
        Some(a) => a,
        None => policy.default_action,
    };
    let mut same = true;
    for r in &sp.rules {
        let with_rule = match (base_deny, r.action) {
            (d, Action::Allow) => d.unwrap_or(Action::Allow),
            (d, a) => first(d, a),
        };
        same &= with_rule == base;
    }
    same.then_some(base)
}

/// The outcome for one syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Always allowed (or logged and allowed).
    Allowed(Action),
    /// Always denied with this action.
    Denied(Action),
    /// Depends on arguments.
    Conditional {
        /// Outcome when no argument rule matches.
        otherwise: Action,
        /// Argument rules, rendered.
        rules: Vec<(Action, String)>,
    },
}

/// What a profile does with one syscall, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Syscall name.
    pub syscall: String,
    /// Architecture explained for.
    pub arch: Arch,
    /// Syscall number on `arch`.
    pub number: u32,
    /// The outcome.
    pub verdict: Verdict,
    /// Which rule decided: e.g. `errno:EPERM via @ward-dangerous in default.toml`, or
    /// `default_action`.
    pub reason: String,
}

/// Explain what `profile` does with `syscall` on `arch`.
pub fn explain(profile: &Profile, syscall: &str, arch: Arch) -> Result<Explanation, ProfileError> {
    let number = arch
        .syscall_number(syscall)
        .ok_or_else(|| ProfileError::UnknownSyscall {
            name: syscall.to_owned(),
            arch: arch.as_str(),
        })?;
    let policy = profile.seccomp();
    let sp = policy.syscalls.get(syscall);
    let reason = match (sp.and_then(|s| s.action), profile.provenance.get(syscall)) {
        (Some(_), Some(origin)) => origin.clone(),
        (Some(a), None) => a.as_text(),
        (None, _) => format!("default_action = {}", policy.default_action.as_text()),
    };
    let verdict = match unconditional(policy, syscall) {
        Some(a @ (Action::Allow | Action::Log)) => Verdict::Allowed(a),
        Some(a) => Verdict::Denied(a),
        None => {
            let sp = sp.expect("conditional implies an entry");
            let otherwise = sp.action.unwrap_or(policy.default_action);
            let rules = sp
                .rules
                .iter()
                .map(|r| {
                    let conds: Vec<String> = r.args.iter().map(render_arg).collect();
                    (r.action, conds.join(" and "))
                })
                .collect();
            Verdict::Conditional { otherwise, rules }
        }
    };
    Ok(Explanation {
        syscall: syscall.to_owned(),
        arch,
        number,
        verdict,
        reason,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} #{}): ", self.syscall, self.arch, self.number)?;
        match &self.verdict {
            Verdict::Allowed(Action::Log) => write!(f, "allowed and logged")?,
            Verdict::Allowed(_) => write!(f, "allowed")?,
            Verdict::Denied(a) => write!(f, "denied ({})", a.as_text())?,
            Verdict::Conditional { otherwise, rules } => {
                write!(f, "depends on arguments; otherwise {}", otherwise.as_text())?;
                for (a, c) in rules {
                    write!(f, "\n  {} when {c}", a.as_text())?;
                }
                write!(f, "\n ")?;
            }
        }
        write!(f, " [{}]", self.reason)
    }
}
