//! Which containerd releases the end-to-end tests run against.
//!
//! containerd 2 is the primary target (the current line; Kubernetes user-namespaced pods need
//! it): its static binaries come from Debian's development suite, unpacked by
//! `integration/current-peers.sh DIR` into `DIR/bin` (the Makefile keeps `DIR` at
//! `target/peers` and passes it as `$WARD_CONTAINERD2_DIR`). containerd 1.6, which Debian 12
//! ships and installs on `$PATH`, stays under test next to it.
//!
//! A missing containerd 2 fails the test; `WARD_E2E_SKIP_CONTAINERD2=1` is the explicit
//! opt-out and prints SKIP. `WARD_E2E_CONTAINERD=2` (or `1.6`) narrows a run to one release.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Env var naming the directory `current-peers.sh` unpacked into (binaries in `DIR/bin`).
pub const CONTAINERD2_DIR_ENV: &str = "WARD_CONTAINERD2_DIR";
/// Env var that, set to `1`, lets a run go on without containerd 2 (printing SKIP).
pub const SKIP_CONTAINERD2_ENV: &str = "WARD_E2E_SKIP_CONTAINERD2";

/// One containerd release: where its binaries are and what it says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdRelease {
    /// `containerd --version`'s version field without the leading `v`, e.g. `2.1.9+unknown`.
    pub version: String,
    /// Major version (1 or 2).
    pub major: u32,
    /// Directory holding `containerd`, `ctr` (and for containerd 2 its `containerd-shim-runc-v2`
    /// and `runc`); `None`: the ones on `$PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl ContainerdRelease {
    /// Path (or bare name for `$PATH`) of one of this release's binaries.
    pub fn bin(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The `containerd` daemon binary.
    pub fn containerd(&self) -> PathBuf {
        self.bin("containerd")
    }

    /// The `ctr` client matching the daemon.
    pub fn ctr(&self) -> PathBuf {
        self.bin("ctr")
    }

    /// The config schema this release reads natively: 3 for containerd 2, 2 for 1.6/1.7.
    pub fn config_version(&self) -> u32 {
        if self.major >= 2 {
            3
        } else {
            2
        }
    }

    /// `containerd 2.1.9+unknown`: for test output and assertion messages.
    pub fn label(&self) -> String {
        format!("containerd {}", self.version)
    }

    /// Ask `containerd --version` of the binary in `bin_dir` (or on `$PATH`).
    pub fn probe(bin_dir: Option<PathBuf>) -> Result<Self, String> {
        let probe = Self {
            version: String::new(),
            major: 0,
            bin_dir,
        };
        let bin = probe.containerd();
        let out = Command::new(&bin)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {} --version: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "containerd github.com/containerd/containerd/v2 v2.1.9 <rev>" or "... 1.6.20~ds1 ..."
        let version = text
            .split_whitespace()
            .nth(2)
            .map(|v| v.trim_start_matches('v').to_string())
            .filter(|_| out.status.success())
            .ok_or_else(|| format!("{} --version printed {text:?}", bin.display()))?;
        let major = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| format!("{}: no major version in {version:?}", bin.display()))?;
        Ok(Self {
            version,
            major,
            ..probe
        })
    }
}

/// Where containerd 2's binaries are expected: `$WARD_CONTAINERD2_DIR/bin`, else the Makefile's
/// cache `target/peers/bin` next to the profile dir this test binary was built into.
pub fn containerd2_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(CONTAINERD2_DIR_ENV) {
        return PathBuf::from(d).join("bin");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let target = exe
        .ancestors()
        .find(|p| p.parent().is_some_and(|t| t.join("CACHEDIR.TAG").exists()))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    target.join("peers/bin")
}

/// containerd 2 from [`containerd2_bin_dir`], checked to be a 2.x or later.
pub fn containerd2() -> Result<ContainerdRelease, String> {
    let dir = containerd2_bin_dir();
    if !dir.join("containerd").exists() {
        return Err(format!(
            "{} not found (run `make peers`, or integration/current-peers.sh DIR and set {CONTAINERD2_DIR_ENV}=DIR)",
            dir.join("containerd").display()
        ));
    }
    let r = ContainerdRelease::probe(Some(dir))?;
    if r.major < 2 {
        return Err(format!(
            "{} is {}, not containerd 2",
            r.containerd().display(),
            r.version
        ));
    }
    Ok(r)
}

/// containerd on `$PATH` (Debian 12's 1.6).
pub fn system_containerd() -> Result<ContainerdRelease, String> {
    ContainerdRelease::probe(None)
}

/// The releases to run every ctr and CRI case against, containerd 2 first.
///
/// Panics when containerd 2 is missing, unless `WARD_E2E_SKIP_CONTAINERD2=1` (then SKIP is
/// printed). A missing system containerd is left out with a SKIP line (the harness's
/// `skip_reason` already turns that into a failure under CI).
pub fn releases_under_test(test: &str) -> Vec<ContainerdRelease> {
    let only = std::env::var("WARD_E2E_CONTAINERD").ok();
    let wanted = |major: &str| only.as_deref().is_none_or(|o| o.starts_with(major));
    let mut v = vec![];
    if wanted("2") {
        match containerd2() {
            Ok(r) => v.push(r),
            Err(why) if std::env::var(SKIP_CONTAINERD2_ENV).is_ok_and(|s| s == "1") => {
                eprintln!("SKIP: {test}: containerd 2 part ({SKIP_CONTAINERD2_ENV}=1): {why}");
            }
            Err(why) => panic!(
                "{test}: containerd 2 required but unavailable: {why}; \
                 set {SKIP_CONTAINERD2_ENV}=1 to run without it"
            ),
        }
    }
    if wanted("1") {
        match system_containerd() {
            Ok(r) if !v.contains(&r) && !v.iter().any(|o| o.version == r.version) => v.push(r),
            Ok(_) => {}
            Err(why) => eprintln!("SKIP: {test}: system containerd part: {why}"),
        }
    }
    v
}
