//! `--log`, `--log-format text|json`, `--debug`: tracing to the engine's log file (runc's
//! JSON line format: level, msg, time) or to stderr.

use std::sync::Mutex;

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

use super::{GlobalOpts, LogFormat};

pub struct LogTarget {
    pub to_file: bool,
}

pub fn init(g: &GlobalOpts) -> LogTarget {
    // On a terminal only warnings and errors; the engine's log file gets info too.
    let level = match (g.debug, g.log.is_some()) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    // libcontainer is chatty at info; keep its own lines at warn unless debugging.
    let filter = EnvFilter::try_from_env("WARD_LOG").unwrap_or_else(|_| {
        EnvFilter::new(if g.debug {
            "debug".to_string()
        } else {
            format!("{level},libcontainer=off,libcgroups=off")
        })
    });
    let file = g.log.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let to_file = file.is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(g.debug);
    let json = matches!(g.log_format, LogFormat::Json);
    match (file, json) {
        (Some(f), true) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(Mutex::new(f))
            .init(),
        (Some(f), false) => builder.with_ansi(false).with_writer(Mutex::new(f)).init(),
        (None, true) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .init(),
        (None, false) => {
            use std::io::IsTerminal;
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .init()
        }
    }
    LogTarget { to_file }
}
