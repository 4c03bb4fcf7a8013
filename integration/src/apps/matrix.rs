//! One cell of the matrix (start, check from outside until it answers or the container
//! stops, remove) and the table.

use std::path::Path;
use std::time::{Duration, Instant};

use super::bundle::RunBundle;
use super::netns::NetNs;
use super::runners::{last_line, line_with, FrontDoor};
use super::{checks, App, Expect};

/// How long an app may take to answer (postgresql's initdb is the slowest, ~5 s here).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// The check passed; what it saw.
    Ok(String),
    /// The run failed; one line saying where.
    Failed(String),
    /// No such combination (no workload profile for this app).
    NotApplicable,
}

impl Cell {
    /// Whether the cell is what `expect` says, and if not, why.
    pub fn judge(&self, expect: Expect) -> Result<(), String> {
        match (expect, self) {
            (Expect::Works, Cell::Ok(_)) => Ok(()),
            (Expect::Refused { line, ward, .. }, Cell::Failed(got))
                if got.contains(line) && ward.is_none_or(|w| got.contains(w)) =>
            {
                Ok(())
            }
            (Expect::Works, got) => Err(format!("expected to work, got {got:?}")),
            (Expect::Refused { line, ward, .. }, got) => Err(format!(
                "expected a refusal with {line:?} (and Ward's {ward:?}), got {got:?}"
            )),
        }
    }

    /// The text shown in the table; `profile` names a workload profile.
    pub fn render(&self, expect: Option<Expect>, profile: Option<&str>) -> String {
        let p = profile.map(|p| format!(" (`{p}`)")).unwrap_or_default();
        match (self, expect) {
            (Cell::Ok(what), _) => format!("ok{p}: {what}"),
            (Cell::Failed(line), Some(Expect::Refused { .. })) => {
                format!("refused by design{p}: {line}")
            }
            (Cell::Failed(line), _) => format!("**FAILED**{p}: {line}"),
            (Cell::NotApplicable, _) => "—".into(),
        }
    }
}

/// Run `app` once through `door` on `image` and check it from outside.
pub fn run_cell(door: &FrontDoor, app: &App, image: &Path, id: &str) -> Cell {
    let started = Instant::now();
    let cell = run_cell_inner(door, app, image, id);
    eprintln!(
        "apps: {id}: {cell:?} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    cell
}

fn run_cell_inner(door: &FrontDoor, app: &App, image: &Path, id: &str) -> Cell {
    let ns = match NetNs::new() {
        Ok(ns) => ns,
        Err(e) => return Cell::Failed(format!("test setup: {e}")),
    };
    let mut b = match RunBundle::new(app, image, &ns.path()) {
        Ok(b) => b,
        Err(e) => return Cell::Failed(format!("test setup: {e}")),
    };
    let mut s = match door.start(&mut b, id) {
        Ok(s) => s,
        Err(line) => return Cell::Failed(line),
    };
    let end = Instant::now() + READY_TIMEOUT;
    let cell = loop {
        let last = match checks::run(app.check, &ns) {
            Ok(what) => break Cell::Ok(what),
            Err(why) => why,
        };
        if !door.running(&mut s) {
            // Give the output a moment to land in the log (the shim copies it).
            std::thread::sleep(Duration::from_millis(300));
            break Cell::Failed(failure_line(&b, app, id, door.runtime_log()));
        }
        if Instant::now() > end {
            break Cell::Failed(format!("no answer in {READY_TIMEOUT:?}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    door.remove(s);
    if let Cell::Failed(_) = &cell {
        let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
        eprintln!("apps: {id}: container output (last 15 lines):\n    {tail}");
    }
    cell
}

/// The line that says why the app stopped: the one an expected refusal names, else the
/// log's first error-looking line, else its last line.
/// Ward's own warning about the rootfs it made read-only is appended when the app failed on
/// it: from the CLI's output, or from the shim's log (in containerd's).
fn failure_line(b: &RunBundle, app: &App, id: &str, runtime_log: Option<String>) -> String {
    let app_line = app_failure_line(b, app);
    let app_line = format!("`{}`", strip_timestamp(&app_line));
    if !app_line.contains("Read-only") {
        return app_line;
    }
    let from_runtime = || {
        runtime_log?
            .lines()
            .find(|l| l.contains(id) && l.contains("field=root.readonly"))
            .map(str::to_string)
    };
    match line_with(b, "field=root.readonly").or_else(from_runtime) {
        Some(w) => {
            let what = w.split("field=").nth(1).unwrap_or_default();
            let what = what.split(" (").next().unwrap_or(what);
            format!("{app_line}; Ward at create: `{what}`")
        }
        None => app_line,
    }
}

fn app_failure_line(b: &RunBundle, app: &App) -> String {
    let expected = [app.default, app.workload.map_or(app.default, |w| w.1)];
    for e in expected {
        if let Expect::Refused { line, .. } = e {
            if let Some(l) = line_with(b, line) {
                return l;
            }
        }
    }
    for needle in ["emerg", "Error", "error", "FATAL", "denied"] {
        if let Some(l) = line_with(b, needle) {
            return l;
        }
    }
    last_line(b).unwrap_or_else(|| "exited without output".into())
}

/// `2026/12/05 19:14:29 [emerg] ...` (nginx's log prefix) → `[emerg] ...`.
fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let stamp = b.len() > 20
        && b[4] == b'/'
        && b[7] == b'/'
        && b[13] == b':'
        && b[19] == b' '
        && b[..4].iter().all(u8::is_ascii_digit);
    if stamp {
        &line[20..]
    } else {
        line
    }
}

/// A markdown table: one row per app, one column per front door.
pub fn table(columns: &[String], rows: &[(String, Vec<String>)]) -> String {
    let mut t = format!("| app | {} |\n", columns.join(" | "));
    t.push_str(&format!("|---|{}\n", "---|".repeat(columns.len())));
    for (app, cells) in rows {
        t.push_str(&format!("| {app} | {} |\n", cells.join(" | ")));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_nginx_timestamps_only() {
        assert_eq!(
            strip_timestamp("2026/12/05 19:14:29 [emerg] 1#1: mkdir() failed"),
            "[emerg] 1#1: mkdir() failed"
        );
        assert_eq!(strip_timestamp("PermissionError: x"), "PermissionError: x");
    }

    #[test]
    fn judges_refusals_by_their_line() {
        let refused = Expect::Refused {
            line: "Read-only file system",
            ward: Some("applied=true"),
            why: "",
        };
        let both = "`x (30: Read-only file system)`; Ward at create: `root.readonly applied=true`";
        assert!(Cell::Failed(both.into()).judge(refused).is_ok());
        assert!(Cell::Failed("`x (30: Read-only file system)`".into())
            .judge(refused)
            .is_err());
        assert!(Cell::Failed("`Permission denied`".into())
            .judge(refused)
            .is_err());
        assert!(Cell::Ok("HTTP 200".into()).judge(refused).is_err());
        assert!(Cell::Failed("x".into()).judge(Expect::Works).is_err());
        assert!(Cell::Ok("HTTP 200".into()).judge(Expect::Works).is_ok());
    }
}
