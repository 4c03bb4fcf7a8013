use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Result;
use clap::Args;
use ward_runtime::ContainerId;

use super::create::CreateArgs;
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
    let pid = rt.create(&id, a.create.options())?;
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
    let code = super::wait_exit_code(pid)?;
    rt.delete(&id, true)?;
    Ok(code)
}
