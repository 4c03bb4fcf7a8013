//! containerd-shim-ward-v2: containerd's task API v2 over Ward's runtime library.
//!
//! Process layout (see README): `main` forks the single-threaded launcher
//! first, while this process still has one thread, then hands over to the
//! containerd-shim crate (ttrpc server, threads). The launcher does every
//! runtime-library call; this process never forks.

mod console;
mod error;
mod events;
mod info;
mod io;
mod launcher;
mod logging;
mod metrics;
mod oom;
mod options;
mod process;
mod service;
mod shim;
mod task;
mod watch;

use launcher::backend::Backend;

fn make_backend(namespace: &str) -> error::Result<Box<dyn Backend>> {
    #[cfg(feature = "testing")]
    if std::env::var("WARD_SHIM_TEST_BACKEND").as_deref() == Ok("host") {
        tracing::warn!("TEST BACKEND: processes run on the host without any sandbox");
        return Ok(Box::new(launcher::host::HostBackend::default()));
    }
    Ok(Box::new(launcher::ward::WardBackend::new(namespace)?))
}

/// One malloc arena for the whole shim. glibc gives each thread that allocates its own arena
/// (up to 8 per core); the shim's threads allocate little and rarely at the same time, and
/// each extra arena kept tens of KiB resident per pod. Called first in `main`, before any
/// thread or the launcher exists.
fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// `containerd-shim-ward-v2 --ward-launcher NAMESPACE [-debug] -- SHIM ARGS...`: a launcher
/// started by a serving shim whose first launcher died (see launcher/respawn.rs). Its socket
/// is fd 0; the shim's own arguments after `--` are only there for `ps`.
fn launcher_mode(args: &[std::ffi::OsString]) -> ! {
    let namespace = args
        .first()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let debug = args.get(1).is_some_and(|a| a == "-debug");
    // The shim's cwd is the bundle: its `log` FIFO is containerd's shim log.
    logging::init_respawned_launcher(debug);
    launcher::respawn::serve(move || make_backend(&namespace))
}

fn main() {
    one_malloc_arena();
    let args: Vec<_> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == launcher::respawn::LAUNCHER_MODE)
    {
        launcher_mode(&args[2..]);
    }
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-ward-v2: {e}");
            std::process::exit(1);
        }
    };
    if flags.info {
        use std::io::Write;
        match info::run(std::io::stdin().lock()) {
            Ok(bytes) => {
                let _ = std::io::stdout().write_all(&bytes);
                return;
            }
            Err(e) => {
                eprintln!("containerd-shim-ward-v2: {e}");
                std::process::exit(1);
            }
        }
    }
    if flags.version {
        println!("containerd-shim-ward-v2 {}", env!("CARGO_PKG_VERSION"));
        println!("  runtime: {}", shim::RUNTIME_ID);
        println!("  task API: v2 (containerd-shim 0.10)");
        return;
    }
    let serving = flags.action.is_empty();
    // containerd 1.6 reads the `start` action's combined stdout+stderr as the
    // socket address: that action must print nothing else, so it does not log.
    if flags.action != "start" {
        logging::init(serving, flags.debug);
    }
    if serving || flags.action == "delete" {
        let namespace = flags.namespace.clone();
        match launcher::spawn(move || make_backend(&namespace)) {
            Ok(l) => {
                tracing::debug!(pid = l.pid.as_raw(), "launcher forked");
                shim::set_launcher(l)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the launcher");
                eprintln!("containerd-shim-ward-v2: cannot start the launcher: {e}");
                std::process::exit(1);
            }
        }
    }
    let config = containerd_shim::Config {
        no_setup_logger: true,
        ..Default::default()
    };
    containerd_shim::run::<shim::WardShim>(shim::RUNTIME_ID, Some(config));
}
