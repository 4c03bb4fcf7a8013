//! The supervisor's loop: accept handoff connections, receive listener fds, answer
//! notifications, write events (rate-limited) and, in learn mode, the recording.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use ward_profiles::{Action, Arch, Mode, Profile};

use super::event::{Bucket, Event, EVENT_BURST, EVENT_RATE};
use super::logcap::{CappedLog, LOG_CAP};
use super::record::Recording;
use crate::sys::notify::{self as sn, Answer};

/// Size cap of a container's events file (it lives under the state dir, often a tmpfs):
/// past it, lines go to Ward's log only and one `events-file-full` line says so.
pub const EVENTS_FILE_CAP: u64 = 16 << 20;

/// How often a "N denials suppressed" line may be written.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);
/// How long a new supervisor waits for the Ward process that started it to connect.
const HANDOFF_DEADLINE: Duration = Duration::from_secs(10);

/// poll(2) timeout before the first handoff: never past [`HANDOFF_DEADLINE`].
fn handoff_timeout(timeout: i32, started: std::time::Instant) -> i32 {
    let left = HANDOFF_DEADLINE
        .saturating_sub(started.elapsed())
        .as_millis() as i32
        + 1;
    if timeout < 0 {
        left
    } else {
        timeout.min(left)
    }
}

/// The caller's pid in its own pid namespace (last field of NSpid).
fn container_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

pub(crate) struct Server {
    id: String,
    dir: PathBuf,
    profile: Profile,
    mode: Mode,
    arch: Arch,
    events: File,
    log: Option<CappedLog>,
    bucket: Bucket,
    suppressed: u64,
    last_summary: Instant,
    enosys_logged: BTreeSet<u32>,
    enosys_repeats: u64,
    events_bytes: u64,
    recording: Recording,
}

enum Slot {
    Signal,
    Listening,
    Conn(usize),
    Listener(usize),
}

impl Server {
    pub(crate) fn new(
        id: &str,
        dir: &Path,
        profile: Profile,
        mode: Mode,
        events: File,
        log: Option<File>,
        json: bool,
    ) -> Self {
        let arch = Arch::native();
        Self {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            profile,
            mode,
            arch,
            events,
            log: log.map(|f| CappedLog::new(f, json, LOG_CAP)),
            bucket: Bucket::new(EVENT_BURST, EVENT_RATE),
            suppressed: 0,
            last_summary: Instant::now(),
            enosys_logged: BTreeSet::new(),
            enosys_repeats: 0,
            events_bytes: 0,
            recording: Recording {
                arch: arch.as_str().to_string(),
                ..Default::default()
            },
        }
    }

    /// The fds this server writes to (kept open when the supervisor closes the rest).
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.events.as_raw_fd()];
        v.extend(self.log.as_ref().map(|l| l.file().as_raw_fd()));
        v
    }

    /// Serve until every listener hangs up, SIGTERM/SIGINT/SIGHUP, or the handoff fails.
    pub(crate) fn run(mut self, listening: UnixListener) -> i32 {
        let Some(sigfd) = stop_signals() else {
            return 1;
        };
        if listening.set_nonblocking(true).is_err() {
            return 1;
        }
        let mut conns: Vec<UnixStream> = Vec::new();
        let mut listeners: Vec<OwnedFd> = Vec::new();
        let mut got_listener = false;
        let mut had_conn = false;
        let started = std::time::Instant::now();
        loop {
            let mut slots = vec![Slot::Signal, Slot::Listening];
            let mut fds = vec![
                pollfd(sigfd.as_fd().as_raw_fd()),
                pollfd(listening.as_raw_fd()),
            ];
            for (i, c) in conns.iter().enumerate() {
                slots.push(Slot::Conn(i));
                fds.push(pollfd(c.as_raw_fd()));
            }
            for (i, l) in listeners.iter().enumerate() {
                slots.push(Slot::Listener(i));
                fds.push(pollfd(l.as_raw_fd()));
            }
            let timeout = if had_conn {
                self.poll_timeout()
            } else {
                handoff_timeout(self.poll_timeout(), started)
            };
            if sn::poll(&mut fds, timeout).is_err() {
                self.error("poll failed");
                break;
            }
            if !had_conn && started.elapsed() >= HANDOFF_DEADLINE {
                // The Ward process that started this supervisor died before handing over the
                // container's filter (a create killed half-way): nobody will ever connect.
                self.error(
                    "no handoff from the creating Ward process within the deadline; exiting",
                );
                break;
            }
            self.summary_if_due();
            let mut drop_conns = BTreeSet::new();
            let mut drop_listeners = BTreeSet::new();
            let mut stop = false;
            for (slot, p) in slots.iter().zip(&fds) {
                if p.revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Signal => stop = true,
                    Slot::Listening => {
                        while let Ok((c, _)) = listening.accept() {
                            had_conn = true;
                            conns.push(c);
                        }
                    }
                    Slot::Conn(i) => {
                        if let Some(done) = receive_listener(&conns[*i], &mut listeners) {
                            got_listener |= done;
                            drop_conns.insert(*i);
                        }
                    }
                    Slot::Listener(i) => {
                        if p.revents & libc::POLLIN != 0 {
                            self.on_notification(listeners[*i].as_fd());
                        } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
                        {
                            drop_listeners.insert(*i);
                        }
                    }
                }
            }
            for i in drop_conns.into_iter().rev() {
                conns.remove(i);
            }
            for i in drop_listeners.into_iter().rev() {
                listeners.remove(i);
            }
            if stop {
                break;
            }
            // Every filter we served has no task left, or the only handoff ended empty.
            if listeners.is_empty() && conns.is_empty() && (got_listener || had_conn) {
                break;
            }
        }
        self.finish();
        0
    }

    /// poll(2) timeout: with denials suppressed, wake up when their summary line is due.
    /// (Before the first handoff, see [`handoff_timeout`].)
    fn poll_timeout(&self) -> i32 {
        if self.suppressed > 0 {
            SUMMARY_EVERY
                .saturating_sub(self.last_summary.elapsed())
                .as_millis() as i32
                + 1
        } else {
            -1
        }
    }

    fn on_notification(&mut self, listener: BorrowedFd<'_>) {
        let n = match sn::notif_recv(listener) {
            Ok(n) => n,
            // The caller was killed or its call interrupted: nothing to answer.
            Err(Errno::ENOENT | Errno::EINTR | Errno::EAGAIN) => return,
            Err(e) => {
                self.error(&format!("SECCOMP_IOCTL_NOTIF_RECV: {e}"));
                return;
            }
        };
        let nr = n.data.nr as u32;
        let args = n.data.args;
        match self.mode {
            Mode::Record => {
                self.recording.observe(self.arch, listener, &n);
                let _ = sn::notif_send(listener, n.id, Answer::Continue);
            }
            Mode::EnforceAndReport | Mode::Enforce => {
                // Read while the caller is still blocked in the call: once answered it may
                // exit, and its /proc entry with it.
                let cpid = container_pid(n.pid);
                let action = ward_profiles::evaluate(self.profile.seccomp(), self.arch, nr, &args);
                let given = match action {
                    Action::Errno(e) => {
                        let _ = sn::notif_send(listener, n.id, Answer::Errno(e as i32));
                        action
                    }
                    Action::Kill => {
                        if kill_caller(listener, &n) {
                            Action::Kill
                        } else {
                            let _ = sn::notif_send(listener, n.id, Answer::Errno(libc::EPERM));
                            Action::Errno(libc::EPERM as u32)
                        }
                    }
                    // The kernel notified a call the profile allows: the compiled filter
                    // and the interpreter disagree. Refuse (fail closed) and say so.
                    Action::Allow | Action::Log => {
                        let _ = sn::notif_send(listener, n.id, Answer::Errno(libc::EPERM));
                        self.error(&format!(
                            "filter and profile disagree on syscall {nr}; refused with EPERM"
                        ));
                        Action::Errno(libc::EPERM as u32)
                    }
                };
                self.report(n.pid, cpid, nr, &args, given);
            }
        }
    }

    fn report(&mut self, pid: u32, cpid: Option<u32>, nr: u32, args: &[u64; 6], action: Action) {
        // ENOSYS is a compatibility answer (clone3: glibc falls back to clone, whose flags
        // the filter can check), given on every thread creation: log it once per syscall,
        // count the repeats.
        if action == Action::Errno(libc::ENOSYS as u32) && !self.enosys_logged.insert(nr) {
            self.enosys_repeats += 1;
            return;
        }
        if !self.bucket.take_at(Instant::now()) {
            self.suppressed += 1;
            return;
        }
        self.summary_if_due();
        let name = self.arch.syscall_name(nr).map(str::to_string);
        let ev = Event {
            pid: Some(pid),
            container_pid: cpid,
            syscall: Some(name.unwrap_or_else(|| format!("#{nr}"))),
            nr: Some(nr),
            args: Some(args.iter().map(|a| format!("{a:#x}")).collect()),
            action: Some(action.as_text()),
            ..self.event("seccomp-denial")
        };
        self.emit(&ev);
    }

    /// At most one "N denials suppressed" line a second (and one at exit).
    fn summary_if_due(&mut self) {
        if self.suppressed > 0 && self.last_summary.elapsed() >= SUMMARY_EVERY {
            self.flush_suppressed();
        }
    }

    fn flush_suppressed(&mut self) {
        if self.suppressed == 0 {
            return;
        }
        let ev = Event {
            suppressed: Some(self.suppressed),
            message: Some(format!(
                "{} denials suppressed (rate limit {EVENT_RATE}/s, burst {EVENT_BURST})",
                self.suppressed
            )),
            ..self.event("seccomp-denials-suppressed")
        };
        self.suppressed = 0;
        self.last_summary = Instant::now();
        self.emit(&ev);
    }

    /// An event of `kind` for this container, now.
    fn event(&self, kind: &str) -> Event {
        Event::new(kind, &self.id, self.profile.name())
    }

    fn error(&mut self, message: &str) {
        let ev = Event {
            message: Some(message.to_string()),
            ..self.event("supervisor-error")
        };
        self.emit(&ev);
    }

    /// One line to the events file and one to Ward's log, each with a single write.
    fn emit(&mut self, ev: &Event) {
        let mut line = serde_json::to_string(ev).expect("serializable");
        line.push('\n');
        let before = self.events_bytes;
        if before < EVENTS_FILE_CAP {
            self.events_bytes += line.len() as u64;
            let _ = self.events.write_all(line.as_bytes());
            if self.events_bytes >= EVENTS_FILE_CAP {
                let full = Event {
                    message: Some(format!(
                        "events file reached {EVENTS_FILE_CAP} bytes; further events go to Ward's log only"
                    )),
                    ..self.event("events-file-full")
                };
                let mut l = serde_json::to_string(&full).expect("serializable");
                l.push('\n');
                let _ = self.events.write_all(l.as_bytes());
            }
        }
        // Ward's log: bounded, what it keeps out is counted (logcap.rs).
        if let Some(log) = &mut self.log {
            log.write(ev);
        }
    }

    fn finish(&mut self) {
        self.flush_suppressed();
        if self.enosys_repeats > 0 {
            let names: Vec<String> = self
                .enosys_logged
                .iter()
                .map(|nr| {
                    self.arch
                        .syscall_name(*nr)
                        .map_or_else(|| format!("#{nr}"), str::to_string)
                })
                .collect();
            let ev = Event {
                suppressed: Some(self.enosys_repeats),
                message: Some(format!(
                    "{} more ENOSYS answers to {} (logged once each)",
                    self.enosys_repeats,
                    names.join(", ")
                )),
                ..self.event("seccomp-enosys-repeats")
            };
            self.emit(&ev);
        }
        if let Some(log) = &mut self.log {
            log.finish(&self.id, self.profile.name());
        }
        if self.mode == Mode::Record {
            let path = self.dir.join(super::RECORDING_FILE);
            let tmp = self.dir.join(".recording.json.tmp");
            let ok = std::fs::write(
                &tmp,
                serde_json::to_vec(&self.recording).expect("serializable"),
            )
            .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = ok {
                self.error(&format!("write {}: {e}", path.display()));
            }
        }
    }
}

/// Block SIGTERM, SIGINT, SIGHUP and read them from a signalfd polled with the rest.
fn stop_signals() -> Option<SignalFd> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    mask.thread_block().ok()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()
}

/// Read a handoff connection. `None`: nothing yet, keep it. `Some(true)`: a listener
/// arrived (added to `listeners`); `Some(false)`: the connection ended without one.
fn receive_listener(conn: &UnixStream, listeners: &mut Vec<OwnedFd>) -> Option<bool> {
    match sn::recv_fd(conn.as_fd()) {
        Ok(Some(l)) => {
            let _ = sn::notif_sync_wakeup(l.as_fd());
            listeners.push(l);
            Some(true)
        }
        Err(Errno::EINTR | Errno::EAGAIN) => None,
        Ok(None) | Err(_) => Some(false),
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Kill the task behind notification `n`: open a pidfd for it, check that the notification
/// is still pending (so the pidfd is that task, not a reused pid), send SIGKILL. The task
/// dies without the call having run.
fn kill_caller(listener: BorrowedFd<'_>, n: &sn::Notif) -> bool {
    let Ok(pidfd) = sn::pidfd_open(n.pid as i32, true) else {
        return false;
    };
    if !sn::notif_id_valid(listener, n.id) {
        return false;
    }
    sn::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL).is_ok()
}
