//! A network namespace made by the test, loopback only, held by a sleeping child of ours.
//!
//! Like an engine's pod network (containerd 2 sets the same sysctl in pod namespaces), it
//! lets any user bind ports from 0: Ward leaves a namespace named by path as it is, and
//! nginx binds :80 without any capability over this namespace. Every container of the
//! matrix joins one by path (`linux.namespaces[network].path`); the checks run on the host
//! side from inside it ([`NetNs::enter`]), so nothing touches the host's network.

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The namespace and the process that holds it.
pub struct NetNs {
    holder: Child,
}

const SETUP: &str = "/bin/busybox ip link set lo up \
    && echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start \
    && echo ready && exec /bin/busybox sleep 3600";

impl NetNs {
    /// A new namespace with loopback up (`unshare --net`, the host's static busybox).
    pub fn new() -> Result<Self, String> {
        let mut holder = Command::new("unshare")
            .args(["--net", "--", "/bin/busybox", "sh", "-c", SETUP])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn unshare --net: {e}"))?;
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let me = Self { holder };
        if line.trim() != "ready" {
            return Err("network namespace holder did not set up loopback".into());
        }
        Ok(me)
    }

    /// `/proc/<holder>/ns/net`: the path a config.json names.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.id()))
    }

    /// Run `f` on a thread of its own that has joined the namespace (setns moves only the
    /// calling thread; the test's other threads stay on the host's network).
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("open {path:?}: {e}"))?;
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {path:?}: {e}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| "netns thread panicked".to_string())?
    }

    /// A command that runs inside the namespace (`nsenter --net`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
