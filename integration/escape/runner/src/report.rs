//! Combining the probe's verdict with the host checks, and the three
//! outputs: a text table, Markdown and JSON.

use crate::rt::Output;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Cell {
    pub technique: String,
    pub column: String,
    /// blocked | escaped | n.a. | error
    pub verdict: String,
    pub probe_verdict: Option<String>,
    pub reason: String,
    pub host_findings: Vec<String>,
    pub leaks: Vec<String>,
    pub probe: Option<Value>,
    /// Whether the runtime's log named the denied syscall (ward only).
    pub visible: Option<bool>,
}

impl Cell {
    pub fn na(t: &str, col: &str, why: &str) -> Cell {
        Cell {
            verdict: "n.a.".into(),
            ..Cell::error(t, col, why)
        }
    }

    pub fn error(t: &str, col: &str, why: &str) -> Cell {
        Cell {
            technique: t.into(),
            column: col.into(),
            verdict: "error".into(),
            probe_verdict: None,
            reason: why.into(),
            host_findings: vec![],
            leaks: vec![],
            probe: None,
            visible: None,
        }
    }
}

/// Techniques that are a config a runtime may refuse: refusing is blocking.
pub const CONFIG_TECHNIQUES: &[&str] = &[
    "symlink-mount-target",
    "symlink-mount-dest",
    "symlink-mount-volume",
    "symlink-mount-race",
    "symlink-proc-target",
    "symlink-dev-target",
    "host-sockets",
];

/// A technique is blocked only if the probe says so *and* the host agrees.
pub fn combine(
    t: &str,
    col: &str,
    probe: Option<Value>,
    out: &Output,
    findings: Vec<String>,
    leaks: Vec<String>,
) -> Cell {
    let pv = probe
        .as_ref()
        .and_then(|p| p["verdict"].as_str())
        .map(String::from);
    let preason = probe
        .as_ref()
        .and_then(|p| p["reason"].as_str())
        .unwrap_or("")
        .to_string();
    let (verdict, reason) = if !findings.is_empty() {
        (
            "escaped",
            format!(
                "host check failed: {}; probe: {}",
                findings.join("; "),
                preason
            ),
        )
    } else {
        match pv.as_deref() {
            Some("escaped") => ("escaped", preason),
            Some("blocked") => ("blocked", preason),
            Some("not-applicable") => ("n.a.", preason),
            _ => {
                let err = out
                    .stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if CONFIG_TECHNIQUES.contains(&t) && !out.timed_out && out.status != Some(0) {
                    ("blocked", format!("the runtime refused the config: {err}"))
                } else if out.timed_out {
                    ("error", "timed out".to_string())
                } else {
                    (
                        "error",
                        format!("no probe output (exit {:?}): {err}", out.status),
                    )
                }
            }
        }
    };
    Cell {
        technique: t.into(),
        column: col.into(),
        verdict: verdict.into(),
        probe_verdict: pv,
        reason,
        host_findings: findings,
        leaks,
        probe,
        visible: None,
    }
}

fn grid(cells: &[Cell]) -> BTreeMap<(&str, &str), &Cell> {
    cells
        .iter()
        .map(|c| ((c.technique.as_str(), c.column.as_str()), c))
        .collect()
}

fn mark(c: Option<&&Cell>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.leaks.is_empty() => c.verdict.clone(),
        Some(c) => format!("{}+leak", c.verdict),
    }
}

pub fn table(techs: &[String], cols: &[String], cells: &[Cell]) -> String {
    let g = grid(cells);
    let w0 = techs.iter().map(|t| t.len()).max().unwrap_or(9).max(9);
    let ws: Vec<usize> = cols.iter().map(|c| c.len().max(12)).collect();
    let mut s = format!("{:<w0$}", "technique");
    for (c, w) in cols.iter().zip(&ws) {
        s += &format!(" | {c:<w$}");
    }
    s.push('\n');
    s += &"-".repeat(s.len());
    s.push('\n');
    for t in techs {
        s += &format!("{t:<w0$}");
        for (c, w) in cols.iter().zip(&ws) {
            s += &format!(" | {:<w$}", mark(g.get(&(t.as_str(), c.as_str()))));
        }
        s.push('\n');
    }
    s += &summary(cols, cells).join("\n");
    s
}

fn summary(cols: &[String], cells: &[Cell]) -> Vec<String> {
    cols.iter()
        .map(|c| {
            let n = |v: &str| {
                cells
                    .iter()
                    .filter(|x| &x.column == c && x.verdict == v)
                    .count()
            };
            let leaks = cells
                .iter()
                .filter(|x| &x.column == c && !x.leaks.is_empty())
                .count();
            format!(
                "{c}: {} blocked, {} escaped, {} n.a., {} error, {} with leaks",
                n("blocked"),
                n("escaped"),
                n("n.a."),
                n("error"),
                leaks
            )
        })
        .collect()
}

pub fn markdown(
    techs: &[String],
    cols: &[String],
    cells: &[Cell],
    exec: bool,
    chaos: Option<&[String]>,
) -> String {
    let g = grid(cells);
    let mut s = String::from("# Escape-attempt suite results\n\n");
    s += &format!(
        "Generated by `ward-escape` ({} mode) on {}. Each cell combines the probe's verdict inside the \
         container with the host-side checks: `blocked` needs both to agree. `host` is the unconfined \
         sanity column (full root in a throwaway mount namespace) showing each technique can succeed.\n\n",
        if exec { "exec" } else { "run" },
        kernel()
    );
    s += "## By runtime\n\n";
    s += &compact(techs, cols, cells);
    s += "\n## Every column\n\n";
    s += "| technique |";
    for c in cols {
        s += &format!(" {c} |");
    }
    s += "\n|---|";
    for _ in cols {
        s += "---|";
    }
    s.push('\n');
    for t in techs {
        s += &format!("| `{t}` |");
        for c in cols {
            let m = mark(g.get(&(t.as_str(), c.as_str())));
            let m = match m.as_str() {
                "escaped" => "**escaped**".to_string(),
                _ => m,
            };
            s += &format!(" {m} |");
        }
        s.push('\n');
    }
    s += "\n";
    for l in summary(cols, cells) {
        s += &format!("- {l}\n");
    }
    s += "\n## Why (escaped, error and leak cells)\n\n";
    for c in cells {
        if c.verdict == "escaped" || c.verdict == "error" || !c.leaks.is_empty() {
            let mut r = c.reason.replace('|', "\\|");
            if !c.leaks.is_empty() {
                r += &format!(" — leaks: {}", c.leaks.join("; "));
            }
            s += &format!(
                "- `{}` under {}: {}\n",
                c.technique,
                c.column,
                crate::suite::truncate(&r, 300)
            );
        }
    }
    s += "\n## Visibility of denied syscalls\n\n";
    for col in cols {
        let v: Vec<&Cell> = cells
            .iter()
            .filter(|c| &c.column == col && c.visible.is_some())
            .collect();
        if v.is_empty() {
            continue;
        }
        let seen = v.iter().filter(|c| c.visible == Some(true)).count();
        s += &format!(
            "- {col}: {seen} of {} techniques blocked with EPERM/ENOSYS had the syscall and container id in `--log` (JSON){}\n",
            v.len(),
            if seen < v.len() {
                let silent: Vec<&str> =
                    v.iter().filter(|c| c.visible == Some(false)).map(|c| c.technique.as_str()).collect();
                format!("; not found in the log: {}", silent.join(", "))
            } else {
                String::new()
            }
        );
    }
    let weak: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.column == "host" && c.verdict == "blocked")
        .collect();
    if !weak.is_empty() {
        s += "\n## Rows the unconfined `host` column could not make succeed here\n\n\
              On this machine these stay blocked even for full root, so their `blocked` in the other \
              columns proves less (the machine's own sandbox, kernel config or missing capability stops them):\n\n";
        for c in weak {
            s += &format!(
                "- `{}`: {}\n",
                c.technique,
                crate::suite::truncate(&c.reason.replace('|', "\\|"), 200)
            );
        }
    }
    if let Some(notes) = chaos {
        s += "\n## Chaos run\n\n";
        for n in notes {
            s += &format!("- {n}\n");
        }
    }
    s
}

/// One column per runtime (`ward`, `ward-shim`, `runc`, ...), its profiles
/// folded: a cell shows the verdict every profile agrees on, or the counts
/// and which profiles differ. The README embeds this table.
pub fn compact(techs: &[String], cols: &[String], cells: &[Cell]) -> String {
    let g = grid(cells);
    let mut kinds: Vec<&str> = Vec::new();
    for c in cols {
        let k = c.split(':').next().unwrap_or(c);
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    let members = |k: &str| -> Vec<&String> {
        cols.iter()
            .filter(|c| c.split(':').next() == Some(k))
            .collect()
    };
    let mut s = String::from("| technique |");
    for k in &kinds {
        let n = members(k).len();
        if n > 1 {
            s += &format!(" {k} ({n} profiles) |");
        } else {
            s += &format!(" {} |", members(k)[0]);
        }
    }
    s += "\n|---|";
    for _ in &kinds {
        s += "---|";
    }
    s.push('\n');
    for t in techs {
        s += &format!("| `{t}` |");
        for k in &kinds {
            let marks: Vec<(String, String)> = members(k)
                .iter()
                .map(|c| {
                    let p = c.split_once(':').map_or("", |x| x.1).to_string();
                    (mark(g.get(&(t.as_str(), c.as_str()))), p)
                })
                .collect();
            let first = &marks[0].0;
            let cell = if marks.iter().all(|(m, _)| m == first) {
                first.clone()
            } else {
                let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (m, p) in &marks {
                    by.entry(m.as_str()).or_default().push(p.as_str());
                }
                by.iter()
                    .map(|(m, ps)| format!("{m}: {}", ps.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let cell = if cell.contains("escaped") {
                format!("**{cell}**")
            } else {
                cell
            };
            s += &format!(" {cell} |");
        }
        s.push('\n');
    }
    s
}

pub fn json(cells: &[Cell], chaos: Option<&[String]>) -> String {
    let v: Vec<Value> = cells
        .iter()
        .map(|c| {
            json!({
                "technique": c.technique, "column": c.column, "verdict": c.verdict,
                "probe_verdict": c.probe_verdict, "reason": c.reason,
                "host_findings": c.host_findings, "leaks": c.leaks, "probe": c.probe,
                "denial_logged": c.visible,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({"kernel": kernel(), "results": v, "chaos": chaos}))
        .unwrap_or_default()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_default()
}
