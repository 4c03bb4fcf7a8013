//! Memory per pod: PSS and RSS of every runtime-side process of sleeping containers (`ctr run
//! -d`) and of CRI pods, found by their command line (the shim's, with the container or pod
//! id and this containerd's address).

use std::collections::BTreeSet;
use std::time::Duration;

use ward_integration::containerd::Containerd;
use ward_integration::cri::{container_config, pod_config, CriClient};
use ward_integration::image::BUSYBOX;
use ward_integration::{leaks, procfs};

use crate::Column;

/// `(pss KiB, rss KiB, processes)` per pod.
pub type PerPod = Result<(f64, f64, usize), String>;

/// Sum PSS and RSS of the shims' processes that mention one of `ids` and this containerd.
fn measure(c: &Containerd, ids: &[String], pods: usize) -> (f64, f64, usize) {
    let addr = c.address.display().to_string();
    let mut procs = BTreeSet::new();
    for id in ids {
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
    (
        pss as f64 / pods as f64,
        rss as f64 / pods as f64,
        procs.len(),
    )
}

/// `pods` sleeping containers of `col` (the shim and whatever it forked: Ward's launcher and
/// the containers' seccomp supervisors carry the shim's command line).
pub fn per_container(c: &Containerd, col: &Column, pods: usize) -> PerPod {
    let ids: Vec<String> = (0..pods).map(|i| format!("mem-{}-{i}", col.tag)).collect();
    let mut started = vec![];
    let result = (|| {
        for id in &ids {
            let out = crate::run_cmd(c, col)
                .args(["-d", BUSYBOX, id, "sleep", "600"])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
            }
            started.push(id.clone());
        }
        std::thread::sleep(Duration::from_secs(2)); // let shims settle
        let (pss, rss, n) = measure(c, &ids, pods);
        Ok((pss, rss, n))
    })();
    for id in &started {
        let _ = c.ctr(Some("default"), &["tasks", "kill", "-s", "SIGKILL", id]);
    }
    std::thread::sleep(Duration::from_millis(500));
    for id in &started {
        let _ = c.ctr(Some("default"), &["tasks", "delete", "-f", id]);
        let _ = c.ctr(Some("default"), &["containers", "delete", id]);
    }
    result
}

/// `pods` CRI pods (pause + one sleeping container, one shim per pod) on `handler`.
pub fn per_cri_pod(c: &Containerd, handler: &str, pods: usize) -> PerPod {
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
        Ok(measure(c, &ids, pods))
    })();
    for pod in &ids {
        let _ = cri.stop_pod(pod);
        let _ = cri.remove_pod(pod);
    }
    result
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

/// The table cells of one measurement (PSS, RSS, processes/pod).
pub fn cells(m: Option<&PerPod>, pods: usize) -> (String, String, String) {
    match m {
        Some(Ok((p, r, n))) => (
            format!("{:.2} MiB", p / 1024.0),
            format!("{:.2} MiB", r / 1024.0),
            format!("{:.1}", *n as f64 / pods as f64),
        ),
        Some(Err(e)) => (format!("FAILED: {e}"), String::new(), String::new()),
        None => ("(same shim as above)".into(), String::new(), String::new()),
    }
}
