//! Ward's log (`--log`) stays bounded under a denial storm: the supervisor stops appending at
//! the size cap, says so once, and counts every event it kept out (runtime
//! `supervisor/logcap.rs`). Judged from the host: the log file's size and lines.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use ward_tests::{assert_no_leftovers, require_root, unique_id, wait_until, Bundle, Ward};

/// The syscall helper (tests/src/bin/ward-syscall.rs).
const SYSCALL_HELPER: &str = env!("CARGO_BIN_EXE_ward-syscall");

/// `ward_runtime::supervisor::LOG_CAP`.
const LOG_CAP: u64 = 4 << 20;

/// Room left in the log before the storm: a few dozen denial lines.
const ROOM: u64 = 20_000;

fn lines_of(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

#[test]
fn denial_storm_stops_at_the_log_cap_and_counts_what_it_dropped() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ward.log");
    // Someone else's lines already fill the log up to ROOM below the cap.
    let filler = "#".repeat(99) + "\n";
    let mut text = filler.repeat(((LOG_CAP - ROOM) / 100) as usize);
    text.truncate((LOG_CAP - ROOM) as usize);
    std::fs::write(&log, &text).unwrap();
    drop(text);

    let ward = Ward::new().with_global([
        "--log".into(),
        log.clone().into_os_string(),
        "--log-format".into(),
        "json".into(),
    ]);
    let mut b = Bundle::new(&["sh", "-c", "/bin/ward-syscall loop 3000 unshare 0x10000000"]);
    b.add_host_binary(Path::new(SYSCALL_HELPER), "/bin/ward-syscall");
    let id = unique_id("logcap");
    ward.run_detached(&b, &id);
    assert!(
        ward.wait_status(&id, "stopped", Duration::from_secs(60)),
        "storm did not finish"
    );
    ward.reap();
    // The supervisor writes the drop count when it exits (the filter has no user left).
    let sup = ward.root().join(".ward").join(&id).join("supervisor.json");
    let gone = || {
        std::fs::read(&sup)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["pid"].as_i64())
            .is_none_or(|p| !Path::new(&format!("/proc/{p}")).exists())
    };
    assert!(
        wait_until(Duration::from_secs(10), gone),
        "supervisor did not exit"
    );
    // The supervisor's events (create's own spec-override lines are not the supervisor's).
    let events: Vec<Value> = lines_of(&ward.ok(&["events", "--once", &id]))
        .into_iter()
        .filter(|e| e["type"] != "spec-override")
        .collect();
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);

    let text = std::fs::read_to_string(&log).unwrap();
    let size = text.len() as u64;
    let ours: Vec<Value> = lines_of(&text)
        .into_iter()
        .filter(|v| v["id"] == id.as_str() && v["target"] == "ward::supervisor")
        .collect();
    let kind = |k: &str| ours.iter().filter(|v| v["type"] == k).count();
    let dropped: u64 = ours
        .iter()
        .filter(|v| v["type"] == "log-events-dropped")
        .map(|v| v["suppressed"].as_u64().unwrap_or(0))
        .sum();
    let written = ours.len() - kind("log-full") - kind("log-events-dropped");
    eprintln!(
        "log {size} bytes (cap {LOG_CAP}); {} events, {written} written to the log, {dropped} dropped",
        events.len()
    );
    assert_eq!(kind("log-full"), 1, "one log-full line");
    assert!(dropped > 0, "the storm did not reach the cap");
    assert_eq!(
        written as u64 + dropped,
        events.len() as u64,
        "every event is in the log or counted as dropped"
    );
    // Past the cap: the log-full line, the final count, and the CLI's own few lines.
    assert!(
        size <= LOG_CAP + 16_384,
        "log grew to {size} bytes past its cap {LOG_CAP}"
    );
}
