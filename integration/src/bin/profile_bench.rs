//! `profile-bench` (part of `make bench`): what Ward's seccomp profiles cost.
//!
//! - resolve + compile: `ward_profiles::load` + `compile_seccomp` (report mode), and a hit
//!   of the on-disk cache `compile_seccomp_cached` the create path uses;
//! - filter install: `seccomp(SET_MODE_FILTER)` of the compiled program, plain and with a
//!   notification listener, each in a fresh forked child (an install is irreversible);
//! - getppid loop under Ward's filter (the `default` and `restricted` programs) vs no
//!   filter: allowed calls must stay on the kernel's fast path (target <= 1.05x);
//! - a denied syscall (unshare(CLONE_NEWUSER)): plain EPERM in the kernel (enforce mode) vs
//!   reported (report mode: a user notification answered by Ward's real supervisor).
//!
//! Every measurement runs in a forked child of this single-threaded process, which prints
//! a table with ratios. Needs root (the supervisor drops to CAP_SYS_PTRACE + CAP_KILL).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ward_profiles::{compile_seccomp, compile_seccomp_cached, load, Arch, Mode};
use ward_runtime::supervisor::{self, EventLog};

const CLONE_NEWUSER: u64 = 0x1000_0000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run `f` in a forked child; it returns one number, sent back through a pipe.
fn in_child(f: impl FnOnce() -> f64) -> f64 {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: this process is single-threaded; the child leaves through _exit.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let v = f();
            let mut w = std::fs::File::from(w);
            let _ = w.write_all(&v.to_le_bytes());
            drop(w);
            // SAFETY: end the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut b = [0u8; 8];
            let ok = std::fs::File::from(r).read_exact(&mut b).is_ok();
            let _ = nix::sys::wait::waitpid(child, None);
            assert!(ok, "benchmark child died");
            f64::from_le_bytes(b)
        }
    }
}

fn raw(nr: libc::c_long, a0: u64) -> libc::c_long {
    // SAFETY: a raw syscall with an integer argument (getppid, unshare).
    unsafe { libc::syscall(nr, a0) }
}

/// ns per call of `nr(a0)`, `n` times.
fn loop_ns(nr: libc::c_long, a0: u64, n: u32) -> f64 {
    for _ in 0..n / 10 {
        raw(nr, a0);
    }
    let t = Instant::now();
    for _ in 0..n {
        raw(nr, a0);
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn install(program: &[ward_profiles::SeccompProgram]) {
    for p in program {
        ward_runtime::sandbox::apply_seccomp(&p.filters).expect("install filter");
    }
}

fn us(d: f64) -> String {
    format!("{d:.1} µs")
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP: profile-bench: needs root (the supervisor reads callers' memory)");
        return;
    }
    let arch = Arch::native();
    let runs = 200;
    let cache = tempfile::tempdir().expect("tempdir");

    // 1. resolve + compile
    let mut compile = vec![];
    let mut cached = vec![];
    for _ in 0..runs {
        let t = Instant::now();
        let p = load("default", &[]).expect("load");
        let prog = compile_seccomp(&p, arch, Mode::EnforceAndReport).expect("compile");
        compile.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(prog);
        let t = Instant::now();
        let prog =
            compile_seccomp_cached(&p, arch, Mode::EnforceAndReport, cache.path()).expect("cached");
        cached.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(prog);
    }
    let (compile, cached) = (median(compile), median(cached[1..].to_vec()));

    // 2. install (fresh child each time)
    let default = load("default", &[]).expect("default");
    let restricted = load("restricted", &[]).expect("restricted");
    let enforce = compile_seccomp(&default, arch, Mode::Enforce).expect("compile");
    let report = compile_seccomp(&default, arch, Mode::EnforceAndReport).expect("compile");
    let restricted_prog = compile_seccomp(&restricted, arch, Mode::Enforce).expect("compile");
    // The floor of any seccomp filter: a one-instruction "allow everything" program puts
    // the task on the kernel's seccomp entry path without any BPF of ours.
    let allow_all: Vec<ward_profiles::SeccompProgram> = vec![ward_profiles::SeccompProgram {
        filters: vec![vec![seccompiler_allow()]],
    }];
    let mut inst = vec![];
    let mut inst_listener = vec![];
    let mut inst_floor = vec![];
    for _ in 0..50 {
        let a = allow_all.clone();
        inst_floor.push(in_child(move || {
            let t = Instant::now();
            install(&a);
            t.elapsed().as_secs_f64() * 1e6
        }));
        let e = enforce.clone();
        inst.push(in_child(move || {
            let t = Instant::now();
            install(&[e]);
            t.elapsed().as_secs_f64() * 1e6
        }));
        let r = report.clone();
        inst_listener.push(in_child(move || {
            let t = Instant::now();
            let fd = ward_runtime::sys::notify::install_listener_filter(&r.filters[0])
                .expect("install with listener");
            let v = t.elapsed().as_secs_f64() * 1e6;
            drop(fd);
            v
        }));
    }
    let (inst, inst_listener, inst_floor) =
        (median(inst), median(inst_listener), median(inst_floor));

    // 3. getppid loop
    let n = 2_000_000;
    let mut base = vec![];
    let mut floor = vec![];
    let mut under_default = vec![];
    let mut under_restricted = vec![];
    for _ in 0..11 {
        base.push(in_child(|| loop_ns(libc::SYS_getppid, 0, n)));
        let a = allow_all.clone();
        floor.push(in_child(move || {
            install(&a);
            loop_ns(libc::SYS_getppid, 0, n)
        }));
        let r = report.clone();
        under_default.push(in_child(move || {
            install(&[r]);
            loop_ns(libc::SYS_getppid, 0, n)
        }));
        let r = restricted_prog.clone();
        under_restricted.push(in_child(move || {
            install(&[r]);
            loop_ns(libc::SYS_getppid, 0, n)
        }));
    }
    let (base, floor, under_default, under_restricted) = (
        median(base),
        median(floor),
        median(under_default),
        median(under_restricted),
    );

    // 4. denied syscall: plain EPERM vs reported through the supervisor
    let e = enforce.clone();
    let denied_plain = in_child(move || {
        install(&[e]);
        loop_ns(libc::SYS_unshare, CLONE_NEWUSER, 200_000)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = supervisor::spawn(&supervisor::Config {
        id: "profile-bench",
        dir: dir.path(),
        profile: &default,
        mode: Mode::EnforceAndReport,
        // Events still go to the events file; Ward's log would be this bench's stderr.
        log: &EventLog {
            path: Some("/dev/null".into()),
            json: true,
        },
    })
    .expect("supervisor");
    let handoff = conn.handoff();
    let r = report.clone();
    let denied_reported = in_child(move || {
        ward_runtime::sandbox::install_and_hand_off(&r.filters[0], handoff).expect("hand off");
        loop_ns(libc::SYS_unshare, CLONE_NEWUSER, 20_000)
    });
    drop(conn);
    supervisor::wait_exit(dir.path(), Duration::from_secs(5));
    let events = supervisor::read_events(dir.path()).unwrap_or_default();
    let logged = events.iter().filter(|e| e.kind == "seccomp-denial").count();
    let _ = supervisor::stop(dir.path());

    println!("## seccomp profiles: compile, install, fast path, denials (profile-bench)");
    println!();
    println!("| measurement | value | compared with | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| resolve + compile `default` (report mode), median of {runs} | {} | cache hit {} | {:.2}x |",
        us(compile),
        us(cached),
        compile / cached
    );
    println!(
        "| install filter (`default`, {} insns), median of 50 | {} | with listener {} | {:.2}x |",
        enforce.filters[0].len(),
        us(inst),
        us(inst_listener),
        inst_listener / inst
    );
    println!(
        "| install a 1-insn allow-all filter (the kernel's fixed cost), median of 50 | {} | `default` {} | {:.2}x |",
        us(inst_floor),
        us(inst),
        inst / inst_floor
    );
    println!(
        "| compile + install (target <= 200 µs) | {} | cached + install {} | {} |",
        us(compile + inst_listener),
        us(cached + inst_listener),
        if compile + inst_listener <= 200.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| getppid under `default` (report mode) | {under_default:.1} ns | no filter {base:.1} ns | {:.3}x (target <= 1.05x) |",
        under_default / base
    );
    println!(
        "| getppid under `restricted` (allowlist) | {under_restricted:.1} ns | no filter {base:.1} ns | {:.3}x |",
        under_restricted / base
    );
    println!(
        "| getppid under a 1-insn allow-all filter (the kernel's seccomp entry path alone) | {floor:.1} ns | no filter {base:.1} ns | {:.3}x |",
        floor / base
    );
    println!(
        "| getppid under `default` vs the allow-all floor (what Ward's BPF adds) | {under_default:.1} ns | allow-all {floor:.1} ns | {:.3}x |",
        under_default / floor
    );
    println!(
        "| denied unshare, reported (supervisor answers EPERM) | {denied_reported:.0} ns | plain EPERM in the kernel {denied_plain:.0} ns | {:.1}x |",
        denied_reported / denied_plain
    );
    println!();
    println!(
        "Reporting logged {logged} of 20000 denials one by one (burst {}, {} /s), the rest as a count.",
        ward_runtime::supervisor::EVENT_BURST,
        ward_runtime::supervisor::EVENT_RATE
    );
}

/// `ret SECCOMP_RET_ALLOW`.
fn seccompiler_allow() -> ward_profiles::SockFilter {
    ward_profiles::SockFilter {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0x7fff_0000,
    }
}
