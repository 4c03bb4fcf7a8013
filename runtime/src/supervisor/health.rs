//! Is a container's supervisor still there? (issue 12, item 3)
//!
//! A supervisor that dies while its container runs (killed, OOM) leaves the container's
//! filter fail closed: the calls it handed to user space now fail with ENOSYS. What is lost is
//! the reporting. Ward says so, once, where people look: `ward state` (annotations
//! `ward.dev/supervisor` and `ward.dev/supervisor-gone`), `ward events` (a `supervisor-gone`
//! line in `events.jsonl`) and Ward's log. The first Ward command that notices records it in
//! `<state>/supervisor-gone.json` (when it noticed, and how the process ended if the kernel
//! still says: the exit status of a zombie nobody reaped).
//!
//! `exec` keeps working (design choice: no new supervisor is started): the exec'd process gets
//! the very same filter, installed without a listener, so its denied calls fail closed with
//! ENOSYS too, and the caller is warned that they are not reported. In learn mode every call
//! is handed to user space, so an exec there is refused with the reason.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ward_profiles::Mode;

use super::event::{now_rfc3339, Event};
use super::{
    io_err, mode_from, read_pid_record, start_time, supervisor_pidfd, via_short_path, Connection,
    Handoff, PidRecord, SupervisorError, EVENTS_FILE, SOCKET,
};

const GONE_FILE: &str = "supervisor-gone.json";
/// `ward state` annotation: `running`, `exited` (after its container) or `gone`.
pub const STATE_ANNOTATION: &str = "ward.dev/supervisor";
/// `ward state` annotation with what is known of a supervisor that is gone.
pub const GONE_ANNOTATION: &str = "ward.dev/supervisor-gone";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The container has no supervisor (enforce mode), or `delete` stopped it.
    None,
    Running {
        pid: i32,
        mode: Mode,
    },
    /// It ended after its container's processes: its normal end.
    Exited,
    /// It ended while its container still ran.
    Gone(Gone),
}

/// What is known of a supervisor that died under its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gone {
    pub pid: i32,
    pub mode: String,
    /// When Ward first noticed (RFC 3339, UTC); it died at or before that.
    pub noticed: String,
    /// How it ended, when the kernel still said (a zombie's exit status).
    pub how: String,
}

impl Gone {
    pub fn describe(&self) -> String {
        let effect = if mode_from(&self.mode) == Some(Mode::Record) {
            "every system call of the container now fails with ENOSYS, unrecorded"
        } else {
            "denied system calls fail closed with ENOSYS and are not reported"
        };
        format!(
            "the seccomp supervisor (pid {}, {} mode) is gone ({}; noticed {}): {effect}",
            self.pid, self.mode, self.how, self.noticed
        )
    }
}

/// The supervisor of the container whose state dir is `dir`. `container_alive`: the
/// container's init still exists (created, running, paused); a supervisor missing then is
/// gone, and the first call that sees it records it (see the module doc).
pub fn check(dir: &Path, id: &str, profile: &str, container_alive: bool) -> Health {
    if let Some(g) = read_gone(dir) {
        return Health::Gone(g);
    }
    let Some(r) = read_pid_record(dir) else {
        return Health::None;
    };
    if supervisor_pidfd(dir).is_some() {
        let mode = mode_from(&r.mode).unwrap_or(Mode::EnforceAndReport);
        return Health::Running { pid: r.pid, mode };
    }
    if !container_alive {
        return Health::Exited;
    }
    Health::Gone(note(dir, id, profile, &r))
}

/// Adds the supervisor annotations to `state` (nothing for a container without one).
pub fn annotate_state(state: &mut crate::State, dir: &Path, profile: &str) {
    let alive = state.status != "stopped";
    let (value, gone) = match check(dir, &state.id, profile, alive) {
        Health::None => return,
        Health::Running { .. } => ("running", None),
        Health::Exited => ("exited", None),
        Health::Gone(g) => ("gone", Some(g.describe())),
    };
    let ann = state.annotations.get_or_insert_with(Default::default);
    ann.insert(STATE_ANNOTATION.into(), value.into());
    if let Some(g) = gone {
        ann.insert(GONE_ANNOTATION.into(), g);
    }
}

fn read_gone(dir: &Path) -> Option<Gone> {
    let b = std::fs::read(dir.join(GONE_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Records the death (first caller only: O_EXCL) and tells `ward events` and the log.
fn note(dir: &Path, id: &str, profile: &str, r: &PidRecord) -> Gone {
    let gone = Gone {
        pid: r.pid,
        mode: r.mode.clone(),
        noticed: now_rfc3339(),
        how: how_it_ended(r),
    };
    let path = dir.join(GONE_FILE);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let mut f = match created {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return read_gone(dir).unwrap_or(gone);
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot record the supervisor's death");
            return gone;
        }
    };
    let _ = f.write_all(&serde_json::to_vec(&gone).expect("serializable"));
    // Said where it is read (`ward state`, `ward events`, the exec that meets it); logged
    // here once, quietly.
    tracing::info!(id, "{}", gone.describe());
    let mut ev = Event::new("supervisor-gone", id, profile);
    ev.pid = u32::try_from(gone.pid).ok();
    ev.message = Some(gone.describe());
    let events = dir.join(EVENTS_FILE);
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .and_then(|mut f| writeln!(f, "{}", serde_json::to_string(&ev).expect("serializable")));
    if let Err(e) = appended {
        tracing::warn!(path = %events.display(), error = %e, "cannot add the supervisor-gone event");
    }
    gone
}

/// The exit status of the recorded supervisor if it is still a zombie (field 52 of
/// /proc/<pid>/stat, as wait(2) would return it).
fn how_it_ended(r: &PidRecord) -> String {
    let zombie_status = (|| {
        if start_time(r.pid)? != r.start_time {
            return None;
        }
        let s = std::fs::read_to_string(format!("/proc/{}/stat", r.pid)).ok()?;
        let rest = s.rsplit_once(')')?.1;
        rest.split_whitespace().nth(49)?.parse::<i32>().ok()
    })();
    match zombie_status {
        Some(st) => wait_status_text(st),
        None => "how it ended is unknown: already reaped".into(),
    }
}

/// A wait(2) status in words.
fn wait_status_text(st: i32) -> String {
    if st & 0x7f != 0 {
        let sig = st & 0x7f;
        let name = nix::sys::signal::Signal::try_from(sig)
            .map(|s| s.as_str())
            .unwrap_or("?");
        format!("killed by signal {sig} ({name})")
    } else {
        format!("exited with status {}", (st >> 8) & 0xff)
    }
}

/// What `exec` hands its process: a connection to the running supervisor, or, when it is
/// gone, the same filter with no listener.
#[derive(Debug)]
pub struct ExecSupervisor {
    conn: Option<Connection>,
    /// The mode the exec'd process's filter is compiled for.
    pub mode: Mode,
    lost: bool,
}

impl ExecSupervisor {
    /// Keep `self` until the exec'd process is cloned (it inherits the connection).
    pub fn handoff(&self) -> Option<Handoff> {
        match &self.conn {
            Some(c) => Some(Handoff {
                exec: true,
                ..c.handoff()
            }),
            None if self.lost => Some(Handoff {
                sock: None,
                mode: self.mode,
                exec: true,
            }),
            None => None,
        }
    }
}

/// For `exec` into a running container: connect to its supervisor, or carry on without one
/// that is gone (warned; refused in learn mode).
pub fn connect_for_exec(
    dir: &Path,
    id: &str,
    profile: &str,
) -> Result<ExecSupervisor, SupervisorError> {
    let gone = match check(dir, id, profile, true) {
        Health::None | Health::Exited => {
            return Ok(ExecSupervisor {
                conn: None,
                mode: Mode::Enforce,
                lost: false,
            })
        }
        Health::Running { mode, .. } => match via_short_path(dir, |p| UnixStream::connect(p)) {
            Ok(stream) => {
                return Ok(ExecSupervisor {
                    conn: Some(Connection { stream, mode }),
                    mode,
                    lost: false,
                })
            }
            // Dying right now: its socket is closed before its pid is released.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                super::wait_exit(dir, std::time::Duration::from_secs(1));
                match check(dir, id, profile, true) {
                    Health::Gone(g) => g,
                    _ => return Err(io_err("connect", &dir.join(SOCKET))(e)),
                }
            }
            Err(e) => return Err(io_err("connect", &dir.join(SOCKET))(e)),
        },
        Health::Gone(g) => g,
    };
    let mode = mode_from(&gone.mode).unwrap_or(Mode::EnforceAndReport);
    if mode == Mode::Record {
        return Err(SupervisorError::Gone(format!(
            "{}: an exec'd process could not make a single call; exec refused",
            gone.describe()
        )));
    }
    tracing::warn!(
        id,
        "{}; the exec'd process gets the same filter: its denied calls are not reported either",
        gone.describe()
    );
    Ok(ExecSupervisor {
        conn: None,
        mode,
        lost: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_in_words() {
        assert_eq!(wait_status_text(9), "killed by signal 9 (SIGKILL)");
        assert_eq!(wait_status_text(3 << 8), "exited with status 3");
    }

    /// A record naming a process that is gone (a reaped child of this test).
    fn dead_record(dir: &Path) -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap_or(1);
        child.wait().unwrap();
        let r = PidRecord {
            pid,
            start_time: start,
            mode: "report".into(),
        };
        std::fs::write(
            dir.join(super::super::PID_FILE),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join(EVENTS_FILE), "").unwrap();
        pid
    }

    #[test]
    fn gone_is_noted_once_and_only_under_a_live_container() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(check(d.path(), "c1", "default", true), Health::None);
        let pid = dead_record(d.path());
        // After its container's processes: the normal end, nothing noted.
        assert_eq!(check(d.path(), "c1", "default", false), Health::Exited);
        assert!(!d.path().join(GONE_FILE).exists());
        let Health::Gone(g) = check(d.path(), "c1", "default", true) else {
            panic!("not gone");
        };
        assert_eq!(g.pid, pid);
        assert!(g.describe().contains("not reported"), "{}", g.describe());
        // Asked again (by any command, even once the container stopped): the same record,
        // and still one event.
        assert_eq!(check(d.path(), "c1", "default", false), Health::Gone(g));
        let events = read_events_for_test(d.path());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "supervisor-gone");
        assert_eq!(events[0].pid, Some(pid as u32));
    }

    fn read_events_for_test(dir: &Path) -> Vec<Event> {
        super::super::read_events(dir).unwrap()
    }

    #[test]
    fn exec_without_supervisor_hands_nothing_over() {
        let d = tempfile::tempdir().unwrap();
        let s = connect_for_exec(d.path(), "c1", "default").unwrap();
        assert_eq!(s.mode, Mode::Enforce);
        assert!(s.handoff().is_none());
        dead_record(d.path());
        let s = connect_for_exec(d.path(), "c1", "default").unwrap();
        assert_eq!(s.mode, Mode::EnforceAndReport);
        let h = s.handoff().expect("the same filter, no listener");
        assert!(h.sock.is_none() && h.exec);
    }
}
