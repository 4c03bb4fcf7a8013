//! `ward profile record --bundle DIR -o draft.toml`: learn mode. Runs the bundle in the
//! foreground under the `record` profile (every syscall reported to the supervisor and let
//! through), then drafts a profile from what it saw with `draft_from_recording`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ward_runtime::{supervisor, ContainerId, CreateOptions};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Bundle directory (holds config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Where to write the draft profile (TOML).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Name of the drafted profile (default: the output file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Container id (default: ward-record-<pid>).
    #[arg(long)]
    pub id: Option<String>,
    /// Also write the raw recording (JSON: syscalls with arguments, paths) here.
    #[arg(long)]
    pub recording: Option<PathBuf>,
}

/// Directories a draft proposes as writable: the parents of the paths written, outside
/// what every container already has writable or must never get (/tmp of the record
/// profile, /dev, /proc, /sys).
pub fn proposed_write_dirs(written: &BTreeSet<String>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for p in written {
        let dir = Path::new(p).parent().unwrap_or(Path::new("/"));
        let skip = ["/tmp", "/dev", "/proc", "/sys"]
            .iter()
            .any(|s| dir.starts_with(s));
        if !skip && dir != Path::new("/") {
            out.insert(dir.display().to_string());
        }
    }
    out.into_iter().collect()
}

pub fn run(g: &GlobalOpts, a: RecordArgs) -> Result<i32> {
    if g.profile.as_deref().is_some_and(|p| p != "record") {
        bail!("--profile: `ward profile record` always runs under the `record` profile");
    }
    let name = match &a.name {
        Some(n) => n.clone(),
        None => a
            .output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "learned".into()),
    };
    let rt = g.runtime_with_profile(Some("record".into()))?;
    let id = ContainerId::new(
        a.id.clone()
            .unwrap_or_else(|| format!("ward-record-{}", std::process::id())),
    )?;
    let pid = rt.create(
        &id,
        CreateOptions {
            bundle: a.bundle.clone(),
            ..Default::default()
        },
    )?;
    let dir = rt.state_dir(&id);
    let result = (|| -> Result<(i32, supervisor::Recording)> {
        rt.start(&id)?;
        let code = super::wait_exit_code(pid)?;
        // The init is reaped: no task uses the filter, the supervisor writes the recording.
        if !supervisor::wait_exit(&dir, Duration::from_secs(10)) {
            bail!("the learn-mode supervisor did not finish within 10 s");
        }
        Ok((code, supervisor::read_recording(&dir)?))
    })();
    rt.delete(&id, true)?;
    let (code, rec) = result?;
    if let Some(p) = &a.recording {
        std::fs::write(p, serde_json::to_vec_pretty(&rec)?)
            .with_context(|| format!("write {}", p.display()))?;
    }
    let draft = ward_profiles::draft_from_recording(
        &name,
        &rec.syscalls,
        &proposed_write_dirs(&rec.written),
    );
    // The draft must load: it is the input of the next step (tune, lint, enforce).
    ward_profiles::parse(&a.output.display().to_string(), &draft, &[])
        .context("the drafted profile does not load (please report this)")?;
    std::fs::write(&a.output, &draft).with_context(|| format!("write {}", a.output.display()))?;
    eprintln!(
        "ward: recorded {} calls of {} syscalls, {} paths ({} skipped); workload exit code {code}; draft written to {}",
        rec.calls,
        rec.syscalls.len(),
        rec.read.len() + rec.written.len() + rec.exec.len(),
        rec.paths_skipped,
        a.output.display()
    );
    Ok(code)
}
