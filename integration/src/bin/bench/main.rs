//! `ward-bench` (`make bench`): Ward's shim against containerd-shim-runc-v2, side by side on a
//! private containerd of each release: containerd 2 first (the primary target, from
//! `make peers`), then Debian 12's 1.6.
//!
//! 1. `ctr run --rm <busybox> /bin/true` end to end: median of N runs each, the runtimes of
//!    one containerd taking turns run by run. runc-v2 runs with the release's own runc (2.x:
//!    containerd 2's `containerd-shim-runc-v2` and runc 1.3 from `make peers`; 1.6: Debian's
//!    shim and runc 1.1) and, as a second row, with the other runc as its `BinaryName`
//!    (`ctr run --runc-binary`). Target: Ward ≤ 0.8 × the release's own runc-v2.
//! 2. Memory per pod: 10 sleeping containers per shim; PSS and RSS from
//!    /proc/PID/smaps_rollup of every runtime-side process of each container (runc: the shim;
//!    Ward: the shim, its launcher and the container's seccomp supervisor, found by the shim's
//!    command line). Target: ≤ 3 MiB PSS per pod.
//! 3. The same for 10 real CRI pods per RuntimeClass handler (`runc`, `ward`): RunPodSandbox
//!    (pause) plus one sleeping container each, one shim per pod serving both; the processes
//!    are found by their command line (the pod id and this containerd's address).
//!
//! Env: `WARD_BENCH_RUNS` (default 30), `WARD_BENCH_PODS` (default 10),
//! `WARD_BENCH_SMAPS=1` (print where one shim's memory is, by region),
//! `WARD_BENCH_ONLY=ward` (skip the runc rows), `WARD_E2E_CONTAINERD=2` (or `1.6`: one
//! release only), `WARD_CONTAINERD2_DIR` (where `make peers` unpacked containerd 2).

mod memory;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use ward_integration::containerd::{self, Containerd, RUNC_RUNTIME, WARD_RUNTIME};
use ward_integration::image::BUSYBOX;
use ward_integration::release::{self, ContainerdRelease};

/// Debian 12's runc.
const SYSTEM_RUNC: &str = "/usr/sbin/runc";

/// One row: a runtime type and, for runc-v2, the runc binary its shim runs.
pub struct Column {
    label: String,
    runtime: &'static str,
    runc: Option<PathBuf>,
    /// Short tag for container ids.
    tag: String,
    /// Memory is measured (one row per shim binary: a runc binary does not stay resident).
    memory: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn run_cmd(c: &Containerd, col: &Column) -> Command {
    let mut cmd = c.ctr_cmd(Some("default"));
    cmd.args(["run", "--runtime", col.runtime]);
    if col.runtime == WARD_RUNTIME {
        cmd.arg("--runtime-config-path").arg(&c.ward_config);
    }
    if let Some(runc) = &col.runc {
        cmd.arg("--runc-binary").arg(runc);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// `runc version 1.3.6+ds1` → `1.3.6`.
fn runc_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.lines().next()?.split_whitespace().nth(2)?;
    Some(v.split('+').next().unwrap_or(v).to_string())
}

/// The rows for one containerd: runc-v2 with the release's own runc first, then with the
/// other runc, then Ward.
fn columns(r: &ContainerdRelease, ward: bool) -> Vec<Column> {
    let peers_runc = release::containerd2_bin_dir().join("runc");
    let (own, other) = match &r.bin_dir {
        Some(d) => (d.join("runc"), PathBuf::from(SYSTEM_RUNC)),
        None => (PathBuf::from(SYSTEM_RUNC), peers_runc),
    };
    let mut v = vec![];
    if !std::env::var("WARD_BENCH_ONLY").is_ok_and(|v| v == "ward") {
        for (i, runc) in [own, other].into_iter().enumerate() {
            let Some(version) = runc_version(&runc) else {
                println!("SKIP: runc-v2 with {}: no version", runc.display());
                continue;
            };
            v.push(Column {
                label: format!("runc-v2 + runc {version}"),
                runtime: RUNC_RUNTIME,
                runc: Some(runc),
                tag: format!("runc{i}"),
                memory: i == 0,
            });
        }
    }
    if ward {
        v.push(Column {
            label: "ward".into(),
            runtime: WARD_RUNTIME,
            runc: None,
            tag: "ward".into(),
            memory: true,
        });
    }
    v
}

/// Median wall time of `ctr run --rm ... /bin/true` per column, or its first failure. The
/// columns take turns run by run, so a change in the machine's load hits them alike.
fn startup_medians(c: &Containerd, cols: &[Column], runs: usize) -> Vec<Result<Duration, String>> {
    let mut times: Vec<Result<Vec<Duration>, String>> =
        cols.iter().map(|_| Ok(Vec::new())).collect();
    for i in 0..runs + 3 {
        for (col, acc) in cols.iter().zip(times.iter_mut()) {
            let Ok(v) = acc else { continue };
            let id = format!("bench-{}-{i}", col.tag);
            let t = Instant::now();
            let out = run_cmd(c, col)
                .args(["--rm", BUSYBOX, &id, "/bin/true"])
                .output();
            let dt = t.elapsed();
            match out {
                Ok(o) if o.status.success() => {
                    if i >= 3 {
                        v.push(dt); // first 3 are warm-up
                    }
                }
                Ok(o) => *acc = Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
                Err(e) => *acc = Err(e.to_string()),
            }
        }
    }
    times
        .into_iter()
        .map(|t| {
            t.and_then(|mut v| {
                v.sort();
                v.get(v.len() / 2)
                    .copied()
                    .ok_or_else(|| "no runs".to_string())
            })
        })
        .collect()
}

/// What one containerd measured.
struct Measured {
    release: ContainerdRelease,
    cols: Vec<Column>,
    start: Vec<Result<Duration, String>>,
    mem: Vec<Option<memory::PerPod>>,
    /// (handler, per pod) for `runc` and `ward`.
    cri: Vec<(&'static str, memory::PerPod)>,
}

fn measure(r: ContainerdRelease, ward: bool, runs: usize, pods: usize) -> Result<Measured, String> {
    let c = Containerd::start_temp_release(r.clone())
        .map_err(|e| format!("start {}: {e}", r.label()))?;
    let cols = columns(&r, ward);
    let start = startup_medians(&c, &cols, runs);
    let mem = cols
        .iter()
        .map(|col| col.memory.then(|| memory::per_container(&c, col, pods)))
        .collect();
    let mut cri = vec![];
    for col in cols.iter().filter(|c| c.memory) {
        let handler = if col.runtime == WARD_RUNTIME {
            "ward"
        } else {
            "runc"
        };
        cri.push((handler, memory::per_cri_pod(&c, handler, pods)));
    }
    Ok(Measured {
        release: r,
        cols,
        start,
        mem,
        cri,
    })
}

/// The releases to measure, containerd 2 first; a missing one is named in a SKIP line.
fn releases() -> Vec<ContainerdRelease> {
    let only = std::env::var("WARD_E2E_CONTAINERD").ok();
    let wanted = |major: &str| only.as_deref().is_none_or(|o| o.starts_with(major));
    let mut v = vec![];
    for (major, found) in [
        ("2", wanted("2").then(release::containerd2)),
        ("1", wanted("1").then(release::system_containerd)),
    ] {
        match found {
            Some(Ok(r)) => v.push(r),
            Some(Err(why)) => println!("SKIP: containerd {major} rows: {why}"),
            None => {}
        }
    }
    v
}

fn ms(d: &Result<Duration, String>) -> String {
    match d {
        Ok(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
        Err(e) => format!("FAILED: {e}"),
    }
}

fn print(all: &[Measured], runs: usize, pods: usize) {
    println!();
    println!("| containerd | runtime | `ctr run --rm` median | ward / this | per-pod PSS | per-pod RSS | processes/pod |");
    println!("|---|---|---|---|---|---|---|");
    for m in all {
        let ward = m.cols.iter().position(|c| c.runtime == WARD_RUNTIME);
        let ward_t = ward.and_then(|i| m.start[i].as_ref().ok());
        for (i, col) in m.cols.iter().enumerate() {
            let ratio = match (ward_t, &m.start[i]) {
                (Some(w), Ok(t)) => format!("{:.2}×", w.as_secs_f64() / t.as_secs_f64()),
                _ => String::new(),
            };
            let (p, r, n) = memory::cells(m.mem[i].as_ref(), pods);
            println!(
                "| {} | {} | {} | {ratio} | {p} | {r} | {n} |",
                m.release.version,
                col.label,
                ms(&m.start[i])
            );
        }
    }
    println!();
    println!("{pods} CRI pods per handler (pause + 1 sleeping container, one shim per pod):");
    println!();
    println!("| containerd | handler | per-pod PSS | per-pod RSS | processes/pod |");
    println!("|---|---|---|---|---|");
    for m in all {
        for (h, pp) in &m.cri {
            let (p, r, n) = memory::cells(Some(pp), pods);
            println!("| {} | {h} | {p} | {r} | {n} |", m.release.version);
        }
    }
    println!();
    for m in all {
        let at = |rt: &str| m.cols.iter().position(|c| c.runtime == rt);
        // The release's own runc-v2 is its first runc row.
        if let (Some(Ok(runc)), Some(Ok(ward))) = (
            at(RUNC_RUNTIME).map(|i| &m.start[i]),
            at(WARD_RUNTIME).map(|i| &m.start[i]),
        ) {
            let ratio = ward.as_secs_f64() / runc.as_secs_f64();
            println!(
                "{}: startup ratio ward / {} ({runs} runs): {ratio:.2}× (target ≤ 0.80×: {})",
                m.release.label(),
                m.cols[at(RUNC_RUNTIME).unwrap_or(0)].label,
                if ratio <= 0.8 { "met" } else { "NOT met" }
            );
        }
        let ward_mem = at(WARD_RUNTIME).and_then(|i| m.mem[i].as_ref());
        let ward_cri = m.cri.iter().find(|(h, _)| *h == "ward").map(|(_, p)| p);
        for (what, pp) in [("ctr containers", ward_mem), ("CRI pods", ward_cri)] {
            if let Some(Ok((pss, _, _))) = pp {
                println!(
                    "{}: ward shim PSS per pod ({what}): {:.2} MiB (target ≤ 3 MiB: {})",
                    m.release.label(),
                    pss / 1024.0,
                    if *pss <= 3.0 * 1024.0 {
                        "met"
                    } else {
                        "NOT met"
                    }
                );
            }
        }
    }
}

fn main() -> ExitCode {
    if let Some(why) = containerd::skip_reason() {
        println!("SKIP: ward-bench: {why}");
        return ExitCode::SUCCESS;
    }
    let runs = env_usize("WARD_BENCH_RUNS", 30);
    let pods = env_usize("WARD_BENCH_PODS", 10);
    let ward = match containerd::ward_shim_status() {
        Ok(()) => true,
        Err(why) => {
            println!("SKIP: ward rows: {why}");
            false
        }
    };
    let releases = releases();
    let names: Vec<String> = releases.iter().map(ContainerdRelease::label).collect();
    println!(
        "## containerd shims: ward vs runc-v2 on {} ({runs} runs of `ctr run --rm /bin/true`, {pods} sleeping containers for memory)",
        names.join(" and ")
    );
    println!("binaries from {}", containerd::ward_bin_dir().display());
    let mut all = vec![];
    for r in releases {
        match measure(r, ward, runs, pods) {
            Ok(m) => all.push(m),
            Err(e) => {
                eprintln!("ward-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print(&all, runs, pods);
    ExitCode::SUCCESS
}
