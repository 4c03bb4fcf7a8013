//! Fuzz harness for `harden()`, shared by the cargo-fuzz target (`fuzz/`, nightly) and the
//! stable fallback (a fixed-seed unit test, `make test` and `make fuzz`).
//!
//! Input: runc's default config.json (tests/src/base-config.json) with fields mutated by
//! fuzzer bytes (capabilities, namespaces, mounts, uid/gid maps, devices, cgroupsPath,
//! rlimits, sysctls, annotations, resources, versions, paths), under a policy that the
//! bytes vary too. Invariants: `harden` never panics; an error is one line naming a field;
//! an accepted spec satisfies every sandbox invariant (see `invariants.rs`).
//!
//! Built only for tests and with the `fuzzing` feature; nothing here is part of the API.

mod invariants;
mod mutate;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use oci_spec::runtime::Spec;
use serde_json::Value;
pub use ward_profiles::fuzz_harness::{assert_one_line, drive, Input};

use crate::harden::{harden, HardenContext, IdRange, Limits, Policy, Tmpfs};

/// Outcomes so far: spec did not deserialize, hardened, refused (a run reports them, so a
/// generator that only ever produces refusals shows).
pub static OUTCOMES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

const BASE: &str = include_str!("../../../tests/src/base-config.json");

fn base() -> &'static Value {
    static BASE_VALUE: OnceLock<Value> = OnceLock::new();
    BASE_VALUE.get_or_init(|| serde_json::from_str(BASE).expect("base-config.json parses"))
}

/// The host namespaces harden compares paths with, and the paths the mutator uses.
pub(crate) fn context() -> HardenContext {
    let mut c = HardenContext {
        id: "fuzz".into(),
        own_cgroup: "/ward-own".into(),
        cgroup_dirs: vec!["/sys/fs/cgroup".into(), "/sys/fs/cgroup/memory".into()],
        ..Default::default()
    };
    for (kind, dev_ino) in [
        ("pid", (4, 1)),
        ("net", (4, 2)),
        ("ipc", (4, 3)),
        ("uts", (4, 4)),
        ("mnt", (4, 5)),
        ("cgroup", (4, 6)),
        ("user", (4, 7)),
    ] {
        c.host_ns.insert(kind.into(), vec![dev_ino]);
    }
    // Host namespaces by path, another container's namespaces, and an unreadable one.
    for (path, id) in [
        ("/proc/1/ns/pid", Ok((4, 1))),
        ("/proc/1/ns/net", Ok((4, 2))),
        ("/proc/1/ns/user", Ok((4, 7))),
        ("/proc/1/ns/mnt", Ok((4, 5))),
        ("/proc/77/ns/net", Ok((4, 99))),
        ("/proc/77/ns/user", Ok((4, 98))),
        ("/proc/77/ns/ipc", Ok((4, 97))),
        ("/proc/77/ns/uts", Ok((4, 96))),
        ("/proc/77/ns/cgroup", Ok((4, 95))),
        (
            "/proc/88/ns/pid",
            Err("No such file or directory".to_string()),
        ),
    ] {
        c.path_ns.insert(path.into(), id);
    }
    c
}

pub(crate) const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_AUDIT_WRITE",
    "CAP_MKNOD",
    "CAP_BPF",
    "CAP_DAC_OVERRIDE",
];

fn policy(u: &mut Input) -> Policy {
    let mut allowed_caps = BTreeSet::new();
    for _ in 0..u.below(3) {
        allowed_caps.insert(u.pick(CAPS).to_string());
    }
    let mut host_namespaces = BTreeSet::new();
    for _ in 0..u.below(2) {
        host_namespaces.insert(u.pick(&["pid", "network", "ipc"]).to_string());
    }
    let some = |u: &mut Input, v: i64| if u.below(8) == 0 { None } else { Some(v) };
    Policy {
        profile_name: "fuzz".into(),
        allowed_caps,
        denied_caps: crate::config::DEFAULT_DENIED_CAPS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        strict_caps: u.bool(),
        tmpfs: vec![Tmpfs {
            path: "/tmp".into(),
            size_bytes: 64 << 20,
            mode: 0o1777,
            noexec: u.bool(),
        }],
        limits: Limits {
            pids: some(u, 1024),
            memory_bytes: some(u, 512 << 20),
            cpu_shares: Some(1024),
            cpu_quota_us: if u.bool() { Some(50_000) } else { None },
            cpu_period_us: None,
        },
        host_namespaces,
        allowed_sensitive: if u.below(4) == 0 {
            vec!["/run/containerd/containerd.sock".into()]
        } else {
            vec![]
        },
        writable_rootfs: if u.below(4) == 0 { Some(8 << 20) } else { None },
    }
}

/// One case from fuzzer bytes.
pub fn harden_case(data: &[u8]) {
    let mut u = Input::new(data);
    let mut v = base().clone();
    for _ in 0..1 + u.below(6) {
        mutate::mutate(&mut v, &mut u);
    }
    let Ok(spec) = serde_json::from_value::<Spec>(v) else {
        OUTCOMES[0].fetch_add(1, Ordering::Relaxed);
        return;
    };
    let policy = policy(&mut u);
    let range = IdRange {
        host_start: 100_000 + 65_536 * (u.below(64) as u32),
        size: 65_536,
    };
    harden_spec_case(spec, &policy, &range);
}

/// Harden `spec` and check the result.
pub fn harden_spec_case(spec: Spec, policy: &Policy, range: &IdRange) {
    if std::env::var_os("WARD_FUZZ_SHOW").is_some() {
        eprintln!(
            "--- spec ---\n{}\n--- policy ---\n{policy:?}\n{range:?}",
            serde_json::to_string_pretty(&spec).unwrap_or_default()
        );
    }
    let original = spec.clone();
    match harden(spec, policy, range, &context()) {
        Ok(h) => {
            OUTCOMES[1].fetch_add(1, Ordering::Relaxed);
            invariants::check(&original, &h, policy, range)
        }
        Err(e) => {
            OUTCOMES[2].fetch_add(1, Ordering::Relaxed);
            invariants::check_error(&e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_harden() {
        let s = drive("harden", 3, harden_case);
        assert!(s.cases > 0);
        let [bad, ok, refused] = OUTCOMES.each_ref().map(|a| a.load(Ordering::Relaxed));
        println!(
            "fuzz harden: {ok} hardened, {refused} refused, {bad} specs that do not deserialize"
        );
        assert!(ok > 0 && refused > 0, "the generator reaches both outcomes");
    }

    #[test]
    fn base_config_hardens() {
        let spec: Spec = serde_json::from_value(base().clone()).unwrap();
        let mut u = Input::new(&[]);
        let p = policy(&mut u);
        let range = IdRange {
            host_start: 100_000,
            size: 65_536,
        };
        let h = harden(spec.clone(), &p, &range, &context()).expect("runc's default hardens");
        invariants::check(&spec, &h, &p, &range);
    }
}
