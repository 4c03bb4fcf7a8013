//! `ward profile lint | diff | learn` helpers and the compiled-filter cache.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::path::Path;

use seccompiler::sock_filter;

use crate::arch::Arch;
use crate::constants::constant;
use crate::error::ProfileError;
use crate::explain::{evaluate, unconditional};
use crate::groups::{GROUPS, WARD_DANGEROUS};
use crate::profile::{q, render_arg, Action, Profile};
use crate::seccomp::{compile_seccomp, Mode, SeccompProgram, NOTIFY_PROTOCOL_SYSCALLS};

/// How bad a lint finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Weakens Ward's threat model.
    Error,
    /// Probably unintended or weaker than it looks.
    Warning,
}

/// One lint finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Human-readable message.
    pub message: String,
}

/// Capabilities that reach host-wide kernel surface.
pub const DANGEROUS_CAPABILITIES: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_DAC_READ_SEARCH",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYSLOG",
    "CAP_MKNOD",
    "CAP_SYS_CHROOT",
    "CAP_LINUX_IMMUTABLE",
    "CAP_AUDIT_CONTROL",
];

/// Calls whose mode argument (index) can carry S_ISUID/S_ISGID or a device file type.
pub const SET_ID_MODE_CALLS: &[(&str, u8)] = &[
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
    ("open", 2),
    ("openat", 3),
    ("creat", 1),
    ("mkdir", 1),
    ("mkdirat", 2),
    ("mknod", 1),
    ("mknodat", 2),
];

fn denied(p: &Profile, s: &str) -> bool {
    matches!(
        unconditional(p.seccomp(), s),
        Some(Action::Errno(_) | Action::Kill)
    )
}

fn can_be_allowed(p: &Profile, s: &str) -> bool {
    !denied(p, s)
}

fn has_deny_rule(p: &Profile, s: &str) -> bool {
    p.seccomp()
        .syscalls
        .get(s)
        .is_some_and(|sp| sp.rules.iter().any(|r| r.action != Action::Allow))
}

fn has_allow_rule_only(p: &Profile, s: &str) -> bool {
    p.seccomp()
        .syscalls
        .get(s)
        .is_some_and(|sp| sp.action.is_none() && sp.rules.iter().any(|r| r.action == Action::Allow))
        && p.seccomp().default_action != Action::Allow
}

/// The namespace flags with which `clone` runs (on any architecture) under `profile`.
fn clone_namespace_flags_allowed(profile: &Profile) -> Vec<&'static str> {
    const FLAGS: &[&str] = &[
        "CLONE_NEWUSER",
        "CLONE_NEWNS",
        "CLONE_NEWPID",
        "CLONE_NEWNET",
        "CLONE_NEWUTS",
        "CLONE_NEWIPC",
        "CLONE_NEWCGROUP",
        "CLONE_NEWTIME",
    ];
    FLAGS
        .iter()
        .copied()
        .filter(|f| {
            Arch::ALL.iter().any(|&arch| {
                let (Some(nr), Some(v)) = (arch.syscall_number("clone"), constant(f, arch)) else {
                    return false;
                };
                // The flag alone, and with SIGCHLD as fork-like callers pass it.
                [v, v | libc::SIGCHLD as u64].iter().any(|&a0| {
                    matches!(
                        evaluate(profile.seccomp(), arch, nr, &[a0, 0, 0, 0, 0, 0]),
                        Action::Allow | Action::Log
                    )
                })
            })
        })
        .collect()
}

/// Check a profile against Ward's threat model.
pub fn lint(profile: &Profile) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |severity, message: String| out.push(Finding { severity, message });
    for s in WARD_DANGEROUS {
        if can_be_allowed(profile, s) {
            push(
                Severity::Error,
                format!("{s} is allowed (THREATS.md: must be denied)"),
            );
        }
    }
    if can_be_allowed(profile, "clone")
        && !has_deny_rule(profile, "clone")
        && !has_allow_rule_only(profile, "clone")
    {
        push(
            Severity::Error,
            "clone is allowed without a namespace-flag filter".into(),
        );
    } else {
        // A filter that misses a flag is no filter for that flag (the fuzzer found OCI
        // imports whose clone rules covered every flag but CLONE_NEWUSER).
        let open = clone_namespace_flags_allowed(profile);
        if !open.is_empty() {
            push(
                Severity::Error,
                format!(
                    "clone is allowed with {}: its namespace-flag filter misses them",
                    open.join(", ")
                ),
            );
        }
    }
    if can_be_allowed(profile, "ioctl")
        && !has_deny_rule(profile, "ioctl")
        && !has_allow_rule_only(profile, "ioctl")
    {
        push(
            Severity::Warning,
            "ioctl is allowed for every request (TIOCSTI terminal injection)".into(),
        );
    }
    if can_be_allowed(profile, "personality")
        && !has_deny_rule(profile, "personality")
        && !has_allow_rule_only(profile, "personality")
    {
        push(
            Severity::Warning,
            "personality is unrestricted (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE)".into(),
        );
    }
    if can_be_allowed(profile, "socket")
        && !has_deny_rule(profile, "socket")
        && !has_allow_rule_only(profile, "socket")
    {
        push(
            Severity::Warning,
            "socket is unrestricted (AF_PACKET, raw sockets)".into(),
        );
    }
    // Container root writes as host root through an idmapped read-write volume: a set-id
    // file or device node created there would be one on the host.
    let unfiltered: Vec<&str> = SET_ID_MODE_CALLS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| can_be_allowed(profile, s) && !has_deny_rule(profile, s))
        .collect();
    if !unfiltered.is_empty() {
        push(
            Severity::Warning,
            format!(
                "{} can set S_ISUID/S_ISGID (or create devices) without an argument rule: \
                 set-id files could be planted in a writable volume",
                unfiltered.join(", ")
            ),
        );
    }
    if can_be_allowed(profile, "openat2") {
        push(
            Severity::Warning,
            "openat2 is allowed: its mode is inside a struct no filter can read \
             (deny it with openat2:ENOSYS so libc falls back to openat)"
                .into(),
        );
    }
    for c in profile.capabilities() {
        if DANGEROUS_CAPABILITIES.contains(&c.as_str()) {
            push(
                Severity::Error,
                format!("capability {c} reaches host-wide kernel surface"),
            );
        }
    }
    if profile.seccomp().default_action == Action::Allow {
        for (name, sp) in &profile.seccomp().syscalls {
            if sp.rules.iter().any(|r| r.action == Action::Allow) && sp.action.is_none() {
                push(
                    Severity::Warning,
                    format!("{name}: allow rule has no effect with default_action = allow"),
                );
            }
        }
    }
    if profile.rootfs().writable {
        push(
            Severity::Warning,
            "rootfs.writable: a spec that asks gets a writable rootfs, and what it writes there \
             can be executed (Landlock grants write on /, bin dirs included); prefer [[tmpfs]] at \
             the paths the image writes"
                .into(),
        );
    }
    if profile.limits().pids.is_none() {
        push(Severity::Warning, "no pids limit (fork bomb)".into());
    }
    if profile.limits().memory_bytes.is_none() {
        push(Severity::Warning, "no memory limit".into());
    }
    out
}

/// Differences between two profiles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileDiff {
    /// Lines, each starting with `+` (in b only), `-` (in a only) or `~` (changed).
    pub lines: Vec<String>,
}

impl ProfileDiff {
    /// No differences.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl fmt::Display for ProfileDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

fn set_diff(lines: &mut Vec<String>, what: &str, a: &[String], b: &[String]) {
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    for x in b.difference(&a) {
        lines.push(format!("+ {what} {x}"));
    }
    for x in a.difference(&b) {
        lines.push(format!("- {what} {x}"));
    }
}

fn changed<T: PartialEq + fmt::Debug>(lines: &mut Vec<String>, what: &str, a: &T, b: &T) {
    if a != b {
        lines.push(format!("~ {what}: {a:?} -> {b:?}"));
    }
}

/// What changes from `a` to `b`: syscalls, argument rules, capabilities, Landlock,
/// tmpfs, limits, shareable namespaces.
pub fn diff(a: &Profile, b: &Profile) -> ProfileDiff {
    let mut lines = Vec::new();
    let (sa, sb) = (a.seccomp(), b.seccomp());
    if sa.default_action != sb.default_action {
        lines.push(format!(
            "~ seccomp.default_action: {} -> {}",
            sa.default_action.as_text(),
            sb.default_action.as_text()
        ));
    }
    let names: BTreeSet<&String> = sa.syscalls.keys().chain(sb.syscalls.keys()).collect();
    for n in names {
        let ua = sa.syscalls.get(n).and_then(|s| s.action);
        let ub = sb.syscalls.get(n).and_then(|s| s.action);
        match (ua, ub) {
            (None, Some(x)) => lines.push(format!("+ syscall {n}: {}", x.as_text())),
            (Some(x), None) => lines.push(format!("- syscall {n}: {}", x.as_text())),
            (Some(x), Some(y)) if x != y => {
                lines.push(format!("~ syscall {n}: {} -> {}", x.as_text(), y.as_text()))
            }
            _ => {}
        }
        let render = |p: &crate::profile::SeccompPolicy| -> Vec<String> {
            p.syscalls.get(n).map_or(vec![], |s| {
                s.rules
                    .iter()
                    .map(|r| {
                        let c: Vec<String> = r.args.iter().map(render_arg).collect();
                        format!("{n} {} when {}", r.action.as_text(), c.join(" and "))
                    })
                    .collect()
            })
        };
        set_diff(&mut lines, "rule", &render(sa), &render(sb));
    }
    set_diff(&mut lines, "capability", a.capabilities(), b.capabilities());
    let (la, lb) = (a.landlock(), b.landlock());
    changed(&mut lines, "landlock.exec", &la.exec, &lb.exec);
    set_diff(&mut lines, "landlock.read", &la.read, &lb.read);
    set_diff(
        &mut lines,
        "landlock.read_exec",
        &la.read_exec,
        &lb.read_exec,
    );
    set_diff(&mut lines, "landlock.write", &la.write, &lb.write);
    changed(&mut lines, "landlock.tcp_bind", &la.tcp_bind, &lb.tcp_bind);
    changed(
        &mut lines,
        "landlock.tcp_connect",
        &la.tcp_connect,
        &lb.tcp_connect,
    );
    let tmp = |p: &Profile| -> Vec<String> {
        p.tmpfs()
            .iter()
            .map(|t| {
                format!(
                    "{} size={} mode={:o} noexec={}",
                    t.path, t.size_bytes, t.mode, t.noexec
                )
            })
            .collect()
    };
    set_diff(&mut lines, "tmpfs", &tmp(a), &tmp(b));
    changed(&mut lines, "rootfs", a.rootfs(), b.rootfs());
    let (ma, mb) = (a.limits(), b.limits());
    changed(&mut lines, "limits.pids", &ma.pids, &mb.pids);
    changed(
        &mut lines,
        "limits.memory_bytes",
        &ma.memory_bytes,
        &mb.memory_bytes,
    );
    changed(
        &mut lines,
        "limits.cpu_shares",
        &ma.cpu_shares,
        &mb.cpu_shares,
    );
    changed(
        &mut lines,
        "limits.cpu_quota_us",
        &ma.cpu_quota_us,
        &mb.cpu_quota_us,
    );
    changed(
        &mut lines,
        "limits.cpu_period_us",
        &ma.cpu_period_us,
        &mb.cpu_period_us,
    );
    set_diff(
        &mut lines,
        "namespace",
        a.shareable_namespaces(),
        b.shareable_namespaces(),
    );
    ProfileDiff { lines }
}

const CACHE_MAGIC: &[u8; 8] = b"WARDBPF1";

fn encode(p: &SeccompProgram) -> Vec<u8> {
    let mut out = CACHE_MAGIC.to_vec();
    out.extend((p.filters.len() as u32).to_le_bytes());
    for f in &p.filters {
        out.extend((f.len() as u32).to_le_bytes());
        for i in f {
            out.extend(i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend(i.k.to_le_bytes());
        }
    }
    out
}

fn decode(b: &[u8]) -> Option<SeccompProgram> {
    let rest = b.strip_prefix(CACHE_MAGIC)?;
    let u32_at = |b: &[u8], o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    };
    let n = u32_at(rest, 0)? as usize;
    let mut off = 4;
    let mut filters = Vec::new();
    for _ in 0..n {
        let len = u32_at(rest, off)? as usize;
        off += 4;
        if len == 0 || len > 4096 {
            return None;
        }
        let mut f = Vec::with_capacity(len);
        for _ in 0..len {
            let ins = rest.get(off..off + 8)?;
            f.push(sock_filter {
                code: u16::from_le_bytes([ins[0], ins[1]]),
                jt: ins[2],
                jf: ins[3],
                k: u32::from_le_bytes([ins[4], ins[5], ins[6], ins[7]]),
            });
            off += 8;
        }
        filters.push(f);
    }
    (off == rest.len() && !filters.is_empty()).then_some(SeccompProgram { filters })
}

/// [`compile_seccomp`] with an on-disk cache keyed by profile hash, arch and mode.
/// Files are written atomically (temp file + rename); a file whose length or framing
/// does not check out is ignored and rewritten.
pub fn compile_seccomp_cached(
    profile: &Profile,
    arch: Arch,
    mode: Mode,
    cache_dir: &Path,
) -> Result<SeccompProgram, ProfileError> {
    let file = cache_dir.join(format!("{}-{}-{}.bpf", profile.hash(), arch, mode.as_str()));
    if let Ok(bytes) = std::fs::read(&file) {
        if let Some(p) = decode(&bytes) {
            return Ok(p);
        }
    }
    let program = compile_seccomp(profile, arch, mode)?;
    let cache_err = |e: std::io::Error| ProfileError::Cache {
        path: file.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(cache_dir).map_err(cache_err)?;
    let tmp = cache_dir.join(format!(".{}.{}.tmp", profile.hash(), std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(cache_err)?;
    f.write_all(&encode(&program)).map_err(cache_err)?;
    f.sync_all().map_err(cache_err)?;
    std::fs::rename(&tmp, &file).map_err(cache_err)?;
    Ok(program)
}

/// Every namespace flag of clone(2).
const CLONE_NAMESPACE_FLAGS: &str = "CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWCGROUP|CLONE_NEWTIME";

/// Draft a profile from a recording: `seen` maps syscall name to the argument vectors
/// observed, `paths` are paths the workload wrote to (become `landlock.write`). Groups
/// used completely are listed as groups, the rest by name; syscalls the default profile
/// filters by argument (clone, socket, ioctl, personality, prctl) get rules from the
/// values observed. The draft extends `default`, so its denials stay in force.
pub fn draft_from_recording(
    name: &str,
    seen: &BTreeMap<String, Vec<[u64; 6]>>,
    paths: &[String],
) -> String {
    let arch = Arch::native();
    let mut used: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    used.extend(NOTIFY_PROTOCOL_SYSCALLS);
    used.insert("execve");
    const ARG_FILTERED: &[(&str, u8)] = &[
        ("clone", 0),
        ("socket", 0),
        ("ioctl", 1),
        ("personality", 0),
        ("prctl", 0),
    ];
    let mut rules = String::new();
    // Threads made with clone3 in learn mode are made with clone once clone3 is denied.
    let clone_seen: Vec<[u64; 6]>;
    let seen = if seen.contains_key("clone3") && !seen.contains_key("clone") {
        clone_seen = vec![[0; 6]];
        let mut s = seen.clone();
        s.insert("clone".into(), clone_seen);
        std::borrow::Cow::Owned(s)
    } else {
        std::borrow::Cow::Borrowed(seen)
    };
    for (sys, idx) in ARG_FILTERED {
        if let Some(calls) = seen.get(*sys) {
            used.remove(sys);
            let mut vals: Vec<u64> = calls
                .iter()
                .map(|a| a[usize::from(*idx)])
                .map(|v| if *sys == "clone" { v & !0xff } else { v })
                .collect();
            vals.sort_unstable();
            vals.dedup();
            let values: Vec<String> = vals.iter().map(|v| q(&format!("{v:#x}"))).collect();
            rules.push_str(&format!(
                "\n[[seccomp.rule]]\nsyscall = {}\naction = \"allow\"\n",
                q(sys)
            ));
            if *sys == "clone" {
                // Any clone without namespace flags. Not "only the flags seen": in learn
                // mode threads come from clone3, which `default` answers with ENOSYS, so
                // under enforcement glibc falls back to clone with thread flags never seen.
                rules.push_str(&format!(
                    "args = [{{ index = 0, op = \"none_set\", mask = {} }}]\n",
                    q(CLONE_NAMESPACE_FLAGS)
                ));
            } else {
                rules.push_str(&format!(
                    "args = [{{ index = {idx}, op = \"in\", values = [{}] }}]\n",
                    values.join(", ")
                ));
            }
        }
    }
    // What the parent (`default`) denies stays denied whatever the draft allows (a deny
    // beats an allow): list such calls in a comment instead of a misleading allow entry.
    let parent = crate::load("default", &[]).ok();
    let kept_denied: Vec<&str> = used
        .iter()
        .copied()
        .filter(|s| {
            parent.as_ref().is_some_and(|p| {
                matches!(
                    unconditional(p.seccomp(), s),
                    Some(Action::Errno(_) | Action::Kill)
                )
            })
        })
        .collect();
    for s in &kept_denied {
        used.remove(s);
    }
    let mut allow: Vec<String> = Vec::new();
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    for g in GROUPS {
        if g.name == "@ward-dangerous" {
            continue;
        }
        let members: Vec<&str> = g
            .syscalls
            .iter()
            .copied()
            .filter(|s| arch.syscall_number(s).is_some())
            .collect();
        if !members.is_empty() && members.iter().all(|s| used.contains(s)) {
            allow.push(g.name.to_owned());
            covered.extend(members);
        }
    }
    allow.extend(
        used.iter()
            .filter(|s| !covered.contains(*s))
            .map(|s| (*s).to_owned()),
    );
    let allow: Vec<String> = allow.iter().map(|s| q(s)).collect();
    let mut write: Vec<&String> = paths.iter().collect();
    write.sort();
    write.dedup();
    let write: Vec<String> = write.iter().map(|s| q(s)).collect();
    let denied_note = if kept_denied.is_empty() {
        String::new()
    } else {
        format!(
            "# Seen, but denied by `default` and kept denied: {}\n",
            kept_denied.join(", ")
        )
    };
    format!(
        "# Draft generated from a recording on {arch}. Review, then `ward profile lint`.\nname = {}\ndescription = \"learned profile (draft)\"\nextends = \"default\"\n\n[seccomp]\ndefault_action = \"errno\"\n{denied_note}allow = [\n    {},\n]\n{rules}\n[landlock]\nwrite = [{}]\n",
        q(name),
        allow.join(",\n    "),
        write.join(", ")
    )
}

#[cfg(test)]
mod tests;
