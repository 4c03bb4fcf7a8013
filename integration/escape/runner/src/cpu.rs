//! Host-side check of `cpu-spin`: while the container runs, sample its
//! cgroup's CPU usage (cgroup v1 `cpuacct.usage`, v2 `cpu.stat`) and quota,
//! then compare the busiest one-second window with the quota. The probe's
//! own view (throttled periods) is not trusted alone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Allowed overshoot: a one-second window can span one period more than the
/// quota covers, plus sampling jitter.
const TOLERANCE: f64 = 1.25;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Samples {
    /// (when, cumulative usage in ns)
    usage: Vec<(Instant, u64)>,
    /// (quota µs, period µs); quota < 0 means none.
    quota: Option<(i64, u64)>,
    dir: Option<PathBuf>,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Samples>,
    cgroup: String,
}

fn read(p: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Cumulative CPU usage (ns) of the cgroup at `rel`, and where it was read.
fn usage(rel: &str) -> Option<(u64, PathBuf)> {
    for ctrl in ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"] {
        let d = PathBuf::from("/sys/fs/cgroup").join(ctrl).join(rel);
        if let Some(v) = read(&d.join("cpuacct.usage")).and_then(|s| s.trim().parse().ok()) {
            return Some((v, d));
        }
    }
    let d = PathBuf::from("/sys/fs/cgroup").join(rel);
    let us: u64 = read(&d.join("cpu.stat"))?
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    Some((us * 1000, d))
}

fn quota(rel: &str) -> Option<(i64, u64)> {
    for ctrl in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
        let d = PathBuf::from("/sys/fs/cgroup").join(ctrl).join(rel);
        let q = read(&d.join("cpu.cfs_quota_us")).and_then(|s| s.trim().parse().ok());
        let p = read(&d.join("cpu.cfs_period_us")).and_then(|s| s.trim().parse().ok());
        if let (Some(q), Some(p)) = (q, p) {
            return Some((q, p));
        }
    }
    let m = read(&PathBuf::from("/sys/fs/cgroup").join(rel).join("cpu.max"))?;
    let mut f = m.split_whitespace();
    let q = f.next()?;
    let p: u64 = f.next()?.parse().ok()?;
    Some((if q == "max" { -1 } else { q.parse().ok()? }, p))
}

impl Sampler {
    /// Start sampling the cgroup `cgroup` (the spec's absolute cgroupsPath).
    pub fn start(cgroup: &str) -> Sampler {
        let rel = cgroup.trim_start_matches('/').to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut s = Samples::default();
            let start = Instant::now();
            while !s2.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(600) {
                if let Some((u, d)) = usage(&rel) {
                    s.usage.push((Instant::now(), u));
                    s.dir.get_or_insert(d);
                    // The runtime may write the quota just after creating the
                    // cgroup: keep the last value seen while the container ran.
                    if let Some(q) = quota(&rel) {
                        s.quota = Some(q);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            s
        });
        Sampler {
            stop,
            handle,
            cgroup: cgroup.to_string(),
        }
    }

    /// Stop, and return host findings (empty when the usage stayed under the
    /// quota) plus a one-line summary for the cell's reason.
    pub fn finish(self) -> (Vec<String>, String) {
        self.stop.store(true, Ordering::SeqCst);
        let s = self.handle.join().unwrap_or_default();
        let Some(dir) = &s.dir else {
            return (
                vec![format!(
                    "cpu-spin: the container's cgroup {} was never readable on the host; the quota cannot be verified",
                    self.cgroup
                )],
                String::new(),
            );
        };
        let peak = peak_rate(&s.usage);
        let Some(peak) = peak else {
            return (
                vec![format!(
                    "cpu-spin: too few samples of {} ({}) to measure a one-second window",
                    dir.display(),
                    s.usage.len()
                )],
                String::new(),
            );
        };
        match s.quota {
            Some((q, p)) if q > 0 && p > 0 => {
                let limit = q as f64 / p as f64;
                let summary = format!(
                    "host: peak {peak:.2} CPUs over 1 s, quota {limit:.2} CPUs ({q}/{p} µs)"
                );
                if peak > limit * TOLERANCE + 0.02 {
                    (
                        vec![format!(
                            "cpu-spin: the container used {peak:.2} CPUs over 1 s, above its quota of {limit:.2} CPUs"
                        )],
                        summary,
                    )
                } else {
                    (Vec::new(), summary)
                }
            }
            other => (
                vec![format!(
                    "cpu-spin: no CPU quota on the container's cgroup ({}), it used up to {peak:.2} CPUs over 1 s",
                    match other {
                        Some((q, p)) => format!("quota {q} per {p} µs"),
                        None => "quota unreadable".into(),
                    }
                )],
                String::new(),
            ),
        }
    }
}

/// The highest usage rate (CPUs) over any window of at least WINDOW.
fn peak_rate(u: &[(Instant, u64)]) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut j = 0;
    for i in 0..u.len() {
        while j < u.len() && u[j].0.duration_since(u[i].0) < WINDOW {
            j += 1;
        }
        if j == u.len() {
            break;
        }
        let dt = u[j].0.duration_since(u[i].0).as_secs_f64();
        let du = u[j].1.saturating_sub(u[i].1) as f64 / 1e9;
        let r = du / dt;
        best = Some(best.map_or(r, |b: f64| b.max(r)));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_over_one_second_windows() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Idle 1 s, then 2 CPUs busy for 1.5 s (2 ns of CPU per wall ns).
        let mut u = vec![];
        for ms in (0..=2500u64).step_by(50) {
            let busy = ms.saturating_sub(1000);
            u.push((at(ms), busy * 2_000_000));
        }
        let p = peak_rate(&u).unwrap();
        assert!((p - 2.0).abs() < 0.01, "{p}");
        assert_eq!(peak_rate(&u[..5]), None, "under a second of samples");
    }
}
