use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ward_runtime::oci_spec::runtime::{Process, UserBuilder};

use super::tty::ConsoleSocket;
use ward_runtime::{ContainerId, ExecOptions};

use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json (OCI Process) to run instead of the command line.
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Allocate a terminal (needs --console-socket).
    #[arg(long, short = 't')]
    pub tty: bool,
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// KEY=VALUE, repeatable.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID] inside the container.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility; capabilities are the init's, always.
    #[arg(long = "cap", hide = true)]
    pub cap: Vec<String>,
    #[arg(long, hide = true)]
    pub no_new_privs: bool,
    /// Accepted as in runc: without effect on a running container; a paused one is refused
    /// (its frozen cgroup would freeze the exec'd process before it could start).
    #[arg(long)]
    pub ignore_paused: bool,
    /// As runc: `PATH` or `CONTROLLER:PATH` of a sub-cgroup to run in, relative to the
    /// container's. Only the container's own cgroup (`/`) is accepted, where an exec'd process
    /// always goes.
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    pub cgroup: Vec<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn parse_user(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, "0"));
    Ok((
        u.parse()
            .with_context(|| format!("--user: {u:?} is not a numeric uid"))?,
        g.parse()
            .with_context(|| format!("--user: {g:?} is not a numeric gid"))?,
    ))
}

/// `--cgroup` values that name the container's own cgroup (runc's `/` or `CONTROLLER:/`).
fn check_cgroups(values: &[String]) -> Result<()> {
    for v in values {
        let path = v.split_once(':').map_or(v.as_str(), |(_, p)| p);
        if !path.split('/').all(str::is_empty) {
            bail!(
                "--cgroup {v:?}: refused: an exec'd process joins the container's own cgroup; sub-cgroups are not supported"
            );
        }
    }
    Ok(())
}

pub fn run(g: &GlobalOpts, a: ExecArgs) -> Result<i32> {
    let id = ContainerId::new(&a.id)?;
    if !a.cap.is_empty() {
        bail!("--cap: refused: an exec'd process gets exactly the container's capabilities");
    }
    check_cgroups(&a.cgroup)?;
    let rt = g.runtime()?;
    if a.ignore_paused && rt.state(&id)?.status == "paused" {
        bail!("--ignore-paused: refused: container {id} is paused, and an exec'd process would be frozen before it starts; resume it first");
    }
    let mut process: Process = match &a.process {
        Some(p) => {
            let text = ward_profiles::bounded::read_text(p, ward_profiles::bounded::Follow::Yes)
                .with_context(|| format!("--process {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("--process {}", p.display()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec: no command given (use ID CMD... or --process FILE)");
            }
            // As runc: the container's own process, with these args (env, cwd and user from
            // the container unless overridden below).
            let mut p = rt.init_process(&id)?;
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            p.set_console_size(None);
            p
        }
    };
    if a.tty {
        process.set_terminal(Some(true));
    }
    if !a.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for e in &a.env {
            if !e.contains('=') {
                bail!("--env: {e:?} is not KEY=VALUE");
            }
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| !x.starts_with(&format!("{key}=")));
            env.push(e.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(cwd) = &a.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        process.set_user(UserBuilder::default().uid(uid).gid(gid).build()?);
    }
    let terminal = process.terminal().unwrap_or(false);
    // A terminal in the foreground without --console-socket: Ward holds the pty, as runc.
    let console = if terminal && a.console_socket.is_none() {
        if a.detach {
            bail!("--tty: a detached exec needs --console-socket to hand the terminal to");
        }
        Some(ConsoleSocket::new()?)
    } else {
        None
    };
    let console_socket = match &console {
        Some(c) => Some(c.path().to_path_buf()),
        None => a.console_socket.clone(),
    };
    let pid = rt.exec(
        &id,
        ExecOptions {
            process,
            pid_file: a.pid_file.clone(),
            console_socket,
            preserve_fds: a.preserve_fds,
            io_owner: Some(Default::default()),
            ..Default::default()
        },
        a.detach,
    )?;
    if a.detach {
        return Ok(0);
    }
    if let Some(c) = console {
        let root_uid = rt.ward_state(&id)?.range.host_start;
        let master = c.receive_master(root_uid)?;
        drop(c);
        return super::tty::proxy(master, pid);
    }
    super::wait_exit_code(pid)
}
