//! `ward-bench` (`make bench`): Ward's shim against containerd-shim-runc-v2,
//! side by side on one private containerd.
//!
//! 1. `ctr run --rm <busybox> /bin/true` end to end: median of N runs each,
//!    the runtimes taking turns run by run. Target: Ward ≤ 0.8 × runc.
//! 2. Memory per pod: 10 sleeping containers per runtime; PSS and RSS from
//!    /proc/PID/smaps_rollup of every runtime-side process of each container
//!    (runc: the shim; Ward: the shim, its launcher and the container's seccomp
//!    supervisor, found by the shim's command line). Target: ≤ 3 MiB PSS per pod.
//! 3. The same for 10 real CRI pods per RuntimeClass handler (`runc`, `ward`):
//!    RunPodSandbox (pause) plus one sleeping container each, one shim per pod
//!    serving both; the processes are found by their command line (the pod id
//!    and this containerd's address).
//!
//! Env: `WARD_BENCH_RUNS` (default 30), `WARD_BENCH_PODS` (default 10),
//! `WARD_BENCH_SMAPS=1` (print where one shim's memory is, by region),
//! `WARD_BENCH_ONLY=ward` (skip the runc column).

use std::collections::BTreeSet;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ward_integration::containerd::{self, Containerd, RUNC_RUNTIME, WARD_RUNTIME};
use ward_integration::cri::{container_config, pod_config, CriClient};
use ward_integration::image::BUSYBOX;
use ward_integration::{leaks, procfs};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_cmd(c: &Containerd, rt: &str) -> std::process::Command {
    let mut cmd = c.ctr_cmd(Some("default"));
    cmd.args(["run", "--runtime", rt]);
    if rt == WARD_RUNTIME {
        cmd.arg("--runtime-config-path").arg(&c.ward_config);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// Median wall time of `ctr run --rm ... /bin/true` per runtime, or its first failure. The
/// runtimes take turns run by run, so a change in the machine's load hits them alike.
fn startup_medians(
    c: &Containerd,
    runtimes: &[&str],
    runs: usize,
) -> Vec<Result<Duration, String>> {
    let mut times: Vec<Result<Vec<Duration>, String>> =
        runtimes.iter().map(|_| Ok(Vec::new())).collect();
    for i in 0..runs + 3 {
        for (rt, acc) in runtimes.iter().zip(times.iter_mut()) {
            let Ok(v) = acc else { continue };
            let id = format!("bench-{}-{i}", short(rt));
            let t = Instant::now();
            let out = run_cmd(c, rt)
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

fn short(rt: &str) -> &'static str {
    if rt == WARD_RUNTIME {
        "ward"
    } else {
        "runc"
    }
}

/// `(pss KiB, rss KiB, processes)` of the runtime-side processes of `pods`
/// sleeping containers.
fn memory_per_pod(c: &Containerd, rt: &str, pods: usize) -> Result<(f64, f64, usize), String> {
    let ids: Vec<String> = (0..pods)
        .map(|i| format!("mem-{}-{i}", short(rt)))
        .collect();
    for id in &ids {
        let out = run_cmd(c, rt)
            .args(["-d", BUSYBOX, id, "sleep", "600"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
    }
    std::thread::sleep(Duration::from_secs(2)); // let shims settle
                                                // Every runtime-side process of the container: the shim and whatever it forked (Ward:
                                                // the launcher and the container's seccomp supervisor) carry the shim's command line,
                                                // with the container id (the shim's id) and this containerd's address.
    let addr = c.address.display().to_string();
    let mut procs = BTreeSet::new();
    for id in &ids {
        for (pid, _) in leaks::processes_mentioning(&["containerd-shim", &addr, id]) {
            procs.insert(pid);
        }
    }
    if std::env::var_os("WARD_BENCH_SMAPS").is_some() {
        print_breakdown(&procs);
    }
    let (mut pss, mut rss) = (0u64, 0u64);
    for &p in &procs {
        if let Some((ps, rs)) = procfs::pss_rss_kib(p) {
            pss += ps;
            rss += rs;
        }
    }
    for id in &ids {
        let _ = c.ctr(Some("default"), &["tasks", "kill", "-s", "SIGKILL", id]);
    }
    std::thread::sleep(Duration::from_millis(500));
    for id in &ids {
        let _ = c.ctr(Some("default"), &["tasks", "delete", "-f", id]);
        let _ = c.ctr(Some("default"), &["containers", "delete", id]);
    }
    Ok((
        pss as f64 / pods as f64,
        rss as f64 / pods as f64,
        procs.len(),
    ))
}

/// `WARD_BENCH_SMAPS=1`: where the memory of the first shim's processes is.
fn print_breakdown(procs: &BTreeSet<u32>) {
    let Some(&shim) = procs
        .iter()
        .find(|&&p| procfs::comm(p).is_some_and(|c| c.starts_with("containerd-shim")))
    else {
        return;
    };
    // The shim and every measured process below it (launcher, supervisors, ...).
    let below = |p: u32| {
        let mut q = p;
        for _ in 0..4 {
            match procfs::ppid(q) {
                Some(pp) if pp == shim => return true,
                Some(pp) if pp > 1 => q = pp,
                _ => return false,
            }
        }
        false
    };
    let mut group = vec![shim];
    group.extend(procs.iter().filter(|&&p| p != shim && below(p)));
    for p in group {
        println!(
            "  pid {p} {} ({} threads):",
            procfs::comm(p).unwrap_or_default(),
            procfs::threads(p).unwrap_or(0)
        );
        for r in procfs::smaps_breakdown(p) {
            println!(
                "    {:<10} PSS {:>6} KiB  RSS {:>6} KiB  private dirty {:>6} KiB",
                r.name, r.pss, r.rss, r.private_dirty
            );
        }
    }
}

/// `(pss KiB, rss KiB, processes)` per CRI pod (pause + one sleeping container) on `handler`.
fn memory_per_cri_pod(
    c: &Containerd,
    handler: &str,
    pods: usize,
) -> Result<(f64, f64, usize), String> {
    let mut cri = CriClient::connect(&c.address).map_err(|e| e.to_string())?;
    let logs = c.dir.join(format!("bench-logs-{handler}"));
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let mut ids = vec![];
    let result = (|| {
        for i in 0..pods {
            let cfg = pod_config(&format!("bench-{handler}-{i}"), &logs, &[]);
            let pod = cri.run_pod(&cfg, handler).map_err(|e| e.to_string())?;
            ids.push(pod.clone());
            let cc = container_config("sleep", BUSYBOX, &["sleep", "600"]);
            let id = cri
                .create_container(&pod, &cfg, &cc)
                .map_err(|e| e.to_string())?;
            cri.start_container(&id).map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_secs(2)); // let shims settle
        let addr = c.address.display().to_string();
        let mut procs = BTreeSet::new();
        for pod in &ids {
            for (pid, _) in leaks::processes_mentioning(&["containerd-shim", &addr, pod]) {
                procs.insert(pid);
            }
        }
        if std::env::var_os("WARD_BENCH_SMAPS").is_some() {
            print_breakdown(&procs);
        }
        let (mut pss, mut rss) = (0u64, 0u64);
        for &p in &procs {
            if let Some((ps, rs)) = procfs::pss_rss_kib(p) {
                pss += ps;
                rss += rs;
            }
        }
        Ok((
            pss as f64 / pods as f64,
            rss as f64 / pods as f64,
            procs.len(),
        ))
    })();
    for pod in &ids {
        let _ = cri.stop_pod(pod);
        let _ = cri.remove_pod(pod);
    }
    result
}

fn mem_cells(m: &Result<(f64, f64, usize), String>, pods: usize) -> (String, String, String) {
    match m {
        Ok((p, r, n)) => (
            format!("{:.2} MiB", p / 1024.0),
            format!("{:.2} MiB", r / 1024.0),
            format!("{:.1}", *n as f64 / pods as f64),
        ),
        Err(e) => (format!("FAILED: {e}"), String::new(), String::new()),
    }
}

fn main() -> ExitCode {
    if let Some(why) = containerd::skip_reason() {
        println!("SKIP: ward-bench: {why}");
        return ExitCode::SUCCESS;
    }
    let runs = env_usize("WARD_BENCH_RUNS", 30);
    let pods = env_usize("WARD_BENCH_PODS", 10);
    let mut runtimes = vec![RUNC_RUNTIME];
    if std::env::var("WARD_BENCH_ONLY").is_ok_and(|v| v == "ward") {
        runtimes.clear();
    }
    match containerd::ward_shim_status() {
        Ok(()) => runtimes.push(WARD_RUNTIME),
        Err(why) => println!("SKIP: ward column: {why}"),
    }
    let c = match Containerd::start_temp() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ward-bench: start containerd: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("## containerd shims: ward vs runc ({runs} runs of `ctr run --rm /bin/true`, {pods} sleeping containers for memory)");
    println!("binaries from {}", containerd::ward_bin_dir().display());
    let start = startup_medians(&c, &runtimes, runs);
    let mut mem = Vec::new();
    let mut cri_mem = Vec::new();
    for rt in &runtimes {
        mem.push(memory_per_pod(&c, rt, pods));
        let handler = if *rt == WARD_RUNTIME { "ward" } else { "runc" };
        cri_mem.push(memory_per_cri_pod(&c, handler, pods));
    }
    println!();
    println!("| runtime | ctr run --rm median | per-pod PSS | per-pod RSS | processes/pod |");
    println!("|---|---|---|---|---|");
    for (i, rt) in runtimes.iter().enumerate() {
        let s = match &start[i] {
            Ok(d) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
            Err(e) => format!("FAILED: {e}"),
        };
        let (p, r, n) = mem_cells(&mem[i], pods);
        println!("| {rt} | {s} | {p} | {r} | {n} |");
    }
    println!();
    println!("{pods} CRI pods per handler (pause + 1 sleeping container, one shim per pod):");
    println!();
    println!("| handler | per-pod PSS | per-pod RSS | processes/pod |");
    println!("|---|---|---|---|");
    for (i, rt) in runtimes.iter().enumerate() {
        let (p, r, n) = mem_cells(&cri_mem[i], pods);
        let handler = if *rt == WARD_RUNTIME { "ward" } else { "runc" };
        println!("| {handler} | {p} | {r} | {n} |");
    }
    let at = |rt: &str| runtimes.iter().position(|r| *r == rt);
    let (runc_i, ward_i) = (at(RUNC_RUNTIME), at(WARD_RUNTIME));
    if let (Some(Ok(runc)), Some(Ok(ward))) = (
        runc_i.and_then(|i| start.get(i)),
        ward_i.and_then(|i| start.get(i)),
    ) {
        let ratio = ward.as_secs_f64() / runc.as_secs_f64();
        println!();
        println!(
            "startup ratio ward/runc: {ratio:.2}× (target ≤ 0.80×: {})",
            if ratio <= 0.8 { "met" } else { "NOT met" }
        );
    }
    for (what, m) in [("ctr containers", &mem), ("CRI pods", &cri_mem)] {
        if let Some(Ok((pss, _, _))) = ward_i.and_then(|i| m.get(i)) {
            println!(
                "ward shim PSS per pod ({what}): {:.2} MiB (target ≤ 3 MiB: {})",
                pss / 1024.0,
                if *pss <= 3.0 * 1024.0 {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    ExitCode::SUCCESS
}
