//! The front doors of the matrix: the `ward` CLI, runc's CLI, and `ctr run` through a private
//! containerd with Ward's shim. Each starts a [`RunBundle`] with the container's output in
//! the bundle's log, tells whether it still runs, and removes it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bundle::RunBundle;
use crate::containerd::{Containerd, WARD_RUNTIME};

/// How a container is started.
pub enum FrontDoor<'a> {
    /// `ward --root R [--profile P] run -d`.
    WardCli {
        bin: PathBuf,
        root: PathBuf,
        profile: Option<&'static str>,
    },
    /// `runc --root R run -d` (no sandbox profile).
    Runc { bin: PathBuf, root: PathBuf },
    /// `ctr run --rm --config <config.json>` on Ward's shim; the profile is chosen by
    /// the `ward.dev/profile` annotation, allowed by `node_config`.
    Shim {
        containerd: &'a Containerd,
        node_config: PathBuf,
        profile: Option<&'static str>,
    },
}

/// A started container.
pub struct Started {
    id: String,
    /// The foreground `ctr run` (shim), or the init pid to reap (ward's init is our child).
    ctr: Option<Child>,
    init_pid: Option<i32>,
}

fn log_file(b: &RunBundle) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(b.log_path())
        .map_err(|e| format!("open {}: {e}", b.log_path().display()))
}

/// The container's stdout and stderr as engines give them (conmon, containerd's runc shim):
/// one pipe, copied into the run's log by a thread until the last writer closes it.
fn log_pipe(b: &RunBundle) -> Result<(Stdio, Stdio), String> {
    let mut log = log_file(b)?;
    let (mut r, w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let w2 = w.try_clone().map_err(|e| format!("dup pipe: {e}"))?;
    std::thread::spawn(move || std::io::copy(&mut r, &mut log));
    Ok((Stdio::from(w), Stdio::from(w2)))
}

fn status_of(mut c: Command) -> Result<std::process::ExitStatus, String> {
    c.status()
        .map_err(|e| format!("spawn {:?}: {e}", c.get_program()))
}

fn output_of(mut c: Command) -> Option<String> {
    let o = c.stdin(Stdio::null()).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

impl FrontDoor<'_> {
    fn cli(bin: &Path, root: &Path, profile: Option<&str>) -> Command {
        let mut c = Command::new(bin);
        c.arg("--root").arg(root);
        if let Some(p) = profile {
            c.args(["--profile", p]);
        }
        c.env("NO_COLOR", "1").stdin(Stdio::null());
        c
    }

    fn runtime_cmd(&self) -> Command {
        match self {
            Self::WardCli { bin, root, profile } => Self::cli(bin, root, *profile),
            Self::Runc { bin, root } => Self::cli(bin, root, None),
            Self::Shim { containerd, .. } => containerd.ctr_cmd(Some("default")),
        }
    }

    /// Start `b` as `id`; `Err` is the front door's refusal (its last stderr line).
    pub fn start(&self, b: &mut RunBundle, id: &str) -> Result<Started, String> {
        if let Self::Shim {
            profile: Some(p), ..
        } = self
        {
            b.annotate("ward.dev/profile", p)?;
        }
        let mut c = self.runtime_cmd();
        match self {
            // Both get one pipe for stdout and stderr, as engines pass it; Ward gives an
            // anonymous stdio pipe to the container's ids itself (runtime/src/stdio_owner.rs).
            Self::WardCli { .. } | Self::Runc { .. } => {
                c.args(["run", "-d", "--bundle"]).arg(b.path()).arg(id);
                let (out, err) = log_pipe(b)?;
                c.stdout(out).stderr(err);
                check_started(b, status_of(c)?)?;
                let init_pid = self.init_pid(id);
                Ok(Started {
                    id: id.into(),
                    ctr: None,
                    init_pid,
                })
            }
            Self::Shim { node_config, .. } => {
                c.args(["run", "--rm", "--runtime", WARD_RUNTIME]);
                c.arg("--runtime-config-path").arg(node_config);
                c.arg("--config").arg(b.config_path());
                // root.path in that config.json is the run's rootfs (ctr takes no image then).
                c.arg(id);
                let out = log_file(b)?;
                let err = out.try_clone().map_err(|e| format!("dup log: {e}"))?;
                c.stdout(out).stderr(err);
                let child = c.spawn().map_err(|e| format!("spawn ctr run: {e}"))?;
                Ok(Started {
                    id: id.into(),
                    ctr: Some(child),
                    init_pid: None,
                })
            }
        }
    }

    fn init_pid(&self, id: &str) -> Option<i32> {
        let mut c = self.runtime_cmd();
        c.args(["state", id]);
        let v: serde_json::Value = serde_json::from_str(&output_of(c)?).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// The runtime's own log where it is not the container's output: the shim's lines in
    /// containerd's log.
    pub fn runtime_log(&self) -> Option<String> {
        match self {
            Self::Shim { containerd, .. } => Some(containerd.log_text()),
            _ => None,
        }
    }

    /// Whether the container's process still runs.
    pub fn running(&self, s: &mut Started) -> bool {
        match self {
            Self::WardCli { .. } | Self::Runc { .. } => {
                let mut c = self.runtime_cmd();
                c.args(["state", &s.id]);
                output_of(c).is_some_and(|t| t.contains("\"running\""))
            }
            // The foreground `ctr run --rm` lasts as long as the task (its status would say
            // CREATED for a moment before start: not a reason to give up).
            Self::Shim { .. } => s
                .ctr
                .as_mut()
                .is_some_and(|ch| matches!(ch.try_wait(), Ok(None))),
        }
    }

    /// Kill and remove the container (and reap what is ours).
    pub fn remove(&self, mut s: Started) {
        match self {
            Self::WardCli { .. } | Self::Runc { .. } => {
                let mut c = self.runtime_cmd();
                c.args(["delete", "--force", &s.id]);
                c.stdout(Stdio::null()).stderr(Stdio::null());
                let _ = c.status();
            }
            Self::Shim { containerd, .. } => {
                let _ = containerd.ctr(Some("default"), &["tasks", "kill", "-s", "SIGKILL", &s.id]);
                if let Some(mut ch) = s.ctr.take() {
                    let end = Instant::now() + Duration::from_secs(10);
                    while ch.try_wait().ok().flatten().is_none() && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let _ = ch.kill();
                    let _ = ch.wait();
                }
                let _ = containerd.ctr(Some("default"), &["tasks", "delete", "-f", &s.id]);
                let _ = containerd.ctr(Some("default"), &["containers", "delete", &s.id]);
            }
        }
        if let Some(pid) = s.init_pid {
            use nix::sys::wait::{waitpid, WaitPidFlag};
            // Our child when ward's init was cloned with CLONE_PARENT: reap it (bounded).
            let end = Instant::now() + Duration::from_secs(5);
            while let Ok(nix::sys::wait::WaitStatus::StillAlive) =
                waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
            {
                if Instant::now() > end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A failed `run -d` / `create`: its last line of output.
fn check_started(b: &RunBundle, st: std::process::ExitStatus) -> Result<(), String> {
    if st.success() {
        return Ok(());
    }
    // Let the copy thread write the last of the output.
    std::thread::sleep(Duration::from_millis(300));
    Err(last_line(b).unwrap_or_else(|| format!("exited {st}")))
}

/// The last non-empty line of the run's log.
pub fn last_line(b: &RunBundle) -> Option<String> {
    let text = std::fs::read_to_string(b.log_path()).ok()?;
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// The first line of the run's log containing `needle`.
pub fn line_with(b: &RunBundle, needle: &str) -> Option<String> {
    let text = std::fs::read_to_string(b.log_path()).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| l.contains(needle))
        .map(str::to_string)
}
