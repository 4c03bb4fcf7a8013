//! Profile parser + resolver + compiler harness.
//!
//! Input: arbitrary text, or a built-in profile mutated line by line with fragments of the
//! format. Invariants:
//! - parsing, linting, explaining and compiling never panic, and every error is one line;
//! - a parsed profile's canonical TOML parses back to the same seccomp policy;
//! - a compiled program is one the kernel accepts (structure, ≤ 4096 instructions), and it
//!   answers like the reference semantics for every call the profile names, every
//!   THREATS.md call and a few others, with sampled arguments, in both enforcing modes;
//! - a THREATS.md call (or `clone` with a namespace flag) that the program lets through is
//!   reported by `lint` as an error: a profile cannot quietly re-open that surface.

use super::bpf::{audit_arch, check_program, interpret, lets_through, samples, BpfCheck};
use super::{assert_one_line, Input};
use crate::arch::Arch;
use crate::groups::WARD_DANGEROUS;
use crate::profile::Profile;
use crate::seccomp::{compile_seccomp, Mode};
use crate::tools::{lint, Severity};

/// Fragments the mutator inserts: keys, tables, values of the format, and edge cases.
const FRAGMENTS: &[&str] = &[
    "[seccomp]",
    "[[seccomp.rule]]",
    "[landlock]",
    "[[tmpfs]]",
    "[limits]",
    "[namespaces]",
    "default_action = \"allow\"",
    "default_action = \"kill\"",
    "default_action = \"log\"",
    "default_action = \"errno:ENOSYS\"",
    "default_action = \"errno:0\"",
    "default_action = \"errno:4096\"",
    "allow = [\"unshare\", \"mount\"]",
    "allow = [\"@ward-dangerous\"]",
    "allow = [\"@mount\", \"clone3\"]",
    "allow = [\"clone\"]",
    "allow = [\"@nope\"]",
    "allow = [\"\"]",
    "deny = [\"@privileged\"]",
    "deny = [\"bpf:EINVAL\"]",
    "kill = [\"ptrace\"]",
    "log = [\"bpf\"]",
    "remove = [\"unshare\"]",
    "remove = [\"@ward-dangerous\"]",
    "extends = \"default\"",
    "extends = \"strict\"",
    "extends = \"restricted\"",
    "extends = \"nginx\"",
    "extends = \"nope\"",
    "extends = \"/etc/passwd\"",
    "extends = \"fuzz\"",
    "name = \"fuzz\"",
    "name = \"../x\"",
    "name = \"\"",
    "capabilities = [\"CAP_SYS_ADMIN\"]",
    "capabilities = [\"CAP_NET_BIND_SERVICE\", \"net_raw\"]",
    "capabilities = [\"CAP_NOPE\"]",
    "syscall = \"clone\"",
    "syscall = \"unshare\"",
    "syscall = \"socket\"",
    "syscall = \"ioctl\"",
    "syscall = \"nope\"",
    "action = \"allow\"",
    "action = \"errno\"",
    "action = \"kill\"",
    "action = \"log\"",
    "args = [{ index = 0, op = \"any_set\", mask = \"CLONE_NEWUSER\" }]",
    "args = [{ index = 0, op = \"none_set\", mask = \"CLONE_NEWNS\" }]",
    "args = [{ index = 0, op = \"all_set\", mask = \"CLONE_NEWUSER|CLONE_NEWNET\" }]",
    "args = [{ index = 0, op = \"eq\", value = \"0x10000000\" }]",
    "args = [{ index = 0, op = \"ne\", value = \"0\" }, { index = 0, op = \"ne\", value = \"1\" }]",
    "args = [{ index = 5, op = \"gt\", value = \"0xffffffff\", bits = 32 }]",
    "args = [{ index = 1, op = \"le\", value = \"0xffffffffffffffff\", bits = 64 }]",
    "args = [{ index = 6, op = \"eq\", value = \"1\" }]",
    "args = [{ index = 0, op = \"in\", values = [] }]",
    "args = [{ index = 0, op = \"in\", values = [\"1\", \"2\", \"3\", \"4\"] }]",
    "args = [{ index = 0, op = \"masked_eq\", mask = \"0xf\", value = \"SOCK_RAW\" }]",
    "args = [{ index = 0, op = \"any_set\", mask = \"0xffffffffffffffff\" }, { index = 1, op = \"any_set\", mask = \"0xffffffffffffffff\" }, { index = 2, op = \"any_set\", mask = \"0xffffffffffffffff\" }, { index = 3, op = \"any_set\", mask = \"0xffffffffffffffff\" }]",
    "args = [{ index = 0, op = \"any_set\", mask = \"0\" }]",
    "args = [{ index = 0, op = \"eq\", value = \"A||B\" }]",
    "args = [{ index = 0, op = \"eq\", value = \"1<<3\" }]",
    "args = []",
    "bits = 16",
    "exec = \"any\"",
    "exec = \"bin-dirs\"",
    "tcp_bind = [70000]",
    "tcp_bind = [0, 80]",
    "tcp_connect = \"any\"",
    "tcp_connect = [443]",
    "read = [\"/\"]",
    "write = [\"relative\"]",
    "path = \"/tmp\"",
    "path = \"../etc\"",
    "path = \"/\"",
    "size = \"0\"",
    "size = \"99999999999999T\"",
    "size = \"-1\"",
    "mode = \"1777\"",
    "mode = \"99999\"",
    "mode = 4755",
    "noexec = true",
    "pids = 0",
    "pids = -1",
    "pids = 9223372036854775807",
    "memory = \"1K\"",
    "memory = \"18446744073709551616\"",
    "cpu_shares = 0",
    "cpu_quota_us = -5",
    "cpu_period_us = 0",
    "shareable = [\"network\", \"mount\"]",
    "comment = \"x\"",
    "= \"\"",
    "[",
    "\"",
    "a.b.c = 1",
];

/// One case from fuzzer bytes.
pub fn profile_case(data: &[u8]) {
    let mut u = Input::new(data);
    let text = if u.below(5) == 0 {
        String::from_utf8_lossy(u.rest()).into_owned()
    } else {
        mutate_builtin(&mut u)
    };
    profile_text_case(&text, &[u.value(), u.value()]);
}

fn mutate_builtin(u: &mut Input) -> String {
    let name = u.pick(crate::builtin_names());
    let src = crate::builtin_source(name).expect("builtin");
    let mut lines: Vec<String> = src.lines().map(str::to_owned).collect();
    for _ in 0..1 + u.below(6) {
        let at = u.below(lines.len() + 1);
        match u.below(8) {
            0 if at < lines.len() => {
                lines.remove(at);
            }
            1 if at < lines.len() => {
                let l = lines[at].clone();
                lines.insert(at, l);
            }
            2 | 3 => lines.insert(at, (*u.pick(FRAGMENTS)).to_owned()),
            4 => {
                // A syscall name (any arch) into a list or a rule.
                let arch = *u.pick(&Arch::ALL);
                let names: Vec<&str> = arch.syscall_names().collect();
                let s = u.pick(&names);
                let key = u.pick(&["allow", "deny", "kill", "log", "remove"]);
                lines.insert(at, format!("{key} = [\"{s}\"]"));
            }
            5 if at < lines.len() => {
                // Replace a quoted value in a line with a fragment's value.
                let frag = u.pick(FRAGMENTS);
                if let (Some(eq), Some(feq)) = (lines[at].find('='), frag.find('=')) {
                    let key = lines[at][..eq].to_owned();
                    lines[at] = format!("{key}{}", &frag[feq..]);
                }
            }
            6 => {
                let at = u.below(lines.len());
                if let Some(l) = lines.get_mut(at) {
                    let cut = u.below(l.len() + 1);
                    if l.is_char_boundary(cut) {
                        l.truncate(cut);
                    }
                }
            }
            _ => {
                let b = char::from(u.byte() & 0x7f);
                if let Some(l) = lines.get_mut(at) {
                    l.push(b);
                }
            }
        }
    }
    lines.join("\n")
}

/// Parse `text` as a profile and check every invariant on what comes out.
pub fn profile_text_case(text: &str, extra: &[u64]) {
    super::show("profile", text);
    let p = match crate::parse("fuzz.toml", text, &[]) {
        Ok(p) => p,
        Err(e) => return assert_one_line("parse", &e.to_string()),
    };
    let findings = lint(&p);
    let canonical = p.to_toml();
    match crate::parse("fuzz.toml", &canonical, &[]) {
        Ok(again) => assert_eq!(
            again.seccomp(),
            p.seccomp(),
            "canonical form changes the policy:\n{canonical}"
        ),
        Err(e) => panic!("canonical form does not parse: {e}\n{canonical}"),
    }
    for arch in Arch::ALL {
        let _ = crate::explain(&p, "clone", arch);
        let names = names_to_check(&p, arch);
        let samples = samples(arch, extra);
        for mode in [Mode::Enforce, Mode::EnforceAndReport] {
            let prog = match compile_seccomp(&p, arch, mode) {
                Ok(prog) => prog,
                Err(e) => {
                    assert_one_line("compile", &e.to_string());
                    continue;
                }
            };
            assert_eq!(prog.filters.len(), 1, "one program");
            let f = &prog.filters[0];
            let check = BpfCheck {
                policy: p.seccomp(),
                arch,
                notify: mode == Mode::EnforceAndReport,
            };
            check_program(f, &check, &names, &samples);
            if mode == Mode::Enforce {
                dangerous_surface_is_linted(f, &p, arch, &findings, &samples);
            }
        }
    }
}

fn names_to_check(p: &Profile, arch: Arch) -> Vec<&str> {
    let mut names: Vec<&str> = p.seccomp().syscalls.keys().map(String::as_str).collect();
    names.extend(WARD_DANGEROUS.iter().copied());
    names.extend([
        "clone",
        "socket",
        "ioctl",
        "read",
        "write",
        "execve",
        "exit_group",
    ]);
    names.retain(|n| arch.syscall_number(n).is_some());
    names
}

fn has_error(findings: &[crate::tools::Finding], needle: &str) -> bool {
    findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Error) && f.message.contains(needle))
}

fn dangerous_surface_is_linted(
    prog: &[seccompiler::sock_filter],
    p: &Profile,
    arch: Arch,
    findings: &[crate::tools::Finding],
    samples: &[[u64; 6]],
) {
    let audit = audit_arch(arch);
    for s in WARD_DANGEROUS {
        let Some(nr) = arch.syscall_number(s) else {
            continue;
        };
        if samples
            .iter()
            .any(|a| lets_through(interpret(prog, audit, nr, a)))
        {
            assert!(
                has_error(findings, s),
                "{}: {s} runs under profile {:?} and lint does not report it",
                arch.as_str(),
                p.name()
            );
        }
    }
    let (Some(clone), Some(newuser)) = (
        arch.syscall_number("clone"),
        crate::constant("CLONE_NEWUSER", arch),
    ) else {
        return;
    };
    for flags in [newuser, newuser | 0x11] {
        let args = [flags, 0, 0, 0, 0, 0];
        if lets_through(interpret(prog, audit, clone, &args)) {
            assert!(
                has_error(findings, "clone"),
                "{}: clone(CLONE_NEWUSER) runs under profile {:?} and lint does not report it",
                arch.as_str(),
                p.name()
            );
        }
    }
}
