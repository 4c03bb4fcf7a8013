//! One suite run: the work directory, the canaries, and running one
//! technique under one runtime column with host-side verification.

use crate::bundle::{self, Paths, Spec};
use crate::cpu;
use crate::host::{self, Canaries, Snapshot};
use crate::race;
use crate::report::{self, Cell};
use crate::rt::{self, Runtime};
use crate::Cli;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Techniques whose failures are limits, not denied syscalls.
const RESOURCE: &[&str] = &["fork-bomb", "memory-hog", "tmpfs-fill", "cpu-spin"];

pub struct Suite {
    pub paths: Paths,
    pub canaries: Canaries,
    pub columns: Vec<Runtime>,
    pub techniques: Vec<String>,
    pub run_id: String,
    pub cells: Vec<Cell>,
    /// The "Ward's own machinery" rows (machinery.rs), reported in a section of their own.
    pub machinery: Vec<Cell>,
    pub opts: Opts,
    /// Set in chaos mode: neighbours share the rootfs, so the per-technique
    /// leaked-process scan is deferred to the end of the run.
    pub concurrent: bool,
}

#[derive(Clone)]
pub struct Opts {
    pub exec: bool,
    pub mem_mib: u64,
    pub forks: u32,
    pub fill_mib: u64,
    pub timeout: u64,
    pub json: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    /// Run the machinery section (not with --exec: it is not about exec).
    pub machinery: bool,
}

impl Suite {
    pub fn new(cli: &Cli, probe: &Path, columns: &[Runtime]) -> Result<Self, String> {
        let run_id = format!("{:06x}", host::nonce() & 0xffffff);
        let paths = Paths::new(&PathBuf::from(format!("/tmp/ward-escape-{run_id}")));
        std::fs::create_dir_all(&paths.work).map_err(|e| format!("mkdir work: {e}"))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&paths.work, std::fs::Permissions::from_mode(0o755));
        let mut columns = columns.to_vec();
        // Ward is rebuilt by others in this checkout while the suite runs:
        // test a private copy, so the binary-unchanged check stays meaningful.
        std::fs::create_dir_all(paths.work.join("bin")).map_err(|e| format!("mkdir bin: {e}"))?;
        for c in columns.iter_mut().filter(|c| c.kind == "ward") {
            let copy = paths.work.join("bin/ward");
            if !copy.exists() {
                std::fs::copy(&c.path, &copy)
                    .map_err(|e| format!("copy {}: {e}", c.path.display()))?;
            }
            c.path = copy;
        }
        for c in &mut columns {
            c.root = paths.work.join("state").join(c.label().replace(':', "-"));
            if c.kind == "ward" {
                c.log = Some(
                    paths
                        .work
                        .join(format!("{}.log", c.label().replace(':', "-"))),
                );
            }
            std::fs::create_dir_all(&c.root).map_err(|e| format!("mkdir state: {e}"))?;
        }
        let bins: Vec<PathBuf> = columns
            .iter()
            .filter(|c| c.kind != "host")
            .map(|c| c.path.clone())
            .collect();
        let canaries = Canaries::plant(&paths, &paths.work.join("sock"), bins)?;
        bundle::build_rootfs(&paths, probe)?;
        let all = list_techniques(&paths.rootfs.join("bin/ward-probe"))?;
        let techniques = if cli.machinery_only {
            Vec::new()
        } else if cli.techniques.is_empty() {
            all
        } else {
            for t in &cli.techniques {
                if !all.contains(t) {
                    return Err(format!("unknown technique {t} (see `ward-probe list`)"));
                }
            }
            cli.techniques.clone()
        };
        Ok(Suite {
            paths,
            canaries,
            columns,
            techniques,
            run_id,
            cells: Vec::new(),
            machinery: Vec::new(),
            opts: Opts {
                exec: cli.exec,
                mem_mib: cli.mem_mib,
                forks: cli.forks,
                fill_mib: cli.fill_mib,
                timeout: cli.timeout,
                json: cli.json.clone(),
                markdown: cli.markdown.clone(),
                machinery: !cli.no_machinery && !cli.exec,
            },
            concurrent: false,
        })
    }

    pub fn probe_args(&self, tech: &str, host_mode: bool) -> Vec<String> {
        let mut a = vec![
            "/bin/ward-probe".to_string(),
            tech.to_string(),
            "--host-pid".into(),
            self.canaries.pid().to_string(),
            "--volume".into(),
            bundle::VOL_IN.into(),
            "--ro-volume".into(),
            bundle::RO_IN.into(),
            "--host-dir".into(),
            self.paths.host.to_string_lossy().into_owned(),
            "--abstract".into(),
            self.canaries.abstract_name.clone(),
            "--timeout-secs".into(),
            self.opts.timeout.saturating_sub(10).max(10).to_string(),
            "--mem-mib".into(),
            self.opts.mem_mib.to_string(),
            "--forks".into(),
            self.opts.forks.to_string(),
            "--fill-mib".into(),
            self.opts.fill_mib.to_string(),
            "--spin-secs".into(),
            "3".into(),
        ];
        if host_mode {
            a.push("--host-mode".into());
        }
        a
    }

    pub fn container_id(&self, col: usize, tech: &str) -> String {
        format!("wesc-{}-{col}-{tech}", self.run_id)
    }

    /// The config a technique needs beyond the plain one, and what to plant
    /// on the host first.
    pub fn spec_for(&self, tech: &str, cid: &str, args: Vec<String>) -> Spec<'_> {
        let p = &self.paths;
        let mut s = Spec::new(p, self.cgroup_path(cid), args);
        match tech {
            "symlink-mount-target" => s.extra_mounts.push(bundle::tmpfs_mount("/ward-evil/mnt")),
            "symlink-mount-dest" => s.extra_mounts.push(bundle::tmpfs_mount("/ward-evil-dst")),
            "symlink-mount-volume" => {
                // As a previous container sharing the volume would have left it.
                let up = "../".repeat(24);
                let target = format!("{up}{}", p.host.to_string_lossy().trim_start_matches('/'));
                let _ = std::os::unix::fs::symlink(target, p.vol.join("ward-link"));
                s.extra_mounts.push(bundle::bind_mount(
                    &p.mount_src,
                    &format!("{}/ward-link/target", bundle::VOL_IN),
                    true,
                ));
            }
            "symlink-mount-race" => s.extra_mounts.push(bundle::bind_mount(
                &p.mount_src,
                &format!("{}/race/target", bundle::VOL_IN),
                true,
            )),
            "symlink-proc-target" => s.rootfs = Some(p.rootfs_proclink.clone()),
            "symlink-dev-target" => s.rootfs = Some(p.rootfs_devlink.clone()),
            // Ask for the host's (fake) docker.sock: a runtime must refuse it.
            "host-sockets" => s.extra_mounts.push(bundle::bind_mount(
                &self.canaries.sock_dir.join("docker.sock"),
                "/var/run/docker.sock",
                false,
            )),
            "setuid-exec" | "file-caps-exec" => s.user = Some(65534),
            _ => {}
        }
        s
    }

    pub fn cgroup_path(&self, cid: &str) -> String {
        format!("/ward-escape-{}/{cid}", self.run_id)
    }

    /// Run one technique under one column and verify the host afterwards.
    pub fn run_one(&self, col: usize, tech: &str, cid: &str) -> Cell {
        let r = &self.columns[col];
        if tech == race::TECHNIQUE && r.kind != "host" && r.ctrd.is_none() {
            return race::run(self, col, cid);
        }
        let snap = Snapshot::take(&self.canaries, &self.paths.work);
        let timeout = Duration::from_secs(self.opts.timeout);
        let mut notes = Vec::new();
        let mut cpu_findings = Vec::new();
        let (out, del) = if let Some(cd) = &r.ctrd {
            if let Some(why) = crate::ctrd::unsupported(tech) {
                return Cell::na(tech, &r.label(), why);
            }
            let profile = r.profile.clone().unwrap_or_else(|| "default".into());
            let spec = self.spec_for(tech, cid, self.probe_args(tech, false));
            let sampler = (tech == "cpu-spin").then(|| cpu::Sampler::start(&spec.cgroup_path));
            let out = if self.opts.exec {
                cd.exec(&profile, &spec, cid, &self.probe_args(tech, false), timeout)
            } else {
                cd.run(&profile, &spec, cid, timeout)
            };
            if let Some(sm) = sampler {
                let (f, note) = sm.finish();
                cpu_findings = f;
                notes.extend((!note.is_empty()).then_some(note));
            }
            let del = cd.remove(cid);
            (out, Some(del))
        } else if r.kind == "host" {
            let mut c = Command::new(self.paths.rootfs.join("bin/ward-probe"));
            c.arg("host-sandbox")
                .arg("--rootfs")
                .arg(&self.paths.rootfs)
                .arg("--bind")
                .arg(format!("{}:{}", self.paths.vol.display(), bundle::VOL_IN))
                // Unconfined means no read-only volume either: the host check
                // must see the canary change.
                .arg("--bind")
                .arg(format!("{}:{}", self.paths.ro_vol.display(), bundle::RO_IN))
                .arg("--bind")
                .arg(format!("{}:/var/run", self.canaries.sock_dir.display()))
                .arg("--cwd-fd")
                .arg(self.canaries.leaked_fd.to_string())
                .arg("--")
                .args(self.probe_args(tech, true));
            (rt::run_cmd(c, timeout), None)
        } else {
            let bdir = self.paths.work.join("bundles").join(cid);
            let args = if self.opts.exec {
                vec!["/bin/sleep".to_string(), "3600".to_string()]
            } else {
                self.probe_args(tech, false)
            };
            let spec = self.spec_for(tech, cid, args);
            if let Err(e) = bundle::write_config(&bdir, &spec) {
                return Cell::error(tech, &r.label(), &e);
            }
            let sampler = (tech == "cpu-spin").then(|| cpu::Sampler::start(&spec.cgroup_path));
            let out = if self.opts.exec {
                let d = r.run_detached(&bdir, cid);
                if d.status != Some(0) {
                    d
                } else {
                    r.exec(cid, &self.probe_args(tech, false), timeout)
                }
            } else {
                r.run(&bdir, cid, timeout)
            };
            if let Some(sm) = sampler {
                let (f, note) = sm.finish();
                cpu_findings = f;
                notes.extend((!note.is_empty()).then_some(note));
            }
            let del = r.delete(cid);
            let _ = std::fs::remove_dir_all(&bdir);
            (out, Some(del))
        };
        let mut findings = snap.verify(&self.canaries, &self.paths.work);
        // A container that never ran cannot be measured: only a run with probe
        // output is held to the host-side CPU check.
        if out.stdout.contains("\"id\"") {
            findings.extend(cpu_findings);
        }
        let leaks = self.leaks_after(r, cid, del.as_ref());
        let probe: Option<Value> = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        self.canaries.reset();
        let mut cell = report::combine(tech, &r.label(), probe, &out, findings, leaks);
        for n in notes {
            cell.reason = format!("{}; {n}", cell.reason);
        }
        cell.visible = self.denial_visibility(r, cid, &cell);
        cell
    }

    /// What the runtime left behind for `cid` after `delete`.
    pub fn leaks_after(&self, r: &Runtime, cid: &str, del: Option<&rt::Output>) -> Vec<String> {
        let mut leaks = Vec::new();
        if r.kind != "host" {
            leaks.extend(
                r.list()
                    .into_iter()
                    .filter(|i| i == cid)
                    .map(|i| format!("`{} list` still shows {i}", r.kind)),
            );
            leaks.extend(
                host::leaked_cgroups(cid)
                    .into_iter()
                    .map(|p| format!("cgroup left: {p}")),
            );
            leaks.extend(host::leaked_mounts(&self.paths.work, cid));
            leaks.extend(host::leaked_state(&r.root, cid));
            if let Some(cd) = &r.ctrd {
                leaks.extend(cd.leaked_mounts(cid));
                // Ward's shim keeps per-container state here.
                leaks.extend(host::leaked_state(Path::new("/run/containerd/ward"), cid));
            }
        }
        if let Some(d) = del.filter(|d| d.status != Some(0)) {
            let err = d.stderr.lines().last().unwrap_or("").trim().to_string();
            leaks.push(format!(
                "`delete --force` failed (exit {:?}{}): {err}",
                d.status,
                if d.timed_out { ", timed out" } else { "" }
            ));
        }
        if !self.concurrent {
            let mut roots = vec![
                self.paths.rootfs.clone(),
                self.paths.rootfs_proclink.clone(),
                self.paths.rootfs_devlink.clone(),
            ];
            roots.extend(r.ctrd.as_ref().map(|c| c.dir().to_path_buf()));
            for root in &roots {
                leaks.extend(host::leaked_processes(root));
            }
        }
        leaks
    }

    /// THREATS "Visibility": for a call the probe saw fail with EPERM/ENOSYS
    /// (the seccomp errnos), does ward's log name the container and the call?
    fn denial_visibility(&self, r: &Runtime, cid: &str, cell: &Cell) -> Option<bool> {
        let log = r.log.as_ref()?;
        if cell.verdict != "blocked" || RESOURCE.contains(&cell.technique.as_str()) {
            return None;
        }
        let calls: Vec<String> = cell.probe.as_ref()?["results"]
            .as_array()?
            .iter()
            .filter(|c| matches!(c["errno"].as_str(), Some("EPERM") | Some("ENOSYS")))
            .filter_map(|c| c["call"].as_str())
            .map(|c| c.split(['(', ' ']).next().unwrap_or(c).to_string())
            .filter(|c| !c.is_empty() && c != "open" && c != "mount")
            .collect();
        let first = calls.first()?;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // The container id itself contains the technique name: strip it first.
        Some(
            text.lines()
                .filter(|l| l.contains(cid))
                .any(|l| l.replace(cid, "").contains(first.as_str())),
        )
    }

    pub fn run_all(&mut self) -> Result<i32, String> {
        self.run_sequential();
        crate::machinery::run(self);
        self.finish(None)
    }

    pub fn run_sequential(&mut self) {
        for col in 0..self.columns.len() {
            let label = self.columns[col].label();
            eprintln!(
                "== {label} ({} techniques{})",
                self.techniques.len(),
                if self.opts.exec { ", exec" } else { "" }
            );
            for tech in self.techniques.clone() {
                let cid = self.container_id(col, &tech);
                let cell = self.run_one(col, &tech, &cid);
                eprintln!(
                    "  {:<26} {:<8} {}",
                    tech,
                    cell.verdict,
                    truncate(&cell.reason, 110)
                );
                self.cells.push(cell);
            }
        }
    }

    pub fn finish(&self, chaos_notes: Option<&[String]>) -> Result<i32, String> {
        let labels: Vec<String> = self.columns.iter().map(|c| c.label()).collect();
        println!("{}", report::table(&self.techniques, &labels, &self.cells));
        let mach: Vec<String> = crate::machinery::TECHNIQUES
            .iter()
            .map(|t| t.0.to_string())
            .collect();
        // `ward`, the shim columns (containerd 2, then 1.6), `runc`, as the cells name them.
        let mut mach_cols: Vec<String> = vec![crate::machinery::CLI.to_string()];
        for c in &self.machinery {
            if c.column.starts_with(crate::machinery::SHIM) && !mach_cols.contains(&c.column) {
                mach_cols.push(c.column.clone());
            }
        }
        mach_cols.push(crate::machinery::RUNC.to_string());
        if !self.machinery.is_empty() {
            println!("{}", report::table(&mach, &mach_cols, &self.machinery));
        }
        if let Some(p) = &self.opts.markdown {
            let md = report::markdown(
                &self.techniques,
                &labels,
                &self.cells,
                self.opts.exec,
                chaos_notes,
            ) + &crate::machinery::markdown(&self.machinery);
            std::fs::write(p, md).map_err(|e| format!("write {}: {e}", p.display()))?;
        }
        if let Some(p) = &self.opts.json {
            let all: Vec<Cell> = self.cells.iter().chain(&self.machinery).cloned().collect();
            let j = report::json(&all, chaos_notes);
            std::fs::write(p, j).map_err(|e| format!("write {}: {e}", p.display()))?;
        }
        // A machinery row that could not be judged fails too: its setup is the runner's own.
        let bad: Vec<&Cell> = self
            .cells
            .iter()
            .filter(|c| {
                c.column.starts_with("ward") && (c.verdict == "escaped" || !c.leaks.is_empty())
            })
            .chain(self.machinery.iter().filter(|c| {
                c.column.starts_with("ward")
                    && (c.verdict == "escaped" || c.verdict == "error" || !c.leaks.is_empty())
            }))
            .collect();
        for c in &bad {
            eprintln!(
                "ward-escape: FAIL {} under {}: {} {:?}",
                c.technique, c.column, c.reason, c.leaks
            );
        }
        let chaos_bad = chaos_notes.is_some_and(|n| n.iter().any(|l| l.starts_with("FAIL")));
        Ok(if bad.is_empty() && !chaos_bad { 0 } else { 1 })
    }

    pub fn cleanup(&mut self) {
        // The parent cgroup the runtimes created from our cgroupsPath
        // (/ward-escape-<run>/<id>); rmdir only succeeds on empty ones, and a
        // non-empty one was already reported as a leak.
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let _ = std::fs::remove_dir(e.path().join(format!("ward-escape-{}", self.run_id)));
            }
        }
        // Only our own work dir, and never across a mount point left behind.
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let w = self.paths.work.to_string_lossy().into_owned();
        if mi
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&w)))
        {
            eprintln!("ward-escape: mounts remain under {w}; not removing it");
            return;
        }
        let _ = std::fs::remove_dir_all(&self.paths.work);
    }
}

fn list_techniques(probe: &Path) -> Result<Vec<String>, String> {
    let o = Command::new(probe)
        .arg("list")
        .output()
        .map_err(|e| format!("{}: {e}", probe.display()))?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(String::from)
        .collect())
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}
