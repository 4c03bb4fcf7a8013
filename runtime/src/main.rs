//! `ward`: a runc-compatible CLI over Ward's runtime library. Thin: parse, log once, call.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if args.command.only_prints() {
        // SAFETY: restores the default disposition of SIGPIPE before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let log = cli::logging::init(&args.global);
    let code = match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            let msg = cli::error_line(&e);
            tracing::error!("{msg}");
            if log.to_file {
                // The log file is for the engine (containerd, conmon); people read stderr.
                eprintln!("ward: {msg}");
            }
            1
        }
    };
    std::process::exit(code);
}
