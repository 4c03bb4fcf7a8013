//! A private containerd for one test: its own config, root, state, socket,
//! CNI bridge and images, all under a temp dir, torn down on drop.
//!
//! Only the containerd process this harness started is ever signalled, and
//! only mounts under its own root are unmounted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::containerd_config::{containerd_config, ConfigPaths};
use crate::image::{self, TestImages};
use crate::release::{self, ContainerdRelease};

/// containerd's runtime type for Ward's shim.
pub const WARD_RUNTIME: &str = "io.containerd.ward.v2";
/// containerd's runtime type for runc's shim.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";
/// Namespace the CRI plugin uses.
pub const K8S_NS: &str = "k8s.io";

/// Errors of the harness, each naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("spawn {cmd}: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("containerd socket {0} did not appear; log:\n{1}")]
    NoSocket(PathBuf, String),
    #[error("no free test bridge name / subnet")]
    NoBridge,
    #[error(transparent)]
    Image(#[from] image::ImageError),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> HarnessError {
    let path = path.to_path_buf();
    move |source| HarnessError::Io { what, path, source }
}

/// Directory holding `containerd-shim-ward-v2` and `ward`: `$WARD_SHIM_DIR`
/// (as the Makefile sets it), or the cargo profile dir this binary was built
/// into (`target/<profile>`).
pub fn ward_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARD_SHIM_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps, other binaries one up.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Whether Ward's shim is present and answers `-v` (the containerd shim
/// version flag): the shim is written in parallel with these tests.
pub fn ward_shim_status() -> Result<(), String> {
    let shim = ward_bin_dir().join("containerd-shim-ward-v2");
    if !shim.exists() {
        return Err(format!("{} not built", shim.display()));
    }
    let out = Command::new(&shim)
        .arg("-v")
        .output()
        .map_err(|e| format!("run {} -v: {e}", shim.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        return Err(format!(
            "{} -v printed no version (shim not implemented yet?)",
            shim.display()
        ));
    }
    Ok(())
}

/// Runtimes to run the generic cases against: runc always, Ward when its
/// shim is there. `WARD_E2E_REQUIRE_WARD=1` turns a missing shim into a panic.
pub fn runtimes_under_test() -> Vec<&'static str> {
    let mut v = vec![RUNC_RUNTIME];
    match ward_shim_status() {
        Ok(()) => v.push(WARD_RUNTIME),
        Err(why) => skip_or_fail_ward(&why),
    }
    if let Ok(only) = std::env::var("WARD_E2E_RUNTIME") {
        v.retain(|r| *r == only);
    }
    v
}

/// Report that Ward cannot be tested; panic when it is required.
pub fn skip_or_fail_ward(why: &str) {
    if std::env::var("WARD_E2E_REQUIRE_WARD").is_ok_and(|v| v == "1") {
        panic!("Ward shim required (WARD_E2E_REQUIRE_WARD=1) but unavailable: {why}");
    }
    eprintln!("SKIP: ward-only part: {why}");
}

/// `Some(reason)` when this process cannot run containerd (not root).
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("containerd end-to-end tests need root".into());
    }
    for bin in [
        "containerd",
        "ctr",
        "/usr/lib/cni/bridge",
        image::HOST_BUSYBOX,
    ] {
        let found = if bin.starts_with('/') {
            Path::new(bin).exists()
        } else {
            which(bin).is_some()
        };
        if !found {
            return Some(format!("{bin} not installed"));
        }
    }
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.exists())
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Pick a bridge name and /24 not used on this host.
fn pick_bridge() -> Result<(String, u8), HarnessError> {
    let base = std::process::id();
    for _ in 0..200 {
        let n = (base
            .wrapping_mul(7)
            .wrapping_add(COUNTER.fetch_add(1, Ordering::SeqCst))
            % 200
            + 20) as u8;
        let name = format!("wardbr{n}");
        let subnet = format!("10.88.{n}.");
        let used = Path::new("/sys/class/net").join(&name).exists()
            || Command::new("ip")
                .args(["-4", "-o", "addr", "show"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&subnet))
                .unwrap_or(false);
        if !used {
            return Ok((name, n));
        }
    }
    Err(HarnessError::NoBridge)
}

/// A private containerd.
pub struct Containerd {
    /// Top of everything this instance owns.
    pub dir: PathBuf,
    /// gRPC socket.
    pub address: PathBuf,
    /// Config file given to containerd.
    pub config: PathBuf,
    /// CNI bridge of this instance and its subnet `10.88.<n>.0/24`.
    pub bridge: String,
    pub subnet: String,
    /// Ward node configs referenced by the `ward` / `ward-strict` runtimes.
    pub ward_config: PathBuf,
    /// The shim's state dir those configs name (`shim.state_dir`): this instance's own, so
    /// leak checks see only its containers. Containers live in `<ward_state>/<namespace>`.
    pub ward_state: PathBuf,
    pub ward_strict_config: PathBuf,
    pub images: TestImages,
    /// The containerd release this instance runs (its `containerd` and `ctr`).
    pub release: ContainerdRelease,
    child: Option<Child>,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Containerd {
    /// Start `release`'s containerd under `tmp` (which must exist and be empty-ish).
    pub fn start(tmp: &Path, release: ContainerdRelease) -> Result<Self, HarnessError> {
        let (bridge, n) = pick_bridge()?;
        let dir = tmp.to_path_buf();
        for d in ["root", "state", "cni/net.d", "cni/ipam", "images", "opt"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(io_err("create dir", &p))?;
        }
        let images = image::build_test_images(&dir.join("images"))?;
        // The shim state dir lives below: containers' unprivileged root must be able to
        // traverse to their rootfs (the runtime refuses a root it cannot reach).
        search_only_for_others(&dir)?;
        let subnet = format!("10.88.{n}.0/24");
        let mut me = Self {
            address: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            ward_config: dir.join("ward.toml"),
            ward_strict_config: dir.join("ward-strict.toml"),
            ward_state: dir.join("ward-state"),
            log: dir.join("containerd.log"),
            dir,
            bridge,
            subnet,
            images,
            release,
            child: None,
            _tmp: None,
        };
        me.write_configs()?;
        ensure_run_containerd_searchable()?;
        me.spawn()?;
        for ns in ["default", K8S_NS] {
            for img in [me.images.busybox.clone(), me.images.pause.clone()] {
                me.ctr_ok(ns, &["images", "import", &img.to_string_lossy()])?;
            }
        }
        Ok(me)
    }

    /// Start the containerd on `$PATH` under a fresh temp dir owned by the returned value.
    pub fn start_temp() -> Result<Self, HarnessError> {
        let release = release::system_containerd().map_err(|why| HarnessError::Command {
            cmd: "containerd --version".into(),
            status: "unusable".into(),
            stderr: why,
        })?;
        Self::start_temp_release(release)
    }

    /// Start `release`'s containerd under a fresh temp dir owned by the returned value.
    pub fn start_temp_release(release: ContainerdRelease) -> Result<Self, HarnessError> {
        let tmp = tempfile::Builder::new()
            .prefix("ward-ctrd-")
            .tempdir()
            .map_err(io_err("create temp dir", Path::new("/tmp")))?;
        let mut me = Self::start(tmp.path(), release)?;
        me._tmp = Some(tmp);
        Ok(me)
    }

    fn write_configs(&self) -> Result<(), HarnessError> {
        let d = self.dir.display();
        let c = containerd_config(
            self.release.config_version(),
            &ConfigPaths {
                dir: &self.dir,
                ward_config: &self.ward_config,
                ward_strict_config: &self.ward_strict_config,
            },
        );
        write(&self.config, &c)?;

        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("ward-test-{}", self.bridge),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": format!("{d}/cni/ipam"),
                        "ranges": [[{ "subnet": self.subnet }]],
                    },
                },
                { "type": "loopback" },
            ],
        });
        write(
            &self.dir.join("cni/net.d/10-ward-test.conflist"),
            &serde_json::to_string_pretty(&cni).expect("serialize json"),
        )?;
        write(
            &self.ward_config,
            &ward_toml("default", false, &self.ward_state),
        )?;
        write(
            &self.ward_strict_config,
            &ward_toml("strict", true, &self.ward_state),
        )?;
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_err("open", &self.log))?;
        let log2 = log.try_clone().map_err(io_err("dup", &self.log))?;
        // Shims are found on PATH: Ward's, then the release's own (containerd 2's
        // containerd-shim-runc-v2 and runc), then the system's.
        let mut dirs = vec![ward_bin_dir()];
        dirs.extend(self.release.bin_dir.clone());
        let system =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        dirs.extend(std::env::split_paths(&system));
        let path = std::env::join_paths(dirs).map_err(|e| HarnessError::Spawn {
            cmd: "containerd".into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let child = Command::new(self.release.containerd())
            .arg("--config")
            .arg(&self.config)
            .env("PATH", path)
            // The node config of the `ward` handler where it has no options table (containerd
            // 2): the shims inherit containerd's environment.
            .env("WARD_CONFIG", &self.ward_config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                cmd: self.release.containerd().display().to_string(),
                source,
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.address.exists()
                && self
                    .ctr(None, &["version"])
                    .is_ok_and(|o| o.status.success())
            {
                return Ok(());
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError::NoSocket(
            self.address.clone(),
            self.log_text(),
        ))
    }

    /// containerd's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// containerd's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop containerd (SIGTERM, then SIGKILL after 10 s) leaving shims running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }

    /// Stop then start containerd again with the same config and state.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let _ = fs::remove_file(&self.address);
        self.spawn()
    }

    /// A `ctr` command against this containerd (namespace `ns`).
    pub fn ctr_cmd(&self, ns: Option<&str>) -> Command {
        let mut c = Command::new(self.release.ctr());
        c.arg("--address").arg(&self.address);
        if let Some(ns) = ns {
            c.args(["--namespace", ns]);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Run `ctr` and return its output whatever the status.
    pub fn ctr(&self, ns: Option<&str>, args: &[&str]) -> Result<Output, HarnessError> {
        self.ctr_cmd(ns)
            .args(args)
            .output()
            .map_err(|source| HarnessError::Spawn {
                cmd: format!("ctr {}", args.join(" ")),
                source,
            })
    }

    /// Run `ctr`, fail unless it exits 0, return stdout.
    pub fn ctr_ok(&self, ns: &str, args: &[&str]) -> Result<String, HarnessError> {
        let out = self.ctr(Some(ns), args)?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                cmd: format!("ctr -n {ns} {}", args.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Kill and delete every task and container left in every namespace,
    /// after stopping leftover pods through CRI (which also tears down their
    /// CNI network namespaces and veths).
    fn remove_leftovers(&self) {
        if let Ok(mut cri) = crate::cri::CriClient::connect(&self.address) {
            for pod in cri.list_pods().unwrap_or_default() {
                let _ = cri.stop_pod(&pod);
                let _ = cri.remove_pod(&pod);
            }
        }
        let Ok(nss) = self.ctr_ok("default", &["namespaces", "ls", "-q"]) else {
            return;
        };
        for ns in nss.lines().map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(tasks) = self.ctr_ok(ns, &["tasks", "ls", "-q"]) {
                for t in tasks.lines().map(str::trim).filter(|s| !s.is_empty()) {
                    let _ = self.ctr(Some(ns), &["tasks", "kill", "-a", "-s", "SIGKILL", t]);
                }
                for t in tasks.lines().map(str::trim).filter(|s| !s.is_empty()) {
                    for _ in 0..50 {
                        if self
                            .ctr(Some(ns), &["tasks", "delete", "-f", t])
                            .is_ok_and(|o| o.status.success())
                        {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            if let Ok(cs) = self.ctr_ok(ns, &["containers", "ls", "-q"]) {
                for c in cs.lines().map(str::trim).filter(|s| !s.is_empty()) {
                    let _ = self.ctr(Some(ns), &["containers", "delete", c]);
                }
            }
        }
    }
}

/// Mount points at or below `root`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(root))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_leftovers();
        }
        self.stop();
        for m in mounts_under(&self.dir) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        if self._tmp.is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Make `dir` (a fresh 0700 temp dir) traversable, not readable, by others: 0711.
fn search_only_for_others(dir: &Path) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).map_err(io_err("chmod", dir))
}

/// Ward's shim keeps its state under /run/containerd/ward/<ns> by default and needs
/// /run/containerd searchable (0711), the mode containerd gives its default
/// state dir. When `ctr` created it first (fifo dir) it is 0700: widen it to
/// containerd's own 0711, nothing more.
fn ensure_run_containerd_searchable() -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new("/run/containerd");
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err("create dir", dir))?;
    }
    let meta = fs::metadata(dir).map_err(io_err("stat", dir))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o001 == 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o011))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    fs::write(path, text).map_err(io_err("write", path))
}

/// A Ward node config for the test runtimes, in the format of
/// runtime/src/config.rs (`NodeConfig`, unknown keys refused). Profiles come
/// from the repository's built-in set.
pub fn ward_toml(profile: &str, strict: bool, state_dir: &Path) -> String {
    let allowed = if strict {
        r#"["strict"]"#
    } else {
        r#"["default", "restricted", "strict"]"#
    };
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/builtin");
    format!(
        "default_profile = \"{profile}\"\nallowed_profiles = {allowed}\nprofile_dirs = [\"{}\", \"/etc/ward/profiles\"]\n\n[shim]\nstate_dir = \"{}\"\n",
        profiles.display(),
        state_dir.display()
    )
}
