//! `tracing` to containerd's shim log: the `log` FIFO in the bundle directory
//! (the serving shim's cwd), as text, or JSON with `WARD_SHIM_LOG_FORMAT=json`.
//! Level: `WARD_SHIM_LOG` (an env-filter), else debug with containerd's
//! `-debug`, else info. The `delete` action logs to stderr, which containerd
//! records in its own log; the `start` action does not log at all (containerd
//! takes its combined output as the socket address).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

pub const FORMAT_ENV: &str = "WARD_SHIM_LOG_FORMAT";
pub const FILTER_ENV: &str = "WARD_SHIM_LOG";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn from_env(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Text,
        }
    }
}

/// Installs the global subscriber. Creates no thread (the launcher is forked after this).
pub fn init(serving: bool, debug: bool) {
    init_with(serving, false, debug)
}

/// For a launcher started after the shim's first one died (launcher/respawn.rs): the `log`
/// FIFO may have no reader then (containerd restarting), and an open for writing would block
/// until one comes; the launcher logs nowhere rather than hang.
pub fn init_respawned_launcher(debug: bool) {
    init_with(true, true, debug)
}

fn init_with(serving: bool, nonblocking_open: bool, debug: bool) {
    let format = Format::from_env(std::env::var(FORMAT_ENV).ok().as_deref());
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new(default));
    // containerd has the read side of ./log open before it starts the shim.
    let fifo = if serving {
        let flags = if nonblocking_open {
            libc::O_CLOEXEC | libc::O_NONBLOCK
        } else {
            libc::O_CLOEXEC
        };
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open("log")
            .ok();
        // Writes block as before (a full FIFO must not drop lines).
        f.filter(|f| {
            !nonblocking_open
                || nix::fcntl::fcntl(
                    std::os::fd::AsRawFd::as_raw_fd(f),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                )
                .is_ok()
        })
    } else {
        None
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let result = match (fifo, format) {
        (Some(f), Format::Json) => builder.json().with_writer(Mutex::new(f)).try_init(),
        (Some(f), Format::Text) => builder.with_writer(Mutex::new(f)).try_init(),
        (None, Format::Json) => builder.json().with_writer(std::io::stderr).try_init(),
        (None, Format::Text) => builder.with_writer(std::io::stderr).try_init(),
    };
    if let Err(e) = result {
        eprintln!("containerd-shim-ward-v2: logging not set up: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_only_when_asked() {
        assert_eq!(Format::from_env(Some("JSON")), Format::Json);
        assert_eq!(Format::from_env(Some("text")), Format::Text);
        assert_eq!(Format::from_env(None), Format::Text);
    }
}
