//! `ward profile ...`: tools for profile authors (show, lint, diff, explain, import, export,
//! test). The logic lives in the profiles crate; these are thin adapters.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ward_profiles::{Arch, Severity};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Oci,
    Toml,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    List,
    /// Print a profile fully resolved (extends applied, groups expanded).
    Show { name: String },
    /// Flag dangerous allowances; exit 1 when any finding is an error.
    Lint { name: String },
    /// What B adds and removes compared with A.
    Diff { a: String, b: String },
    /// Is SYSCALL allowed by the profile, and by which rule?
    Explain {
        syscall: String,
        #[arg(long = "in", default_value = "default")]
        profile_name: String,
        #[arg(long)]
        arch: Option<String>,
    },
    /// Turn an OCI/Docker seccomp JSON file into a Ward profile (TOML on stdout).
    Import {
        file: PathBuf,
        #[arg(long, default_value = "imported")]
        name: String,
    },
    /// Learn mode: run a bundle under the `record` profile and write a draft profile.
    Record(super::profile_record::RecordArgs),
    /// Run CMD in a busybox container under `--profile P` (default: the node default) and print each denial.
    Test(super::profile_test::TestArgs),
    /// Print a profile as OCI `linux.seccomp` JSON (runc, crun, Kubernetes localhost/).
    Export {
        name: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Oci)]
        format: ExportFormat,
        #[arg(long)]
        arch: Option<String>,
    },
}

fn load(g: &GlobalOpts, name: &str) -> Result<ward_profiles::Profile> {
    let rt = g.runtime()?;
    ward_profiles::load(name, &rt.node_config().profile_dirs)
        .with_context(|| format!("profile {name:?}"))
}

fn arch(a: &Option<String>) -> Result<Arch> {
    match a {
        None => Ok(Arch::native()),
        Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--arch: {e}")),
    }
}

pub fn run(g: &GlobalOpts, a: ProfileArgs) -> Result<i32> {
    match a.command {
        ProfileCommand::List => {
            for n in ward_profiles::builtin_names() {
                let p = load(g, n)?;
                println!("{:<16} {}", n, p.description());
            }
        }
        ProfileCommand::Show { name } => print!("{}", load(g, &name)?.to_toml()),
        ProfileCommand::Lint { name } => {
            let findings = ward_profiles::lint(&load(g, &name)?);
            let mut errors = 0;
            for f in &findings {
                if matches!(f.severity, Severity::Error) {
                    errors += 1;
                }
                println!("{:?}: {}", f.severity, f.message);
            }
            println!(
                "{name}: {errors} error(s), {} warning(s)",
                findings.len() - errors
            );
            return Ok(if errors > 0 { 1 } else { 0 });
        }
        ProfileCommand::Diff { a, b } => {
            let d = ward_profiles::diff(&load(g, &a)?, &load(g, &b)?);
            print!("{d}");
        }
        ProfileCommand::Explain {
            syscall,
            profile_name,
            arch: ar,
        } => {
            let p = load(g, &profile_name)?;
            println!("{}", ward_profiles::explain(&p, &syscall, arch(&ar)?)?);
        }
        ProfileCommand::Record(a) => return super::profile_record::run(g, a),
        ProfileCommand::Test(a) => return super::profile_test::run(g, a),
        ProfileCommand::Import { file, name } => {
            let text =
                ward_profiles::bounded::read_text(&file, ward_profiles::bounded::Follow::Yes)
                    .with_context(|| format!("read {}", file.display()))?;
            let p = ward_profiles::import_oci_json(&text, &name)
                .with_context(|| format!("{}", file.display()))?;
            print!("{}", p.to_toml());
        }
        ProfileCommand::Export {
            name,
            format,
            arch: ar,
        } => {
            let p = load(g, &name)?;
            match format {
                ExportFormat::Oci => println!(
                    "{}",
                    serde_json::to_string_pretty(&ward_profiles::export_oci(&p, arch(&ar)?))?
                ),
                ExportFormat::Toml => print!("{}", p.to_toml()),
            }
        }
    }
    Ok(0)
}
