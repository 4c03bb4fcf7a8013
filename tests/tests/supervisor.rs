//! A container's seccomp supervisor killed under it (issue 12, item 3): Ward says so
//! (`ward state`, `ward events`), `exec` keeps working with the same filter (denied calls fail
//! closed with ENOSYS, unreported, and the caller is warned), and `delete` leaves nothing.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use ward_tests::{assert_no_leftovers, require_root, unique_id, wait_until, Bundle, Ward};

/// The supervisor pid Ward recorded for `id` (this test created the container: ours to kill).
fn supervisor_pid(ward: &Ward, id: &str) -> i32 {
    let path = ward.root().join(".ward").join(id).join("supervisor.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pid = v["pid"].as_i64().expect("pid") as i32;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "ward-supervisor",
        "pid {pid} is not the supervisor"
    );
    pid
}

/// `R` (running, sleeping...) vs `Z`: the state letter of `pid`, None once reaped.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn killed_supervisor_is_reported_and_exec_and_delete_work() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("supkill");
    ward.run_detached(&b, &id);
    let sup = supervisor_pid(&ward, &id);
    let before = ward.state(&id);
    assert_eq!(
        before["annotations"]["ward.dev/supervisor"].as_str(),
        Some("running"),
        "state before: {before}"
    );
    // A follower started before the death sees it by itself.
    let mut follow = ward
        .cmd(&["events", "--interval", "0s", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || proc_state(sup)
        .is_none_or(|s| s == 'Z')));

    // (create's spec-override events come first: skip them)
    let followed = loop {
        let l = lines
            .recv_timeout(Duration::from_secs(5))
            .expect("ward events (following) printed nothing after the supervisor died");
        if !l.contains("\"spec-override\"") {
            break l;
        }
    };
    assert!(followed.contains("\"supervisor-gone\""), "{followed}");

    // `ward state` says it is gone, and how.
    let st = ward.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let ann = &st["annotations"];
    assert_eq!(ann["ward.dev/supervisor"].as_str(), Some("gone"), "{st}");
    let detail = ann["ward.dev/supervisor-gone"].as_str().unwrap_or_default();
    eprintln!("ward state: {detail}");
    assert!(
        detail.contains(&format!("pid {sup}")) && detail.contains("not reported"),
        "{detail}"
    );

    // `ward exec` works, warns, and the exec'd process has the same filter: a call the
    // profile denies now fails closed with ENOSYS instead of reaching a supervisor.
    let o = ward.output(&["exec", &id, "sh", "-c", "unshare -U true; echo rc=$?"]);
    assert!(o.success(), "exec after the supervisor died:\n{o}");
    eprintln!("ward exec:\n{o}");
    assert!(o.stdout.contains("rc=1"), "{o}");
    assert!(o.stderr.contains("Function not implemented"), "{o}");
    assert!(o.stderr.contains("not reported"), "no warning:\n{o}");
    let seccomp = ward.output(&["exec", &id, "grep", "Seccomp:", "/proc/self/status"]);
    assert!(seccomp.stdout.contains('2'), "{seccomp}");

    // `ward events` says it too (once, however often it is asked).
    let _ = ward.state(&id);
    let ev = ward.ok(&["events", "--once", &id]);
    let gone: Vec<&str> = ev
        .lines()
        .filter(|l| l.contains("\"supervisor-gone\""))
        .collect();
    assert_eq!(gone.len(), 1, "events:\n{ev}");
    eprintln!("ward events: {}", gone[0]);
    assert!(gone[0].contains(&format!("pid {sup}")), "{}", gone[0]);

    ward.ok(&["delete", "--force", &id]);
    // The follower ends with the container.
    assert!(wait_until(Duration::from_secs(5), || follow
        .try_wait()
        .unwrap()
        .is_some()));
    assert_no_leftovers(&ward, &id);
    assert!(
        proc_state(sup).is_none_or(|s| s == 'Z'),
        "supervisor {sup} runs again"
    );
}

/// Learn mode hands every call to the supervisor: with it gone, an exec'd process could not
/// run a single call, so the exec is refused with the reason (one line), and delete cleans.
#[test]
fn exec_is_refused_in_learn_mode_without_supervisor() {
    require_root!();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "allowed_profiles = [\"default\", \"record\"]\n").unwrap();
    let ward = Ward::new().with_global(["--config", cfg.path().to_str().unwrap()]);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["annotations"] = serde_json::json!({"ward.dev/profile": "record"}));
    let id = unique_id("supkill-rec");
    ward.run_detached(&b, &id);
    let sup = supervisor_pid(&ward, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(5), || proc_state(sup)
        .is_none_or(|s| s == 'Z')));
    let o = ward.output(&["exec", &id, "true"]);
    assert!(
        !o.success(),
        "exec in learn mode without supervisor ran:\n{o}"
    );
    assert!(
        o.stderr.contains("record mode") && o.stderr.contains("exec refused"),
        "{o}"
    );
    assert_eq!(o.stderr.trim().lines().count(), 1, "{o}");
    eprintln!("refused: {}", o.stderr.trim());
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}
