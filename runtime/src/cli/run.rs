use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{bail, Result};
use clap::Args;
use ward_runtime::ContainerId;

use super::create::CreateArgs;
use super::tty::ConsoleSocket;
use super::GlobalOpts;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Detach: return once the container runs.
    #[arg(long, short = 'd')]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

pub fn run(g: &GlobalOpts, a: RunArgs) -> Result<i32> {
    let id = ContainerId::new(&a.create.id)?;
    let rt = g.runtime()?;
    // process.terminal in the foreground without --console-socket: Ward holds the pty, as runc.
    let console = if a.create.console_socket.is_none() && wants_terminal(&a.create.bundle) {
        if a.detach {
            bail!("process.terminal: a detached container needs --console-socket to hand the terminal to");
        }
        Some(ConsoleSocket::new()?)
    } else {
        None
    };
    let mut options = a.create.options();
    if let Some(c) = &console {
        options.console_socket = Some(c.path().to_path_buf());
    }
    let pid = rt.create(&id, options)?;
    let master = match &console {
        Some(c) => match c.receive_master(0) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = rt.delete(&id, true);
                return Err(e);
            }
        },
        None => None,
    };
    drop(console);
    if let Err(e) = rt.start(&id) {
        let _ = rt.delete(&id, true);
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    CHILD.store(pid, Ordering::SeqCst);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: installs a handler that only calls kill(2).
        unsafe { libc::signal(sig, forward as *const () as libc::sighandler_t) };
    }
    let code = match master {
        Some(m) => super::tty::proxy(m, pid),
        None => super::wait_exit_code(pid),
    };
    let code = match code {
        Ok(c) => c,
        Err(e) => {
            let _ = rt.delete(&id, true);
            return Err(e);
        }
    };
    rt.delete(&id, true)?;
    Ok(code)
}

/// Whether the bundle's config.json asks for a terminal (`process.terminal`). An unreadable
/// config is left to `create`, which names the problem.
fn wants_terminal(bundle: &Path) -> bool {
    let path = bundle.join("config.json");
    ward_profiles::bounded::read_text(&path, ward_profiles::bounded::Follow::No)
        .ok()
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v.pointer("/process/terminal").and_then(|t| t.as_bool()))
        .unwrap_or(false)
}
