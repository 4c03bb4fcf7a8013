//! Ward's own machinery, config.json-level attacks: the bundle author names the host's `/`,
//! a symlinked bind source, an existing host cgroup, host-side hooks, or another container
//! as its pod sandbox. Each must be refused, and the host (the marker, the host cgroup and
//! its process, the victim container) must show nothing happened.

use crate::bundle;
use crate::machinery::{column, judge, last_line, na, start, Mach};
use crate::report::Cell;
use crate::rt::{run_cmd, Output, Runtime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T60: Duration = Duration::from_secs(60);

/// Run `id` in the foreground from a bundle edited by `edit` (CLI) or through `ctr run --rm`
/// with `extra` flags and the spec's extra mounts (shim).
pub fn run_edited(
    m: &Mach,
    r: &Runtime,
    id: &str,
    args: &[&str],
    mounts: Vec<Value>,
    extra: &[String],
    edit: impl FnOnce(&mut Value, &Path),
) -> Output {
    let mut spec = m.spec(id, args);
    spec.extra_mounts = mounts;
    if let Some(c) = &r.ctrd {
        return c.run_with("default", &spec, id, false, extra, T60);
    }
    let b = m.dir.join("bundles").join(id);
    let written = bundle::write_config(&b, &spec).and_then(|_| {
        let p = b.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&p).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        edit(&mut c, &b);
        std::fs::write(&p, serde_json::to_vec_pretty(&c).unwrap_or_default())
            .map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => r.run(&b, id, T60),
        Err(e) => Output {
            status: None,
            stdout: String::new(),
            stderr: format!("bundle: {e}"),
            timed_out: false,
        },
    }
}

/// The attack ran if it exited 0 or printed `ran`; a refusal must name `field`.
fn refused(o: &Output, ran: &str, field: &str, what: &str, findings: &mut Vec<String>) -> String {
    let err = last_line(&o.stderr);
    if o.status == Some(0) || o.stdout.contains(ran) {
        findings.push(format!(
            "{what}: not refused (exit {:?}, stdout {:?})",
            o.status,
            o.stdout.trim()
        ));
    } else if !o.stderr.contains(field) {
        findings.push(format!(
            "{what}: failed, but not as a refusal naming {field}: {err}"
        ));
    }
    err
}

pub fn root_path(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "root-path-host";
    if r.ctrd.is_some() {
        return na(T, r, "containerd writes root.path itself (the snapshot it mounted): a ctr user cannot name one");
    }
    let snap = m.snapshot();
    let (mut findings, mut leaks, mut errs) = (vec![], vec![], vec![]);
    for root in ["/", "/etc", "hostroot", "../../../../../../../.."] {
        let id = m.id("root");
        let o = run_edited(
            m,
            r,
            &id,
            &[
                "/bin/sh",
                "-c",
                "cat /etc/shadow >/dev/null && echo read-host-shadow",
            ],
            vec![],
            &[],
            |c, b| {
                let _ = std::os::unix::fs::symlink("/", b.join("hostroot"));
                c["root"]["path"] = json!(root);
            },
        );
        leaks.extend(m.remove(r, &id));
        errs.push(refused(
            &o,
            "read-host-shadow",
            "root.path",
            &format!("root.path {root:?}"),
            &mut findings,
        ));
    }
    findings.extend(m.verify(&snap));
    judge(
        T,
        r,
        findings,
        leaks,
        format!(
            "4 of 4 refused, e.g. {}",
            errs.first().cloned().unwrap_or_default()
        ),
    )
}

pub fn bind_symlink(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "bind-source-symlink";
    let snap = m.snapshot();
    let link = m.dir.join(format!("etc-link-{}", column(r)));
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("/etc", &link) {
        return Cell::error(T, column(r), &format!("symlink {}: {e}", link.display()));
    }
    let id = m.id("etclink");
    let o = run_edited(
        m,
        r,
        &id,
        &[
            "/bin/sh",
            "-c",
            "cat /e/passwd >/dev/null && echo reached-host-etc",
        ],
        vec![bundle::bind_mount(&link, "/e", false)],
        &[],
        |_, _| {},
    );
    let leaks = m.remove(r, &id);
    let mut findings = vec![];
    let err = refused(
        &o,
        "reached-host-etc",
        "symlink",
        "bind source -> /etc",
        &mut findings,
    );
    let _ = std::fs::remove_file(&link);
    findings.extend(m.verify(&snap));
    judge(T, r, findings, leaks, format!("refused: {err}"))
}

/// A host cgroup with a host `sleep` in it (and pids.max 77 where there is a pids controller).
struct HostCgroup {
    name: String,
    dir: PathBuf,
    pids_max: bool,
    child: Child,
}

impl HostCgroup {
    fn new(name: String) -> Result<Self, String> {
        let (dir, pids_max) = if Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
            (Path::new("/sys/fs/cgroup/pids").join(&name), true)
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (Path::new("/sys/fs/cgroup").join(&name), false)
        } else {
            return Err("no pids v1 hierarchy and no pure cgroup v2 here".into());
        };
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn sleep: {e}"))?;
        let mut hc = HostCgroup {
            name,
            dir,
            pids_max,
            child,
        };
        let w = std::fs::write(hc.dir.join("cgroup.procs"), hc.child.id().to_string());
        let w = w.and_then(|_| match hc.pids_max {
            true => std::fs::write(hc.dir.join("pids.max"), "77"),
            false => Ok(()),
        });
        if let Err(e) = w {
            hc.pids_max = false;
            return Err(format!("set up host cgroup {}: {e}", hc.dir.display()));
        }
        Ok(hc)
    }

    /// What changed: the host process's state and cgroup, pids.max, dirs of its name elsewhere.
    fn findings(&self) -> Vec<String> {
        let mut f = vec![];
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|x| x.1.trim_start().chars().next());
        if state != Some('S') {
            f.push(format!(
                "host process {pid} is in state {state:?} (stopped, frozen or gone)"
            ));
        }
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim() != pid.to_string() {
            f.push(format!(
                "host cgroup {} now holds {:?}",
                self.dir.display(),
                procs.trim()
            ));
        }
        if self.pids_max {
            let max = std::fs::read_to_string(self.dir.join("pids.max")).unwrap_or_default();
            if max.trim() != "77" {
                f.push(format!(
                    "host cgroup's pids.max rewritten to {:?}",
                    max.trim()
                ));
            }
        }
        for d in crate::host::leaked_cgroups(&self.name) {
            if Path::new(&d) != self.dir {
                f.push(format!("a cgroup of the host cgroup's name was made: {d}"));
            }
        }
        f
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn cgroup_host(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "cgroup-host-path";
    let host = match HostCgroup::new(format!("ward-victim-{}-{}", m.s.run_id, column(r))) {
        Ok(h) => h,
        Err(e) => return Cell::na(T, column(r), &e),
    };
    let snap = m.snapshot();
    let id = m.id("hostcg");
    let path = format!("/{}", host.name);
    let mut spec = m.spec(&id, &["/bin/sh", "-c", "echo ran-in-host-cgroup"]);
    spec.cgroup_path = path.clone();
    let o = match &r.ctrd {
        Some(c) => c.run_with("default", &spec, &id, false, &[], T60),
        None => run_edited(
            m,
            r,
            &id,
            &["/bin/sh", "-c", "echo ran-in-host-cgroup"],
            vec![],
            &[],
            |c, _| {
                c["linux"]["cgroupsPath"] = json!(path);
            },
        ),
    };
    let leaks = m.remove(r, &id);
    let mut findings = vec![];
    let err = refused(
        &o,
        "ran-in-host-cgroup",
        "cgroupsPath",
        "cgroupsPath of a host cgroup",
        &mut findings,
    );
    findings.extend(host.findings());
    findings.extend(m.verify(&snap));
    judge(
        T,
        r,
        findings,
        leaks,
        format!("refused, host process and cgroup untouched: {err}"),
    )
}

fn hook_program(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("mark-hook");
    std::fs::write(&p, "#!/bin/sh\ncat >/dev/null\ntouch \"$1\"\n").map_err(|e| e.to_string())?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    Ok(p)
}

fn add_hook(c: &mut Value, kind: &str, program: &Path, marker: &Path) {
    if !c["hooks"].is_object() {
        c["hooks"] = json!({});
    }
    c["hooks"][kind] = json!([{"path": program, "args": ["mark-hook", marker]}]);
}

/// Host-side hooks under the default node config must not run; the same hook allowed by the
/// node's `[hooks] allow` does (the control that shows a hook would be seen).
pub fn hooks(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "host-hooks";
    if r.ctrd.is_some() {
        return na(T, r, "ctr cannot write hooks into config.json and containerd's CRI passes none: the CLI column covers a bundle author's hooks");
    }
    let program = match hook_program(&m.dir) {
        Ok(p) => p,
        Err(e) => return Cell::error(T, column(r), &format!("hook program: {e}")),
    };
    let snap = m.snapshot();
    let (mut findings, mut leaks) = (vec![], vec![]);
    let kinds = [
        "createRuntime",
        "prestart",
        "createContainer",
        "poststart",
        "poststop",
    ];
    for kind in kinds {
        let marker = m.dir.join(format!("marker-{}-{kind}", column(r)));
        let id = m.id("hook");
        let args = ["/bin/sh", "-c", "echo ran-with-hook"];
        let o = run_edited(m, r, &id, &args, vec![], &[], |c, _| {
            add_hook(c, kind, &program, &marker)
        });
        leaks.extend(m.remove(r, &id));
        refused(
            &o,
            "ran-with-hook",
            &format!("hooks.{kind}[0].path"),
            &format!("{kind} hook"),
            &mut findings,
        );
        if marker.exists() {
            findings.push(format!(
                "the {kind} hook ran on the host ({} written)",
                marker.display()
            ));
        }
    }
    if r.kind != "ward" {
        findings.extend(m.verify(&snap));
        return judge(
            T,
            r,
            findings,
            leaks,
            format!("{} hook kinds refused", kinds.len()),
        );
    }
    // Control: allowed by the node config, createRuntime and poststop run.
    let control = hooks_control(m, &program, &mut leaks);
    findings.extend(m.verify(&snap));
    if let (true, Err(e)) = (findings.is_empty(), control) {
        let mut c = Cell::error(T, column(r), &e);
        c.leaks = leaks;
        return c;
    }
    judge(T, r, findings, leaks, format!("{} hook kinds refused, no marker on the host; control: the same program listed in [hooks] allow ran at create and delete", kinds.len()))
}

/// The same hook program, listed in the node's `[hooks] allow`, runs as createRuntime and
/// poststop: `Err` says why not (then a hook that ran could not be seen either).
fn hooks_control(m: &Mach, program: &Path, leaks: &mut Vec<String>) -> Result<(), String> {
    let node = m.dir.join("hooks-allow.toml");
    let allow = format!("[hooks]\nallow = [{:?}]\n", program.display().to_string());
    std::fs::write(&node, allow).map_err(|e| format!("write {}: {e}", node.display()))?;
    let created = m.dir.join("marker-allowed-create");
    let stopped = m.dir.join("marker-allowed-stop");
    let id = m.id("hookok");
    let b = m.bundle(&id, &["/bin/true"], |c| {
        add_hook(c, "createRuntime", program, &created);
        c["hooks"]["poststop"] = json!([{"path": program, "args": ["mark-hook", stopped]}]);
    })?;
    let run = ["run", "--bundle", &b.to_string_lossy(), &id];
    let o = run_cmd(m.ward_with_config(&node, &run), T60);
    leaks.extend(m.remove(&m.ward, &id));
    if o.status == Some(0) && created.exists() && stopped.exists() {
        Ok(())
    } else {
        Err(format!(
            "control: the allowed hooks did not run (exit {:?}: {}), so a hook that ran could not be seen",
            o.status,
            last_line(&o.stderr)
        ))
    }
}

fn ns_links(pid: i32) -> Vec<String> {
    ["user", "net", "ipc", "uts", "pid", "mnt"]
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .map_or(String::new(), |p| p.display().to_string())
        })
        .collect()
}

/// Processes in the pid namespace `pidns` (a /proc/<pid>/ns/pid link text).
fn in_pidns(pidns: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| {
                    std::fs::read_link(e.path().join("ns/pid"))
                        .is_ok_and(|l| l.display().to_string() == pidns)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// Run `id` naming `victim` (init `v`) as its pod sandbox and joining its network, ipc, uts
/// and pid namespaces: `ctr run --annotation --with-ns`, or a bundle run with pods enabled.
fn hijack(m: &Mach, r: &Runtime, id: &str, victim: &str, v: i32) -> Output {
    let joins = [
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("pid", "pid"),
    ];
    let args = ["/bin/sh", "-c", "echo joined-the-victim"];
    if let Some(c) = &r.ctrd {
        let mut extra = vec!["--annotation".to_string(), format!("{SANDBOX_ID}={victim}")];
        for (typ, k) in joins {
            extra.extend(["--with-ns".to_string(), format!("{typ}:/proc/{v}/ns/{k}")]);
        }
        return c.run_with("default", &m.spec(id, &args), id, false, &extra, T60);
    }
    let node = m.dir.join("pods.toml");
    let _ = std::fs::write(&node, "[pods]\nenabled = true\n");
    let b = m.bundle(id, &args, |c| {
        c["annotations"][SANDBOX_ID] = json!(victim);
        if let Some(ns) = c["linux"]["namespaces"].as_array_mut() {
            for (typ, k) in joins {
                let path = json!(format!("/proc/{v}/ns/{k}"));
                match ns.iter_mut().find(|n| n["type"] == typ) {
                    Some(n) => n["path"] = path,
                    None => ns.push(json!({"type": typ, "path": path})),
                }
            }
        }
    });
    match b {
        Ok(b) if r.kind == "ward" => {
            let run = ["run", "--bundle", &b.to_string_lossy(), id];
            run_cmd(m.ward_with_config(&node, &run), T60)
        }
        Ok(b) => r.run(&b, id, T60),
        Err(e) => Output {
            status: None,
            stdout: String::new(),
            stderr: format!("bundle: {e}"),
            timed_out: false,
        },
    }
}

/// A bundle names a live plain container as its pod sandbox (pods enabled for the root) and
/// asks to join its namespaces: refused, and the victim untouched.
pub fn sandbox_id(m: &Mach, r: &Runtime) -> Cell {
    const T: &str = "sandbox-id-hijack";
    let snap = m.snapshot();
    let victim = m.id("victim");
    let v = match start(
        m,
        r,
        &victim,
        &m.spec(&victim, &["/bin/sleep", "1000"]),
        &[],
    ) {
        Ok(p) => p,
        Err(e) => {
            let mut c = Cell::error(T, column(r), &e);
            c.leaks = m.remove(r, &victim);
            return c;
        }
    };
    let before = ns_links(v);
    let id = m.id("hijack");
    let o = hijack(m, r, &id, &victim, v);
    let mut findings = vec![];
    let mut leaks = m.remove(r, &id);
    let err = refused(
        &o,
        "joined-the-victim",
        "not created as a pod sandbox",
        "sandbox-id naming a plain container",
        &mut findings,
    );
    if ns_links(v) != before {
        findings.push(format!(
            "the victim's namespaces changed: {before:?} -> {:?}",
            ns_links(v)
        ));
    }
    let pidns = before[4].clone();
    let inside = in_pidns(&pidns);
    if inside != vec![v.to_string()] {
        findings.push(format!(
            "processes in the victim's pid namespace: {inside:?} (only {v} expected)"
        ));
    }
    leaks.extend(m.remove(r, &victim));
    findings.extend(m.verify(&snap));
    judge(
        T,
        r,
        findings,
        leaks,
        format!("refused, the victim's namespaces untouched: {err}"),
    )
}
