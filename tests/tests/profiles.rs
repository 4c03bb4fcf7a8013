//! Sandbox profiles end to end, in real containers: the built-in profiles deny THREATS.md's
//! syscalls with EPERM (seen from inside) while busybox shell workloads run, every denial
//! is reported (Ward's JSON log, `ward events`) with the container id, syscall and profile,
//! the report rate limit holds under a tight loop, and learn mode records a workload into a
//! draft that runs when enforced and fails with EPERM once a recorded syscall is removed.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use ward_tests::{require_root, unique_id, wait_until, Bundle, Ward};

/// The syscall helper (tests/src/bin/ward-syscall.rs), copied into each bundle.
const SYSCALL_HELPER: &str = env!("CARGO_BIN_EXE_ward-syscall");

fn bundle_with_helper(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.add_host_binary(Path::new(SYSCALL_HELPER), "/bin/ward-syscall");
    b
}

/// `Ward` logging JSON to a file; returns it with the log path.
fn ward_with_log(extra: &[&str]) -> (Ward, tempfile::NamedTempFile) {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut flags: Vec<String> = vec![
        "--log".into(),
        log.path().display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    flags.extend(extra.iter().map(|s| s.to_string()));
    (Ward::new().with_global(flags), log)
}

/// JSON lines of Ward's log that report a seccomp denial of container `id`.
fn logged_denials(log: &Path, id: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "seccomp-denial" && v["id"] == id)
        .collect()
}

/// The supervisor's events of `id` (create's `spec-override` events left out).
fn events_once(ward: &Ward, id: &str) -> Vec<Value> {
    ward.ok(&["events", "--once", id])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e| e["type"] != "spec-override")
        .collect()
}

/// Lines `NAME errno=E` printed by `ward-syscall`, by name.
fn helper_results(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let r = rest
                .strip_prefix("errno=")
                .or_else(|| rest.strip_prefix("ret="))?;
            let r = if rest.starts_with("ret=") {
                format!("ret={r}")
            } else {
                r.to_string()
            };
            Some((name.to_string(), r))
        })
        .collect()
}

/// A shell workload, then every THREATS.md syscall. `strict` allows no pipes (a static
/// service needs none), so its workload has no pipeline or command substitution.
fn threats_workload(pipes: bool) -> (String, Vec<&'static str>) {
    let mut script = String::from(
        "echo start; ls / >/dev/null && echo ls-ok; cat /etc/passwd >/dev/null && echo cat-ok; ",
    );
    let mut marks = vec!["ls-ok", "cat-ok", "end"];
    if pipes {
        script.push_str(
            "cat /etc/passwd | wc -l >/dev/null && echo pipe-ok; x=$(echo sub); echo \"sub=$x\"; ",
        );
        marks.extend(["pipe-ok", "sub=sub"]);
    }
    script.push_str("/bin/ward-syscall threats; echo end");
    (script, marks)
}

/// Each built-in profile answers every THREATS.md syscall with EPERM (clone3 with ENOSYS, on
/// purpose: glibc then falls back to clone) while a shell workload runs, and every one of
/// those denials is in Ward's JSON log with the container id, syscall and profile.
#[test]
fn builtin_profiles_deny_threats_syscalls_and_report_each() {
    require_root!();
    for profile in ["default", "restricted", "strict", "nginx", "python-worker"] {
        let (ward, log) = ward_with_log(&["--profile", profile]);
        let (script, marks) = threats_workload(profile != "strict");
        let b = bundle_with_helper(&script);
        let id = unique_id(&format!("threats-{profile}"));
        let out = ward.run(&b, &id);
        assert!(out.success(), "{profile}: {out}");
        for m in marks {
            assert!(
                out.stdout.contains(m),
                "{profile}: workload broke ({m}):\n{out}"
            );
        }
        let results = helper_results(&out.stdout);
        assert!(results.len() >= 40, "{profile}: helper output:\n{out}");
        for (name, r) in &results {
            let want = if name == "clone3" { "ENOSYS" } else { "EPERM" };
            assert_eq!(r, want, "{profile}: {name} answered {r}:\n{out}");
        }
        let denials = logged_denials(log.path(), &id);
        for name in results.keys() {
            let ev = denials
                .iter()
                .find(|v| v["syscall"] == name.as_str())
                .unwrap_or_else(|| panic!("{profile}: no denial of {name} in the log"));
            assert_eq!(ev["profile"], profile, "{ev}");
            assert!(ev["pid"].as_u64().unwrap_or(0) > 0, "{ev}");
            assert!(ev["nr"].is_u64() && ev["args"].is_array(), "{ev}");
        }
        ward_tests::assert_no_leftovers(&ward, &id);
    }
}

/// `strict`: socket(AF_INET) is denied (AF_UNIX is not), exec from /tmp is denied (noexec
/// tmpfs + Landlock bin-dirs); under `default` both work.
#[test]
fn strict_blocks_inet_sockets_and_exec_from_tmp() {
    require_root!();
    let script = "/bin/ward-syscall socket 2 1 0; /bin/ward-syscall socket 1 1 0; \
                  cp /bin/busybox /tmp/bb && /tmp/bb true; echo \"tmp=$?\"; /bin/true; echo \"bin=$?\"";
    let b = bundle_with_helper(script);
    let (strict, log) = ward_with_log(&["--profile", "strict"]);
    let id = unique_id("strict-net");
    let out = strict.run(&b, &id);
    assert!(out.success(), "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"socket errno=EPERM"), "AF_INET:\n{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("socket ret=")),
        "AF_UNIX must work:\n{out}"
    );
    assert!(
        out.stdout.contains("tmp=126") && out.stdout.contains("bin=0"),
        "{out}"
    );
    let d = logged_denials(log.path(), &id);
    assert!(
        d.iter()
            .any(|v| v["syscall"] == "socket" && v["args"][0] == "0x2" && v["profile"] == "strict"),
        "socket(AF_INET) denial not reported: {d:?}"
    );

    let ward = Ward::new();
    let id = unique_id("default-net");
    let out = ward.run(&b, &id);
    assert!(out.success(), "{out}");
    let inet = out.stdout.lines().next().unwrap_or_default();
    assert!(
        inet.starts_with("socket ret="),
        "default allows AF_INET:\n{out}"
    );
}

/// A denial in a detached container shows up in `ward events` (one-shot and follow), with
/// the syscall name, container id and profile; an exec'd process reports to the same
/// supervisor; `ward delete` stops the supervisor (the recorded pid is gone) and a
/// following `ward events` ends by itself.
#[test]
fn denial_shows_in_ward_events_and_delete_stops_the_supervisor() {
    require_root!();
    let ward = Ward::new();
    let b = bundle_with_helper("/bin/ward-syscall unshare 0x10000000; exec sleep 60");
    let id = unique_id("events");
    ward.run_detached(&b, &id);
    let mut evs = vec![];
    assert!(
        wait_until(Duration::from_secs(10), || {
            evs = events_once(&ward, &id);
            !evs.is_empty()
        }),
        "no event"
    );
    let ev = &evs[0];
    assert_eq!(ev["type"], "seccomp-denial", "{ev}");
    assert_eq!(ev["id"], id.as_str(), "{ev}");
    assert_eq!(ev["syscall"], "unshare", "{ev}");
    assert_eq!(ev["profile"], "default", "{ev}");
    assert_eq!(ev["action"], "errno:EPERM", "{ev}");
    assert_eq!(ev["args"][0], "0x10000000", "{ev}");
    assert!(ev["container_pid"].as_u64().is_some_and(|p| p >= 1), "{ev}");

    // Follow mode prints it too (and later ones as they come).
    let mut follow = ward
        .cmd(&["events", "--interval", "0s", id.as_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ward events");
    // Read the follower on a thread, so a missing line fails the test instead of hanging it.
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // The next denial line (create's spec-override events come first and are skipped).
    let next = || loop {
        let l = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("ward events printed nothing within 15 s");
        if !l.contains("\"spec-override\"") {
            break l;
        }
    };
    let first = next();
    assert!(first.contains("\"syscall\":\"unshare\""), "{first}");

    // An exec'd process reports to the same supervisor.
    let out = ward.output(&["exec", id.as_str(), "/bin/ward-syscall", "bpf", "0"]);
    assert!(out.stdout.contains("bpf errno=EPERM"), "{out}");
    let second = next();
    assert!(second.contains("\"syscall\":\"bpf\""), "{second}");

    let rec: Value = serde_json::from_slice(
        &std::fs::read(ward.root().join(".ward").join(&id).join("supervisor.json"))
            .expect("supervisor.json"),
    )
    .expect("json");
    let sup = rec["pid"].as_i64().expect("pid") as i32;
    assert!(Path::new(&format!("/proc/{sup}")).exists());
    ward.ok(&["delete", "--force", id.as_str()]);
    ward.reap();
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{sup}"
        ))
        .exists()),
        "supervisor {sup} still runs after delete"
    );
    let t = Instant::now();
    let st = loop {
        if let Some(st) = follow.try_wait().expect("try_wait") {
            break Some(st);
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = follow.kill();
            let _ = follow.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        st.is_some_and(|s| s.success()),
        "ward events did not end after delete"
    );
    ward_tests::assert_no_leftovers(&ward, &id);
}

/// A tight loop of denied calls: every call is denied, at most burst + rate x time are
/// logged one by one, the rest are counted in "suppressed" lines, and nothing is lost.
#[test]
fn report_rate_limit_holds_under_a_tight_denied_loop() {
    require_root!();
    const N: u64 = 20_000;
    let ward = Ward::new();
    let b = bundle_with_helper(&format!("/bin/ward-syscall loop {N} unshare 0x10000000"));
    let id = unique_id("ratelimit");
    let t = Instant::now();
    ward.run_detached(&b, &id);
    assert!(
        ward.wait_status(&id, "stopped", Duration::from_secs(60)),
        "loop did not finish"
    );
    let secs = t.elapsed().as_secs_f64();
    ward.reap();
    // The supervisor flushes the last summary when the filter has no user left.
    let dir = ward.root().join(".ward").join(&id);
    let sup_gone = || {
        std::fs::read(dir.join("supervisor.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["pid"].as_i64())
            .is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists())
    };
    assert!(
        wait_until(Duration::from_secs(10), sup_gone),
        "supervisor did not exit"
    );
    let evs = events_once(&ward, &id);
    let denials = evs.iter().filter(|e| e["type"] == "seccomp-denial").count() as u64;
    let suppressed: u64 = evs
        .iter()
        .filter(|e| e["type"] == "seccomp-denials-suppressed")
        .map(|e| e["suppressed"].as_u64().unwrap_or(0))
        .sum();
    let summaries = evs
        .iter()
        .filter(|e| e["type"] == "seccomp-denials-suppressed")
        .count() as f64;
    eprintln!(
        "{N} denied calls in {secs:.2}s: {denials} logged, {suppressed} suppressed in {summaries} lines"
    );
    assert_eq!(denials + suppressed, N, "every denial is accounted for");
    assert!(denials >= 100, "the burst is logged: {denials}");
    assert!(
        (denials as f64) <= 100.0 + 20.0 * secs + 2.0,
        "{denials} lines in {secs:.2}s exceed burst 100 + 20/s"
    );
    assert!(
        summaries >= 1.0 && summaries <= secs + 2.0,
        "{summaries} summary lines"
    );
    assert!(
        evs.iter()
            .filter(|e| e["type"] == "seccomp-denials-suppressed")
            .all(|e| e["message"]
                .as_str()
                .is_some_and(|m| m.contains("denials suppressed"))),
        "{evs:?}"
    );
    ward.ok(&["delete", "--force", id.as_str()]);
    ward_tests::assert_no_leftovers(&ward, &id);
}

/// Remove `name` from a draft's allow list (one entry a line, as the drafter writes it).
fn without(draft: &str, name: &str) -> String {
    let line = format!("    \"{name}\",");
    assert!(
        draft.lines().any(|l| l == line),
        "{name} not in draft:\n{draft}"
    );
    draft
        .lines()
        .filter(|l| *l != line)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Learn mode end to end: record, draft, enforce (passes), then the draft minus one recorded
/// syscall (fails with EPERM, and the denial is reported).
fn learn_enforce_break(b: &Bundle, label: &str, remove_one_of: &[&str], eperm_text: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let draft_path = dir.path().join(format!("{label}.toml"));
    let ward = Ward::new();
    let id = unique_id(&format!("rec-{label}"));
    let out = ward.output(&[
        "profile".as_ref(),
        "record".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        "-o".as_ref(),
        draft_path.as_os_str(),
        "--id".as_ref(),
        id.as_ref(),
    ]);
    assert!(out.success(), "record {label}: {out}");
    assert!(out.stderr.contains("draft written"), "{out}");
    ward_tests::assert_no_leftovers(&ward, &id);
    let draft = std::fs::read_to_string(&draft_path).expect("draft");
    assert!(draft.contains("extends = \"default\""), "{draft}");

    // Enforce the draft: the workload passes.
    let (enforced, _log) = ward_with_log(&["--profile", draft_path.to_str().expect("utf8")]);
    let id = unique_id(&format!("enf-{label}"));
    let good = enforced.run(b, &id);
    assert!(
        good.success(),
        "{label} under its own draft:\n{good}\n--- draft ---\n{draft}"
    );

    // One recorded syscall removed: that call now fails with EPERM.
    let name = remove_one_of
        .iter()
        .find(|n| draft.lines().any(|l| l == format!("    \"{n}\",")))
        .unwrap_or_else(|| panic!("none of {remove_one_of:?} in the draft:\n{draft}"));
    let broken_path = dir.path().join(format!("{label}-no-{name}.toml"));
    std::fs::write(&broken_path, without(&draft, name)).expect("write");
    let (broken, log) = ward_with_log(&["--profile", broken_path.to_str().expect("utf8")]);
    let id = unique_id(&format!("brk-{label}"));
    let bad = broken.run(b, &id);
    assert!(!bad.success(), "{label} without {name} should fail:\n{bad}");
    assert!(
        bad.stdout.contains(eperm_text) || bad.stderr.contains(eperm_text),
        "{label} without {name}: expected {eperm_text:?}:\n{bad}"
    );
    let d = logged_denials(log.path(), &id);
    assert!(
        d.iter()
            .any(|v| v["syscall"] == *name && v["action"] == "errno:EPERM"),
        "denial of {name} not reported: {d:?}"
    );
}

#[test]
fn learn_mode_busybox_workload_record_enforce_break() {
    require_root!();
    let b = Bundle::sh(
        "echo hi > /tmp/x; cat /tmp/x; ls / | wc -l >/dev/null; \
         mkdir /tmp/d || exit 3; rmdir /tmp/d; echo done",
    );
    learn_enforce_break(
        &b,
        "busybox",
        &["mkdir", "mkdirat"],
        "Operation not permitted",
    );
}

#[test]
fn learn_mode_python3_record_enforce_break() {
    require_root!();
    let python = Path::new("/usr/bin/python3");
    let Ok(real) = std::fs::canonicalize(python) else {
        eprintln!("SKIP: /usr/bin/python3 missing (Debian package python3)");
        return;
    };
    let stdlib: PathBuf = std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| real.file_name().and_then(|r| r.to_str()) == Some(n))
        })
        .unwrap_or_else(|| panic!("no /usr/lib/<{}> stdlib", real.display()));
    let mut b = Bundle::new(&[
        "/usr/bin/python3",
        "-c",
        "import json, os\nos.mkdir('/tmp/d'); os.rmdir('/tmp/d')\nprint(json.dumps({'ok': sorted(os.listdir('/'))[:1]}))",
    ]);
    b.add_host_binary(&real, "/usr/bin/python3");
    let inside = stdlib.display().to_string();
    b.bind(&stdlib, &inside, true);
    learn_enforce_break(
        &b,
        "python3",
        &["mkdir", "mkdirat"],
        "Operation not permitted",
    );
}

/// The `record` profile through the annotation, when the node allows it: the container runs
/// in learn mode (unshare is allowed and recorded) and leaves a recording.
#[test]
fn record_profile_by_annotation_when_the_node_allows_it() {
    require_root!();
    let cfg = tempfile::NamedTempFile::new().expect("cfg");
    std::fs::write(cfg.path(), "allowed_profiles = [\"default\", \"record\"]\n")
        .expect("write cfg");
    let ward = Ward::new().with_global(["--config", cfg.path().to_str().expect("utf8")]);
    let mut b =
        bundle_with_helper("/bin/ward-syscall getppid; /bin/ward-syscall unshare 0x10000000");
    b.edit(|c| c["annotations"] = serde_json::json!({"ward.dev/profile": "record"}));
    let id = unique_id("rec-annot");
    ward.run_detached(&b, &id);
    assert!(ward.wait_status(&id, "stopped", Duration::from_secs(20)));
    ward.reap();
    let rec_path = ward.root().join(".ward").join(&id).join("recording.json");
    assert!(
        wait_until(Duration::from_secs(10), || rec_path.exists()),
        "no recording"
    );
    let rec: Value =
        serde_json::from_slice(&std::fs::read(&rec_path).expect("read")).expect("json");
    for s in ["getppid", "unshare", "execve"] {
        assert!(rec["syscalls"][s].is_array(), "{s} not recorded: {rec}");
    }
    assert!(
        rec["exec"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == "/bin/ward-syscall")),
        "{rec}"
    );
    ward.ok(&["delete", "--force", id.as_str()]);
    ward_tests::assert_no_leftovers(&ward, &id);
}

/// A `kill` rule in report mode: the supervisor kills the caller (the call never runs) and
/// reports it with action "kill"; the shell that started it goes on.
#[test]
fn kill_rule_kills_the_caller_and_is_reported() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("killer.toml");
    std::fs::write(
        &profile,
        "name = \"killer\"\nextends = \"default\"\n[seccomp]\nkill = [\"syslog\"]\n",
    )
    .expect("write profile");
    let (ward, log) = ward_with_log(&["--profile", profile.to_str().expect("utf8")]);
    let b = bundle_with_helper(
        "/bin/ward-syscall syslog 0xffffffff; echo \"rc=$?\"; /bin/ward-syscall unshare 0x10000000",
    );
    let id = unique_id("killrule");
    let out = ward.run(&b, &id);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("rc=137"), "SIGKILL expected:\n{out}");
    assert!(
        !out.stdout.contains("syslog "),
        "the call must not return:\n{out}"
    );
    assert!(out.stdout.contains("unshare errno=EPERM"), "{out}");
    let d = logged_denials(log.path(), &id);
    assert!(
        d.iter()
            .any(|v| v["syscall"] == "syslog" && v["action"] == "kill" && v["profile"] == "killer"),
        "{d:?}"
    );
    ward_tests::assert_no_leftovers(&ward, &id);
}
