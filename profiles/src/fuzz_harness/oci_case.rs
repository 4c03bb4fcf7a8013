//! OCI `linux.seccomp` harness: the spec's own filter (`compile_oci_seccomp`) and the
//! `ward profile import` path (`import_oci_json`).
//!
//! Input: arbitrary text, an exported built-in mutated as JSON, or a generated object.
//! Invariants: never a panic; every error is one line; a compiled filter is valid and
//! answers like the reference semantics of the translated policy; an imported profile
//! passes every profile invariant (see `profile_case`).

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{json, Value};

use super::bpf::{check_program, samples, BpfCheck};
use super::profile_case::profile_text_case;
use super::{assert_one_line, Input};
use crate::arch::Arch;
use crate::oci::{compile_oci_seccomp, export_oci, import_oci_json, policy_from_oci};

const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_NOPE",
];

const OPS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NOPE",
];

const ODD_NAMES: &[&str] = &[
    "",
    "nope",
    "socketcall",
    "mmap2",
    "pciconfig_iobase",
    "clone3",
    "unshare",
    "../x",
];

/// One case from fuzzer bytes.
pub fn oci_case(data: &[u8]) {
    let mut u = Input::new(data);
    let text = match u.below(4) {
        0 => String::from_utf8_lossy(u.rest()).into_owned(),
        1 => {
            let mut v = exported_builtin(&mut u);
            mutate(&mut v, &mut u);
            v.to_string()
        }
        _ => generated(&mut u).to_string(),
    };
    oci_text_case(&text, &[u.value(), u.value()]);
}

fn exported_builtin(u: &mut Input) -> Value {
    let name = u.pick(crate::builtin_names());
    let p = crate::load(name, &[]).expect("builtin loads");
    export_oci(&p, *u.pick(&Arch::ALL))
}

fn name(u: &mut Input) -> String {
    if u.below(6) == 0 {
        return (*u.pick(ODD_NAMES)).to_owned();
    }
    let arch = *u.pick(&Arch::ALL);
    let names: Vec<&str> = arch.syscall_names().collect();
    (*u.pick(&names)).to_owned()
}

fn arg(u: &mut Input) -> Value {
    let mut a = json!({
        "index": if u.below(8) == 0 { u.value() } else { u.below(7) as u64 },
        "value": u.value(),
        "op": u.pick(OPS),
    });
    if u.bool() {
        a["valueTwo"] = json!(u.value());
    }
    a
}

fn entry(u: &mut Input) -> Value {
    let names: Vec<String> = (0..u.below(4)).map(|_| name(u)).collect();
    let mut e = json!({ "names": names, "action": u.pick(ACTIONS) });
    if u.bool() {
        e["errnoRet"] = json!(u.value() as u32);
    }
    if u.bool() {
        let args: Vec<Value> = (0..u.below(4)).map(|_| arg(u)).collect();
        e["args"] = json!(args);
    }
    e
}

fn generated(u: &mut Input) -> Value {
    let mut v = json!({ "defaultAction": u.pick(ACTIONS) });
    if u.bool() {
        v["defaultErrnoRet"] = json!(u.value() as u32);
    }
    if u.below(4) == 0 {
        v["architectures"] = json!([u.pick(&["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "x"])]);
    }
    if u.below(8) == 0 {
        v["flags"] = json!([u.pick(&["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"])]);
    }
    if u.below(8) == 0 {
        v["listenerPath"] = json!("/run/agent.sock");
    }
    let syscalls: Vec<Value> = (0..u.below(12)).map(|_| entry(u)).collect();
    v["syscalls"] = json!(syscalls);
    v
}

fn mutate(v: &mut Value, u: &mut Input) {
    for _ in 0..1 + u.below(4) {
        let Some(list) = v.get_mut("syscalls").and_then(Value::as_array_mut) else {
            return;
        };
        let at = u.below(list.len() + 1);
        match u.below(5) {
            0 if at < list.len() => {
                list.remove(at);
            }
            1 => list.insert(at, entry(u)),
            2 if at < list.len() => list[at]["action"] = json!(u.pick(ACTIONS)),
            3 if at < list.len() => list[at]["args"] = json!([arg(u)]),
            _ => v["defaultAction"] = json!(u.pick(ACTIONS)),
        }
    }
}

/// Import and compile `text`, checking every invariant.
pub fn oci_text_case(text: &str, extra: &[u64]) {
    super::show("oci seccomp", text);
    match import_oci_json(text, "fuzz") {
        Ok(p) => profile_text_case(&p.to_toml(), extra),
        Err(e) => assert_one_line("import", &e.to_string()),
    }
    let Ok(s) = serde_json::from_str::<LinuxSeccomp>(text) else {
        return;
    };
    let policy = match policy_from_oci(&s) {
        Ok(p) => p,
        Err(e) => return assert_one_line("translate", &e.to_string()),
    };
    for arch in Arch::ALL {
        match compile_oci_seccomp(&s, arch) {
            Err(e) => assert_one_line("compile", &e.to_string()),
            Ok(progs) => {
                assert_eq!(progs.len(), 1, "one program");
                let mut names: Vec<&str> = policy.syscalls.keys().map(String::as_str).collect();
                names.extend(["read", "clone", "unshare", "mount"]);
                let check = BpfCheck {
                    policy: &policy,
                    arch,
                    notify: false,
                };
                check_program(&progs[0], &check, &names, &samples(arch, extra));
            }
        }
    }
}
