//! The supervisor's loop: accept handoff connections, receive listener fds, answer
//! notifications, write events (rate-limited) and, in learn mode, the recording.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};
use ward_profiles::{Action, Arch, Mode, Profile};

use crate::sys::notify::{self as sn, Answer};

/// Burst of denial events a container may log at once.
pub const EVENT_BURST: f64 = 100.0;
/// Sustained denial events per second once the burst is spent; the rest is counted and
/// reported as one "N denials suppressed" line at most once a second.
pub const EVENT_RATE: f64 = 20.0;

/// Size cap of a container's events file (it lives under the state dir, often a tmpfs):
/// past it, lines go to Ward's log only and one `events-file-full` line says so.
pub const EVENTS_FILE_CAP: u64 = 16 << 20;

/// How often a "N denials suppressed" line may be written.
const SUMMARY_EVERY: Duration = Duration::from_secs(1);

/// Syscalls whose arguments learn mode keeps (the draft writes argument rules for them).
const ARG_FILTERED: &[&str] = &["clone", "socket", "ioctl", "personality", "prctl"];
const MAX_ARG_SETS: usize = 256;

/// One line of `events.jsonl` (and of `ward events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub time: String,
    /// `seccomp-denial`, `seccomp-denials-suppressed`, `supervisor-error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The caller's pid inside the container's pid namespace (best effort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// What the caller got: `errno:EPERM`, `kill`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What learn mode saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    pub arch: String,
    /// Notifications handled.
    pub calls: u64,
    /// Syscall name → argument vectors seen (all distinct ones, up to 256, for the
    /// argument-filtered calls; the first one otherwise).
    pub syscalls: BTreeMap<String, Vec<[u64; 6]>>,
    /// Absolute paths opened for writing, created, removed or renamed.
    pub written: BTreeSet<String>,
    /// Absolute paths opened read-only, stat'ed or checked.
    pub read: BTreeSet<String>,
    /// Programs executed.
    pub exec: BTreeSet<String>,
    /// Path arguments that could not be used (relative, unreadable, or the notification
    /// went away while reading).
    pub paths_skipped: u64,
}

/// RFC 3339 UTC time with microseconds (as Ward's log prints it).
pub(crate) fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Token bucket: `burst` at once, `rate` per second after that.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(burst: f64, rate: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            rate,
            last: Instant::now(),
        }
    }

    pub(crate) fn take_at(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Which argument of a path-taking syscall is the path, and how it uses it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathUse {
    Read,
    Write,
    Exec,
    /// open-like: flags in argument `.1` decide read or write.
    Open(usize),
    /// openat2: `struct open_how` at argument 2, flags first.
    OpenHow,
}

fn path_arg(name: &str) -> Option<(usize, PathUse)> {
    use PathUse::*;
    Some(match name {
        "execve" => (0, Exec),
        "execveat" => (1, Exec),
        "open" => (0, Open(1)),
        "openat" => (1, Open(2)),
        "openat2" => (1, OpenHow),
        "creat" | "mkdir" | "rmdir" | "unlink" | "truncate" | "chmod" | "chown" | "lchown"
        | "mknod" => (0, Write),
        "mkdirat" | "unlinkat" | "fchmodat" | "fchownat" | "mknodat" | "renameat" | "renameat2"
        | "link" | "symlink" => (1, Write),
        "rename" => (1, Write),
        "linkat" => (3, Write),
        "symlinkat" => (2, Write),
        "stat" | "lstat" | "access" | "readlink" | "chdir" | "statfs" => (0, Read),
        "newfstatat" | "statx" | "faccessat" | "faccessat2" | "readlinkat" => (1, Read),
        _ => return None,
    })
}

fn is_write_open(flags: u64) -> bool {
    let f = flags as i32;
    (f & libc::O_ACCMODE) != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0
}

/// Read a NUL-terminated string from `pid`'s memory (at most 4096 bytes).
fn read_cstr(pid: u32, addr: u64) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut off = 0u64;
    while out.len() < 4096 {
        // Stay within the page: a read across into an unmapped page fails as a whole.
        let page_left = 4096 - ((addr + off) % 4096) as usize;
        let mut buf = vec![0u8; page_left.min(256)];
        let n = sn::read_mem(pid, addr + off, &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..i]);
            return String::from_utf8(out).ok();
        }
        out.extend_from_slice(&buf[..n]);
        off += n as u64;
    }
    None
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
    log: Option<File>,
    json: bool,
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
            log,
            json,
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
        v.extend(self.log.as_ref().map(|f| f.as_raw_fd()));
        v
    }

    /// Serve until every listener hangs up, SIGTERM/SIGINT/SIGHUP, or the handoff fails.
    pub(crate) fn run(mut self, listening: UnixListener) -> i32 {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
            mask.add(s);
        }
        if mask.thread_block().is_err() {
            return 1;
        }
        let Ok(sigfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        else {
            return 1;
        };
        if listening.set_nonblocking(true).is_err() {
            return 1;
        }
        let mut conns: Vec<UnixStream> = Vec::new();
        let mut listeners: Vec<OwnedFd> = Vec::new();
        let mut got_listener = false;
        let mut had_conn = false;
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
            // With denials suppressed, wake up when their summary line is due.
            let timeout = if self.suppressed > 0 {
                SUMMARY_EVERY
                    .saturating_sub(self.last_summary.elapsed())
                    .as_millis() as i32
                    + 1
            } else {
                -1
            };
            if sn::poll(&mut fds, timeout).is_err() {
                self.error("poll failed");
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
                    Slot::Conn(i) => match sn::recv_fd(conns[*i].as_fd()) {
                        Ok(Some(l)) => {
                            let _ = sn::notif_sync_wakeup(l.as_fd());
                            listeners.push(l);
                            got_listener = true;
                            drop_conns.insert(*i);
                        }
                        Ok(None) => {
                            drop_conns.insert(*i);
                        }
                        Err(Errno::EINTR | Errno::EAGAIN) => {}
                        Err(_) => {
                            drop_conns.insert(*i);
                        }
                    },
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
                self.record(listener, &n);
                let _ = sn::notif_send(listener, n.id, Answer::Continue);
            }
            Mode::EnforceAndReport | Mode::Enforce => {
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
                self.report(n.pid, nr, &args, given);
            }
        }
    }

    fn report(&mut self, pid: u32, nr: u32, args: &[u64; 6], action: Action) {
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
            time: now_rfc3339(),
            kind: "seccomp-denial".into(),
            id: self.id.clone(),
            profile: self.profile.name().to_string(),
            pid: Some(pid),
            container_pid: container_pid(pid),
            syscall: Some(name.unwrap_or_else(|| format!("#{nr}"))),
            nr: Some(nr),
            args: Some(args.iter().map(|a| format!("{a:#x}")).collect()),
            action: Some(action.as_text()),
            suppressed: None,
            message: None,
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
            time: now_rfc3339(),
            kind: "seccomp-denials-suppressed".into(),
            id: self.id.clone(),
            profile: self.profile.name().to_string(),
            suppressed: Some(self.suppressed),
            message: Some(format!(
                "{} denials suppressed (rate limit {EVENT_RATE}/s, burst {EVENT_BURST})",
                self.suppressed
            )),
            ..empty_event()
        };
        self.suppressed = 0;
        self.last_summary = Instant::now();
        self.emit(&ev);
    }

    fn error(&mut self, message: &str) {
        let ev = Event {
            time: now_rfc3339(),
            kind: "supervisor-error".into(),
            id: self.id.clone(),
            profile: self.profile.name().to_string(),
            message: Some(message.to_string()),
            ..empty_event()
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
                    time: now_rfc3339(),
                    kind: "events-file-full".into(),
                    id: self.id.clone(),
                    profile: self.profile.name().to_string(),
                    message: Some(format!(
                        "events file reached {EVENTS_FILE_CAP} bytes; further events go to Ward's log only"
                    )),
                    ..empty_event()
                };
                let mut l = serde_json::to_string(&full).expect("serializable");
                l.push('\n');
                let _ = self.events.write_all(l.as_bytes());
            }
        }
        if let Some(log) = &mut self.log {
            let text = if self.json {
                log_json(ev)
            } else {
                log_text(ev)
            };
            let _ = log.write_all(text.as_bytes());
        }
    }

    fn record(&mut self, listener: BorrowedFd<'_>, n: &sn::Notif) {
        self.recording.calls += 1;
        let nr = n.data.nr as u32;
        let args = n.data.args;
        let Some(name) = self.arch.syscall_name(nr) else {
            return;
        };
        let seen = self.recording.syscalls.entry(name.to_string()).or_default();
        if ARG_FILTERED.contains(&name) {
            if seen.len() < MAX_ARG_SETS && !seen.contains(&args) {
                seen.push(args);
            }
        } else if seen.is_empty() {
            seen.push(args);
        }
        let Some((idx, how)) = path_arg(name) else {
            return;
        };
        // Best effort, and racy by nature: another thread of the caller may change the
        // string after we read it (TOCTOU). The kernel reads it again itself when the call
        // continues, so a recorded path is a hint for a draft, never a security decision.
        let path = read_cstr(n.pid, args[idx]);
        let how = match how {
            PathUse::Open(flags) => {
                if is_write_open(args[flags]) {
                    PathUse::Write
                } else {
                    PathUse::Read
                }
            }
            PathUse::OpenHow => {
                let mut b = [0u8; 8];
                match sn::read_mem(n.pid, args[2], &mut b) {
                    Ok(8) if is_write_open(u64::from_ne_bytes(b)) => PathUse::Write,
                    _ => PathUse::Read,
                }
            }
            other => other,
        };
        // The memory we read belonged to the caller only if its call is still pending.
        let valid = sn::notif_id_valid(listener, n.id);
        match path {
            Some(p) if valid && p.starts_with('/') => {
                let set = match how {
                    PathUse::Write => &mut self.recording.written,
                    PathUse::Exec => &mut self.recording.exec,
                    _ => &mut self.recording.read,
                };
                if set.len() < 10_000 {
                    set.insert(p);
                }
            }
            _ => self.recording.paths_skipped += 1,
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
                time: now_rfc3339(),
                kind: "seccomp-enosys-repeats".into(),
                id: self.id.clone(),
                profile: self.profile.name().to_string(),
                suppressed: Some(self.enosys_repeats),
                message: Some(format!(
                    "{} more ENOSYS answers to {} (logged once each)",
                    self.enosys_repeats,
                    names.join(", ")
                )),
                ..empty_event()
            };
            self.emit(&ev);
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

fn empty_event() -> Event {
    Event {
        time: String::new(),
        kind: String::new(),
        id: String::new(),
        profile: String::new(),
        pid: None,
        container_pid: None,
        syscall: None,
        nr: None,
        args: None,
        action: None,
        suppressed: None,
        message: None,
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

/// The level of a line in Ward's log.
fn level(ev: &Event) -> &'static str {
    match ev.kind.as_str() {
        "supervisor-error" => "ERROR",
        _ => "WARN",
    }
}

fn summary(ev: &Event) -> String {
    match (&ev.syscall, &ev.message) {
        (Some(s), _) => format!(
            "seccomp denied {s}({}) -> {}",
            ev.args.as_deref().unwrap_or_default().join(", "),
            ev.action.as_deref().unwrap_or("?")
        ),
        (None, Some(m)) => m.clone(),
        (None, None) => ev.kind.clone(),
    }
}

/// A JSON line shaped like the rest of Ward's `--log-format json` log.
fn log_json(ev: &Event) -> String {
    let mut v = serde_json::to_value(ev).expect("serializable");
    if let Some(o) = v.as_object_mut() {
        o.remove("time");
        o.insert("timestamp".into(), ev.time.clone().into());
        o.insert("level".into(), level(ev).into());
        o.insert("message".into(), summary(ev).into());
        o.insert("target".into(), "ward::supervisor".into());
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// A text line shaped like the rest of Ward's text log.
fn log_text(ev: &Event) -> String {
    let mut s = format!(
        "{} {:>5} {} id={} profile={}",
        ev.time,
        level(ev),
        summary(ev),
        ev.id,
        ev.profile
    );
    if let Some(p) = ev.pid {
        s.push_str(&format!(" pid={p}"));
    }
    if let Some(p) = ev.container_pid {
        s.push_str(&format!(" container_pid={p}"));
    }
    if let Some(nr) = ev.nr {
        s.push_str(&format!(" nr={nr}"));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 2.0);
        b.last = t0;
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0));
        assert!(!b.take_at(t0 + Duration::from_millis(400)));
        assert!(b.take_at(t0 + Duration::from_millis(600)));
        assert!(!b.take_at(t0 + Duration::from_millis(700)));
        // Never more than the burst after a long pause.
        let later = t0 + Duration::from_secs(100);
        assert!((0..3).all(|_| b.take_at(later)));
        assert!(!b.take_at(later));
    }

    #[test]
    fn rfc3339_format() {
        let s = now_rfc3339();
        assert_eq!(s.len(), "2026-11-22T16:00:00.000000Z".len(), "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        let year: i32 = s[..4].parse().unwrap();
        assert!(year >= 2024, "{s}");
    }

    #[test]
    fn open_flags_decide_write() {
        assert!(!is_write_open(libc::O_RDONLY as u64));
        assert!(!is_write_open((libc::O_RDONLY | libc::O_CLOEXEC) as u64));
        assert!(is_write_open(libc::O_WRONLY as u64));
        assert!(is_write_open(libc::O_RDWR as u64));
        assert!(is_write_open((libc::O_RDONLY | libc::O_CREAT) as u64));
    }

    #[test]
    fn log_lines_name_container_and_syscall() {
        let ev = Event {
            time: "2026-11-22T16:00:00.000000Z".into(),
            kind: "seccomp-denial".into(),
            id: "c1".into(),
            profile: "default".into(),
            pid: Some(10),
            syscall: Some("unshare".into()),
            nr: Some(272),
            args: Some(vec!["0x10000000".into()]),
            action: Some("errno:EPERM".into()),
            ..empty_event()
        };
        let j: serde_json::Value = serde_json::from_str(&log_json(&ev)).unwrap();
        assert_eq!(j["id"], "c1");
        assert_eq!(j["syscall"], "unshare");
        assert_eq!(j["level"], "WARN");
        assert_eq!(j["profile"], "default");
        let t = log_text(&ev);
        assert!(t.contains("seccomp denied unshare(0x10000000) -> errno:EPERM id=c1"));
    }
}
