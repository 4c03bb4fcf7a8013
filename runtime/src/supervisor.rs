//! The seccomp user-notification supervisor: one small detached process per container that
//! answers the calls the container's filter hands to user space.
//!
//! - **Report mode** ([`Mode::EnforceAndReport`], the default): allowed calls never leave the
//!   kernel. Calls the profile denies with an errno are answered with that errno; calls it
//!   marks `kill` kill the caller (through a pidfd, after re-validating the notification).
//!   Each one becomes a denial event (container id, pid, syscall, args, profile), rate-limited
//!   per container, written to `<state>/events.jsonl` and to Ward's log.
//! - **Learn mode** ([`Mode::Record`], the `record` profile): every call but the notification
//!   protocol's own is recorded with its arguments (and, best effort, the path it names) and
//!   allowed to continue. At exit the supervisor writes `<state>/recording.json`.
//!
//! Life cycle: `create` (single-threaded caller: the CLI, the shim's launcher) binds
//! `<state>/notify.sock`, forks, the child calls setsid and forks again (so the supervisor is
//! nobody's child and outlives `ward create`), closes every other fd, keeps only
//! CAP_SYS_PTRACE (to read callers' memory) and CAP_KILL, and serves. Ward connects to the
//! socket before the container is cloned; the container init installs its filter with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER` and sends the listener over that connection right
//! before `execve` (see `sandbox.rs`). `exec` connects the same way, so an exec'd process
//! reports to the same supervisor. The supervisor exits when every listener it got reports
//! POLLHUP (no task uses the filter any more), on SIGTERM, or when its only connection ends
//! before a listener arrived. `delete` stops it by the pid recorded in `<state>/supervisor.json`,
//! after checking the process start time (no pid reuse), and nothing else.

mod event;
mod health;
mod logcap;
mod record;
mod serve;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use ward_profiles::{Mode, Profile};

use crate::sys::notify as sn;

pub use event::{Event, EVENT_BURST, EVENT_RATE};
pub use health::{
    annotate_state, check, connect_for_exec, ExecSupervisor, Gone, Health, GONE_ANNOTATION,
    STATE_ANNOTATION,
};
pub use logcap::LOG_CAP;
pub use record::Recording;
pub use serve::EVENTS_FILE_CAP;

/// Denial events of one container, one JSON object a line.
pub const EVENTS_FILE: &str = "events.jsonl";
/// What learn mode saw, written when the supervisor exits.
pub const RECORDING_FILE: &str = "recording.json";
const PID_FILE: &str = "supervisor.json";
const SOCKET: &str = "notify.sock";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("supervisor: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("supervisor: {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("supervisor: the supervisor process did not start ({0})")]
    NotStarted(String),
    #[error("supervisor: {path}: {message}")]
    Recording { path: PathBuf, message: String },
    #[error("supervisor: {0}")]
    Gone(String),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let path = path.to_path_buf();
    move |source| SupervisorError::Io { op, path, source }
}

/// Where denial events go besides the container's events file: Ward's log (`--log`,
/// `--log-format`). Without a path, the caller's stderr is used only when it is a terminal
/// or a regular file (a pipe held open by a detached process would keep its reader waiting).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    pub path: Option<PathBuf>,
    pub json: bool,
}

/// What the container init needs to hand its listener over: the connected socket (an fd
/// inherited through clone, close-on-exec) and the mode its filter was compiled for.
#[derive(Debug, Clone, Copy)]
pub struct Handoff {
    /// Ward's connection to the supervisor. `None` for an exec into a container whose
    /// supervisor is gone: the same filter is installed without a listener, so the calls it
    /// hands to user space fail closed (ENOSYS), unreported (see `health.rs`).
    pub sock: Option<RawFd>,
    pub mode: Mode,
    /// An exec'd process: a supervisor that dies during the handoff does not fail it (the
    /// filter stays, its listener closes: denials fail closed, unreported). An init fails.
    pub exec: bool,
}

/// Ward's end of the handoff connection. Keep it until the container (or exec'd process) is
/// cloned; the child inherits the fd.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    pub mode: Mode,
}

impl Connection {
    pub fn handoff(&self) -> Handoff {
        Handoff {
            sock: Some(self.stream.as_raw_fd()),
            mode: self.mode,
            exec: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PidRecord {
    pid: i32,
    start_time: u64,
    mode: String,
}

fn mode_from(s: &str) -> Option<Mode> {
    match s {
        "report" => Some(Mode::EnforceAndReport),
        "record" => Some(Mode::Record),
        "enforce" => Some(Mode::Enforce),
        _ => None,
    }
}

/// Field 22 of /proc/<pid>/stat: start time in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What the supervisor of one container needs.
pub struct Config<'a> {
    pub id: &'a str,
    pub dir: &'a Path,
    pub profile: &'a Profile,
    pub mode: Mode,
    pub log: &'a EventLog,
}

/// Start the supervisor of a container whose state dir is `cfg.dir` and connect to it.
///
/// Forks: call only from a single-threaded process.
pub fn spawn(cfg: &Config<'_>) -> Result<Connection, SupervisorError> {
    let sock_path = cfg.dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock_path);
    let listening =
        via_short_path(cfg.dir, |p| UnixListener::bind(p)).map_err(io_err("bind", &sock_path))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod", &sock_path))?;
    }
    let events_path = cfg.dir.join(EVENTS_FILE);
    let events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&events_path)
        .map_err(io_err("open", &events_path))?;
    let log: Option<std::fs::File> = match &cfg.log.path {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io_err("open", p))?,
        ),
        None => stderr_for_log(),
    };
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| SupervisorError::Sys { op: "pipe2", errno })?;
    let server = serve::Server::new(
        cfg.id,
        cfg.dir,
        cfg.profile.clone(),
        cfg.mode,
        events,
        log,
        cfg.log.json,
    );
    // SAFETY: the caller is single-threaded (documented). The child only runs the code
    // below and leaves through _exit, never returning into the caller's code.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => Err(SupervisorError::Sys { op: "fork", errno }),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ready_r);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                detach_and_serve(server, listening, ready_w)
            }))
            .unwrap_or(101);
            // SAFETY: leave the forked child without running the caller's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(ready_w);
            drop(server);
            drop(listening);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut buf = [0u8; 4];
            let mut f = std::fs::File::from(ready_r);
            if f.read_exact(&mut buf).is_err() {
                return Err(SupervisorError::NotStarted(
                    "it exited before it was ready".into(),
                ));
            }
            let pid = i32::from_le_bytes(buf);
            let record = PidRecord {
                pid,
                start_time: start_time(pid)
                    .ok_or_else(|| SupervisorError::NotStarted(format!("pid {pid} is gone")))?,
                mode: cfg.mode.as_str().to_string(),
            };
            // Owner-only, like the rest of the container's state: other host users learn
            // nothing from Ward's state dir (the escape suite's `host-user-reach` reads it).
            let pid_path = cfg.dir.join(PID_FILE);
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&pid_path)
                .and_then(|mut f| {
                    std::io::Write::write_all(
                        &mut f,
                        &serde_json::to_vec(&record).expect("serializable"),
                    )
                })
                .map_err(io_err("write", &pid_path))?;
            let stream = via_short_path(cfg.dir, |p| UnixStream::connect(p))
                .map_err(io_err("connect", &sock_path))?;
            Ok(Connection {
                stream,
                mode: cfg.mode,
            })
        }
    }
}

/// Call `f` with a path to `dir/notify.sock` that fits a unix socket address (108 bytes):
/// the path itself, or the same file reached through `/proc/self/fd/<dirfd>/` when the state
/// dir's path is too long (podman's 64-hex ids under a long --root).
fn via_short_path<T>(
    dir: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let full = dir.join(SOCKET);
    if full.as_os_str().len() < 100 {
        return f(&full);
    }
    let d = std::fs::File::open(dir)?;
    f(&PathBuf::from(format!(
        "/proc/self/fd/{}/{SOCKET}",
        d.as_raw_fd()
    )))
}

fn stderr_for_log() -> Option<std::fs::File> {
    use std::io::IsTerminal;
    let err = std::io::stderr();
    let keep = err.is_terminal()
        || std::fs::metadata("/proc/self/fd/2")
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
    if !keep {
        return None;
    }
    err.as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
}

/// In the first child: new session, fork again, and in the grandchild close everything
/// else, drop capabilities, report the pid and serve. Returns the exit code.
fn detach_and_serve(server: serve::Server, listening: UnixListener, ready: OwnedFd) -> i32 {
    if nix::unistd::setsid().is_err() {
        return 1;
    }
    // SAFETY: this process is single-threaded (a fork of a single-threaded caller).
    match unsafe { nix::unistd::fork() } {
        Err(_) => 1,
        Ok(nix::unistd::ForkResult::Parent { .. }) => 0,
        Ok(nix::unistd::ForkResult::Child) => {
            let mut keep: Vec<RawFd> = vec![listening.as_raw_fd(), ready.as_raw_fd()];
            keep.extend(server.fds());
            if sn::close_all_except(&keep).is_err() {
                return 1;
            }
            // stdio: /dev/null (the log, if it is the caller's stderr, was duplicated).
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // With 0-2 closed, /dev/null lands on 0: keep that one open.
                let fd = std::os::fd::IntoRawFd::into_raw_fd(null);
                for t in 0..3 {
                    if t != fd {
                        let _ = nix::unistd::dup2(fd, t);
                    }
                }
                if fd > 2 {
                    let _ = nix::unistd::close(fd);
                }
            }
            // Do not pin the caller's cwd (a bundle dir that is unmounted later).
            if std::env::set_current_dir("/").is_err() {
                return 1;
            }
            if drop_privileges().is_err() {
                return 1;
            }
            // Say what this process is in `ps` (it started as a copy of its creator, e.g. the
            // shim's launcher).
            // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
            unsafe { libc::prctl(libc::PR_SET_NAME, c"ward-supervisor".as_ptr(), 0, 0, 0) };
            let pid = std::process::id() as i32;
            let mut w = std::fs::File::from(ready);
            if std::io::Write::write_all(&mut w, &pid.to_le_bytes()).is_err() {
                return 1;
            }
            drop(w);
            server.run(listening)
        }
    }
}

/// Keep only CAP_SYS_PTRACE (read the memory of a notifying task in the container's user
/// namespace) and CAP_KILL (signal it), set no_new_privs.
fn drop_privileges() -> Result<(), caps::errors::CapsError> {
    use caps::{CapSet, Capability};
    let keep: caps::CapsHashSet = [Capability::CAP_SYS_PTRACE, Capability::CAP_KILL]
        .into_iter()
        .collect();
    for c in caps::all() {
        if !keep.contains(&c) {
            caps::drop(None, CapSet::Bounding, c)?;
        }
    }
    caps::clear(None, CapSet::Inheritable)?;
    let _ = caps::clear(None, CapSet::Ambient);
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    // SAFETY: prctl with integer arguments only changes this process's flags.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}

fn read_pid_record(dir: &Path) -> Option<PidRecord> {
    let b = std::fs::read(dir.join(PID_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// A pidfd for the supervisor recorded in `dir`, if that very process still runs.
fn supervisor_pidfd(dir: &Path) -> Option<OwnedFd> {
    let r = read_pid_record(dir)?;
    if start_time(r.pid)? != r.start_time {
        return None;
    }
    let fd = sn::pidfd_open(r.pid, false).ok()?;
    // The pidfd pins the process; the start time checked again says it is the same one.
    if start_time(r.pid)? != r.start_time {
        return None;
    }
    // A pidfd is readable once the process has exited: a zombie (whose parent does not reap
    // it) is not a supervisor.
    (!sn::pidfd_wait(fd.as_fd(), 0)).then_some(fd)
}

/// The pid of the container's supervisor, if that very process (pid and start time as
/// recorded) still runs.
pub fn running_pid(dir: &Path) -> Option<i32> {
    let r = read_pid_record(dir)?;
    supervisor_pidfd(dir)?;
    Some(r.pid)
}

/// The mode of the container's supervisor, if it runs.
pub fn running_mode(dir: &Path) -> Option<Mode> {
    let r = read_pid_record(dir)?;
    supervisor_pidfd(dir)?;
    mode_from(&r.mode)
}

/// Wait up to `timeout` for the supervisor recorded in `dir` to exit. True if it is gone.
pub fn wait_exit(dir: &Path, timeout: std::time::Duration) -> bool {
    match supervisor_pidfd(dir) {
        None => true,
        Some(fd) => sn::pidfd_wait(fd.as_fd(), timeout.as_millis() as i32),
    }
}

/// Stop the supervisor recorded in `dir` (SIGTERM, then SIGKILL after 2 s). Only that
/// process, identified by pid and start time; nothing if it already exited.
pub fn stop(dir: &Path) -> Result<(), SupervisorError> {
    if let Some(fd) = supervisor_pidfd(dir) {
        match sn::pidfd_send_signal(fd.as_fd(), libc::SIGTERM) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => {
                return Err(SupervisorError::Sys {
                    op: "pidfd_send_signal SIGTERM",
                    errno,
                })
            }
        }
        if !sn::pidfd_wait(fd.as_fd(), 2000) {
            let _ = sn::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            sn::pidfd_wait(fd.as_fd(), 2000);
        }
    }
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    let _ = std::fs::remove_file(dir.join(SOCKET));
    Ok(())
}

/// Read the recording learn mode left in `dir`.
pub fn read_recording(dir: &Path) -> Result<Recording, SupervisorError> {
    let path = dir.join(RECORDING_FILE);
    let b = std::fs::read(&path).map_err(io_err("read", &path))?;
    serde_json::from_slice(&b).map_err(|e| SupervisorError::Recording {
        path,
        message: e.to_string(),
    })
}

/// Denial events recorded for a container so far (one-shot read of its events file).
pub fn read_events(dir: &Path) -> Result<Vec<Event>, SupervisorError> {
    let path = dir.join(EVENTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
