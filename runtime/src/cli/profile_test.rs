//! `ward profile test --profile P -- CMD...`: run CMD in a throwaway busybox container (or
//! `--rootfs DIR`) under profile P (default: the node's default profile) in report mode, then
//! print each denial the container's supervisor reported. Exits with CMD's exit code.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ward_runtime::oci_spec::runtime::{RootBuilder, Spec};
use ward_runtime::{supervisor, ContainerId, CreateOptions};

use super::{GlobalOpts, SeccompModeArg};

/// The host's static busybox (Debian `busybox-static`).
const HOST_BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Root filesystem to run in (default: a busybox rootfs made from the host's /bin/busybox).
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// Container id (default: ward-test-<pid>).
    #[arg(long)]
    pub id: Option<String>,
    /// The command (after `--`).
    #[arg(trailing_var_arg = true, required = true)]
    pub cmd: Vec<String>,
}

/// A busybox rootfs in `dir`: /bin/busybox and its applets, /etc/passwd, the usual dirs.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::copy(HOST_BUSYBOX, dir.join("bin/busybox"))
        .with_context(|| format!("copy {HOST_BUSYBOX} (install busybox-static)"))?;
    let list = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .with_context(|| format!("{HOST_BUSYBOX} --list"))?;
    for a in String::from_utf8_lossy(&list.stdout).lines() {
        let a = a.trim();
        if !a.is_empty() && a != "busybox" && !a.contains('/') {
            symlink("busybox", dir.join("bin").join(a))?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(g: &GlobalOpts, a: TestArgs) -> Result<i32> {
    if matches!(g.seccomp_mode, Some(SeccompModeArg::Enforce)) {
        bail!("--seccomp-mode enforce: `ward profile test` reports denials, it needs report mode");
    }
    let mut g = g.clone();
    g.seccomp_mode = Some(SeccompModeArg::Report);
    let rt = g.runtime()?;
    let profile = g
        .profile
        .clone()
        .unwrap_or_else(|| rt.node_config().default_profile.clone());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "ward-profile-test-{}-{nanos:x}",
        std::process::id()
    )));
    std::fs::create_dir_all(&tmp.0)?;
    let rootfs = match &a.rootfs {
        Some(r) => std::fs::canonicalize(r).with_context(|| format!("--rootfs {}", r.display()))?,
        None => {
            let r = tmp.0.join("rootfs");
            busybox_rootfs(&r)?;
            r
        }
    };
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default().path(rootfs).readonly(true).build()?,
    ));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
        p.set_args(Some(a.cmd.clone()));
    }
    std::fs::write(tmp.0.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
    let id = ContainerId::new(
        a.id.clone()
            .unwrap_or_else(|| format!("ward-test-{}-{nanos:x}", std::process::id())),
    )?;
    let pid = rt.create(
        &id,
        CreateOptions {
            bundle: tmp.0.clone(),
            ..Default::default()
        },
    )?;
    let dir = rt.state_dir(&id);
    let result = (|| -> Result<(i32, Vec<supervisor::Event>)> {
        rt.start(&id)?;
        let code = super::wait_exit_code(pid)?;
        supervisor::wait_exit(&dir, Duration::from_secs(5));
        Ok((code, supervisor::read_events(&dir)?))
    })();
    rt.delete(&id, true)?;
    let (code, events) = result?;
    let mut denials = 0u64;
    for ev in &events {
        match ev.kind.as_str() {
            "seccomp-denial" => {
                denials += 1;
                println!(
                    "ward: denied {}({}) -> {} [pid {}]",
                    ev.syscall.as_deref().unwrap_or("?"),
                    ev.args.as_deref().unwrap_or_default().join(", "),
                    ev.action.as_deref().unwrap_or("?"),
                    ev.container_pid.or(ev.pid).unwrap_or(0),
                );
            }
            "seccomp-denials-suppressed" => {
                let n = ev.suppressed.unwrap_or(0);
                denials += n;
                println!("ward: ... {n} more denials (rate-limited)");
            }
            _ => println!(
                "ward: {}: {}",
                ev.kind,
                ev.message.as_deref().unwrap_or_default()
            ),
        }
    }
    println!("ward: profile {profile}: {denials} denial(s); command exited {code}");
    Ok(code)
}
