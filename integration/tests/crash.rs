//! Crash and restart: a shim killed with SIGKILL, and containerd restarted
//! under a running container.

mod common;

use std::time::{Duration, Instant};

use common::{cid, errtext, Containerd, WARD_RUNTIME};
use ward_integration::image::BUSYBOX;
use ward_integration::procfs;

fn run_detached(c: &Containerd, rt: &str, id: &str) {
    let mut cmd = c.ctr_cmd(Some("default"));
    cmd.args(["run", "-d", "--runtime", rt]);
    if rt == WARD_RUNTIME {
        cmd.arg("--runtime-config-path").arg(&c.ward_config);
    }
    let out = cmd.args([BUSYBOX, id, "sleep", "600"]).output().unwrap();
    assert!(out.status.success(), "{rt}: run {id}: {}", errtext(&out));
}

fn task(c: &Containerd, id: &str) -> Option<(u32, String)> {
    let ls = c.ctr_ok("default", &["tasks", "ls"]).ok()?;
    ls.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    })
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The shim serving `init_pid`: the nearest ancestor that is a containerd
/// shim (runc's shim is the init's parent; Ward's shim forks a single-threaded
/// `ward-launcher` that is). This test created the container, so the pid is
/// ours to signal.
fn shim_of(init_pid: u32) -> u32 {
    let mut pid = init_pid;
    for _ in 0..3 {
        pid = procfs::ppid(pid).expect("ppid");
        if procfs::comm(pid).is_some_and(|c| c.starts_with("containerd-shim")) {
            return pid;
        }
    }
    panic!("no containerd shim among the 3 nearest ancestors of {init_pid}");
}

#[test]
fn shim_killed_task_reported_exited_and_cleaned() {
    common::each_containerd("shim_killed_task_reported_exited_and_cleaned", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "shimkill");
            run_detached(c, rt, &id);
            let (pid, state) = task(c, &id).expect("task listed");
            assert_eq!(state, "RUNNING");
            let shim = shim_of(pid);
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(shim as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            // containerd notices the shim is gone, marks the task stopped or
            // removes it, and its cleanup (`shim delete`) kills the container.
            let gone = wait_for(Duration::from_secs(20), || {
                task(c, &id).is_none_or(|(_, s)| s == "STOPPED")
            });
            assert!(
                gone,
                "{rt}: task still {:?} after shim SIGKILL",
                task(c, &id)
            );
            assert!(
                wait_for(Duration::from_secs(10), || !std::path::Path::new(&format!(
                    "/proc/{pid}"
                ))
                .exists()),
                "{rt}: container init {pid} outlived its shim's cleanup"
            );
            if rt == WARD_RUNTIME {
                // WARD-ONLY: the `delete` action (a fresh shim) found the node config and state dir
                // the container was created with (recorded in the bundle) and removed everything.
                let mut left = vec![];
                let clean = wait_for(Duration::from_secs(10), || {
                    left = ward_integration::leaks::ward_pod_leftovers(c, "default", &id, &[]);
                    left.is_empty()
                });
                assert!(
                    clean,
                    "{rt}: left behind after the shim's cleanup:\n{}",
                    left.join("\n")
                );
            }
            let _ = c.ctr(Some("default"), &["tasks", "delete", "-f", &id]);
            let out = c
                .ctr(Some("default"), &["containers", "delete", &id])
                .unwrap();
            assert!(out.status.success(), "{rt}: {}", errtext(&out));
        }
    });
}

#[test]
fn containerd_restart_reconnects_to_running_shim() {
    common::each_containerd("containerd_restart_reconnects_to_running_shim", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "restart");
            run_detached(c, rt, &id);
            let (pid, _) = task(c, &id).expect("task listed");
            let shim = shim_of(pid);
            c.restart().expect("restart containerd");
            let back = wait_for(Duration::from_secs(20), || {
                task(c, &id).is_some_and(|(p, s)| p == pid && s == "RUNNING")
            });
            assert!(
                back,
                "{rt}: after restart: {:?}\n{}",
                task(c, &id),
                c.log_text()
            );
            assert_eq!(shim_of(pid), shim, "{rt}: same shim keeps the container");
            // A call served by the shim itself: containerd reconnected to it.
            // (exec is covered by tests/ctr.rs exec_in_running_container.)
            let ps = c.ctr_ok("default", &["tasks", "ps", &id]).unwrap();
            assert!(
                ps.lines()
                    .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
                "{rt}: tasks ps after restart: {ps}"
            );
            c.ctr_ok("default", &["tasks", "kill", "-s", "SIGKILL", &id])
                .unwrap();
            assert!(
                wait_for(Duration::from_secs(10), || task(c, &id)
                    .is_some_and(|(_, s)| s == "STOPPED")),
                "{rt}: no exit seen after restart"
            );
            c.ctr_ok("default", &["tasks", "delete", &id]).unwrap();
            c.ctr_ok("default", &["containers", "delete", &id]).unwrap();
        }
    });
}

/// The `ward-launcher` serving `init_pid`: the init's parent (the launcher creates containers
/// as its children). This test created the container, so the pid is ours to signal.
fn launcher_of(init_pid: u32) -> u32 {
    let parent = procfs::ppid(init_pid).expect("ppid");
    assert_eq!(
        procfs::comm(parent).as_deref(),
        Some("ward-launcher"),
        "parent {parent} of init {init_pid} is not a ward-launcher"
    );
    parent
}

/// Children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// WARD-ONLY: the launcher (the shim's single-threaded helper that owns the containers) killed
/// with SIGKILL. The shim notices, fails the task safe (kills it, reports its exit), and a
/// fresh launcher serves kill and delete: nothing is left behind.
#[test]
fn launcher_killed_task_stopped_and_removable() {
    common::each_containerd("launcher_killed_task_stopped_and_removable", |c| {
        if let Err(why) = common::ward_shim_status() {
            common::skip_or_fail_ward(&why);
            return;
        }
        // Running, then paused (the runtime library's kill of a frozen cgroup thaws it).
        for paused in [false, true] {
            launcher_killed_once(c, paused);
        }
    });
}

fn launcher_killed_once(c: &Containerd, paused: bool) {
    let rt = WARD_RUNTIME;
    let id = cid(
        rt,
        if paused {
            "launcherkillp"
        } else {
            "launcherkill"
        },
    );
    run_detached(c, rt, &id);
    let (pid, state) = task(c, &id).expect("task listed");
    assert_eq!(state, "RUNNING");
    if paused {
        c.ctr_ok("default", &["tasks", "pause", &id]).unwrap();
        assert_eq!(task(c, &id).map(|t| t.1).as_deref(), Some("PAUSED"));
    }
    let launcher = launcher_of(pid);
    let shim = shim_of(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t0 = Instant::now();
    let stopped = wait_for(Duration::from_secs(5), || {
        task(c, &id).is_some_and(|(_, s)| s == "STOPPED")
    });
    assert!(
        stopped,
        "task still {:?} 5 s after its launcher was killed\n{}",
        task(c, &id),
        c.log_text()
    );
    eprintln!(
        "task STOPPED {:?} after the launcher's SIGKILL",
        t0.elapsed()
    );
    let new_launcher = children_of(shim)
        .into_iter()
        .find(|p| procfs::comm(*p).as_deref() == Some("ward-launcher"))
        .expect("a new launcher among the shim's children");
    assert_ne!(new_launcher, launcher);
    assert!(
        wait_for(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "container init {pid} still runs after its task was reported stopped"
    );
    // Signalling the stopped task is refused as for any finished process (runc's shim says
    // "process already finished" too), never with "launcher is gone".
    let kill = c
        .ctr(Some("default"), &["tasks", "kill", "-s", "SIGKILL", &id])
        .unwrap();
    let out = format!("{}{}", common::text(&kill), errtext(&kill));
    eprintln!("tasks kill: {:?} {out}", kill.status.code());
    assert!(!out.contains("launcher is gone"), "tasks kill: {out}");
    // The exit status containerd recorded: 137 (killed by the shim), shown by `tasks delete`.
    let del = c
        .ctr(Some("default"), &["tasks", "delete", "-f", &id])
        .unwrap();
    let out = format!("{}{}", common::text(&del), errtext(&del));
    eprintln!("tasks delete: {out}");
    assert!(del.status.success(), "tasks delete: {out}");
    assert!(!out.contains("launcher is gone"), "{out}");
    assert!(out.contains("exit code 137"), "tasks delete: {out}");
    c.ctr_ok("default", &["containers", "delete", &id]).unwrap();
    // The shim (and its new launcher) exit once they serve nothing.
    assert!(
        wait_for(Duration::from_secs(10), || !std::path::Path::new(&format!(
            "/proc/{shim}"
        ))
        .exists()),
        "shim {shim} still runs after its only container was deleted"
    );
    assert!(
        wait_for(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{new_launcher}"
        ))
        .exists()),
        "the new launcher {new_launcher} outlived its shim"
    );
    let mut left = vec![];
    let clean = wait_for(Duration::from_secs(10), || {
        left = ward_integration::leaks::ward_pod_leftovers(c, "default", &id, &[]);
        left.is_empty()
    });
    assert!(clean, "left behind:\n{}", left.join("\n"));
}

/// WARD-ONLY: the launcher killed under an exec'd process and a racing `ctr task kill`: the
/// exec's exit is reported too (its `ctr task exec` returns), the kill does not fail for want
/// of a launcher, and nothing is left behind.
#[test]
fn launcher_killed_with_exec_and_racing_kill() {
    common::each_containerd("launcher_killed_with_exec_and_racing_kill", |c| {
        if let Err(why) = common::ward_shim_status() {
            common::skip_or_fail_ward(&why);
            return;
        }
        let id = cid(WARD_RUNTIME, "launcherexec");
        run_detached(c, WARD_RUNTIME, &id);
        let (pid, _) = task(c, &id).expect("task listed");
        let launcher = launcher_of(pid);
        let mut exec = c
            .ctr_cmd(Some("default"))
            .args(["tasks", "exec", "--exec-id", "ex1", &id, "sleep", "700"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let exec_running = wait_for(Duration::from_secs(10), || {
            ward_integration::leaks::processes_mentioning(&["sleep 700"])
                .iter()
                .any(|(p, _)| procfs::ppid(*p) == Some(launcher))
        });
        assert!(exec_running, "the exec'd process did not start");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(launcher as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let kill = c
            .ctr(Some("default"), &["tasks", "kill", "-s", "SIGKILL", &id])
            .unwrap();
        let out = format!("{}{}", common::text(&kill), errtext(&kill));
        eprintln!("racing tasks kill: {:?} {out}", kill.status.code());
        assert!(!out.contains("launcher is gone"), "tasks kill: {out}");
        let exited = wait_for(Duration::from_secs(10), || {
            exec.try_wait().unwrap().is_some()
        });
        if !exited {
            let _ = exec.kill();
        }
        let status = exec.wait().unwrap();
        assert!(exited, "ctr task exec still waits after the launcher died");
        assert_eq!(status.code(), Some(137), "exec's exit as ctr saw it");
        assert!(wait_for(Duration::from_secs(5), || {
            task(c, &id).is_some_and(|(_, s)| s == "STOPPED")
        }));
        c.ctr_ok("default", &["tasks", "delete", "-f", &id])
            .unwrap();
        c.ctr_ok("default", &["containers", "delete", &id]).unwrap();
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = ward_integration::leaks::ward_pod_leftovers(c, "default", &id, &[]);
            left.extend(
                ward_integration::leaks::processes_mentioning(&["sleep 700"])
                    .into_iter()
                    .map(|(p, cmd)| format!("process {p}: {cmd}")),
            );
            left.is_empty()
        });
        assert!(clean, "left behind:\n{}", left.join("\n"));
    });
}

/// WARD-ONLY (issue 12, item 3, through the shim): the container's seccomp supervisor killed.
/// It is the launcher's (its subreaper's) child, so it is reaped at once; `ctr task exec` still
/// works with the same filter (a denied call fails closed with ENOSYS), `ward state` on the
/// shim's root says the supervisor is gone, and kill and delete leave nothing.
#[test]
fn supervisor_killed_under_the_shim() {
    common::each_containerd("supervisor_killed_under_the_shim", |c| {
        if let Err(why) = common::ward_shim_status() {
            common::skip_or_fail_ward(&why);
            return;
        }
        let id = cid(WARD_RUNTIME, "supkill");
        run_detached(c, WARD_RUNTIME, &id);
        let (pid, _) = task(c, &id).expect("task listed");
        let launcher = launcher_of(pid);
        let sup = children_of(launcher)
            .into_iter()
            .find(|p| procfs::comm(*p).as_deref() == Some("ward-supervisor"))
            .expect("the container's supervisor among the launcher's children");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sup as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert!(wait_for(Duration::from_secs(5), || !std::path::Path::new(
            &format!("/proc/{sup}")
        )
        .exists()));
        let exec = c
            .ctr(
                Some("default"),
                &[
                    "tasks",
                    "exec",
                    "--exec-id",
                    "ex1",
                    &id,
                    "sh",
                    "-c",
                    "unshare -U true 2>&1; echo rc=$?",
                ],
            )
            .unwrap();
        let out = format!("{}{}", common::text(&exec), errtext(&exec));
        assert!(exec.status.success(), "exec: {out}");
        assert!(
            out.contains("Function not implemented") && out.contains("rc=1"),
            "{out}"
        );
        let ward = ward_integration::containerd::ward_bin_dir().join("ward");
        let state = std::process::Command::new(&ward)
            .arg("--root")
            .arg(c.ward_state.join("default"))
            .args(["state", &id])
            .output()
            .unwrap();
        let text = common::text(&state);
        assert!(
            text.contains("\"ward.dev/supervisor\": \"gone\""),
            "ward state: {text}{}",
            errtext(&state)
        );
        c.ctr_ok("default", &["tasks", "kill", "-s", "SIGKILL", &id])
            .unwrap();
        assert!(wait_for(Duration::from_secs(10), || {
            task(c, &id).is_some_and(|(_, s)| s == "STOPPED")
        }));
        c.ctr_ok("default", &["tasks", "delete", &id]).unwrap();
        c.ctr_ok("default", &["containers", "delete", &id]).unwrap();
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = ward_integration::leaks::ward_pod_leftovers(c, "default", &id, &[]);
            left.is_empty()
        });
        assert!(clean, "left behind:\n{}", left.join("\n"));
    });
}
