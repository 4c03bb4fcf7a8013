//! `ward events ID`: the container's seccomp denial events, one JSON object a line, as the
//! supervisor wrote them to `<root>/.ward/<id>/events.jsonl`; plus runc's `events` stats.
//!
//! runc semantics kept: follow by default; `--stats` prints one stats object and exits;
//! `--interval` sets how often stats are printed while following (`{"type":"stats",...}`).
//! Added: `--once` prints the denial events recorded so far and exits. Following ends when
//! the container is deleted, or once it has stopped and its supervisor has exited.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ward_runtime::{supervisor, ContainerId};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the denial events recorded so far and exit (no stats).
    #[arg(long, alias = "no-follow", conflicts_with = "stats")]
    pub once: bool,
    /// Print the container's cgroup stats once and exit (runc's `events --stats`).
    #[arg(long)]
    pub stats: bool,
    /// While following, print stats this often (runc's default 5s); `0s` for denials only.
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    pub id: String,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 5s, 500ms, 1m"))?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("{s:?}: must not be negative"));
    }
    Ok(Duration::from_secs_f64(v * mul))
}

fn stats_line(rt: &ward_runtime::Runtime, id: &ContainerId) -> Result<String> {
    let stats = rt.stats(id)?;
    Ok(serde_json::json!({"type": "stats", "id": id.as_str(), "data": stats}).to_string())
}

pub fn run(g: &GlobalOpts, a: EventsArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    let rt = g.runtime()?;
    let dir = rt.state_dir(&id);
    if !dir.exists() {
        bail!("container {id} does not exist");
    }
    let mut out = std::io::stdout().lock();
    if a.stats {
        writeln!(out, "{}", stats_line(&rt, &id)?)?;
        return Ok(0);
    }
    let path = dir.join(supervisor::EVENTS_FILE);
    if a.once {
        // `state` notices (and records, as an event) a supervisor that died.
        let _ = rt.state(&id);
        for ev in supervisor::read_events(&dir)? {
            writeln!(out, "{}", serde_json::to_string(&ev)?)?;
        }
        return Ok(0);
    }
    let mut offset = 0u64;
    let mut partial = String::new();
    let mut next_stats = Instant::now() + a.interval;
    loop {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(SeekFrom::Start(offset))
                .with_context(|| format!("seek {}", path.display()))?;
            let mut buf = String::new();
            let n = f.read_to_string(&mut buf).unwrap_or(0);
            offset += n as u64;
            partial.push_str(&buf);
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                out.write_all(line.as_bytes())?;
            }
            out.flush()?;
        }
        if !dir.exists() {
            return Ok(0);
        }
        let stopped = rt.state(&id).map(|s| s.status == "stopped").unwrap_or(true);
        if stopped && supervisor::running_mode(&dir).is_none() {
            // Drain what the supervisor wrote last, then end.
            if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) <= offset {
                return Ok(0);
            }
            continue;
        }
        if !a.interval.is_zero() && Instant::now() >= next_stats {
            if let Ok(line) = stats_line(&rt, &id) {
                writeln!(out, "{line}")?;
            }
            next_stats = Instant::now() + a.interval;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
