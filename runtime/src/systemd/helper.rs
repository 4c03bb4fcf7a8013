//! The short-lived process that talks to systemd. Ward's create path is single-threaded and
//! forks later (libcontainer clones the container): zbus and its runtime must never run in
//! it. So each D-Bus exchange runs in a child forked for it, which answers on a pipe with one
//! line.
//!
//! For a start, the child is also the scope's first process (`PIDs`): a scope cannot be
//! created empty, and when it must exist (before libcontainer builds the container into it)
//! no process of the container exists yet. The child stays in the scope, blocked, until Ward
//! lets it go ([`Holder::release`]) once the container's init is in; it dies with Ward
//! (`PR_SET_PDEATHSIG`), and a scope left empty is one systemd stops by itself.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getpid, ForkResult, Pid};
use zbus::zvariant::Value;

use super::dbus::{self, Endpoint, Failure, Property};

/// The helper kept in a started scope. Killed and reaped on release or drop.
#[derive(Debug)]
pub struct Holder {
    pid: Pid,
}

impl Holder {
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Let the helper go (the container's own processes now hold the scope).
    pub fn release(self) {
        drop(self)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Ask systemd for the scope `unit` with `props` (and `PIDs` = the helper), in a helper
/// that stays in it. Must be called from a single-threaded process.
pub fn start(endpoints: &[Endpoint], unit: &str, props: Vec<Property>) -> Result<Holder, Failure> {
    let (pid, answer) = run(true, || {
        let mut props = props;
        props.push(("PIDs", Value::from(vec![getpid().as_raw() as u32])));
        dbus::block_on(dbus::start_scope(endpoints, unit, props))
    })?;
    let holder = Holder { pid };
    answer.map(|()| holder)
}

/// Stop the scope `unit` (and reset it if it failed), in a helper that exits. Must be called
/// from a single-threaded process.
pub fn stop(endpoints: &[Endpoint], unit: &str) -> Result<(), Failure> {
    let (pid, answer) = run(false, || dbus::block_on(dbus::stop_scope(endpoints, unit)))?;
    let _ = waitpid(pid, None);
    answer
}

/// Set `props` on the unit (in a helper that exits). Single-threaded callers only.
pub fn set(endpoints: &[Endpoint], unit: &str, props: Vec<Property>) -> Result<(), Failure> {
    let (pid, answer) = run(false, || {
        dbus::block_on(dbus::set_properties(endpoints, unit, props))
    })?;
    let _ = waitpid(pid, None);
    answer
}

fn helper_failure(reason: String) -> Failure {
    Failure::Call {
        op: "helper",
        reason,
    }
}

/// Fork; in the child run `f`, write its answer, then (on success and with `hold`) wait to be
/// killed, else exit. Returns the child and its answer; the child is not reaped.
fn run<F>(hold: bool, f: F) -> Result<(Pid, Result<(), Failure>), Failure>
where
    F: FnOnce() -> Result<Result<(), Failure>, String>,
{
    if !crate::sys::single_threaded() {
        return Err(helper_failure(
            "refusing to fork from a multi-threaded process".into(),
        ));
    }
    let parent = getpid();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| helper_failure(format!("pipe: {e}")))?;
    // SAFETY: the caller is single-threaded (checked above), so the child may allocate and
    // run the D-Bus client; it never returns into Ward's code (`child` ends in _exit).
    match unsafe { fork() }.map_err(|e| helper_failure(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(r);
            child(parent, w, hold, f)
        }
        ForkResult::Parent { child } => {
            drop(w);
            let answer = read_answer(r).unwrap_or_else(|| {
                // No answer: the helper died. Reap it for its status.
                let st = waitpid(child, None);
                Err(helper_failure(format!("exited without an answer: {st:?}")))
            });
            Ok((child, answer))
        }
    }
}

fn child<F>(parent: Pid, w: OwnedFd, hold: bool, f: F) -> !
where
    F: FnOnce() -> Result<Result<(), Failure>, String>,
{
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a signal number; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid() != parent {
        // SAFETY: end the child without running the parent's destructors.
        unsafe { libc::_exit(1) }
    }
    quiet(w.as_raw_fd());
    let answer = f().unwrap_or_else(|e| Err(helper_failure(e)));
    let line = encode(&answer);
    let _ = nix::unistd::write(&w, line.as_bytes());
    if answer.is_ok() && hold {
        // Hold the scope until Ward kills us.
        loop {
            nix::unistd::pause();
        }
    }
    // SAFETY: end the child without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(i32::from(answer.is_err())) }
}

/// Close every inherited fd but `keep` (a lock or a pipe of Ward's must not outlive it
/// here), and point stdio at /dev/null (the caller reads Ward's stderr for its one line).
fn quiet(keep: i32) {
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2 && *fd != keep)
            .collect();
        for fd in fds {
            // SAFETY: closes an fd this child inherited and no longer uses (the read_dir
            // handle's own fd is closed already or fails harmlessly with EBADF).
            unsafe { libc::close(fd) };
        }
    }
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 of an fd we own onto stdio.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

fn read_answer(r: OwnedFd) -> Option<Result<(), Failure>> {
    let mut f = std::fs::File::from(r);
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Up to the newline: a helper that succeeded stays alive with its end open.
    loop {
        match f.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if buf.len() < 64 * 1024 => buf.push(byte[0]),
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    decode(&String::from_utf8_lossy(&buf))
}

/// One line: `ok`, or a kind and its fields separated by tabs (none contains a newline).
fn encode(answer: &Result<(), Failure>) -> String {
    let clean = |s: &str| s.replace(['\n', '\t'], " ");
    match answer {
        Ok(()) => "ok\n".into(),
        Err(Failure::Connect(r)) => format!("connect\t{}\n", clean(r)),
        Err(Failure::Exists(r)) => format!("exists\t{}\n", clean(r)),
        Err(Failure::Call { op, reason }) => format!("call\t{op}\t{}\n", clean(reason)),
        Err(Failure::Job { op, result }) => format!("job\t{op}\t{}\n", clean(result)),
    }
}

fn op_name(s: &str) -> &'static str {
    [
        "StartTransientUnit",
        "StopUnit",
        "ResetFailedUnit",
        "SetUnitProperties",
        "Subscribe",
        "start",
        "stop",
        "helper",
    ]
    .into_iter()
    .find(|k| *k == s)
    .unwrap_or("D-Bus")
}

fn decode(line: &str) -> Option<Result<(), Failure>> {
    let mut f = line.splitn(3, '\t');
    let kind = f.next()?;
    let (a, b) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
    Some(match kind {
        "ok" => Ok(()),
        "connect" => Err(Failure::Connect(a.into())),
        "exists" => Err(Failure::Exists(a.into())),
        "call" => Err(Failure::Call {
            op: op_name(a),
            reason: b.into(),
        }),
        "job" => Err(Failure::Job {
            op: op_name(a),
            result: b.into(),
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        for a in [
            Ok(()),
            Err(Failure::Connect("unix:path=/x: refused".into())),
            Err(Failure::Exists("Unit a.scope already exists.".into())),
            Err(Failure::Call {
                op: "StopUnit",
                reason: "access denied\tnow".into(),
            }),
            Err(Failure::Job {
                op: "start",
                result: "failed".into(),
            }),
        ] {
            let line = encode(&a);
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            let back = decode(line.trim_end_matches('\n')).unwrap();
            let want = match a {
                Err(Failure::Call { op, reason }) => Err(Failure::Call {
                    op,
                    reason: reason.replace('\t', " "),
                }),
                a => a,
            };
            assert_eq!(back, want);
        }
        assert_eq!(decode("garbage"), None);
    }

    /// The test harness runs tests on threads of their own: no helper is forked from it.
    #[test]
    fn never_forks_from_a_multi_threaded_process() {
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let e = stop(&[Endpoint::Private("/nonexistent/sd".into())], "u.scope").unwrap_err();
        assert!(
            matches!(&e, Failure::Call { op: "helper", reason } if reason.contains("multi-threaded")),
            "{e:?}"
        );
        t.join().unwrap();
    }
}
