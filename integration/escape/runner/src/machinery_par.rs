//! Ward's own machinery, concurrency and charging: parallel creates must never share a host
//! uid range, a same-id race leaves one intact container, a container's per-user kernel
//! counts land on its range's base uid rather than host root, and the seccomp supervisor
//! sits in the container's cgroups. All read from the host: /proc/<pid>/uid_map, the
//! user namespace's owner (NS_GET_OWNER_UID), host root's free inotify instances,
//! /proc/<pid>/cgroup.

use crate::bundle::Spec;
use crate::machinery::{cli_pid, column, judge, last_line, na, start, Mach};
use crate::report::Cell;
use crate::rt::Runtime;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// (host start, length) of container uid 0's range, from /proc/<pid>/uid_map.
fn host_range(pid: i32) -> Option<(u64, u64)> {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).ok()?;
    let f: Vec<u64> = map
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.len() == 3 && f[0] == 0).then(|| (f[1], f[2]))
}

/// Overlapping or host-root-including ranges among `r` (label, start, len).
fn overlaps(r: &[(String, u64, u64)]) -> Vec<String> {
    let mut f = vec![];
    for (i, a) in r.iter().enumerate() {
        if a.1 == 0 {
            f.push(format!("{} maps container root to host uid 0", a.0));
        }
        for b in &r[i + 1..] {
            if a.1 < b.1 + b.2 && b.1 < a.1 + a.2 {
                f.push(format!(
                    "{} ({}+{}) and {} ({}+{}) share host uids",
                    a.0, a.1, a.2, b.0, b.1, b.2
                ));
            }
        }
    }
    f
}

/// CLI: 6 parallel `run -d` on one root. Shim: 3 `ctr run -d` and 3 CLI creates on the
/// machinery root at once (two roots, CLI and shim together).
pub fn parallel(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "parallel-uid-ranges";
    let mut jobs: Vec<(&Runtime, String)> = vec![];
    for i in 0..6 {
        let rt = if r.ctrd.is_some() && i % 2 == 1 {
            &m.ward
        } else {
            r
        };
        jobs.push((rt, m.id("par")));
    }
    let specs: Vec<Spec> = jobs
        .iter()
        .map(|(_, id)| m.spec(id, &["/bin/sleep", "1000"]))
        .collect();
    let started: Vec<Result<i32, String>> = std::thread::scope(|sc| {
        let hs: Vec<_> = jobs
            .iter()
            .zip(&specs)
            .map(|((rt, id), spec)| sc.spawn(move || start(m, rt, id, spec, &[])))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or(Err("panicked".into())))
            .collect()
    });
    let (mut findings, mut ranges, mut errors) = (vec![], vec![], vec![]);
    for ((rt, id), s) in jobs.iter().zip(&started) {
        let who = format!("{}:{id}", column(rt));
        match s.as_ref().ok().and_then(|p| host_range(*p)) {
            Some((a, n)) => ranges.push((who, a, n)),
            None => errors.push(format!(
                "{who}: {}",
                s.clone().err().unwrap_or("no uid_map".into())
            )),
        }
    }
    findings.extend(overlaps(&ranges));
    let mut leaks = vec![];
    for (rt, id) in &jobs {
        leaks.extend(m.remove(rt, id));
    }
    if findings.is_empty() && !errors.is_empty() {
        let mut c = Cell::error(
            T,
            column(r),
            &format!("not every create ran: {}", errors.join("; ")),
        );
        c.leaks = leaks;
        return c;
    }
    let starts: Vec<String> = ranges.iter().map(|x| x.1.to_string()).collect();
    judge(
        T,
        r,
        findings,
        leaks,
        format!(
            "{} containers, disjoint host ranges starting at {}",
            ranges.len(),
            starts.join(", ")
        ),
    )
}

/// 4 parallel CLI creates of one id: one wins, running and whole; its range is not handed out
/// again to the next container.
pub fn same_id(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "same-id-race";
    if r.ctrd.is_some() {
        return na(T, r, "containerd's metadata store refuses a second container of an id before any shim is started");
    }
    let id = m.id("sameid");
    let spec = m.spec(&id, &["/bin/sleep", "1000"]);
    let b = m.dir.join("bundles").join(&id);
    if let Err(e) = crate::bundle::write_config(&b, &spec) {
        return Cell::error(T, column(r), &e);
    }
    // Each create's stderr to a file of its own: the winner's container inherits it, and a
    // pipe would never close.
    let outs: Vec<crate::rt::Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (b, id) = (&b, &id);
                sc.spawn(move || create_logged(m, r, b, id, i))
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut findings = vec![];
    let won = outs.iter().filter(|o| o.status == Some(0)).count();
    if won != 1 {
        findings.push(format!("{won} of 4 creates of {id} succeeded"));
    }
    for o in outs.iter().filter(|o| o.status != Some(0)) {
        if !o.stderr.contains("already exists") {
            findings.push(format!(
                "a losing create failed otherwise: {}",
                last_line(&o.stderr)
            ));
        }
    }
    let status = r
        .state(&id)
        .and_then(|s| s["status"].as_str().map(String::from));
    if status.as_deref() != Some("running") {
        findings.push(format!("the winner is not running: {status:?}"));
    }
    // Its state: Ward's record and its claim in the range table.
    let wd = r.root.join(".ward");
    let table = std::fs::read_to_string(wd.join("ranges.json")).unwrap_or_default();
    if r.kind == "ward"
        && !(wd.join(&id).join("ward.json").is_file() && table.contains(&format!("\"{id}\"")))
    {
        findings.push(format!("the winner's state is not whole: ward.json or its claim in ranges.json missing ({table})"));
    }
    let range = cli_pid(r, &id).and_then(host_range);
    let other = m.id("after");
    let ospec = m.spec(&other, &["/bin/sleep", "1000"]);
    let next = start(m, r, &other, &ospec, &[]).ok().and_then(host_range);
    match (&range, next) {
        (Some(a), Some(b)) => findings.extend(overlaps(&[
            (id.clone(), a.0, a.1),
            (other.clone(), b.0, b.1),
        ])),
        _ => findings.push(format!(
            "cannot read the ranges: winner {range:?}, next {next:?}"
        )),
    }
    let mut leaks = m.remove(r, &id);
    leaks.extend(m.remove(r, &other));
    let ok = format!("1 of 4 won, the others said \"already exists\"; winner running at {:?}, the next container got {next:?}", range);
    judge(T, r, findings, leaks, ok)
}

/// `run -d` with stdout to /dev/null and stderr to a file of attempt `i`'s own.
fn create_logged(m: &Mach, r: &Runtime, b: &Path, id: &str, i: usize) -> crate::rt::Output {
    let errf = m.dir.join(format!("{id}-{i}.stderr"));
    let mut c = r.cmd(&["run", "-d", "--bundle", &b.to_string_lossy(), id]);
    c.stdin(Stdio::null()).stdout(Stdio::null());
    if let Ok(f) = std::fs::File::create(&errf) {
        c.stderr(f);
    }
    let status = c.status().ok().and_then(|s| s.code());
    let stderr = std::fs::read_to_string(&errf).unwrap_or_default();
    let _ = std::fs::remove_file(&errf);
    crate::rt::Output {
        status,
        stdout: String::new(),
        stderr,
        timed_out: false,
    }
}

/// How many more inotify instances this process (host root) can open, up to `max`.
fn inotify_available(max: usize) -> usize {
    let mut fds = vec![];
    while fds.len() < max {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            break;
        }
        fds.push(fd);
    }
    let n = fds.len();
    for fd in fds {
        // SAFETY: closes an fd opened above, owned by nobody else.
        unsafe { libc::close(fd) };
    }
    n
}

/// The owner uid of `pid`'s user namespace (ioctl NS_GET_OWNER_UID).
fn userns_owner(pid: i32) -> Result<u32, String> {
    const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
    let p = format!("/proc/{pid}/ns/user");
    let f = std::fs::File::open(&p).map_err(|e| format!("open {p}: {e}"))?;
    let mut uid: libc::uid_t = u32::MAX;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t into `uid`, which outlives the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_OWNER_UID, &mut uid) };
    if r != 0 {
        return Err(format!(
            "NS_GET_OWNER_UID {p}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(uid)
}

/// A container holds every inotify instance it can get; host root's free count must not move,
/// and the container's user namespace must be owned by its range's base uid, not 0.
pub fn inotify(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "userns-owner-inotify";
    let host_max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128);
    let before = inotify_available(host_max);
    if before <= 16 {
        return Cell::na(
            T,
            column(r),
            &format!("host root has only {before} inotify instances left: cannot judge"),
        );
    }
    let id = m.id("inotify");
    let out = m.s.paths.vol.join(format!("inotify-{id}"));
    let inside = format!("{}/inotify-{id}", crate::bundle::VOL_IN);
    // The runc control charges host root for real: 24 are enough to see, and leave the
    // host's other root processes theirs.
    let n = match column(r) {
        crate::machinery::RUNC => 24,
        _ => host_max + 16,
    }
    .to_string();
    let spec = m.spec(&id, &["/bin/ward-probe", "hold-inotify", &n, &inside]);
    let pid = start(m, r, &id, &spec, &[]);
    let t0 = Instant::now();
    while pid.is_ok() && !out.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let line = std::fs::read_to_string(&out).unwrap_or_default();
    // Other root processes may hold a few for a moment: the best of three counts.
    let mut after = inotify_available(host_max);
    for _ in 0..2 {
        if after + 8 >= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        after = after.max(inotify_available(host_max));
    }
    let owner = pid
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|p| userns_owner(*p));
    let base = pid.as_ref().ok().and_then(|p| host_range(*p)).map(|x| x.0);
    let leaks = m.remove(r, &id);
    let _ = std::fs::remove_file(&out);
    let held: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let mut findings = vec![];
    match &owner {
        Ok(0) => findings.push("the container's user namespace is owned by host root".to_string()),
        Ok(o) if Some(u64::from(*o)) != base => findings.push(format!(
            "user namespace owner {o} is not the range base {base:?}"
        )),
        _ => {}
    }
    if after + 8 < before {
        findings.push(format!("host root had {before} free inotify instances, {after} while the container held {held}: charged to uid 0"));
    }
    if findings.is_empty() && (owner.is_err() || held < 16) {
        let mut c = Cell::error(
            T,
            column(r),
            &format!(
                "cannot judge: the container held {held} ({:?}); owner {owner:?}",
                line.trim()
            ),
        );
        c.leaks = leaks;
        return c;
    }
    let ok = format!("the container held {held} instances ({}); host root had {before} free before, {after} during; user namespace owned by uid {} = range base", line.trim(), owner.unwrap_or(0));
    judge(T, r, findings, leaks, ok)
}

/// /proc/<pid>/cgroup lines for the hierarchies that charge CPU, memory and pids (or v2's).
fn charged_cgroups(pid: i32) -> Vec<String> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    cg.lines()
        .filter(|l| {
            let ctrls = l.split(':').nth(1).unwrap_or("");
            if pure_v2 {
                l.starts_with("0::")
            } else {
                ctrls
                    .split(',')
                    .any(|c| ["cpu", "memory", "pids"].contains(&c))
            }
        })
        .map(String::from)
        .collect()
}

/// The seccomp supervisor recorded in the container's state runs in its cgroups.
pub fn supervisor(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "supervisor-cgroup";
    if r.kind == "runc" {
        return na(T, r, "runc has no seccomp supervisor");
    }
    let id = m.id("supcg");
    let spec = m.spec(&id, &["/bin/sleep", "1000"]);
    let init = start(m, r, &id, &spec, &[]);
    let root = r.ctrd.as_ref().map_or(r.root.clone(), |c| c.ward_root());
    let rec = root.join(".ward").join(&id).join("supervisor.json");
    let sup = std::fs::read(&rec)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["pid"].as_i64())
        .map(|p| p as i32);
    let (mut findings, mut why) = (vec![], String::new());
    match (&init, sup) {
        (Ok(i), Some(s)) => {
            let (ci, cs) = (charged_cgroups(*i), charged_cgroups(s));
            if ci.is_empty() || cs.is_empty() {
                why = format!("no cgroup lines: init {ci:?}, supervisor {cs:?}");
            } else if ci != cs {
                findings.push(format!(
                    "supervisor {s} is charged to {cs:?}, the container to {ci:?}"
                ));
            } else {
                why = format!("supervisor {s} in the container's {}", ci.join(" "));
            }
        }
        (Err(e), _) => why = e.clone(),
        (_, None) => why = format!("no supervisor recorded in {}", rec.display()),
    }
    let leaks = m.remove(r, &id);
    if findings.is_empty() && !why.starts_with("supervisor") {
        let mut c = Cell::error(T, column(r), &why);
        c.leaks = leaks;
        return c;
    }
    judge(T, r, findings, leaks, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_root_ranges_are_findings() {
        let r = |n: &str, a, l| (n.to_string(), a, l);
        assert!(overlaps(&[r("a", 65536, 65536), r("b", 131072, 65536)]).is_empty());
        let f = overlaps(&[r("a", 65536, 65536), r("b", 131071, 10)]);
        assert_eq!(f.len(), 1, "{f:?}");
        let f = overlaps(&[r("a", 0, 4294967295), r("b", 0, 4294967295)]);
        assert_eq!(f.len(), 3, "{f:?}");
    }
}
