//! Resource exhaustion, bounded: the probe never exceeds its own bound, and
//! reports whether a limit stopped it first.

use crate::report::Outcome;
use crate::sys;
use crate::Ctx;
use std::time::{Duration, Instant};

fn cgroup_value(ctrl_file: &[&str]) -> String {
    for f in ctrl_file {
        if let Some(v) = sys::read_text(f) {
            return format!("{}={}", f, v.trim());
        }
    }
    "no limit file visible".into()
}

pub fn fork_bomb(c: &Ctx) -> Outcome {
    let mut o = Outcome::new("fork-bomb", "fork() until failure, bounded by --forks");
    let start = Instant::now();
    let mut kids = Vec::new();
    let mut err = None;
    for _ in 0..c.forks {
        match sys::fork() {
            Some(0) => {
                loop {
                    // SAFETY: pause has no preconditions; the parent kills us.
                    unsafe { libc::pause() };
                }
            }
            Some(pid) => kids.push(pid),
            None => {
                err = Some(sys::errno());
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let n = kids.len();
    o.rec(
        &format!("fork x{n}"),
        if err.is_some() { -1 } else { n as i64 },
    );
    if let Some(e) = err {
        o.results.last_mut().expect("just pushed").errno = Some(e);
    }
    if c.hold_secs > 0 {
        std::thread::sleep(Duration::from_secs(c.hold_secs));
    }
    for &k in &kids {
        sys::kill(k, libc::SIGKILL);
    }
    for &k in &kids {
        sys::wait(k);
    }
    let lim = cgroup_value(&["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"]);
    match err {
        Some(e) => o.blocked(format!(
            "fork failed with {} after {n} children ({lim})",
            crate::report::errno_name(e)
        )),
        None => o.escaped(format!(
            "{n} processes created without hitting a limit ({lim})"
        )),
    }
}

pub fn memory_hog(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "memory-hog",
        "mmap+touch memory in a child, bounded by --mem-mib",
    );
    let Some(pid) = sys::fork() else {
        return o.na("fork failed");
    };
    if pid == 0 {
        let mib = 1usize << 20;
        for i in 0..c.mem_mib {
            // SAFETY: anonymous private mapping; no pointers are aliased.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    mib,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                sys::exit(10 + (i.min(1) as i32));
            }
            // SAFETY: `p` is a fresh writable mapping of `mib` bytes.
            unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0xa5, mib) };
        }
        if c.hold_secs > 0 {
            std::thread::sleep(Duration::from_secs(c.hold_secs));
        }
        sys::exit(0);
    }
    let st = sys::wait(pid);
    o.rec("child touching memory", if st == 0 { 0 } else { -1 });
    let lim = cgroup_value(&[
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory.max",
    ]);
    if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
        return o.blocked(format!(
            "the hog was OOM-killed inside the container ({lim})"
        ));
    }
    if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) >= 10 {
        return o.blocked(format!("mmap failed before {} MiB ({lim})", c.mem_mib));
    }
    if st == 0 {
        return o.escaped(format!(
            "{} MiB allocated and touched without a limit ({lim})",
            c.mem_mib
        ));
    }
    o.na(format!("hog ended with status {st:#x}"))
}

/// The fill runs in a child: tmpfs pages are charged to the memory cgroup, so
/// a memory limit may OOM-kill the writer before the tmpfs size limit is hit.
pub fn tmpfs_fill(c: &Ctx) -> Outcome {
    let mut p = [0i32; 2];
    // SAFETY: `p` is a valid 2-element array.
    unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) };
    let Some(pid) = sys::fork() else {
        return Outcome::new("tmpfs-fill", "fork").na("fork failed");
    };
    if pid == 0 {
        sys::close(p[0] as i64);
        let line = tmpfs_fill_inner(c).to_json() + "\n";
        sys::write_all(p[1], line.as_bytes());
        sys::exit(0);
    }
    sys::close(p[1] as i64);
    let mut buf = Vec::new();
    loop {
        let (n, chunk) = sys::read_some(p[0], 65536);
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    sys::close(p[0] as i64);
    let st = sys::wait(pid);
    let _ = std::fs::remove_file("/tmp/ward-probe-fill");
    let mut o = Outcome::new(
        "tmpfs-fill",
        "write 1 MiB chunks to /tmp until ENOSPC, bounded by --fill-mib",
    );
    if !buf.is_empty() {
        o.raw = Some(String::from_utf8_lossy(&buf).trim().to_string());
        return o;
    }
    o.rec("writer child", -1);
    let lim = cgroup_value(&[
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory.max",
    ]);
    if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL {
        return o.blocked(format!(
            "the writer was OOM-killed: tmpfs pages count against the memory limit ({lim})"
        ));
    }
    o.na(format!("writer ended with status {st:#x}"))
}

fn tmpfs_fill_inner(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "tmpfs-fill",
        "write 1 MiB chunks to /tmp until ENOSPC, bounded by --fill-mib",
    );
    let path = "/tmp/ward-probe-fill";
    let fd = sys::open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC);
    if o.rec("open /tmp/ward-probe-fill", fd).errno.is_some() {
        return o.na("/tmp is not writable: nothing to fill");
    }
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    let mut err = None;
    while written < c.fill_mib {
        let w = sys::write_all(fd as i32, &chunk);
        if w < 0 {
            err = Some(sys::errno());
            break;
        }
        if (w as usize) < chunk.len() {
            err = Some(libc::ENOSPC);
            break;
        }
        written += 1;
    }
    o.rec(
        &format!("write x{written} MiB"),
        if err.is_some() { -1 } else { written as i64 },
    );
    if let Some(e) = err {
        o.results.last_mut().expect("just pushed").errno = Some(e);
    }
    sys::close(fd);
    let _ = std::fs::remove_file(path);
    match err {
        Some(e) => o.blocked(format!(
            "stopped at {written} MiB with {}",
            crate::report::errno_name(e)
        )),
        None => o.escaped(format!(
            "{written} MiB written to /tmp without a size limit"
        )),
    }
}

pub fn cpu_spin(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "cpu-spin",
        "spin on every CPU for --spin-secs, compare CPU time with wall time",
    );
    // Every CPU we may run on (not available_parallelism(), which already
    // divides by the cgroup's quota and would spin too few threads to test it).
    let n = sys::cpus_allowed();
    let secs = c.spin_secs.max(1);
    let throttled = || {
        sys::read_text("/sys/fs/cgroup/cpu/cpu.stat")
            .or_else(|| sys::read_text("/sys/fs/cgroup/cpu.stat"))
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("nr_throttled ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
    };
    let before = throttled();
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut x = 0u64;
                while t.elapsed() < Duration::from_secs(secs) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                x
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let wall = start.elapsed().as_secs_f64();
    // SAFETY: zeroed timespec is valid; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is writable.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    let cpu = ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
    let ratio = cpu / (wall * n as f64);
    o.rec(&format!("spin {n} threads {wall:.1}s, cpu {cpu:.2}s"), 0);
    let lim = cgroup_value(&[
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/cpu.max",
    ]);
    let delta = before.zip(throttled()).map(|(a, b)| b.saturating_sub(a));
    if delta.is_some_and(|d| d > 0) || (delta.is_none() && ratio < 0.9) {
        o.blocked(format!(
            "throttled to {:.0}% of {n} CPUs, {} throttled periods ({lim})",
            ratio * 100.0,
            delta.map_or("?".into(), |d| d.to_string())
        ))
    } else if lim.ends_with("=-1") || lim.ends_with("=max") || lim.contains("=max ") {
        o.escaped(format!(
            "no CPU quota: got {:.0}% of {n} CPUs ({lim})",
            ratio * 100.0
        ))
    } else if ratio < 0.9 {
        // The quota is there but other load on the node kept us below it: the
        // runner's host-side sampling still checks that usage stayed under it.
        o.blocked(format!(
            "quota in place ({lim}); other load kept us at {:.0}% of {n} CPUs, below it, so no period was throttled",
            ratio * 100.0
        ))
    } else {
        o.escaped(format!(
            "used {:.0}% of {n} CPUs unthrottled ({lim})",
            ratio * 100.0
        ))
    }
}
