//! The CLI definition: global flags and one file per verb.

pub mod logging;

mod checkcmd;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod profile;
mod profile_record;
mod profile_test;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod tty;
mod update;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ward_runtime::{Runtime, RuntimeOptions};

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SeccompModeArg {
    Report,
    Enforce,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalOpts {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/ward", env = "WARD_ROOT")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[arg(long, global = true)]
    pub debug: bool,
    /// linux.cgroupsPath is systemd's slice:prefix:name (default system.slice:ward:<id>);
    /// a transient scope asked of systemd over D-Bus where systemd runs, the same cgroupfs
    /// path where it does not.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Node config (default /etc/ward/ward.toml, built-in defaults if absent).
    #[arg(long, global = true, env = "WARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Sandbox profile: a built-in name, a name in the node's profile_dirs, or a path.
    #[arg(long, global = true, env = "WARD_PROFILE")]
    pub profile: Option<String>,
    /// Denied syscalls: `report` (denied and reported as events, the default) or `enforce`
    /// (denied in the kernel only). Beats the node config's `seccomp_mode`.
    #[arg(long, global = true, value_enum)]
    pub seccomp_mode: Option<SeccompModeArg>,
    /// Accepted for runc compatibility, with a value (`--rootless auto`) or without one
    /// (`spec --rootless`): Ward always uses a user namespace.
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "ward",
    version,
    about = "Ward: a runc-compatible OCI runtime that always runs containers in an enforced sandbox"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (runs up to the user program; `start` runs it).
    Create(create::CreateArgs),
    /// Start a created container.
    Start(start::StartArgs),
    /// Create and start a container; without -d wait for it and delete it.
    Run(run::RunArgs),
    /// Print a container's seccomp denial events (and cgroup stats, as runc), following by default.
    Events(events::EventsArgs),
    /// Print a container's OCI state as JSON.
    State(state::StateArgs),
    /// Send a signal to a container's init (or all its processes).
    Kill(kill::KillArgs),
    /// Delete a container and everything Ward made for it.
    Delete(delete::DeleteArgs),
    /// Run another process in a running container, under the same sandbox.
    Exec(exec::ExecArgs),
    /// List a container's processes.
    Ps(ps::PsArgs),
    /// Freeze every process of a container.
    Pause(pause::PauseArgs),
    /// Thaw a paused container.
    Resume(resume::ResumeArgs),
    /// Change a container's cgroup limits (kept within the node's policy).
    Update(update::UpdateArgs),
    /// List containers.
    List(list::ListArgs),
    /// Print the OCI runtime features document.
    Features,
    /// Write a hardened config.json template for a rootfs.
    Spec(spec::SpecArgs),
    /// Tools for profile authors: show, lint, diff, explain, import, export, record, test.
    Profile(profile::ProfileArgs),
    /// Check that this node can run Ward's sandbox.
    Check(checkcmd::CheckArgs),
}

impl Command {
    /// Verbs that only print (no container is made, changed or waited for). For them a
    /// closed stdout (`ward list | head`) ends the process quietly, as for any Unix filter,
    /// instead of a panic on EPIPE. Verbs that run containers keep SIGPIPE ignored: dying
    /// half-way would leave a container behind.
    pub fn only_prints(&self) -> bool {
        match self {
            Command::State(_)
            | Command::List(_)
            | Command::Ps(_)
            | Command::Features
            | Command::Check(_)
            | Command::Events(_) => true,
            Command::Profile(p) => !matches!(
                p.command,
                profile::ProfileCommand::Record(_) | profile::ProfileCommand::Test(_)
            ),
            _ => false,
        }
    }
}

impl GlobalOpts {
    pub fn runtime(&self) -> Result<Runtime> {
        self.runtime_with_profile(self.profile.clone())
    }

    /// The runtime with `profile` in place of `--profile`.
    pub fn runtime_with_profile(&self, profile: Option<String>) -> Result<Runtime> {
        use ward_runtime::config::SeccompMode;
        Ok(Runtime::new(RuntimeOptions {
            root: self.root.clone(),
            config_path: self.config.clone(),
            profile,
            systemd_cgroup: self.systemd_cgroup,
            seccomp_mode: self.seccomp_mode.map(|m| match m {
                SeccompModeArg::Report => SeccompMode::Report,
                SeccompModeArg::Enforce => SeccompMode::Enforce,
            }),
            event_log: ward_runtime::supervisor::EventLog {
                path: self.log.clone(),
                json: matches!(self.log_format, LogFormat::Json),
            },
            // Pod joins only where the node config enables them ([pods] enabled).
            pods: false,
        })?)
    }
}

/// Run the verb; the value is the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Create(a) => create::run(g, a),
        Command::Start(a) => start::run(g, a),
        Command::Run(a) => run::run(g, a),
        Command::State(a) => state::run(g, a),
        Command::Events(a) => events::run(g, a),
        Command::Kill(a) => kill::run(g, a),
        Command::Delete(a) => delete::run(g, a),
        Command::Exec(a) => exec::run(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Pause(a) => pause::run(g, a),
        Command::Resume(a) => resume::run(g, a),
        Command::Update(a) => update::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Features => features::run(),
        Command::Spec(a) => spec::run(g, a),
        Command::Check(a) => checkcmd::run(g, a),
        Command::Profile(a) => profile::run(g, a),
    }
}

/// Wait for a child and turn its end into a shell-style exit code.
pub fn wait_exit_code(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    let pid = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(anyhow::anyhow!("waitpid {pid}: {e}")),
        }
    }
}

/// One line for an error and its causes, skipping causes whose text the message already holds.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency check (conflicting flags and the like panic in debug builds
    /// only when the command is used; this catches them in `cargo test`).
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
