//! OOM notifications: cgroup v1 through `memory.oom_control` + an eventfd
//! registered in `cgroup.event_control`; cgroup v2 by watching
//! `memory.events` (inotify) for a rising `oom_kill` count.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Error, Result};
use crate::events::EventSink;
use crate::launcher::protocol::CgroupPaths;

/// Stops its watcher thread when dropped (the thread also stops by itself
/// once the cgroup is removed).
pub struct OomWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for OomWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Poll timeout between checks of the stop flag.
const TICK_MS: u16 = 1000;

pub fn watch(id: &str, paths: &CgroupPaths, sink: EventSink) -> Result<Option<OomWatch>> {
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(dir) = &paths.memory_v1 {
        watch_v1(id.to_string(), dir.clone(), sink, stop.clone())?;
    } else if let Some(dir) = &paths.unified {
        watch_v2(id.to_string(), dir.clone(), sink, stop.clone())?;
    } else {
        return Ok(None);
    }
    Ok(Some(OomWatch { stop }))
}

fn watch_v1(id: String, dir: PathBuf, sink: EventSink, stop: Arc<AtomicBool>) -> Result<()> {
    let control = dir.join("memory.oom_control");
    let oom_control = File::open(&control).map_err(Error::io("open", &control))?;
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(Error::sys("eventfd"))?;
    let event_control = dir.join("cgroup.event_control");
    std::fs::write(
        &event_control,
        format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd()),
    )
    .map_err(Error::io("write", &event_control))?;
    std::thread::Builder::new()
        .name("oom-v1".into())
        .spawn(move || {
            let _keep = oom_control;
            while !stop.load(Ordering::SeqCst) {
                let mut fds = [PollFd::new(efd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(TICK_MS)) {
                    Ok(0) | Err(nix::Error::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "oom watch poll");
                        return;
                    }
                }
                if efd.read().is_err() {
                    continue;
                }
                // The eventfd also fires when the cgroup is removed.
                if !control.exists() {
                    return;
                }
                tracing::info!(id = %id, "container hit its memory limit (OOM)");
                sink.oom(&id);
            }
        })
        .map_err(Error::io("spawn thread", "oom-v1"))?;
    Ok(())
}

/// The `oom_kill` counter of a v2 `memory.events` file.
pub fn oom_kills(memory_events: &str) -> u64 {
    memory_events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn read_oom_kills(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().map(|s| oom_kills(&s))
}

fn watch_v2(id: String, dir: PathBuf, sink: EventSink, stop: Arc<AtomicBool>) -> Result<()> {
    let events = dir.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(Error::sys("inotify_init"))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(Error::sys("inotify_add_watch memory.events"))?;
    let mut seen = read_oom_kills(&events).unwrap_or(0);
    std::thread::Builder::new()
        .name("oom-v2".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(TICK_MS)) {
                    Ok(0) | Err(nix::Error::EINTR) => {}
                    Ok(_) => {
                        let _ = inotify.read_events();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "oom watch poll");
                        return;
                    }
                }
                let Some(now) = read_oom_kills(&events) else {
                    return; // cgroup removed
                };
                if now > seen {
                    seen = now;
                    tracing::info!(id = %id, "container hit its memory limit (OOM)");
                    sink.oom(&id);
                }
            }
        })
        .map_err(Error::io("spawn thread", "oom-v2"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_kill_counter() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kills(text), 2);
        assert_eq!(oom_kills(""), 0);
    }

    #[test]
    fn v2_watch_reports_rising_oom_kill() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        let (sink, rx) = EventSink::channel();
        let paths = CgroupPaths {
            memory_v1: None,
            unified: Some(dir.path().to_path_buf()),
        };
        let _w = watch("c1", &paths, sink).unwrap().unwrap();
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        let ev = rx.recv_timeout(std::time::Duration::from_secs(3)).unwrap();
        assert_eq!(
            ev.topic,
            containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC
        );
    }
}
