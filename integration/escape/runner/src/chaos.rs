//! Chaos mode: the techniques run again while containers churn, a fork bomb
//! and a memory hog run in limited neighbours, a steady neighbour must keep
//! running, and random containers this runner started are SIGKILLed.
//! Bounded by --seconds and by iteration counts; it stops by itself.

use crate::bundle::{self, Spec};
use crate::host;
use crate::rt::Runtime;
use crate::suite::Suite;
use crate::Cli;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const PIDS_LIMIT: i64 = 128;
const MEM_LIMIT: i64 = 256 << 20;
const MAX_CHURN: usize = 5000;
/// Techniques whose outcome depends on load, not on a defence.
const LOAD_DEPENDENT: &[&str] = &["cpu-spin", "memory-hog", "fork-bomb", "tmpfs-fill"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn spec<'a>(s: &'a Suite, cid: &str, args: Vec<String>, limits: bool) -> Spec<'a> {
    let mut sp = Spec::new(&s.paths, s.cgroup_path(cid), args);
    sp.limits = limits.then_some((PIDS_LIMIT, MEM_LIMIT));
    sp
}

fn start_detached(
    s: &Suite,
    r: &Runtime,
    cid: &str,
    args: Vec<String>,
    limits: bool,
) -> Result<(), String> {
    let b = s.paths.work.join("bundles").join(cid);
    bundle::write_config(&b, &spec(s, cid, args, limits))?;
    let o = r.run_detached(&b, cid);
    if o.status == Some(0) {
        Ok(())
    } else {
        Err(format!("run -d {cid}: {}", o.stderr.trim()))
    }
}

fn run_fg(s: &Suite, r: &Runtime, cid: &str, args: Vec<String>, limits: bool) -> crate::rt::Output {
    let b = s.paths.work.join("bundles").join(cid);
    if let Err(e) = bundle::write_config(&b, &spec(s, cid, args, limits)) {
        return crate::rt::Output {
            status: None,
            stdout: String::new(),
            stderr: e,
            timed_out: false,
        };
    }
    let o = r.run(&b, cid, Duration::from_secs(120));
    let _ = r.delete(cid);
    let _ = std::fs::remove_dir_all(&b);
    o
}

fn verdict_of(stdout: &str) -> (String, String) {
    let v: serde_json::Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    (
        v["verdict"].as_str().unwrap_or("none").into(),
        v["reason"].as_str().unwrap_or("").into(),
    )
}

/// One column under chaos; returns notes, "FAIL ..." for broken invariants.
fn column(s: &Suite, col: usize, seconds: u64) -> Vec<String> {
    let r = &s.columns[col];
    let label = r.label();
    let notes = Mutex::new(Vec::<String>::new());
    let note = |n: String| {
        eprintln!("  chaos {label}: {n}");
        notes.lock().expect("notes").push(format!("{label}: {n}"));
    };
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let probe = |t: &str| -> Vec<String> { s.probe_args(t, false) };

    let steady = format!("wesc-{}-{col}-steady", s.run_id);
    if let Err(e) = start_detached(
        s,
        r,
        &steady,
        vec!["/bin/sleep".into(), "100000".into()],
        true,
    ) {
        note(format!("FAIL steady neighbour did not start: {e}"));
    }
    let churned = AtomicUsize::new(0);
    let churn_fail = AtomicUsize::new(0);
    let killed = AtomicUsize::new(0);
    let tech_runs = AtomicUsize::new(0);

    std::thread::scope(|sc| {
        // Fork bomb neighbour, bounded by the pids limit it is given.
        sc.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 50 {
                let cid = format!("wesc-{}-{col}-bomb{i}", s.run_id);
                let mut a = probe("fork-bomb");
                a.extend(["--forks", "100000", "--hold-secs", "2"].map(String::from));
                let o = run_fg(s, r, &cid, a, true);
                let (v, why) = verdict_of(&o.stdout);
                let n: i64 = why
                    .split(" after ")
                    .nth(1)
                    .and_then(|x| x.split(' ').next()?.parse().ok())
                    .unwrap_or(-1);
                if v != "blocked" || n > PIDS_LIMIT {
                    note(format!("FAIL fork-bomb neighbour not contained: {v} {why}"));
                } else if i == 0 {
                    note(format!("fork-bomb neighbour contained: {why}"));
                }
                i += 1;
            }
        });
        // Memory hog neighbour, limited to MEM_LIMIT.
        sc.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 50 {
                let cid = format!("wesc-{}-{col}-hog{i}", s.run_id);
                let mut a = probe("memory-hog");
                a.extend(["--mem-mib", "1024"].map(String::from));
                let o = run_fg(s, r, &cid, a, true);
                let (v, why) = verdict_of(&o.stdout);
                if v != "blocked" {
                    note(format!(
                        "FAIL memory-hog neighbour not contained: {v} {why}"
                    ));
                } else if i == 0 {
                    note(format!("memory-hog neighbour contained: {why}"));
                }
                i += 1;
            }
        });
        // Churn: short containers, and detached victims killed with SIGKILL.
        sc.spawn(|| {
            let mut rng = Rng(host::nonce() | 1);
            let mut victims: Vec<String> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < MAX_CHURN {
                let cid = format!("wesc-{}-{col}-churn{i}", s.run_id);
                if i % 3 == 0 {
                    match start_detached(
                        s,
                        r,
                        &cid,
                        vec!["/bin/sleep".into(), "100000".into()],
                        false,
                    ) {
                        Ok(()) => victims.push(cid),
                        Err(_) => {
                            churn_fail.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                } else {
                    let o = run_fg(s, r, &cid, vec!["/bin/true".into()], false);
                    if o.status != Some(0) {
                        churn_fail.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if !victims.is_empty() && rng.next().is_multiple_of(2) {
                    let v = victims.swap_remove((rng.next() as usize) % victims.len());
                    // SIGKILL the victim's init: a process of a container we started.
                    if let Some(pid) = r
                        .state(&v)
                        .and_then(|st| st["pid"].as_i64())
                        .filter(|p| *p > 1)
                    {
                        // SAFETY: plain kill(2) of a pid the runtime reports for our container.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        killed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let _ = r.kill(&v, "KILL");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = r.delete(&v);
                    let _ = std::fs::remove_dir_all(s.paths.work.join("bundles").join(&v));
                }
                churned.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
            for v in victims {
                let _ = r.kill(&v, "KILL");
                let _ = r.delete(&v);
                let _ = std::fs::remove_dir_all(s.paths.work.join("bundles").join(&v));
            }
        });
        // Techniques, compared with the sequential baseline.
        sc.spawn(|| {
            let mut pass = 0;
            'outer: while pass < 3 {
                for t in &s.techniques {
                    if Instant::now() >= deadline {
                        break 'outer;
                    }
                    let cid = format!("wesc-{}-{col}-x{pass}-{t}", s.run_id);
                    let cell = s.run_one(col, t, &cid);
                    tech_runs.fetch_add(1, Ordering::SeqCst);
                    let base = s
                        .cells
                        .iter()
                        .find(|c| c.column == label && &c.technique == t);
                    let held = match base {
                        Some(b) => {
                            b.verdict == cell.verdict
                                || (LOAD_DEPENDENT.contains(&t.as_str())
                                    && cell.verdict != "escaped")
                        }
                        None => cell.verdict != "escaped",
                    };
                    if !held {
                        let was = base.map(|b| b.verdict.as_str()).unwrap_or("?");
                        let sev = if cell.verdict == "escaped" && label.starts_with("ward") {
                            "FAIL"
                        } else {
                            "changed"
                        };
                        note(format!(
                            "{sev} {t}: {was} -> {} under load ({})",
                            cell.verdict,
                            crate::suite::truncate(&cell.reason, 140)
                        ));
                    }
                }
                pass += 1;
            }
        });
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::SeqCst);
    });

    match r
        .state(&steady)
        .and_then(|st| st["status"].as_str().map(String::from))
    {
        Some(st) if st == "running" => note("steady neighbour kept running".into()),
        other => note(format!("FAIL steady neighbour is {other:?}")),
    }
    let _ = r.kill(&steady, "KILL");
    std::thread::sleep(Duration::from_millis(200));
    let _ = r.delete(&steady);
    note(format!(
        "{} churn containers ({} failed to start/run), {} SIGKILLed, {} technique runs",
        churned.load(Ordering::SeqCst),
        churn_fail.load(Ordering::SeqCst),
        killed.load(Ordering::SeqCst),
        tech_runs.load(Ordering::SeqCst)
    ));
    std::thread::sleep(Duration::from_secs(1));
    let left = r.list();
    if !left.is_empty() {
        note(format!(
            "FAIL `{} list` still shows {} container(s): {:?}",
            r.kind,
            left.len(),
            left
        ));
    }
    let cg = host::leaked_cgroups(&format!("wesc-{}-{col}-", s.run_id));
    if !cg.is_empty() {
        note(format!(
            "FAIL {} cgroup dir(s) left, e.g. {}",
            cg.len(),
            cg[0]
        ));
    }
    let procs = host::leaked_processes(&s.paths.rootfs);
    if !procs.is_empty() {
        note(format!(
            "FAIL {} process(es) left in the rootfs: {:?}",
            procs.len(),
            &procs[..procs.len().min(3)]
        ));
    }
    let w = s.paths.work.to_string_lossy().into_owned();
    let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            l.split(' ')
                .nth(4)
                .filter(|m| m.starts_with(&w))
                .map(String::from)
        })
        .collect();
    if !mounts.is_empty() {
        note(format!(
            "FAIL host mounts left under the work dir: {mounts:?}"
        ));
    }
    let state_left = host::leaked_state(&r.root, &format!("wesc-{}-{col}-", s.run_id));
    if !state_left.is_empty() {
        note(format!(
            "FAIL {} state entries left under --root, e.g. {}",
            state_left.len(),
            state_left[0]
        ));
    }
    notes.into_inner().expect("notes")
}

pub fn run(s: &mut Suite, cli: &Cli) -> Result<i32, String> {
    // Sequential baseline first: chaos must not change a verdict.
    s.run_sequential();
    crate::machinery::run(s);
    s.concurrent = true;
    let mut notes = Vec::new();
    for col in 0..s.columns.len() {
        // Chaos drives runtimes through their CLI; the containerd columns
        // get the sequential pass only.
        if s.columns[col].kind == "host" || s.columns[col].ctrd.is_some() {
            continue;
        }
        eprintln!("== chaos {} for {}s", s.columns[col].label(), cli.seconds);
        notes.extend(column(s, col, cli.seconds));
    }
    s.finish(Some(&notes))
}
