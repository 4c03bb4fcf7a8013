//! OCI `linux.seccomp`: translation to filters, import as a profile, export.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::BpfProgram;
use serde_json::{json, Value};

use crate::arch::{is_known_syscall, Arch};
use crate::error::ProfileError;
use crate::profile::{
    Action, ArgCond, ArgRule, ArgTest, ArgWidth, CmpOp, LandlockPolicy, Limits, Profile,
    SeccompPolicy,
};
use crate::seccomp::{compile_policy, rules_for};

/// Names that exist on architectures Ward does not compile for (32-bit and others).
/// OCI profiles list them for portability; they are skipped rather than refused.
const OTHER_ARCH_SYSCALLS: &[&str] = &[
    "_llseek",
    "_newselect",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "bdflush",
    "breakpoint",
    "cacheflush",
    "chown32",
    "fadvise64_64",
    "fchown32",
    "fcntl64",
    "fstat64",
    "fstatat64",
    "fstatfs64",
    "ftruncate64",
    "getegid32",
    "geteuid32",
    "getgid32",
    "getgroups32",
    "getresgid32",
    "getresuid32",
    "getuid32",
    "ipc",
    "lchown32",
    "lstat64",
    "mmap2",
    "recv",
    "riscv_flush_icache",
    "riscv_hwprobe",
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
    "s390_runtime_instr",
    "s390_guarded_storage",
    "s390_sthyi",
    "send",
    "sendfile64",
    "set_tls",
    "setfsgid32",
    "setfsuid32",
    "setgid32",
    "setgroups32",
    "setregid32",
    "setresgid32",
    "setresuid32",
    "setreuid32",
    "setuid32",
    "sigaction",
    "signal",
    "sigpending",
    "sigprocmask",
    "sigreturn",
    "sigsuspend",
    "socketcall",
    "stat64",
    "statfs64",
    "sync_file_range2",
    "truncate64",
    "ugetrlimit",
    "umount",
    "waitpid",
    "spu_create",
    "spu_run",
    "subpage_prot",
    "switch_endian",
    "sys_debug_setcontext",
    "vm86",
    "vm86old",
    "clock_gettime64",
    "clock_settime64",
    "clock_adjtime64",
    "clock_getres_time64",
    "clock_nanosleep_time64",
    "futex_time64",
    "io_pgetevents_time64",
    "mq_timedreceive_time64",
    "mq_timedsend_time64",
    "ppoll_time64",
    "pselect6_time64",
    "recvmmsg_time64",
    "rt_sigtimedwait_time64",
    "sched_rr_get_interval_time64",
    "semtimedop_time64",
    "timer_gettime64",
    "timer_settime64",
    "timerfd_gettime64",
    "timerfd_settime64",
    "utimensat_time64",
    "nice",
    "oldfstat",
    "oldlstat",
    "oldolduname",
    "oldstat",
    "olduname",
    "readdir",
    "sgetmask",
    "ssetmask",
    "stime",
    "idle",
];

fn oci_err(field: impl Into<String>, message: impl Into<String>) -> ProfileError {
    ProfileError::Oci {
        field: field.into(),
        message: message.into(),
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<Action, ProfileError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(errno.unwrap_or(libc::EPERM as u32)),
        // Killing the process for a thread-kill rule is stricter, never weaker.
        LinuxSeccompAction::ScmpActKill
        | LinuxSeccompAction::ScmpActKillThread
        | LinuxSeccompAction::ScmpActKillProcess => Action::Kill,
        other => {
            return Err(oci_err(
                field,
                format!("action {other:?} is not supported by Ward (allow, errno, kill, log)"),
            ))
        }
    })
}

fn merge(sp: &mut Option<Action>, a: Action) {
    if sp.is_none_or(|old| a.rank() >= old.rank()) {
        *sp = Some(a);
    }
}

/// Translate an OCI seccomp object into a policy (no arch specifics yet).
pub(crate) fn policy_from_oci(s: &LinuxSeccomp) -> Result<SeccompPolicy, ProfileError> {
    if s.listener_path().is_some() {
        return Err(oci_err(
            "listenerPath",
            "seccomp user notification (SCMP_ACT_NOTIFY agents) is not supported",
        ));
    }
    if let Some(flags) = s.flags() {
        if !flags.is_empty() {
            return Err(oci_err(
                "flags",
                format!("filter flags {flags:?} are not supported"),
            ));
        }
    }
    let default_action = action(s.default_action(), s.default_errno_ret(), "defaultAction")?;
    let mut syscalls: BTreeMap<String, crate::profile::SyscallPolicy> = BTreeMap::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let a = action(
            sc.action(),
            sc.errno_ret(),
            &format!("syscalls[{i}].action"),
        )?;
        let args = sc.args().as_deref().unwrap_or(&[]);
        let mut conds = Vec::new();
        for (j, arg) in args.iter().enumerate() {
            let f = format!("syscalls[{i}].args[{j}]");
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|i| *i <= 5)
                .ok_or_else(|| {
                    oci_err(
                        format!("{f}.index"),
                        format!("{} out of range 0..=5", arg.index()),
                    )
                })?;
            let v = arg.value().to_string();
            let test = match arg.op() {
                LinuxSeccompOperator::ScmpCmpEq => ArgTest::Cmp(CmpOp::Eq, v),
                LinuxSeccompOperator::ScmpCmpNe => ArgTest::Cmp(CmpOp::Ne, v),
                LinuxSeccompOperator::ScmpCmpLt => ArgTest::Cmp(CmpOp::Lt, v),
                LinuxSeccompOperator::ScmpCmpLe => ArgTest::Cmp(CmpOp::Le, v),
                LinuxSeccompOperator::ScmpCmpGt => ArgTest::Cmp(CmpOp::Gt, v),
                LinuxSeccompOperator::ScmpCmpGe => ArgTest::Cmp(CmpOp::Ge, v),
                LinuxSeccompOperator::ScmpCmpMaskedEq => ArgTest::MaskedEq {
                    mask: v,
                    value: arg.value_two().unwrap_or(0).to_string(),
                },
            };
            conds.push(ArgCond {
                index,
                test,
                width: ArgWidth::Bits64,
            });
        }
        // runc: several conditions all on the same argument are alternatives (OR);
        // otherwise all conditions must hold (AND).
        let same_index = conds.len() > 1 && conds.iter().all(|c| c.index == conds[0].index);
        let rules: Vec<ArgRule> = if conds.is_empty() {
            vec![]
        } else if same_index {
            conds
                .into_iter()
                .map(|c| ArgRule {
                    action: a,
                    args: vec![c],
                })
                .collect()
        } else {
            vec![ArgRule {
                action: a,
                args: conds,
            }]
        };
        for (k, name) in sc.names().iter().enumerate() {
            if !is_known_syscall(name) {
                // As runc/libseccomp: a name this kernel/arch table does not know (an old or
                // foreign-arch syscall such as pciconfig_iobase, which podman's default lists)
                // cannot be called here, so there is nothing to filter. Not an error.
                let _ = (k, OTHER_ARCH_SYSCALLS);
                continue;
            }
            let sp = syscalls.entry(name.clone()).or_default();
            if rules.is_empty() {
                merge(&mut sp.action, a);
            } else {
                sp.rules.extend(rules.iter().cloned());
            }
        }
    }
    Ok(SeccompPolicy {
        default_action,
        syscalls,
    })
}

/// Translate a spec's own `linux.seccomp` into filters the runtime installs in addition
/// to the profile's, so a call runs only if both allow it.
pub fn compile_oci_seccomp(
    seccomp: &LinuxSeccomp,
    arch: Arch,
) -> Result<Vec<BpfProgram>, ProfileError> {
    let policy = policy_from_oci(seccomp)?;
    Ok(vec![compile_policy(&policy, arch, false)?])
}

/// Import an OCI / Docker-style `linux.seccomp` JSON document as a profile (seccomp only;
/// no capabilities, Landlock extras, tmpfs or limits).
pub fn import_oci_json(json: &str, name: &str) -> Result<Profile, ProfileError> {
    let s: LinuxSeccomp = serde_json::from_str(json).map_err(|e| {
        oci_err(
            format!("<json line {} column {}>", e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let seccomp = policy_from_oci(&s)?;
    let provenance = seccomp
        .syscalls
        .iter()
        .filter_map(|(n, sp)| {
            sp.action
                .map(|a| (n.clone(), format!("{} in OCI import", a.as_text())))
        })
        .collect();
    let p = Profile {
        name: name.to_owned(),
        description: format!("imported from OCI seccomp JSON as {name}"),
        seccomp,
        capabilities: Vec::new(),
        landlock: LandlockPolicy::default(),
        tmpfs: Vec::new(),
        rootfs: Default::default(),
        limits: Limits::default(),
        shareable_namespaces: Vec::new(),
        provenance,
    };
    // Re-parse the canonical form so an import obeys every rule a written profile does.
    crate::parse(&format!("{name}.toml"), &p.to_toml(), &[])
}

fn oci_action(a: Action) -> (&'static str, Option<u32>) {
    match a {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Log => ("SCMP_ACT_LOG", None),
        Action::Errno(n) => ("SCMP_ACT_ERRNO", Some(n)),
        Action::Kill => ("SCMP_ACT_KILL_PROCESS", None),
    }
}

fn oci_args(arch: Arch, r: &ArgRule) -> Result<Vec<Vec<Value>>, ProfileError> {
    // Validate the same way the compiler does (values fit the requested width).
    rules_for(arch, &r.args)?;
    // Expand like the compiler: alternatives per condition, cartesian product.
    let mut sets: Vec<Vec<Value>> = vec![vec![]];
    for c in &r.args {
        let ev = |e: &str| crate::constants::eval(e, arch).unwrap_or(0);
        let alts: Vec<Value> = match &c.test {
            ArgTest::Cmp(op, v) => {
                let op = match op {
                    CmpOp::Eq => "SCMP_CMP_EQ",
                    CmpOp::Ne => "SCMP_CMP_NE",
                    CmpOp::Lt => "SCMP_CMP_LT",
                    CmpOp::Le => "SCMP_CMP_LE",
                    CmpOp::Gt => "SCMP_CMP_GT",
                    CmpOp::Ge => "SCMP_CMP_GE",
                };
                vec![json!({"index": c.index, "value": ev(v), "op": op})]
            }
            ArgTest::MaskedEq { mask, value } => vec![masked(c.index, ev(mask), ev(value))],
            ArgTest::In(vs) => vs
                .iter()
                .map(|v| json!({"index": c.index, "value": ev(v), "op": "SCMP_CMP_EQ"}))
                .collect(),
            ArgTest::AnySet(m) => {
                let m = ev(m);
                (0..64)
                    .map(|b| 1u64 << b)
                    .filter(|b| m & b != 0)
                    .map(|b| masked(c.index, b, b))
                    .collect()
            }
            ArgTest::AllSet(m) => vec![masked(c.index, ev(m), ev(m))],
            ArgTest::NoneSet(m) => vec![masked(c.index, ev(m), 0)],
        };
        let mut next = Vec::new();
        for s in &sets {
            for a in &alts {
                let mut s2 = s.clone();
                s2.push(a.clone());
                next.push(s2);
            }
        }
        sets = next;
    }
    Ok(sets)
}

fn masked(index: u8, mask: u64, value: u64) -> Value {
    json!({"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"})
}

/// Export a profile's seccomp policy as an OCI `linux.seccomp` object for `arch`, as
/// accepted by runc, crun and Kubernetes `localhost/` profiles. Argument rules are
/// expanded; a single-condition alternative list is emitted as one entry per alternative
/// so runc's "same index = OR" rule never changes its meaning.
pub fn export_oci(profile: &Profile, arch: Arch) -> Value {
    let policy = profile.seccomp();
    let mut by_action: BTreeMap<(&'static str, Option<u32>), Vec<&str>> = BTreeMap::new();
    let mut entries = Vec::new();
    for (name, sp) in &policy.syscalls {
        if arch.syscall_number(name).is_none() {
            continue;
        }
        if let Some(a) = sp.action {
            by_action.entry(oci_action(a)).or_default().push(name);
        }
        for r in &sp.rules {
            let (act, errno) = oci_action(r.action);
            // The profile was validated, so expansion only fails on values that do not
            // fit 32 bits for a `bits = 32` condition; such a rule is left out here and
            // reported by compile_seccomp.
            let Ok(sets) = oci_args(arch, r) else {
                continue;
            };
            for args in sets {
                let mut e = json!({"names": [name], "action": act, "args": args});
                if let Some(n) = errno {
                    e["errnoRet"] = json!(n);
                }
                entries.push(e);
            }
        }
    }
    let mut syscalls: Vec<Value> = by_action
        .into_iter()
        .map(|((act, errno), names)| {
            let mut e = json!({"names": names, "action": act});
            if let Some(n) = errno {
                e["errnoRet"] = json!(n);
            }
            e
        })
        .collect();
    syscalls.extend(entries);
    let (default, derrno) = oci_action(policy.default_action);
    let mut out = json!({
        "defaultAction": default,
        "architectures": [arch.scmp_name()],
        "syscalls": syscalls,
    });
    if let Some(n) = derrno {
        out["defaultErrnoRet"] = json!(n);
    }
    out
}
