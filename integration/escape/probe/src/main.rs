//! ward-probe: runs inside a container and tries one named escape technique,
//! printing one JSON line with the calls made, their errnos and a verdict.
//!
//! `ward-probe list` prints the ids, `ward-probe all` runs each in a forked
//! child so that a crash or kill of one technique is reported, not fatal.

mod hold;
mod report;
mod sandbox;
mod sys;
mod tech;

use report::{Outcome, Verdict};
use std::io::Write as _;
use std::time::{Duration, Instant};

/// The pipe a forked technique reports through (not an inherited fd).
pub static REPORT_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Parameters the runner passes to every technique.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// A host process (outside the container) for ptrace/process_vm/pidfd.
    pub host_pid: Option<i32>,
    /// Path, inside the container, of the writable volume.
    pub volume: Option<String>,
    /// Path, inside the container, of the read-only volume (host-root canary inside).
    pub ro_volume: Option<String>,
    /// Host path of the canary directory (where a marker proves a host write).
    pub host_dir: Option<String>,
    /// Abstract unix socket name (without the leading NUL) the runner listens on.
    pub abstract_name: Option<String>,
    /// Set by the runner's unconfined sanity mode: destructive techniques skip.
    pub host_mode: bool,
    pub mem_mib: u64,
    pub forks: u32,
    pub fill_mib: u64,
    pub spin_secs: u64,
    /// Keep fork-bomb children / hog memory this long (chaos neighbours).
    pub hold_secs: u64,
    pub timeout_secs: u64,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            host_pid: None,
            volume: None,
            ro_volume: None,
            host_dir: None,
            abstract_name: None,
            host_mode: false,
            mem_mib: 2048,
            forks: 4096,
            fill_mib: 1024,
            spin_secs: 2,
            hold_secs: 0,
            timeout_secs: 60,
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: ward-probe list | all | <technique> [--host-pid N] [--volume P] [--ro-volume P] [--host-dir P] \
         [--abstract NAME] [--host-mode] [--mem-mib N] [--forks N] [--fill-mib N] \
         [--spin-secs N] [--hold-secs N] [--timeout-secs N]\n       \
         ward-probe host-sandbox --rootfs DIR [--bind SRC:DST]... -- ARGS...\n       \
         ward-probe race-flip DIR TARGET SECS | euid | capeff"
    );
    std::process::exit(2)
}

fn parse_ctx(args: &[String]) -> Ctx {
    let mut c = Ctx::default();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned();
        let num = |v: &Option<String>| -> u64 {
            v.as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match args[i].as_str() {
            "--host-pid" => c.host_pid = Some(num(&v) as i32),
            "--volume" => c.volume = v,
            "--ro-volume" => c.ro_volume = v,
            "--host-dir" => c.host_dir = v,
            "--abstract" => c.abstract_name = v,
            "--mem-mib" => c.mem_mib = num(&v),
            "--forks" => c.forks = num(&v) as u32,
            "--fill-mib" => c.fill_mib = num(&v),
            "--spin-secs" => c.spin_secs = num(&v),
            "--hold-secs" => c.hold_secs = num(&v),
            "--timeout-secs" => c.timeout_secs = num(&v),
            "--host-mode" => {
                c.host_mode = true;
                i += 1;
                continue;
            }
            _ => usage(),
        }
        i += 2;
    }
    c
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(cmd) = args.get(1).cloned() else {
        usage()
    };
    match cmd.as_str() {
        "list" => {
            for t in tech::ALL {
                println!("{}\t{}", t.id, t.threat);
            }
        }
        "euid" => {
            // Used by the setuid technique: report the effective uid we run as.
            // SAFETY: geteuid has no preconditions.
            println!("{}", unsafe { libc::geteuid() });
        }
        "capeff" => {
            // Used by the file-capability technique: report our effective set.
            println!("{}", sys::status_field("CapEff").unwrap_or_default());
        }
        "race-flip" => tech::race_flip(&args[2..]),
        "host-sandbox" => sandbox::main(&args[2..]),
        "hold-inotify" => hold::hold_inotify(&args[2..]),
        "all" => {
            let ctx = parse_ctx(&args[2..]);
            for t in tech::ALL {
                emit(&run_isolated(t, &ctx));
            }
        }
        id => {
            let ctx = parse_ctx(&args[2..]);
            let Some(t) = tech::ALL.iter().find(|t| t.id == id) else {
                eprintln!("unknown technique {id}");
                std::process::exit(2)
            };
            emit(&run_isolated(t, &ctx));
        }
    }
}

fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run one technique in a forked child, reading its JSON line through a
/// pipe. A child killed by SIGSYS was stopped by seccomp (blocked); any other
/// death is reported as such.
fn run_isolated(t: &tech::Technique, ctx: &Ctx) -> String {
    isolated_outcome(t, ctx).to_json()
}

/// The child's own JSON line (passed through as `raw`), or what the parent
/// observed when the child did not report.
fn isolated_outcome(t: &tech::Technique, ctx: &Ctx) -> Outcome {
    if ctx.host_mode && t.unsafe_on_host {
        return Outcome::new(t.id, t.tried)
            .na("unsafe-on-host: skipped in the unconfined sanity mode (would change the host)");
    }
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return (t.run)(ctx);
    }
    let Some(pid) = sys::fork() else {
        return Outcome::new(t.id, t.tried).na("fork failed before the technique ran");
    };
    if pid == 0 {
        sys::close(fds[0] as i64);
        REPORT_FD.store(fds[1], std::sync::atomic::Ordering::SeqCst);
        let o = (t.run)(ctx);
        let line = o.to_json() + "\n";
        sys::write_all(fds[1], line.as_bytes());
        sys::exit(0);
    }
    sys::close(fds[1] as i64);
    let deadline = Instant::now() + Duration::from_secs(ctx.timeout_secs.max(5));
    let mut buf = Vec::new();
    loop {
        let mut pfd = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            sys::kill(pid, libc::SIGKILL);
            break;
        }
        // SAFETY: `pfd` is a valid pollfd array of length 1.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r <= 0 {
            continue;
        }
        let (n, chunk) = sys::read_some(fds[0], 65536);
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    sys::close(fds[0] as i64);
    let status = sys::wait(pid);
    let text = String::from_utf8_lossy(&buf);
    if let Some(line) = text.lines().rev().find(|l| l.starts_with('{')) {
        // The child already classified; pass its line through untouched.
        let mut o = Outcome::new(t.id, t.tried);
        o.raw = Some(line.to_string());
        return o;
    }
    let mut o = Outcome::new(t.id, t.tried);
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        o.results.push(report::Call {
            call: "technique process".into(),
            ret: -(sig as i64),
            errno: None,
        });
        if sig == libc::SIGSYS {
            o.set(Verdict::Blocked, "seccomp killed the process (SIGSYS)");
        } else {
            o.set(
                Verdict::NotApplicable,
                format!("technique process died with signal {sig} before reporting"),
            );
        }
    } else {
        o.set(
            Verdict::NotApplicable,
            format!("technique process exited (status {status:#x}) without reporting"),
        );
    }
    o
}
