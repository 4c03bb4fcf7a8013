//! `symlink-mount-race` (CVE-2021-30465 class): an attacker container swaps
//! a directory of the shared volume with a symlink to a host directory in a
//! tight loop, while victim containers are created with a bind mount whose
//! destination crosses that directory. Each victim's probe reports where the
//! mount landed; the host side checks the canaries and the mount table once
//! the attacker has stopped.

use crate::bundle;
use crate::host::Snapshot;
use crate::report::{self, Cell};
use crate::rt::Output;
use crate::suite::{truncate, Suite};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const TECHNIQUE: &str = "symlink-mount-race";
/// Victims per column, and the time budget for all of them.
const VICTIMS: usize = 30;
const BUDGET: Duration = Duration::from_secs(40);

fn probe_line(out: &Output) -> Option<Value> {
    out.stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
}

pub fn run(s: &Suite, col: usize, cid: &str) -> Cell {
    let r = &s.columns[col];
    let snap = Snapshot::take(&s.canaries, &s.paths.work);
    let bundles = s.paths.work.join("bundles");
    let atk = format!("{cid}-atk");
    let abdir = bundles.join(&atk);
    let host_dir = s.paths.host.to_string_lossy().into_owned();
    let args = vec![
        "/bin/ward-probe".into(),
        "race-flip".into(),
        bundle::VOL_IN.into(),
        host_dir,
        "120".into(),
    ];
    let aspec = bundle::Spec::new(&s.paths, s.cgroup_path(&atk), args);
    if let Err(e) = bundle::write_config(&abdir, &aspec) {
        return Cell::error(TECHNIQUE, &r.label(), &e);
    }
    // The attacker is a neighbour sharing the volume; under ward it runs with
    // the default profile (an allowlist such as nginx's has no symlink or
    // renameat2, but the victim's profile is what is tested here).
    let mut attacker = r.clone();
    if attacker.kind == "ward" {
        attacker.profile = Some("default".into());
    }
    let started = attacker.run_detached(&abdir, &atk);
    let race_dir = s.paths.vol.join("race");
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.status == Some(0) && !race_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut tally = (0usize, 0usize); // (landed inside, refused)
    let mut escapes = Vec::new();
    let mut other = Vec::new();
    let mut victims = Vec::new();
    let mut refusal = String::new();
    if started.status == Some(0) && race_dir.exists() {
        let t0 = Instant::now();
        for i in 0..VICTIMS {
            if t0.elapsed() > BUDGET {
                break;
            }
            let vid = format!("{cid}-v{i}");
            let vdir = bundles.join(&vid);
            let spec = s.spec_for(TECHNIQUE, &vid, s.probe_args(TECHNIQUE, false));
            if let Err(e) = bundle::write_config(&vdir, &spec) {
                other.push(e);
                continue;
            }
            let out = r.run(&vdir, &vid, Duration::from_secs(s.opts.timeout));
            let del = r.delete(&vid);
            let _ = std::fs::remove_dir_all(&vdir);
            victims.push((vid, del));
            match probe_line(&out) {
                Some(p) => match p["verdict"].as_str() {
                    Some("blocked") => tally.0 += 1,
                    Some("escaped") => escapes.push(p["reason"].as_str().unwrap_or("").to_string()),
                    v => other.push(format!("{v:?}: {}", p["reason"])),
                },
                None if !out.timed_out && out.status != Some(0) => {
                    tally.1 += 1;
                    if refusal.is_empty() {
                        refusal = out.stderr.lines().last().unwrap_or("").trim().to_string();
                    }
                }
                None => other.push(format!(
                    "victim gave no output (exit {:?}, timed out {})",
                    out.status, out.timed_out
                )),
            }
        }
    }
    // Stop the attacker: it leaves the real directory in place and reports.
    let _ = std::fs::write(s.paths.vol.join("race-stop"), "");
    let flips_file = s.paths.vol.join("race-flips");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !flips_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let flips = std::fs::read_to_string(&flips_file).unwrap_or_default();
    let _ = attacker.kill(&atk, "KILL");
    let adel = attacker.delete(&atk);
    let _ = std::fs::remove_dir_all(&abdir);

    let findings = snap.verify(&s.canaries, &s.paths.work);
    let mut leaks = s.leaks_after(&attacker, &atk, Some(&adel));
    for (vid, del) in &victims {
        leaks.extend(s.leaks_after(r, vid, Some(del)));
    }
    s.canaries.reset();

    let n = tally.0 + tally.1 + escapes.len();
    let flips_n: u64 = flips
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let summary = format!(
        "{n} victims while the attacker swapped the directory {} times: {} mounts landed inside, {} configs refused, {} escaped{}",
        flips.trim(),
        tally.0,
        tally.1,
        escapes.len(),
        if other.is_empty() {
            String::new()
        } else {
            format!("; other: {}", truncate(&other.join(" | "), 200))
        }
    ) + &if refusal.is_empty() {
        String::new()
    } else {
        format!("; a refusal: {}", truncate(&refusal, 160))
    };
    let (verdict, reason) = if !escapes.is_empty() {
        (
            "escaped",
            format!("{summary}; e.g. {}", truncate(&escapes[0], 200)),
        )
    } else if started.status != Some(0) || flips_n == 0 {
        (
            "not-applicable",
            format!(
                "the attacker container did not swap anything (start exit {:?}: {}; flips {:?})",
                started.status,
                truncate(started.stderr.trim(), 200),
                flips.trim()
            ),
        )
    } else if n == 0 {
        ("not-applicable", format!("no victim reported: {summary}"))
    } else {
        ("blocked", summary)
    };
    let probe = json!({
        "id": TECHNIQUE,
        "tried": "victim containers with a bind mount on VOLUME/race/target while an attacker container swaps VOLUME/race with a symlink to HOSTDIR",
        "results": [],
        "verdict": verdict,
        "reason": reason,
    });
    let out = Output {
        status: Some(0),
        stdout: String::new(),
        stderr: String::new(),
        timed_out: false,
    };
    report::combine(TECHNIQUE, &r.label(), Some(probe), &out, findings, leaks)
}
