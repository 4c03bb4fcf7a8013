//! The systemd cgroup driver over D-Bus, against `fake-systemd` (a test double of
//! `org.freedesktop.systemd1.Manager` on a peer-to-peer socket; this machine runs no systemd).
//! The node config forces the driver (`[cgroups] driver = "systemd"`) and points Ward at the
//! double (`systemd_dbus`). Real containers through the `ward` CLI, judged from the host:
//! /proc/<pid>/cgroup, the cgroup files, the double's record of every call.
//!
//! Runs on this host's cgroup v1-hybrid layout (every v1 controller, name=systemd and the
//! cgroup2 one). Pure cgroup v2 is covered by the unit tests of the path and hierarchy logic
//! (runtime/src/systemd/tests.rs, cgroup_guard.rs), not here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use ward_tests::leaks::cgroup_mounts;
use ward_tests::{assert_no_leftovers, require_root, unique_id, wait_until, Bundle, Ward};

struct FakeSystemd {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn socket_of(dir: &Path) -> PathBuf {
        dir.join("private")
    }

    /// A directory for the socket, with no double listening on it (yet).
    fn absent() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fake-systemd-")
            .tempdir()
            .unwrap();
        Self { child: None, dir }
    }

    fn start(args: &[&str]) -> Self {
        let mut s = Self::absent();
        let child = Command::new(env!("CARGO_BIN_EXE_fake-systemd"))
            .arg("--socket")
            .arg(Self::socket_of(s.dir.path()))
            .arg("--record")
            .arg(s.dir.path().join("calls.jsonl"))
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn fake-systemd");
        s.child = Some(child);
        let sock = Self::socket_of(s.dir.path());
        assert!(
            wait_until(Duration::from_secs(10), || sock.exists()),
            "fake-systemd did not listen"
        );
        s
    }

    /// `ward` with a node config that sends slice:prefix:name paths to this double.
    fn ward(&self) -> Ward {
        self.ward_with("")
    }

    /// The same, with more node config (`extra`, TOML tables after `[cgroups]`).
    fn ward_with(&self, extra: &str) -> Ward {
        let cfg = self.dir.path().join("ward.toml");
        std::fs::write(
            &cfg,
            format!(
                "[cgroups]\ndriver = \"systemd\"\nsystemd_dbus = \"unix:path={}\"\n{extra}",
                Self::socket_of(self.dir.path()).display()
            ),
        )
        .unwrap();
        Ward::new().with_global(["--config".into(), cfg.into_os_string()])
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn calls_of(&self, method: &str, unit: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c["method"] == method && c["name"] == unit)
            .collect()
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn file_in(rel: &str, file: &str) -> Option<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(rel.trim_start_matches('/')).join(file))
        .find(|p| p.exists())
}

/// Every directory of `rel` (the scope, and the slices above it down from `top`) in every
/// hierarchy that still exists.
fn remaining(rel: &str, top: &str) -> Vec<String> {
    let mut out = vec![];
    for m in cgroup_mounts() {
        let mut p = m.join(rel.trim_start_matches('/'));
        loop {
            if p.exists() {
                out.push(p.display().to_string());
            }
            if p.file_name().is_some_and(|n| n == top) || !p.pop() || p == m {
                break;
            }
        }
    }
    out
}

/// Live processes whose cgroup (any hierarchy) names `needle`.
fn processes_in(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with(['Z', 'X']));
            (cg.contains(needle) && !zombie).then_some(pid)
        })
        .collect()
}

/// Nothing of container `id` is left, nor the scope `unit` under system.slice or a process in it.
fn assert_scope_gone(ward: &Ward, id: &str, unit: &str) {
    assert_no_leftovers(ward, id);
    let left = remaining(&format!("/system.slice/{unit}"), "system.slice");
    assert!(
        left.iter().all(|d| !d.ends_with(".scope")),
        "left behind: {left:?}"
    );
    assert!(processes_in(unit).is_empty());
}

fn pod_slice() -> String {
    format!(
        "kubepods-burstable-{}.slice",
        unique_id("pod").replace('-', "_")
    )
}

/// (a) The scope is systemd's (the double's): asked with the name, slice, mode, PIDs and
/// Delegate runc uses; the container runs in it with Ward's limits; delete stops the unit.
fn scope_holds_the_container(double_args: &[&str]) {
    require_root!();
    let sd = FakeSystemd::start(double_args);
    let ward = sd.ward();
    let id = unique_id("sdbus");
    let slice = pod_slice();
    let unit = format!("cri-containerd-{id}.scope");
    let want = format!("/kubepods.slice/kubepods-burstable.slice/{slice}/{unit}");
    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = format!("{slice}:cri-containerd:{id}");
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 77},
            "cpu": {"quota": 50000, "period": 100000}
        });
    });
    ward.run_detached(&b, &id);
    let pid = ward.pid(&id);

    let start = sd.calls_of("StartTransientUnit", &unit);
    assert_eq!(start.len(), 1, "{:?}", sd.calls());
    let (call, props) = (&start[0], &start[0]["props"]);
    assert_eq!(call["mode"], "fail");
    assert_eq!(props["Slice"], json!(slice));
    assert_eq!(props["Delegate"], json!(true));
    assert_eq!(props["DefaultDependencies"], json!(false));
    assert_eq!(props["TasksMax"], json!(77));
    let mem = props.get("MemoryLimit").or(props.get("MemoryMax"));
    assert_eq!(mem, Some(&json!(67108864)), "{props}");
    assert_eq!(props["CPUQuotaPerSecUSec"], json!(500000));
    // PIDs: one process, Ward's helper (not the init, which did not exist yet); gone now.
    let pids = props["PIDs"].as_array().expect("PIDs");
    assert_eq!(pids.len(), 1, "{props}");
    let helper = pids[0].as_i64().unwrap() as i32;
    assert_ne!(helper, pid);
    assert!(processes_in(&unit).iter().all(|p| *p != helper.to_string()));

    // The init is in the scope the double made, in every hierarchy.
    let cg = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for line in cg.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap();
        assert_eq!(path, want, "pid {pid}: {cg}");
    }
    for m in cgroup_mounts() {
        let d = m.join(want.trim_start_matches('/'));
        assert!(d.is_dir(), "{} missing", d.display());
    }
    // Ward's limits, from the host.
    let mem = file_in(&want, "memory.limit_in_bytes").or_else(|| file_in(&want, "memory.max"));
    assert_eq!(read(&mem.expect("memory limit file")), "67108864");
    assert_eq!(read(&file_in(&want, "pids.max").expect("pids.max")), "77");
    // update: cgroupfs and the unit's properties (systemd reapplies those on daemon-reload).
    ward.ok(&["update", "--memory", "33554432", &id]);
    let mem = file_in(&want, "memory.limit_in_bytes").or_else(|| file_in(&want, "memory.max"));
    assert_eq!(read(&mem.expect("memory limit file")), "33554432");
    let set = sd.calls_of("SetUnitProperties", &unit);
    assert_eq!(set.len(), 1, "{:?}", sd.calls());
    let mem = set[0]["props"]
        .get("MemoryLimit")
        .or(set[0]["props"].get("MemoryMax"));
    assert_eq!(mem, Some(&json!(33554432)), "{}", set[0]);
    assert_eq!(set[0]["runtime"], json!(true));

    ward.ok(&["delete", "--force", &id]);
    let stop = sd.calls_of("StopUnit", &unit);
    assert_eq!(stop.len(), 1, "{:?}", sd.calls());
    assert_eq!(stop[0]["mode"], "replace");
    assert_no_leftovers(&ward, &id);
    let left = remaining(&want, &slice);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(processes_in(&unit).is_empty());
}

#[test]
fn scope_made_in_every_hierarchy() {
    scope_holds_the_container(&[]);
}

/// As systemd on a v1 host: the scope only in the hierarchies systemd manages; Ward makes
/// the leaf in the others (cpuset, freezer, hugetlb) and removes it on delete.
#[test]
fn scope_completed_where_systemd_leaves_v1_controllers_alone() {
    scope_holds_the_container(&["--systemd-controllers-only"]);
}

/// A create refused by the D-Bus path leaves nothing, and never stops a unit it did not make.
fn refused(sd: &FakeSystemd, ward: &Ward, path: &str, id: &str, want: &[&str]) -> String {
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let o = ward.create(&b, id);
    assert!(!o.success(), "created:\n{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    for w in want {
        assert!(o.stderr.contains(w), "{w:?} not in: {o}");
    }
    assert_no_leftovers(ward, id);
    let _ = sd;
    o.stderr
}

/// (b) A unit that exists, with a host process in its cgroup: refused, the process and its
/// cgroup untouched, the unit never stopped.
#[test]
fn existing_unit_with_a_host_process_refused() {
    require_root!();
    let id = unique_id("sdexist");
    let slice = pod_slice();
    let unit = format!("cri-containerd-{id}.scope");
    let sd = FakeSystemd::start(&["--loaded", &unit]);
    let ward = sd.ward();
    let rel = format!("kubepods.slice/kubepods-burstable.slice/{slice}/{unit}");
    let m = cgroup_mounts()
        .into_iter()
        .find(|m| m.ends_with("memory") || m.ends_with("unified"))
        .expect("a hierarchy");
    let scope = m.join(&rel);
    std::fs::create_dir_all(&scope).unwrap();
    let mut host = Command::new("sleep").arg("1000").spawn().unwrap();
    std::fs::write(scope.join("cgroup.procs"), host.id().to_string()).unwrap();

    let path = format!("{slice}:cri-containerd:{id}");
    refused(
        &sd,
        &ward,
        &path,
        &id,
        &["linux.cgroupsPath", "already exists"],
    );
    let alive = host.try_wait().unwrap().is_none();
    let still_in = read(&scope.join("cgroup.procs")) == host.id().to_string();
    let _ = host.kill();
    let _ = host.wait();
    let mut p = scope.clone();
    while p != m && std::fs::remove_dir(&p).is_ok() {
        p.pop();
    }
    assert!(alive && still_in, "the host process was touched");
    assert!(
        sd.calls_of("StopUnit", &unit).is_empty(),
        "{:?}",
        sd.calls()
    );
}

/// (b) systemd has the unit loaded (its cgroup elsewhere): StartTransientUnit in mode
/// "fail" is refused by systemd, and Ward says so naming linux.cgroupsPath.
#[test]
fn unit_systemd_already_has_refused() {
    require_root!();
    let id = unique_id("sdloaded");
    let unit = format!("ward-{id}.scope");
    let sd = FakeSystemd::start(&["--loaded", &unit]);
    let ward = sd.ward();
    let e = refused(
        &sd,
        &ward,
        &format!("system.slice:ward:{id}"),
        &id,
        &["linux.cgroupsPath", &unit, "already exists"],
    );
    assert!(e.contains("refusing to take it over"), "{e}");
    assert_eq!(sd.calls_of("StartTransientUnit", &unit).len(), 1);
    assert!(
        sd.calls_of("StopUnit", &unit).is_empty(),
        "{:?}",
        sd.calls()
    );
}

/// (c) A start job that fails: one line naming the unit and the result; the unit stopped
/// and reset; nothing left.
#[test]
fn failed_job_refused_and_unit_stopped() {
    require_root!();
    let sd = FakeSystemd::start(&["--job-result", "failed"]);
    let ward = sd.ward();
    let id = unique_id("sdfail");
    let unit = format!("ward-{id}.scope");
    refused(
        &sd,
        &ward,
        &format!("system.slice:ward:{id}"),
        &id,
        &["linux.cgroupsPath", &unit, "\"failed\""],
    );
    assert_eq!(sd.calls_of("StopUnit", &unit).len(), 1, "{:?}", sd.calls());
    assert_eq!(sd.calls_of("ResetFailedUnit", &unit).len(), 1);
}

/// (c) Nobody listening on the configured socket: one line, nothing left.
#[test]
fn no_systemd_listening_refused() {
    require_root!();
    let sd = FakeSystemd::absent();
    let ward = sd.ward();
    let id = unique_id("sdnone");
    refused(
        &sd,
        &ward,
        &format!("system.slice:ward:{id}"),
        &id,
        &["linux.cgroupsPath", "connect", "private"],
    );
}

/// A scope systemd put somewhere else than the slice says: refused from the kernel side,
/// stopped, nothing left (the double's misplaced dirs go with the unit).
#[test]
fn misplaced_scope_refused_and_stopped() {
    require_root!();
    let top = format!("wardmisplaced{}.slice", std::process::id());
    let sd = FakeSystemd::start(&["--place-under", &top]);
    let ward = sd.ward();
    let id = unique_id("sdmis");
    let unit = format!("ward-{id}.scope");
    refused(
        &sd,
        &ward,
        &format!("system.slice:ward:{id}"),
        &id,
        &["linux.cgroupsPath", &unit, "refusing it"],
    );
    assert_eq!(sd.calls_of("StopUnit", &unit).len(), 1, "{:?}", sd.calls());
    let left = remaining(&format!("/{top}/{unit}"), &top);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(processes_in(&unit).is_empty());
}

/// A create that fails after systemd made the scope (here a createRuntime hook, with the
/// container's init already in the scope): the processes killed, the unit stopped once,
/// nothing left.
#[test]
fn create_failing_after_the_scope_stops_it() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let sd = FakeSystemd::start(&[]);
    let hook = sd.dir.path().join("fail.sh");
    std::fs::write(&hook, "#!/bin/sh\ncat >/dev/null\nexit 3\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ward = sd.ward_with(&format!(
        "[hooks]\nallow = [{:?}]\n",
        hook.display().to_string()
    ));
    let id = unique_id("sdhook");
    let unit = format!("ward-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:ward:{id}"));
        c["hooks"] = json!({"createRuntime": [{"path": hook, "args": ["fail.sh"]}]});
    });
    let o = ward.create(&b, &id);
    assert!(!o.success(), "created:\n{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    assert!(o.stderr.contains("hooks.createRuntime[0]"), "{o}");
    assert_eq!(sd.calls_of("StartTransientUnit", &unit).len(), 1);
    assert_eq!(sd.calls_of("StopUnit", &unit).len(), 1, "{:?}", sd.calls());
    assert_scope_gone(&ward, &id, &unit);
}

/// The container exits; systemd (the double) sees its scope empty and stops it, removing
/// its cgroups. `kill --all` after that (what containerd sends on a task's exit) has nothing
/// left to signal and succeeds, and `delete` finishes. It used to fail forever ("failed to
/// read .../devices/...scope"), and containerd's StopContainer hung on it.
#[test]
fn kill_all_after_systemd_removed_the_emptied_scope() {
    require_root!();
    let sd = FakeSystemd::start(&[]);
    let ward = sd.ward();
    let id = unique_id("sdgone");
    let unit = format!("ward-{id}.scope");
    let mut b = Bundle::new(&["sh", "-c", "exit 0"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("system.slice:ward:{id}")));
    ward.run_detached(&b, &id);
    let gone = || {
        remaining(&format!("/system.slice/{unit}"), "system.slice")
            .iter()
            .all(|d| !d.ends_with(".scope"))
    };
    assert!(
        wait_until(Duration::from_secs(10), gone),
        "the double did not stop the emptied scope: {:?}",
        sd.calls()
    );
    let o = ward.output(&["kill", "--all", &id, "KILL"]);
    assert!(o.success(), "{o}");
    let o = ward.output(&["delete", &id]);
    assert!(o.success(), "{o}");
    assert_no_leftovers(&ward, &id);
}

/// Under the systemd driver a create needs 3 pids in the scope (its first process, the
/// intermediate and the init): a smaller `pids.limit` is refused in one line, before systemd
/// is asked for anything.
#[test]
fn pids_limit_too_small_for_the_scope_is_refused() {
    require_root!();
    let sd = FakeSystemd::start(&[]);
    let ward = sd.ward();
    let id = unique_id("sdpids");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:ward:{id}"));
        c["linux"]["resources"] = json!({"pids": {"limit": 2}});
    });
    let o = ward.create(&b, &id);
    assert!(!o.success(), "created:\n{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    assert!(
        o.stderr.contains("linux.resources.pids.limit") && o.stderr.contains("systemd driver"),
        "{o}"
    );
    assert!(sd
        .calls_of("StartTransientUnit", &format!("ward-{id}.scope"))
        .is_empty());
    assert_no_leftovers(&ward, &id);
}

/// A create killed (SIGKILL) once systemd made the scope and the init is in it: the helper
/// dies with Ward, and `delete --force` kills the container and stops the unit it recorded.
#[test]
fn create_killed_after_the_scope_is_undone_by_delete_force() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let sd = FakeSystemd::start(&[]);
    let hook = sd.dir.path().join("hang.sh");
    let marker = sd.dir.path().join("hook.pid");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncat >/dev/null\necho $$ > {}\nexec sleep 100\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ward = sd.ward_with(&format!(
        "[hooks]\nallow = [{:?}]\n",
        hook.display().to_string()
    ));
    let id = unique_id("sdkill");
    let unit = format!("ward-{id}.scope");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:ward:{id}"));
        c["hooks"] = json!({"createRuntime": [{"path": hook, "args": ["hang.sh"]}]});
    });
    let mut create = ward.cmd(&[
        "create".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref(),
    ]);
    let mut child = create
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hooked = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&marker).is_ok_and(|t| t.ends_with('\n'))
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Ok(p) = std::fs::read_to_string(&marker) {
        // The hook this test started (orphaned by the kill).
        let _ = Command::new("kill").arg("-9").arg(p.trim()).status();
    }
    assert!(hooked, "the createRuntime hook never ran");
    // The helper (the scope's first process) died with Ward.
    let helper = sd.calls_of("StartTransientUnit", &unit)[0]["props"]["PIDs"][0]
        .as_i64()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{helper}"
        ))
        .exists()),
        "helper {helper} outlived the killed create"
    );
    assert!(
        !processes_in(&unit).is_empty(),
        "the init should still be in the scope"
    );
    ward.ok(&["delete", "--force", &id]);
    assert_eq!(sd.calls_of("StopUnit", &unit).len(), 1, "{:?}", sd.calls());
    assert_scope_gone(&ward, &id, &unit);
}

/// The driver is the node's: a config.json cannot pick it. With the default node config
/// (no systemd here) a slice path is mapped to cgroupfs and no D-Bus call is made, whatever
/// the spec's annotations say.
#[test]
fn spec_cannot_choose_the_driver() {
    require_root!();
    if Path::new("/run/systemd/system").exists() {
        eprintln!("SKIP: this node runs systemd (the default driver is D-Bus here)");
        return;
    }
    let sd = FakeSystemd::start(&[]);
    let ward = Ward::new();
    let id = unique_id("sdspec");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:ward:{id}"));
        c["annotations"] =
            json!({"org.systemd.property.Delegate": "true", "ward.dev/cgroup-driver": "systemd"});
    });
    ward.run_detached(&b, &id);
    assert!(sd.calls().is_empty(), "{:?}", sd.calls());
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}
