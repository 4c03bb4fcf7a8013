//! ward-escape: runs every ward-probe technique inside containers of ward,
//! runc and crun (and unconfined in a throwaway namespace as a sanity
//! column), checks the host after each one, and writes a table, Markdown and
//! JSON. Exits non-zero when anything escapes, or leaks, under ward.

mod bundle;
mod chaos;
mod cpu;
mod ctrd;
mod host;
mod machinery;
mod machinery_cfg;
mod machinery_host;
mod machinery_par;
mod machinery_stdio;
mod race;
mod report;
mod rt;
mod suite;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Ward,
    Runc,
    Crun,
    /// No runtime: the probe runs as full root in a throwaway mount
    /// namespace chrooted into the rootfs, to show each technique can succeed.
    Host,
    /// Through a private containerd with Ward's shim: containerd 2 (`ward-shim`, one column
    /// per --profile), then Debian 12's 1.6 (`ward-shim-1.6`, the first profile).
    Containerd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ward => "ward",
            Kind::Runc => "runc",
            Kind::Crun => "crun",
            Kind::Host => "host",
            Kind::Containerd => "ward-shim",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "ward-escape",
    about = "Escape-attempt chaos suite for OCI runtimes"
)]
pub struct Cli {
    /// Runtimes to test (repeatable).
    #[arg(long = "runtime", value_enum, required = true)]
    pub runtimes: Vec<Kind>,
    /// Binary path, as KIND=PATH (or just PATH for ward). Defaults: $WARD or
    /// target/debug/ward, then `runc`, `crun` on PATH.
    #[arg(long = "runtime-path")]
    pub runtime_paths: Vec<String>,
    /// Ward profile(s); each gets its own column (default: ward's default).
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Comma-separated technique ids (default: all).
    #[arg(long, value_delimiter = ',')]
    pub techniques: Vec<String>,
    /// The static ward-probe binary.
    #[arg(long, env = "WARD_PROBE")]
    pub probe: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run techniques through `exec` into a running container instead of `run`.
    #[arg(long)]
    pub exec: bool,
    /// Chaos mode: techniques concurrently with churn, neighbours and kills.
    #[arg(long)]
    pub chaos: bool,
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Bounds passed to the resource techniques.
    #[arg(long, default_value_t = 2048)]
    pub mem_mib: u64,
    #[arg(long, default_value_t = 4096)]
    pub forks: u32,
    #[arg(long, default_value_t = 1024)]
    pub fill_mib: u64,
    /// Per-technique timeout in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Skip the "Ward's own machinery" section (run by default, except with --exec).
    #[arg(long)]
    pub no_machinery: bool,
    /// Only the "Ward's own machinery" section: no probe technique.
    #[arg(long, conflicts_with = "no_machinery")]
    pub machinery_only: bool,
    /// Keep the work directory for inspection.
    #[arg(long)]
    pub keep: bool,
}

fn find_probe(cli: &Cli) -> Result<PathBuf, String> {
    if let Some(p) = &cli.probe {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().map(PathBuf::from).unwrap_or_default();
    for c in [
        dir.join("ward-probe"),
        dir.join("../x86_64-unknown-linux-gnu/release/ward-probe"),
        dir.join("../../x86_64-unknown-linux-gnu/release/ward-probe"),
    ] {
        if c.exists() {
            return Ok(c);
        }
    }
    Err("ward-probe not found: pass --probe or set WARD_PROBE".into())
}

fn runtime_path(cli: &Cli, k: Kind) -> PathBuf {
    for p in &cli.runtime_paths {
        if let Some((kind, path)) = p.split_once('=') {
            if kind == k.name() {
                return PathBuf::from(path);
            }
        } else if k == Kind::Ward || cli.runtimes.len() == 1 {
            return PathBuf::from(p);
        }
    }
    match k {
        Kind::Ward => std::env::var_os("WARD")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let local = PathBuf::from("target/debug/ward");
                if local.exists() {
                    local.canonicalize().unwrap_or(local)
                } else {
                    PathBuf::from("ward")
                }
            }),
        other => PathBuf::from(other.name()),
    }
}

fn main() {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ward-escape: {e}");
            std::process::exit(2)
        }
    }
}

fn real_main(cli: &Cli) -> Result<i32, String> {
    let probe = find_probe(cli)?;
    let mut columns = Vec::new();
    // The shim columns' containerd releases: containerd 2 (every profile), then 1.6 (the first
    // profile only: the second release checks the shim under the older containerd, not the
    // profiles again).
    let mut releases = Vec::new();
    for &k in &cli.runtimes {
        let path = which(&runtime_path(cli, k));
        let profiles: Vec<Option<String>> = match k {
            Kind::Ward | Kind::Containerd if !cli.profiles.is_empty() => {
                cli.profiles.iter().cloned().map(Some).collect()
            }
            Kind::Containerd => vec![Some("default".into())],
            _ => vec![None],
        };
        if k != Kind::Containerd {
            columns.extend(profiles.into_iter().map(|p| column(k.name(), &path, p)));
            continue;
        }
        let shim = ward_integration::containerd::ward_bin_dir().join("containerd-shim-ward-v2");
        for (i, release) in ctrd::releases().into_iter().enumerate() {
            let kind = ctrd::kind(&release);
            let n = if i == 0 { profiles.len() } else { 1 };
            columns.extend(
                profiles
                    .iter()
                    .take(n)
                    .map(|p| column(&kind, &shim, p.clone())),
            );
            releases.push((kind, release));
        }
    }
    if cli.runtimes.contains(&Kind::Crun) {
        rt::ensure_hugetlb_v1()?;
    }
    let mut s = suite::Suite::new(cli, &probe, &columns)?;
    for (kind, release) in releases {
        let ps: Vec<String> = s
            .columns
            .iter()
            .filter(|c| c.kind == kind)
            .filter_map(|c| c.profile.clone())
            .collect();
        let c = std::sync::Arc::new(ctrd::Ctrd::start(release, &s.paths.rootfs, &ps)?);
        eprintln!(
            "ward-escape: {kind} columns through {} ({})",
            c.release().label(),
            c.dir().display()
        );
        for col in s.columns.iter_mut().filter(|c| c.kind == kind) {
            col.root = c.dir().to_path_buf();
            col.ctrd = Some(c.clone());
        }
    }
    let code = if cli.chaos {
        chaos::run(&mut s, cli)?
    } else {
        s.run_all()?
    };
    let _ = s.canaries.sleeper.kill();
    let _ = s.canaries.sleeper.wait();
    if !cli.keep {
        s.cleanup();
    } else {
        eprintln!("ward-escape: kept {}", s.paths.work.display());
    }
    Ok(code)
}

fn column(kind: &str, path: &std::path::Path, profile: Option<String>) -> rt::Runtime {
    rt::Runtime {
        kind: kind.into(),
        path: path.to_path_buf(),
        profile,
        root: PathBuf::new(),
        log: None,
        ctrd: None,
    }
}

/// Resolve a bare name on PATH so the host checks can hash the binary.
fn which(p: &std::path::Path) -> PathBuf {
    if p.components().count() > 1 {
        return p.to_path_buf();
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    for d in path.split(':') {
        let c = PathBuf::from(d).join(p);
        if c.exists() {
            return c;
        }
    }
    p.to_path_buf()
}
