//! Ward's own machinery (THREATS.md, last section): attacks on Ward itself rather than on
//! the kernel from inside a container. The attackers are the config.json author, a container
//! (across runs) and another host user. Each technique is mounted for real and judged from
//! the host's side; the rows form their own section of RESULTS.md, with a `ward` (CLI)
//! column and, where containerd can carry the attack to the shim, a `ward-shim` column.
//! This file: the context, the judging, the report section and the volume planted across
//! runs; `machinery_host.rs`: the host-user attacker; `machinery_cfg.rs`: config.json-level
//! attacks; `machinery_par.rs`: parallel creates and what is charged to whom.

use crate::bundle::{self, Spec};
use crate::host::Snapshot;
use crate::report::Cell;
use crate::rt::{Output, Runtime};
use crate::suite::{truncate, Suite};
use crate::{machinery_cfg as cfg, machinery_par as par};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const CLI: &str = "ward";
pub const SHIM: &str = "ward-shim";
/// A control column in the full comparison: the same attacks against runc, which has no
/// such defences, show that each row's host-side checks do see an attack that works.
pub const RUNC: &str = "runc";

/// Technique ids and what each tries, in report order.
pub const TECHNIQUES: &[(&str, &str)] = &[
    ("host-user-reach", "an unprivileged host user (setpriv 65534) next to a running container: find, read, list, write under `<root>/.ward/<id>/` and `/proc/<init>/root`, run the image's set-uid probe through those paths; no mount under the state dir in the host's mountinfo"),
    ("volume-plant-symlink", "run 1 plants `ln -s / /app/cache` in its rw volume; run 2 binds `app` and `app/cache` and writes a marker through it"),
    ("root-path-host", "`root.path` of `/`, `/etc`, a bundle symlink to `/`, `../`×8"),
    ("bind-source-symlink", "a bind source that is a symlink to `/etc`"),
    ("cgroup-host-path", "`cgroupsPath` naming an existing host cgroup holding a host process (pids.max 77)"),
    ("host-hooks", "createRuntime, prestart, createContainer, poststart, poststop hooks writing a host marker under the default node config (then allowed by `[hooks] allow`, as a control)"),
    ("sandbox-id-hijack", "`io.kubernetes.cri.sandbox-id` naming a live plain container, with joins of its namespaces, pods enabled"),
    ("parallel-uid-ranges", "6 parallel creates on one root (shim: 3 through containerd and 3 CLI creates on another root at once): host uid ranges from /proc/<pid>/uid_map"),
    ("same-id-race", "4 parallel creates of one id: one winner, intact, its range not handed out again"),
    ("userns-owner-inotify", "a container exhausting inotify instances: host root's free instances before and after, and NS_GET_OWNER_UID of its user namespace"),
    ("supervisor-cgroup", "the seccomp supervisor's cgroups against the container init's"),
    ("stdio-pipe-read", "a container whose stdout is a pipe a host process also writes into reopens `/dev/stdout` for reading and copies what arrives to its stderr; the host's reader must get all 40 lines"),
];

/// What the machinery techniques share: the suite, a CLI runtime of their own, the shim
/// column (if any) and a scratch dir.
pub struct Mach<'a> {
    pub s: &'a Suite,
    pub ward: Runtime,
    /// One shim column per containerd release (containerd 2 first).
    pub shims: Vec<Runtime>,
    pub runc: Option<Runtime>,
    pub dir: PathBuf,
    n: AtomicUsize,
}

impl Mach<'_> {
    /// A fresh container id for `tag`.
    pub fn id(&self, tag: &str) -> String {
        let n = self.n.fetch_add(1, Ordering::SeqCst);
        format!("wm-{}-{tag}-{n}", self.s.run_id)
    }

    pub fn spec(&self, id: &str, args: &[&str]) -> Spec<'_> {
        let args = args.iter().map(|a| a.to_string()).collect();
        Spec::new(&self.s.paths, self.s.cgroup_path(id), args)
    }

    /// A bundle for `id` (the suite's rootfs and volumes) with `edit` applied to config.json.
    pub fn bundle(
        &self,
        id: &str,
        args: &[&str],
        edit: impl FnOnce(&mut Value),
    ) -> Result<PathBuf, String> {
        let b = self.dir.join("bundles").join(id);
        bundle::write_config(&b, &self.spec(id, args))?;
        let p = b.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&p).map_err(|e| e.to_string())?)
            .map_err(|e| format!("config.json: {e}"))?;
        edit(&mut c);
        std::fs::write(&p, serde_json::to_vec_pretty(&c).unwrap_or_default())
            .map_err(|e| format!("write {}: {e}", p.display()))?;
        Ok(b)
    }

    /// `ward` with a node config of its own (`--config`), on the machinery root.
    pub fn ward_with_config(&self, config: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.ward.path);
        c.arg("--config")
            .arg(config)
            .arg("--root")
            .arg(&self.ward.root);
        c.args(args);
        c
    }

    /// Delete `id` (CLI or through containerd) and say what it left behind, its init
    /// process included.
    pub fn remove(&self, r: &Runtime, id: &str) -> Vec<String> {
        let pid = match &r.ctrd {
            Some(c) => c.task_pid(id),
            None => cli_pid(r, id),
        };
        let del = match &r.ctrd {
            Some(c) => c.remove(id),
            None => r.delete(id),
        };
        let _ = std::fs::remove_dir_all(self.dir.join("bundles").join(id));
        let mut leaks = self.s.leaks_after(r, id, Some(&del));
        if let Some(p) = pid.filter(|p| !gone_within(*p, Duration::from_secs(2))) {
            leaks.push(format!("the init {p} of {id} still runs after delete"));
        }
        leaks
    }

    /// A host canary snapshot, to compare after the technique.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.s.canaries, &self.s.paths.work)
    }

    pub fn verify(&self, snap: &Snapshot) -> Vec<String> {
        let f = snap.verify(&self.s.canaries, &self.s.paths.work);
        self.s.canaries.reset();
        f
    }
}

/// Run every machinery technique under the CLI and, where it applies, the shim.
pub fn run(s: &mut Suite) {
    if !s.opts.machinery {
        return;
    }
    let Some(w) = s.columns.iter().find(|c| c.kind == "ward") else {
        eprintln!("== Ward's own machinery: SKIP, no ward column");
        return;
    };
    let mut ward = w.clone();
    ward.profile = None;
    ward.log = None;
    ward.root = s.paths.work.join("state/machinery");
    let dir = s.paths.work.join("machinery");
    for d in [&ward.root, &dir] {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("== Ward's own machinery: mkdir {}: {e}", d.display());
            return;
        }
    }
    let mut shims: Vec<Runtime> = vec![];
    for c in s.columns.iter().filter(|c| c.ctrd.is_some()) {
        if !shims.iter().any(|o| o.kind == c.kind) {
            shims.push(c.clone());
        }
    }
    let runc = s
        .columns
        .iter()
        .find(|c| c.kind == "runc")
        .cloned()
        .map(|mut r| {
            r.root = s.paths.work.join("state/machinery-runc");
            r
        });
    let m = Mach {
        s,
        ward,
        shims,
        runc,
        dir,
        n: AtomicUsize::new(0),
    };
    let t0 = std::time::Instant::now();
    eprintln!("== Ward's own machinery ({} techniques)", TECHNIQUES.len());
    let mut cells = Vec::new();
    let cols: Vec<&Runtime> = std::iter::once(&m.ward)
        .chain(&m.shims)
        .chain(m.runc.as_ref())
        .collect();
    for (tech, _) in TECHNIQUES {
        for r in &cols {
            let cell = one(&m, tech, r);
            eprintln!(
                "  {:<22} {:<10} {:<8} {}",
                tech,
                cell.column,
                cell.verdict,
                truncate(&cell.reason, 100)
            );
            cells.push(cell);
        }
    }
    eprintln!("   ({:.0?})", t0.elapsed());
    s.machinery = cells;
}

fn one(m: &Mach, tech: &str, r: &Runtime) -> Cell {
    let col = column(r);
    match tech {
        "host-user-reach" => crate::machinery_host::host_user_reach(m, r),
        "volume-plant-symlink" => volume_plant(m, r),
        "root-path-host" => cfg::root_path(m, r),
        "bind-source-symlink" => cfg::bind_symlink(m, r),
        "cgroup-host-path" => cfg::cgroup_host(m, r),
        "host-hooks" => cfg::hooks(m, r),
        "sandbox-id-hijack" => cfg::sandbox_id(m, r),
        "parallel-uid-ranges" => par::parallel(m, r),
        "same-id-race" => par::same_id(m, r),
        "userns-owner-inotify" => par::inotify(m, r),
        "supervisor-cgroup" => par::supervisor(m, r),
        "stdio-pipe-read" => crate::machinery_stdio::stdio_read(m, r),
        other => Cell::error(other, col, "unknown machinery technique"),
    }
}

/// `blocked` when the host saw nothing wrong, `escaped` with the findings otherwise.
pub fn judge(
    tech: &str,
    r: &Runtime,
    findings: Vec<String>,
    leaks: Vec<String>,
    ok: String,
) -> Cell {
    let mut c = Cell::error(tech, column(r), "");
    if findings.is_empty() {
        c.verdict = "blocked".into();
        c.reason = ok;
    } else {
        c.verdict = "escaped".into();
        c.reason = findings.join("; ");
    }
    c.host_findings = findings;
    c.leaks = leaks;
    c
}

/// The column `r` fills: `ward`, a shim column (`ward-shim` on containerd 2, `ward-shim-1.6`)
/// or `runc`.
pub fn column(r: &Runtime) -> &str {
    if r.ctrd.is_some() {
        &r.kind
    } else if r.kind == "ward" {
        CLI
    } else {
        RUNC
    }
}

pub fn na(tech: &str, r: &Runtime, why: &str) -> Cell {
    Cell::na(tech, column(r), why)
}

/// Start `args` detached as `id` (CLI `run -d`, or `ctr run -d`), returning the init's pid.
pub fn start(
    m: &Mach,
    r: &Runtime,
    id: &str,
    spec: &Spec,
    extra: &[String],
) -> Result<i32, String> {
    let (out, pid) = match &r.ctrd {
        Some(c) => {
            let out = c.run_with("default", spec, id, true, extra, Duration::from_secs(60));
            (out, c.task_pid(id))
        }
        None => {
            let b = m.dir.join("bundles").join(id);
            bundle::write_config(&b, spec)?;
            let out = r.run_detached(&b, id);
            (out, cli_pid(r, id))
        }
    };
    match (out.status, pid) {
        (Some(0), Some(p)) => Ok(p),
        _ => Err(format!(
            "could not start {id} (exit {:?}): {}",
            out.status,
            last_line(&out.stderr)
        )),
    }
}

/// Whether `pid` exits (or is a zombie: inits are the caller's children) within `d`.
fn gone_within(pid: i32, d: Duration) -> bool {
    let t0 = std::time::Instant::now();
    loop {
        let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let state = st
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .unwrap_or("");
        if st.is_empty() || state.trim_start().starts_with(['Z', 'X']) {
            return true;
        }
        if t0.elapsed() > d {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The init pid of CLI container `id` (`RUNTIME state`).
pub fn cli_pid(r: &Runtime, id: &str) -> Option<i32> {
    r.state(id)?["pid"].as_i64().map(|p| p as i32)
}

pub fn last_line(s: &str) -> String {
    truncate(
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim(),
        200,
    )
}

/// Run 1 plants a symlink to `/` in its volume; run 2 binds the volume and the planted
/// path. The second run must be refused, and nothing written on the host.
fn volume_plant(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "volume-plant-symlink";
    let snap = m.snapshot();
    let app = m.dir.join(format!("app-{}", column(r)));
    let _ = std::fs::create_dir_all(app.join("cache"));
    let marker = format!("ward-planted-{}", m.s.run_id);
    // The runc control follows the link for real: it gets the host canary dir, not the
    // host's `/` (other suites on this host snapshot `/`).
    let target = match column(r) {
        RUNC => m.s.paths.host.clone(),
        _ => PathBuf::from("/"),
    };
    let target = target.display();
    let run = |id: &str, script: &str, cache: bool| -> Output {
        let mut mounts = vec![bundle::bind_mount(&app, "/app", false)];
        if cache {
            mounts.push(bundle::bind_mount(&app.join("cache"), "/cache", false));
        }
        cfg::run_edited(m, r, id, &["/bin/sh", "-c", script], mounts, &[], |_, _| {})
    };
    let id1 = m.id("plant");
    let o1 = run(
        &id1,
        &format!("rm -rf /app/cache && ln -s {target} /app/cache && echo planted"),
        false,
    );
    let mut leaks = m.remove(r, &id1);
    let planted =
        std::fs::symlink_metadata(app.join("cache")).is_ok_and(|m| m.file_type().is_symlink());
    if !o1.stdout.contains("planted") || !planted {
        let mut c = Cell::error(
            T,
            column(r),
            &format!(
                "run 1 could not plant the symlink: {}",
                last_line(&o1.stderr)
            ),
        );
        c.leaks = leaks;
        return c;
    }
    let id2 = m.id("follow");
    let o2 = run(
        &id2,
        &format!("echo x > /cache/{marker} && echo wrote"),
        true,
    );
    leaks.extend(m.remove(r, &id2));
    let mut findings = Vec::new();
    if o2.status == Some(0) || o2.stdout.contains("wrote") {
        findings.push(format!(
            "run 2 with the planted symlink as a bind source ran (exit {:?}, stdout {:?})",
            o2.status,
            o2.stdout.trim()
        ));
    }
    if Path::new("/").join(&marker).exists() || m.s.paths.host.join(&marker).exists() {
        findings.push(format!(
            "host {target}/{marker} was written through the planted symlink"
        ));
        let _ = std::fs::remove_file(Path::new("/").join(&marker));
        let _ = std::fs::remove_file(m.s.paths.host.join(&marker));
    }
    let refusal = last_line(&o2.stderr);
    if findings.is_empty() && !refusal.contains("symlink") {
        findings.push(format!(
            "run 2 failed, but not as a refused symlinked source: {refusal}"
        ));
    }
    findings.extend(m.verify(&snap));
    let _ = std::fs::remove_dir_all(&app);
    judge(T, r, findings, leaks, format!("run 2 refused: {refusal}"))
}

/// The "Ward's own machinery" section of RESULTS.md.
pub fn markdown(cells: &[Cell]) -> String {
    if cells.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n## Ward's own machinery\n\n\
         THREATS.md's last section: the config.json author, a container across runs and another \
         host user attack Ward itself. Each row is mounted for real and judged from the host \
         (`integration/escape/runner/src/machinery*.rs`); `blocked` means the host saw nothing \
         reach it and Ward left nothing behind. `ward` is the CLI, `ward-shim` the same attack \
         through a private containerd 2 and Ward's shim where containerd can carry it, \
         `ward-shim-1.6` the same through Debian 12's containerd 1.6.\n\n\
         `runc`, where the full comparison has it, is a control: the same attacks against a runtime \
         without these defences, to show each row's checks see an attack that works.\n\n",
    );
    // `ward`, the shim columns in the order they ran (containerd 2 first), then `runc`.
    let mut cols: Vec<&str> = vec![CLI];
    for c in cells {
        if c.column.starts_with(SHIM) && !cols.contains(&c.column.as_str()) {
            cols.push(&c.column);
        }
    }
    if cells.iter().any(|c| c.column == RUNC) {
        cols.push(RUNC);
    }
    s += &format!(
        "| technique | what is tried | {} |\n|---|---|{}\n",
        cols.join(" | "),
        "---|".repeat(cols.len())
    );
    for (t, what) in TECHNIQUES {
        let mark = |col: &str| {
            cells
                .iter()
                .find(|c| c.technique == *t && c.column == col)
                .map_or("-".to_string(), |c| {
                    let v = if c.leaks.is_empty() {
                        c.verdict.clone()
                    } else {
                        format!("{}+leak", c.verdict)
                    };
                    if v.contains("escaped") {
                        format!("**{v}**")
                    } else {
                        v
                    }
                })
        };
        let marks: Vec<String> = cols.iter().map(|c| mark(c)).collect();
        s += &format!("| `{t}` | {what} | {} |\n", marks.join(" | "));
    }
    s += "\nWhat each cell saw:\n\n";
    for c in cells {
        let mut r = c.reason.replace('|', "\\|");
        if !c.leaks.is_empty() {
            r += &format!(" — leaks: {}", c.leaks.join("; "));
        }
        s += &format!(
            "- `{}` under {} ({}): {}\n",
            c.technique,
            c.column,
            c.verdict,
            truncate(&r, 400)
        );
    }
    s
}
