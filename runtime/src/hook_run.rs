//! Ward runs the host-side OCI hooks itself (`prestart`, `createRuntime`, `poststart`,
//! `poststop`), as the runtime spec says, instead of leaving them to libcontainer (which gives
//! them Ward's state dir as the bundle and makes `delete` fail forever on a failing poststop):
//! - the state on a hook's stdin carries the caller's bundle;
//! - a failing `prestart`/`createRuntime` hook fails create, naming the hook;
//! - a failing `poststart` hook is logged and `start` stands; a failing `poststop` hook is
//!   logged and `delete` goes on;
//! - every hook has a timeout: its own `timeout` when positive, else the node's
//!   `[hooks] default_timeout_secs` (set by `hooks::bound_timeouts` at create), else
//!   [`DEFAULT_TIMEOUT`].
//!
//! Which programs may run at all is `hooks.rs`'s (the node's `[hooks] allow` list).
//! `createContainer` stays with libcontainer (it runs in the container's namespaces).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};
use serde::{Deserialize, Serialize};

/// Timeout of a hook that names none (or a non-positive one).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookRunError {
    #[error("{field} ({}): {what}", path.display())]
    Failed {
        field: String,
        path: PathBuf,
        what: String,
    },
}

/// The host-side hooks of a container, taken out of the spec libcontainer sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostHooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

impl HostHooks {
    pub fn is_empty(&self) -> bool {
        self == &HostHooks::default()
    }
}

/// Take the host-side hooks out of `spec` (what is left, createContainer and startContainer,
/// stays for libcontainer).
pub fn take(spec: &mut Spec) -> HostHooks {
    let Some(h) = spec.hooks_mut().as_mut() else {
        return HostHooks::default();
    };
    #[allow(deprecated)]
    let prestart = h.prestart_mut().take().unwrap_or_default();
    HostHooks {
        prestart,
        create_runtime: h.create_runtime_mut().take().unwrap_or_default(),
        poststart: h.poststart_mut().take().unwrap_or_default(),
        poststop: h.poststop_mut().take().unwrap_or_default(),
    }
}

/// The state a hook reads on stdin (runtime-spec "State").
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

/// Run `hooks` (config.json's `hooks.<kind>`) in order; the first failure stops them.
pub fn run_all(kind: &str, hooks: &[Hook], state: &HookState<'_>) -> Result<(), HookRunError> {
    let input = serde_json::to_vec(state).expect("serializable");
    for (i, h) in hooks.iter().enumerate() {
        run_one(&format!("hooks.{kind}[{i}]"), h, &input)?;
    }
    Ok(())
}

/// Run `hooks` and log failures instead of failing (poststart, poststop).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &HookState<'_>) {
    let input = serde_json::to_vec(state).expect("serializable");
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(&format!("hooks.{kind}[{i}]"), h, &input) {
            tracing::warn!(id = state.id, error = %e, "hook failed; going on as the runtime spec says");
        }
    }
}

fn run_one(field: &str, h: &Hook, input: &[u8]) -> Result<(), HookRunError> {
    let fail = |what: String| HookRunError::Failed {
        field: field.to_string(),
        path: h.path().clone(),
        what,
    };
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((argv0, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // A group of its own: at the timeout whatever the hook started dies with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    // The state is written as the hook reads it, inside the timeout: a hook that never reads
    // a state larger than the pipe holds must not block Ward (annotations make it large).
    let mut stdin = child.stdin.take();
    if let Some(p) = &stdin {
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(p),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    let mut written = 0;
    let timeout = h
        .timeout()
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let end = Instant::now() + timeout;
    loop {
        if let Some(p) = stdin.as_mut() {
            match p.write(&input[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // A hook that does not read its state is fine (EPIPE).
                Err(_) => written = input.len(),
            }
            if written >= input.len() {
                stdin = None;
            }
        }
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(fail(format!("exited with {st}"))),
            Ok(None) if Instant::now() >= end => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {}s and was killed",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::HookBuilder;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default().path("/bin/sh").args(vec![
            "sh".to_string(),
            "-c".to_string(),
            script.to_string(),
        ]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn state_on_stdin_failures_and_timeouts() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("state.json");
        let state = HookState {
            oci_version: "1.0.2",
            id: "c1",
            status: "created",
            pid: 42,
            bundle: Path::new("/the/bundle"),
            annotations: None,
        };
        let ok = hook(&format!("cat > {}", out.display()), None);
        run_all("createRuntime", &[ok], &state).unwrap();
        let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(got["bundle"], "/the/bundle");
        assert_eq!(got["pid"], 42);
        let e = run_all("createRuntime", &[hook("exit 3", None)], &state).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("hooks.createRuntime[0] (/bin/sh): exited"),
            "{e}"
        );
        let t = Instant::now();
        let e = run_all("poststart", &[hook("sleep 30", Some(1))], &state).unwrap_err();
        assert!(e.to_string().contains("timed out after 1s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_timed_out_hook_takes_its_children_along_and_a_large_state_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("bg.pid");
        // 1 MiB of annotations: far more than a pipe holds; the hook never reads it.
        let big: std::collections::HashMap<String, String> =
            [("a".to_string(), "x".repeat(1 << 20))].into();
        let state = HookState {
            oci_version: "1.0.2",
            id: "c1",
            status: "created",
            pid: 42,
            bundle: Path::new("/b"),
            annotations: Some(&big),
        };
        let script = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
        let t = Instant::now();
        let e = run_all("poststart", &[hook(&script, Some(1))], &state).unwrap_err();
        assert!(e.to_string().contains("timed out after 1s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background child was killed with the group (reaped by init, or a zombie).
        let gone = (0..100).any(|_| {
            let st = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
            let dead = st.is_empty() || st.contains(") Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(20));
            }
            dead
        });
        assert!(gone, "the hook's background child {bg} survived");
    }
}
