//! Running the `ward` binary with a private `--root` per test.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::strip_ansi;

/// The `ward` binary: `$WARD_BIN`, else `<workspace>/target/debug/ward`, else the newest
/// `<workspace>/target*/debug/ward` (per-agent target dirs).
pub fn ward_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WARD_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "WARD_BIN={} is not a file", p.display());
        return p;
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let default = ws.join("target/debug/ward");
    if default.is_file() {
        return default;
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&ws)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("target"))
        .map(|e| e.path().join("debug/ward"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!(
            "no ward binary: set WARD_BIN or run `cargo build -p ward-runtime` (looked for {})",
            default.display()
        )
    })
}

/// What one `ward` invocation did. `stderr` has ANSI colours removed.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `ward` with a private state root in a temp dir.
pub struct Ward {
    bin: PathBuf,
    root: Option<TempDir>,
    global: Vec<OsString>,
    /// Init pids seen, reaped (if they are our children) by the leak checks and on drop.
    pids: Mutex<Vec<i32>>,
}

impl Default for Ward {
    fn default() -> Self {
        Self::new()
    }
}

impl Ward {
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("ward-root-")
            .tempdir()
            .expect("root tempdir");
        Self {
            bin: ward_bin(),
            root: Some(root),
            global: vec![],
            pids: Mutex::new(vec![]),
        }
    }

    /// Add global flags (`--profile X`, `--config F`) to every invocation.
    pub fn with_global<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.global.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn root(&self) -> &Path {
        self.root.as_ref().expect("root").path()
    }

    /// `ward --root R <global flags> args...`, stdin from /dev/null, no colours.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root());
        c.args(&self.global);
        c.args(args);
        c.env("NO_COLOR", "1");
        c.env_remove("WARD_ROOT");
        c.env_remove("WARD_PROFILE");
        c.env_remove("WARD_CONFIG");
        c.stdin(Stdio::null());
        c
    }

    /// Run a prepared command to completion and collect its output.
    pub fn output_of(mut c: Command) -> Out {
        let o = c
            .output()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", c.get_program()));
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: strip_ansi(&String::from_utf8_lossy(&o.stderr)),
        }
    }

    pub fn output<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Out {
        Self::output_of(self.cmd(args))
    }

    /// Run and require exit 0; returns stdout.
    pub fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(&self, args: &[S]) -> String {
        let o = self.output(args);
        assert!(o.success(), "ward {args:?} failed:\n{o}");
        o.stdout
    }

    /// `ward run --bundle B ID` in the foreground.
    pub fn run(&self, bundle: &crate::Bundle, id: &str) -> Out {
        self.output(&[
            "run".as_ref(),
            "--bundle".as_ref(),
            bundle.path().as_os_str(),
            id.as_ref(),
        ])
    }

    /// `ward run -d --bundle B ID`; stdout and stderr of the container go to /dev/null.
    pub fn run_detached(&self, bundle: &crate::Bundle, id: &str) {
        let mut c = self.cmd(&[
            "run".as_ref(),
            "-d".as_ref(),
            "--bundle".as_ref(),
            bundle.path().as_os_str(),
            id.as_ref(),
        ]);
        // The container inherits these; pipes would keep `output()` waiting for its end.
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let st = c.status().expect("spawn ward run -d");
        assert!(
            st.success(),
            "ward run -d {id} failed ({st}); rerun with --debug for details"
        );
        let pid = self.pid(id);
        self.track(pid);
    }

    /// `ward create --bundle B ID`.
    pub fn create(&self, bundle: &crate::Bundle, id: &str) -> Out {
        let mut c = self.cmd(&[
            "create".as_ref(),
            "--bundle".as_ref(),
            bundle.path().as_os_str(),
            id.as_ref(),
        ]);
        c.stdout(Stdio::null());
        let o = Self::output_of_stderr_only(c);
        if o.success() {
            let pid = self.pid(id);
            self.track(pid);
        }
        o
    }

    /// Like [`Self::output_of`] but stdout is not captured (a created container inherits it).
    fn output_of_stderr_only(mut c: Command) -> Out {
        // stderr to a file: the container keeps inheriting it, a pipe would never close.
        use std::io::{Read, Seek, SeekFrom};
        let mut f = tempfile::tempfile().expect("stderr tempfile");
        c.stderr(f.try_clone().expect("dup"));
        let st = c.status().expect("spawn ward");
        let mut text = String::new();
        let _ = f.seek(SeekFrom::Start(0));
        let _ = f.read_to_string(&mut text);
        Out {
            code: st.code(),
            stdout: String::new(),
            stderr: strip_ansi(&text),
        }
    }

    /// `ward state ID` as JSON.
    pub fn state(&self, id: &str) -> Value {
        let text = self.ok(&["state", id]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("state {id}: {e}: {text}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Wait (up to `timeout`) for `ward state` to report `status`.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.status(id) == status)
    }

    /// Remember an init pid so it is reaped if it is our child (CLONE_PARENT makes the
    /// container init a child of ward's caller).
    pub fn track(&self, pid: i32) {
        if pid > 0 {
            self.pids.lock().expect("lock").push(pid);
        }
    }

    /// Reap tracked pids that have exited (no-op for pids that are not our children).
    pub fn reap(&self) {
        use nix::sys::wait::{waitpid, WaitPidFlag};
        for pid in self.pids.lock().expect("lock").iter() {
            let _ = waitpid(nix::unistd::Pid::from_raw(*pid), Some(WaitPidFlag::WNOHANG));
        }
    }

    /// Ids of containers under this root (directories, as `ward list` sees them).
    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }
}

impl Drop for Ward {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = self
                .cmd(&["delete", "--force", id.as_str()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.reap();
        // Never remove_dir_all across a mount that leaked (it could reach into a volume).
        let root = self.root().to_string_lossy().into_owned();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if mi.lines().any(|l| l.contains(&root)) {
            eprintln!("ward test: mounts under {root} remain; leaving the directory in place");
            if let Some(t) = self.root.take() {
                let _ = t.keep();
            }
        }
    }
}
