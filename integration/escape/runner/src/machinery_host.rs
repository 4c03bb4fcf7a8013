//! Ward's own machinery, the host-side attacker: an unprivileged host user (nobody) next to
//! a running container tries to find, read, run and write what Ward keeps for it on the host
//! (`<root>/.ward/<id>/`: layers, volume clones, overlay dirs, state files) and its
//! `/proc/<init>/root`; and no mount naming the container may show in the host's table.

use crate::machinery::{column, judge, last_line, start, Mach};
use crate::report::Cell;
use crate::rt::{run_cmd, Output, Runtime};
use crate::suite::truncate;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A shell script run as host user nobody (uid/gid 65534, no groups).
pub fn as_nobody(script: &str) -> Output {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        "sh",
        "-c",
        script,
    ]);
    run_cmd(c, Duration::from_secs(60))
}

/// Every path under `dir` as host root sees it: (directories, other entries).
fn tree(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut dirs, mut files) = (vec![dir.to_path_buf()], vec![]);
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            for e in rd.flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => dirs.push(e.path()),
                    _ => files.push(e.path()),
                }
            }
        }
        i += 1;
    }
    (dirs, files)
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// What the host user tries against a container's state dir `w` and its init `pid`.
struct Attack {
    w: PathBuf,
    marker: String,
    reads: Vec<PathBuf>,
    execs: Vec<PathBuf>,
    writes: Vec<PathBuf>,
}

impl Attack {
    fn new(w: &Path, pid: i32, marker: &str) -> Self {
        let (dirs, files) = tree(w);
        let proot = PathBuf::from(format!("/proc/{pid}/root"));
        let mut reads = files;
        reads.extend([proot.join("etc/passwd"), proot.join("bin/busybox")]);
        let mut execs = vec![proot.join("bin/ward-probe-suid")];
        execs.extend(dirs.iter().map(|d| d.join("bin/ward-probe-suid")));
        let mut writes = dirs;
        writes.extend([proot.join("tmp"), proot.join("mnt/vol")]);
        Attack {
            w: w.to_path_buf(),
            marker: marker.to_string(),
            reads,
            execs,
            writes,
        }
    }

    /// The script: one `SEEN`/`READ`/`RAN`/`WROTE` line per success, then `done`.
    fn script(&self) -> String {
        let mut s = format!(
            "find {} -mindepth 1 ! -type d 2>/dev/null | sed 's/^/SEEN /'\n",
            q(&self.w)
        );
        for f in &self.reads {
            s += &format!("cat {0} >/dev/null 2>&1 && echo READ {0}\n", q(f));
        }
        for x in &self.execs {
            s += &format!(
                "e=$({0} euid 2>/dev/null) && echo \"RAN {0} euid=$e\"\n",
                q(x)
            );
        }
        for d in &self.writes {
            s += &format!(
                "touch {0}/{1} 2>/dev/null && echo WROTE {0}\n",
                q(d),
                self.marker
            );
        }
        s + "echo done\n"
    }
}

/// The host-side attacker: an unprivileged host user next to a running container.
pub fn host_user_reach(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "host-user-reach";
    let snap = m.snapshot();
    let id = m.id("reach");
    let spec = m.spec(&id, &["/bin/sleep", "1000"]);
    let pid = match start(m, r, &id, &spec, &[]) {
        Ok(p) => p,
        Err(e) => {
            let leaks = m.remove(r, &id);
            let mut c = Cell::error(T, column(r), &e);
            c.leaks = leaks;
            return c;
        }
    };
    // Ward's state dir; runc's own for the control column.
    let w = match &r.ctrd {
        Some(c) => c.ward_root().join(".ward").join(&id),
        None if r.kind == "ward" => r.root.join(".ward").join(&id),
        None => r.root.join(&id),
    };
    let mut findings = Vec::new();
    if !w.is_dir() {
        findings.push(format!("no state dir at {} to judge", w.display()));
    }
    // No mount naming the container in the host's table: none under its state dir, none
    // anywhere naming its id (but containerd's own bundle rootfs for the shim, as for runc-v2).
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ctrd_dir = r.ctrd.as_ref().map(|c| c.dir().display().to_string());
    let names_it = |l: &&str| {
        l.contains(&w.display().to_string())
            || (l.contains(&id) && !ctrd_dir.as_ref().is_some_and(|d| l.contains(d.as_str())))
    };
    for l in mi.lines().filter(names_it) {
        findings.push(format!(
            "container mount visible on the host: {}",
            truncate(l, 160)
        ));
    }
    let marker = format!("ward-nobody-{}", m.s.run_id);
    let a = Attack::new(&w, pid, &marker);
    let o = as_nobody(&a.script());
    if !o.stdout.contains("done") {
        findings.push(format!(
            "the attacker script did not finish: {}",
            last_line(&o.stderr)
        ));
    }
    findings.extend(
        o.stdout
            .lines()
            .filter(|l| *l != "done")
            .map(|l| format!("host user: {l}")),
    );
    // Looked for before delete: the container's own dirs go with it.
    for d in a.writes.iter().filter(|d| d.join(&marker).exists()) {
        findings.push(format!("{} holds the host user's file", d.display()));
        let _ = std::fs::remove_file(d.join(&marker));
    }
    let leaks = m.remove(r, &id);
    findings.extend(m.verify(&snap));
    let ok = format!(
        "host user tried {} reads, {} set-uid execs, {} writes and a find under {} and /proc/{pid}/root: all denied; no mount of the state dir on the host",
        a.reads.len(),
        a.execs.len(),
        a.writes.len(),
        w.display()
    );
    judge(T, r, findings, leaks, ok)
}
