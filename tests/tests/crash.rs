//! A create killed part-way (issue 12, item 1): `ward run -d` is SIGKILLed at random points
//! (1-40 ms in), then `delete --force` must remove everything: state dirs, the uid range and
//! its node-wide claim, mounts, cgroups, the container's processes and its supervisor.
//! `WARD_CRASH_TRIES` sets the number of tries (default 40).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ward_tests::{leftovers, require_root, unique_id, Bundle, Ward};

/// Processes (not zombies) whose command line names `id`: a Ward left running (a supervisor
/// is a fork of the `ward` that created it, so its command line names the id too).
fn processes_naming(id: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                return None;
            }
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            (cmd.contains(id) && !zombie).then(|| format!("pid {pid}: {cmd}"))
        })
        .collect()
}

/// Node-wide claims naming `wdir` (their content is the claimant's state dir).
fn claims_naming(wdir: &Path) -> Vec<String> {
    let want = wdir.display().to_string();
    std::fs::read_dir("/run/ward-uid-claims")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.trim() == want))
        .map(|e| e.path().display().to_string())
        .collect()
}

/// A small deterministic generator (no extra crate): delays differ per try and per run.
fn delays(n: usize) -> Vec<u64> {
    let mut x = (std::process::id() as u64) << 16 ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            1 + x % 40
        })
        .collect()
}

#[test]
fn create_killed_at_any_point_is_undone_by_delete_force() {
    require_root!();
    let tries: usize = std::env::var("WARD_CRASH_TRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let ward = Ward::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let mut stages = std::collections::BTreeMap::<&str, usize>::new();
    for ms in delays(tries) {
        let id = unique_id("crash");
        let wdir = ward.root().join(".ward").join(&id);
        let mut child = ward
            .cmd(&[
                "run".as_ref(),
                "-d".as_ref(),
                "--bundle".as_ref(),
                b.path().as_os_str(),
                id.as_ref(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let stage = match (status.success(), wdir.join("ward.json").exists()) {
            (true, _) => "finished before the kill",
            (false, true) => "killed after ward.json",
            (false, false) if wdir.exists() => "killed before ward.json",
            (false, false) => "killed before the claim",
        };
        *stages.entry(stage).or_default() += 1;

        let o = ward.output(&["delete", "--force", &id]);
        assert!(
            o.success(),
            "{id} killed after {ms} ms ({stage}): delete --force:\n{o}"
        );
        // A supervisor started just before the kill exits on its own (handoff deadline).
        let end = Instant::now() + Duration::from_secs(12);
        let mut left = vec![];
        while Instant::now() < end {
            left = leftovers(&ward, &id);
            left.extend(processes_naming(&id));
            left.extend(claims_naming(&wdir));
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            left.is_empty(),
            "{id} killed after {ms} ms ({stage}) left behind after delete --force:\n  {}",
            left.join("\n  ")
        );
    }
    eprintln!("crash tries: {tries}, {stages:?}");
}

#[test]
fn delete_force_without_libcontainer_state_still_kills_the_container() {
    require_root!();
    let ward = Ward::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("nostate");
    ward.run_detached(&b, &id);
    let pid = ward.pid(&id);
    // libcontainer's state is lost (a crash, a cleaner); Ward's own record remains.
    std::fs::remove_dir_all(ward.root().join(&id)).unwrap();
    let o = ward.output(&["delete", "--force", &id]);
    assert!(o.success(), "{o}");
    ward.reap();
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    });
    assert!(
        !alive,
        "the container's init {pid} still runs after delete --force"
    );
    assert!(
        leftovers(&ward, &id).is_empty(),
        "{:?}",
        leftovers(&ward, &id)
    );
}
