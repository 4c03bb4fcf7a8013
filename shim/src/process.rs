//! One process the shim tracks (a container's init or an exec), its state
//! machine, and the table that routes the launcher's exit reports to it.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::events::EventSink;
use crate::io::{ProcessIo, StdioPaths};

/// How long TaskExit waits for a terminal's output to be copied out.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone)]
pub struct ProcState {
    pub pid: i32,
    pub status: Status,
    /// A Start is in flight: an exit seen now is published after TaskStart.
    starting: bool,
    pending_exit: Option<i32>,
    pub exit_status: u32,
    pub exited_at: Option<SystemTime>,
}

pub struct Process {
    pub container_id: String,
    pub exec_id: Option<String>,
    pub stdio: StdioPaths,
    /// For an exec: the OCI process to run at Start.
    pub spec: Option<serde_json::Value>,
    state: Mutex<ProcState>,
    cond: Condvar,
    io: Mutex<Option<Arc<ProcessIo>>>,
}

impl Process {
    pub fn new(
        container_id: &str,
        exec_id: Option<&str>,
        stdio: StdioPaths,
        spec: Option<serde_json::Value>,
        pid: i32,
    ) -> Self {
        Self {
            container_id: container_id.to_string(),
            exec_id: exec_id.map(String::from),
            stdio,
            spec,
            state: Mutex::new(ProcState {
                pid,
                status: Status::Created,
                starting: false,
                pending_exit: None,
                exit_status: 0,
                exited_at: None,
            }),
            cond: Condvar::new(),
            io: Mutex::new(None),
        }
    }

    /// The id containerd uses for this process in events (exec id, or the container id).
    pub fn event_id(&self) -> &str {
        self.exec_id.as_deref().unwrap_or(&self.container_id)
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> ProcState {
        self.lock().clone()
    }

    pub fn set_io(&self, io: ProcessIo) {
        *self.io.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(io));
    }

    pub fn io(&self) -> Option<Arc<ProcessIo>> {
        self.io.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Drops the shim's half of the stdio (stops the copy threads).
    pub fn close_io(&self) {
        self.io.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub fn set_status(&self, status: Status) {
        self.lock().status = status;
    }

    /// Marks a Start in flight; fails unless the process is Created.
    pub fn begin_start(&self) -> Result<(), Status> {
        let mut st = self.lock();
        if st.status != Status::Created || st.starting {
            return Err(st.status);
        }
        st.starting = true;
        Ok(())
    }

    /// Ends a Start: on success sets Running and runs `publish_started`
    /// before any exit that raced with the start is published.
    pub fn end_start(
        &self,
        pid: Option<i32>,
        events: &EventSink,
        publish_started: impl FnOnce(i32),
    ) {
        let mut st = self.lock();
        st.starting = false;
        if let Some(pid) = pid {
            st.pid = pid;
            if st.status == Status::Created {
                st.status = Status::Running;
            }
            publish_started(pid);
        }
        if let Some(code) = st.pending_exit.take() {
            self.finish(&mut st, code, events);
        }
    }

    /// The process will never run or be reported (its start failed, or it
    /// was deleted): releases anyone blocked in `wait`, without a TaskExit.
    pub fn abandon(&self, code: u32) {
        let mut st = self.lock();
        if st.status != Status::Stopped {
            st.status = Status::Stopped;
            st.exit_status = code;
            st.exited_at = Some(SystemTime::now());
        }
        self.cond.notify_all();
    }

    /// The launcher reaped this process.
    pub fn exited(&self, code: i32, events: &EventSink) {
        if let Some(io) = self.io() {
            io.wait_output(OUTPUT_DRAIN);
        }
        let mut st = self.lock();
        if st.starting {
            st.pending_exit = Some(code);
            return;
        }
        self.finish(&mut st, code, events);
    }

    fn finish(&self, st: &mut ProcState, code: i32, events: &EventSink) {
        if st.status == Status::Stopped {
            return;
        }
        let at = SystemTime::now();
        st.status = Status::Stopped;
        st.exit_status = code as u32;
        st.exited_at = Some(at);
        events.exit(
            &self.container_id,
            self.event_id(),
            st.pid,
            st.exit_status,
            at,
        );
        self.cond.notify_all();
    }

    /// Waits until the process has stopped or `deadline` passed; true if it stopped.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        while st.status != Status::Stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Blocks until the process has stopped.
    pub fn wait(&self) -> (u32, Option<SystemTime>) {
        let mut st = self.lock();
        while st.status != Status::Stopped {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        (st.exit_status, st.exited_at)
    }
}

/// Routes `(pid, status)` from the launcher to the process with that pid.
/// An exit can arrive before the pid is registered (a process that dies at
/// once): it is parked until registration.
pub struct ExitTable {
    inner: Mutex<ExitInner>,
    redeliver: Sender<(i32, i32)>,
}

#[derive(Default)]
struct ExitInner {
    by_pid: HashMap<i32, Arc<Process>>,
    unclaimed: HashMap<i32, i32>,
    /// Pids of deleted processes whose exit is still to come: dropped.
    ignored: HashSet<i32>,
}

impl ExitTable {
    /// `redeliver` feeds the same queue the launcher's exits go to.
    pub fn new(redeliver: Sender<(i32, i32)>) -> Self {
        Self {
            inner: Mutex::default(),
            redeliver,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ExitInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, pid: i32, process: Arc<Process>) {
        let mut inner = self.lock();
        inner.by_pid.insert(pid, process);
        if let Some(code) = inner.unclaimed.remove(&pid) {
            if self.redeliver.send((pid, code)).is_err() {
                tracing::error!(pid, "exit queue is gone");
            }
        }
    }

    /// The process was deleted: a later exit for `pid` is not reported.
    pub fn forget(&self, pid: i32) {
        let mut inner = self.lock();
        let still_running = inner.by_pid.remove(&pid).is_some();
        inner.unclaimed.remove(&pid);
        if still_running {
            inner.ignored.insert(pid);
        }
    }

    /// The registered process that exited as `pid`, unregistered; `None` when the pid is
    /// ignored or unknown (an unknown exit is parked for a later `register` if `park`).
    fn take_exited(&self, pid: i32, code: i32, park: bool) -> Option<Arc<Process>> {
        let mut inner = self.lock();
        if inner.ignored.remove(&pid) {
            return None;
        }
        let found = inner.by_pid.remove(&pid);
        if found.is_none() && park {
            inner.unclaimed.insert(pid, code);
        }
        found
    }

    /// Handles the exit of a process the shim itself reaped: an orphan of a dead launcher
    /// (the shim is its subreaper). Only a pid registered now is reported; any other is not
    /// parked (it could be a recycled pid that a later container gets).
    pub fn dispatch_orphan(&self, pid: i32, code: i32, events: &EventSink) {
        let Some(process) = self.take_exited(pid, code, false) else {
            return;
        };
        tracing::info!(
            pid,
            code,
            id = process.event_id(),
            "orphaned process exited"
        );
        process.exited(code, events);
    }

    /// Handles one exit (on the exit thread).
    pub fn dispatch(&self, pid: i32, code: i32, events: &EventSink) {
        let Some(process) = self.take_exited(pid, code, true) else {
            return;
        };
        tracing::info!(pid, code, id = process.event_id(), "process exited");
        process.exited(code, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::topics;

    #[test]
    fn exit_before_registration_is_delivered_on_register() {
        let (events, rx) = EventSink::channel();
        let (tx, exits) = std::sync::mpsc::channel();
        let table = ExitTable::new(tx);
        table.dispatch(42, 3, &events);
        assert!(rx.try_recv().is_err());
        let p = Arc::new(Process::new("c1", None, StdioPaths::default(), None, 42));
        table.register(42, p.clone());
        let (pid, code) = exits.try_recv().unwrap();
        table.dispatch(pid, code, &events);
        assert_eq!(p.wait().0, 3);
        assert_eq!(rx.try_recv().unwrap().topic, topics::TASK_EXIT_EVENT_TOPIC);
    }

    #[test]
    fn exit_during_start_is_published_after_task_start() {
        let (events, rx) = EventSink::channel();
        let p = Process::new("c1", None, StdioPaths::default(), None, 7);
        p.begin_start().unwrap();
        p.exited(40, &events);
        assert!(rx.try_recv().is_err(), "exit must wait for the start");
        p.end_start(Some(7), &events, |pid| events.start("c1", pid));
        assert_eq!(rx.try_recv().unwrap().topic, topics::TASK_START_EVENT_TOPIC);
        assert_eq!(rx.try_recv().unwrap().topic, topics::TASK_EXIT_EVENT_TOPIC);
        assert_eq!(p.snapshot().status, Status::Stopped);
        assert_eq!(p.wait().0, 40);
    }

    #[test]
    fn orphan_exits_reach_registered_pids_only() {
        let (events, rx) = EventSink::channel();
        let (tx, _exits) = std::sync::mpsc::channel();
        let table = ExitTable::new(tx);
        // An unknown pid (say a supervisor the shim reaped) is not parked: a later container
        // with the same pid must not get its status.
        table.dispatch_orphan(11, 137, &events);
        assert!(table.lock().unclaimed.is_empty());
        let p = Arc::new(Process::new("c1", None, StdioPaths::default(), None, 12));
        table.register(12, p.clone());
        table.dispatch_orphan(12, 137, &events);
        assert_eq!(p.wait().0, 137);
        assert_eq!(rx.try_recv().unwrap().topic, topics::TASK_EXIT_EVENT_TOPIC);
    }

    #[test]
    fn wait_until_times_out_then_sees_the_exit() {
        let (events, _rx) = EventSink::channel();
        let p = Process::new("c1", None, StdioPaths::default(), None, 7);
        assert!(!p.wait_until(Instant::now() + Duration::from_millis(20)));
        p.exited(137, &events);
        assert!(p.wait_until(Instant::now()));
    }

    #[test]
    fn forgotten_pids_are_not_reported() {
        let (events, rx) = EventSink::channel();
        let (tx, _exits) = std::sync::mpsc::channel();
        let table = ExitTable::new(tx);
        let p = Arc::new(Process::new("c1", None, StdioPaths::default(), None, 9));
        table.register(9, p);
        table.forget(9);
        table.dispatch(9, 137, &events);
        assert!(rx.try_recv().is_err());
        // and the table holds nothing for 9 any more
        table.dispatch(9, 0, &events);
        assert!(table.lock().unclaimed.contains_key(&9));
    }

    #[test]
    fn abandon_releases_waiters_without_an_event() {
        let (_events, rx) = EventSink::channel();
        let p = Arc::new(Process::new(
            "c1",
            Some("e1"),
            StdioPaths::default(),
            None,
            0,
        ));
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.wait())
        };
        std::thread::sleep(Duration::from_millis(20));
        p.abandon(255);
        assert_eq!(waiter.join().unwrap().0, 255);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn second_start_is_refused() {
        let (events, _rx) = EventSink::channel();
        let p = Process::new("c1", None, StdioPaths::default(), None, 7);
        p.begin_start().unwrap();
        p.end_start(Some(7), &events, |_| {});
        assert_eq!(p.begin_start(), Err(Status::Running));
    }
}
