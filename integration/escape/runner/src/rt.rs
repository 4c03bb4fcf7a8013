//! Driving an OCI runtime (ward, runc, crun) through its runc-compatible CLI,
//! or the unconfined host sandbox.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Runtime {
    /// "ward", "runc", "crun" or "host".
    pub kind: String,
    pub path: PathBuf,
    pub profile: Option<String>,
    /// --root state directory, owned by this suite run.
    pub root: PathBuf,
    /// ward only: `--log FILE --log-format json`, read for denied-syscall reports.
    pub log: Option<PathBuf>,
    /// Containerd mode (`ward-shim` columns): the private containerd to go through.
    pub ctrd: Option<std::sync::Arc<crate::ctrd::Ctrd>>,
}

pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Runtime {
    pub fn label(&self) -> String {
        match &self.profile {
            Some(p) => format!("{}:{p}", self.kind),
            None => self.kind.clone(),
        }
    }

    fn base(&self) -> Command {
        let mut c = Command::new(&self.path);
        if let Some(p) = &self.profile {
            c.arg("--profile").arg(p);
        }
        if let Some(l) = &self.log {
            c.arg("--log").arg(l).arg("--log-format").arg("json");
        }
        c.arg("--root").arg(&self.root);
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.base();
        c.args(args);
        c
    }

    /// `run --bundle B ID`, foreground, capturing output.
    pub fn run(&self, bundle: &Path, id: &str, timeout: Duration) -> Output {
        let b = bundle.to_string_lossy();
        run_cmd(self.cmd(&["run", "--bundle", &b, id]), timeout)
    }

    /// `run -d`: the container inherits the runtime's stdio, so it gets
    /// /dev/null and a file rather than our pipes (which it would hold open).
    pub fn run_detached(&self, bundle: &Path, id: &str) -> Output {
        let b = bundle.to_string_lossy();
        let errf = self.root.join(format!("{id}.stderr"));
        let mut c = self.cmd(&["run", "-d", "--bundle", &b, id]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        if let Ok(f) = std::fs::File::create(&errf) {
            c.stderr(f);
        }
        let status = c.status().ok().and_then(|s| s.code());
        let stderr = std::fs::read_to_string(&errf).unwrap_or_default();
        let _ = std::fs::remove_file(&errf);
        Output {
            status,
            stdout: String::new(),
            stderr,
            timed_out: false,
        }
    }

    pub fn exec(&self, id: &str, args: &[String], timeout: Duration) -> Output {
        let mut c = self.cmd(&["exec", id]);
        c.args(args);
        run_cmd(c, timeout)
    }

    pub fn kill(&self, id: &str, sig: &str) -> Output {
        run_cmd(self.cmd(&["kill", id, sig]), Duration::from_secs(20))
    }

    pub fn delete(&self, id: &str) -> Output {
        run_cmd(
            self.cmd(&["delete", "--force", id]),
            Duration::from_secs(30),
        )
    }

    pub fn state(&self, id: &str) -> Option<serde_json::Value> {
        let o = run_cmd(self.cmd(&["state", id]), Duration::from_secs(20));
        serde_json::from_str(&o.stdout).ok()
    }

    /// Container ids the runtime still knows under our --root.
    pub fn list(&self) -> Vec<String> {
        if let Some(c) = &self.ctrd {
            return c.list();
        }
        let o = run_cmd(self.cmd(&["list", "-q"]), Duration::from_secs(20));
        if o.status == Some(0) {
            return o
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
        }
        let o = run_cmd(self.cmd(&["list"]), Duration::from_secs(20));
        o.stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }
}

/// Run a command with a deadline; a command still running then is killed
/// (it is a process this runner started).
pub fn run_cmd(mut c: Command, timeout: Duration) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            return Output {
                status: None,
                stdout: String::new(),
                stderr: format!("spawn {:?}: {e}", c.get_program()),
                timed_out: false,
            }
        }
    };
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = err.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok().and_then(|s| s.code());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // A detached container may keep the pipes open; do not wait for it forever.
    let stdout = join_within(t_out, Duration::from_secs(5));
    let stderr = join_within(t_err, Duration::from_secs(5));
    Output {
        status,
        stdout,
        stderr,
        timed_out,
    }
}

fn join_within(h: std::thread::JoinHandle<String>, d: Duration) -> String {
    let start = Instant::now();
    while !h.is_finished() && start.elapsed() < d {
        std::thread::sleep(Duration::from_millis(10));
    }
    if h.is_finished() {
        h.join().unwrap_or_default()
    } else {
        String::new()
    }
}

/// crun refuses this host's hybrid layout while hugetlb sits on cgroup2:
/// give hugetlb its own v1 hierarchy if it has none. Nothing else is touched.
pub fn ensure_hugetlb_v1() -> Result<(), String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let has_v1 = mi
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.contains("hugetlb"));
    if has_v1 || !mi.contains(" - cgroup2 ") || !Path::new("/sys/fs/cgroup/memory").exists() {
        return Ok(());
    }
    let _ = std::fs::create_dir("/sys/fs/cgroup/hugetlb");
    let o = run_cmd(
        {
            let mut c = Command::new("mount");
            c.args([
                "-t",
                "cgroup",
                "-o",
                "hugetlb",
                "cgroup",
                "/sys/fs/cgroup/hugetlb",
            ]);
            c
        },
        Duration::from_secs(10),
    );
    if o.status == Some(0) {
        eprintln!(
            "ward-escape: mounted the hugetlb v1 hierarchy at /sys/fs/cgroup/hugetlb for crun"
        );
        Ok(())
    } else {
        Err(format!("mount hugetlb: {}", o.stderr.trim()))
    }
}
