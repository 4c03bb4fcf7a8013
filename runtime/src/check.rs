//! `ward check`: node readiness table.
//!
//! Each row says what was looked at, what was found, whether Ward needs it,
//! and whether it is fine. Probes that change process state (user namespace,
//! mount namespace, idmapped mount) run in a forked child so the caller is
//! left untouched. The parsing parts are pure and unit-tested.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys;

/// Oldest kernel with everything Ward's default sandbox uses
/// (idmapped mounts 5.12, Landlock 5.13).
pub const MIN_KERNEL: (u32, u32) = (5, 13);
/// Runtime type containerd uses for Ward's shim.
pub const WARD_RUNTIME_TYPE: &str = "io.containerd.ward.v2";

/// What `ward check` looks at.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// A directory on the snapshotter's filesystem (idmapped mount probe).
    pub snapshotter_root: PathBuf,
    /// containerd's main config (its `imports` and conf.d drop-ins are read too).
    pub containerd_config: PathBuf,
    /// Where the cgroup hierarchy is mounted.
    pub cgroup_root: PathBuf,
    /// containerd binary to ask for `--version`.
    pub containerd_bin: PathBuf,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            snapshotter_root: PathBuf::from("/var/lib/containerd"),
            containerd_config: PathBuf::from("/etc/containerd/config.toml"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            containerd_bin: PathBuf::from("containerd"),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: &'static str,
    pub value: String,
    pub required: bool,
    pub ok: bool,
}

/// The readiness table.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    /// True when every required row is ok.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok || !r.required)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let v = self
            .rows
            .iter()
            .map(|r| r.value.len())
            .max()
            .unwrap_or(5)
            .clamp(5, 70);
        writeln!(f, "{:<w$}  {:<v$}  {:<8}  OK", "CHECK", "VALUE", "REQUIRED")?;
        for r in &self.rows {
            let ok = match (r.ok, r.required) {
                (true, _) => "yes",
                (false, true) => "NO",
                (false, false) => "no (optional)",
            };
            let req = if r.required { "yes" } else { "no" };
            writeln!(f, "{:<w$}  {:<v$}  {:<8}  {ok}", r.name, r.value, req)?;
        }
        writeln!(
            f,
            "node {}",
            if self.ok() {
                "READY for Ward"
            } else {
                "NOT READY for Ward"
            }
        )
    }
}

/// Run every check.
pub fn run(opts: &CheckOptions) -> Report {
    let mut rows = vec![
        kernel_row(),
        userns_row(),
        idmap_row(&opts.snapshotter_root),
        landlock_row(),
    ];
    rows.extend(seccomp_rows(Path::new(
        "/proc/sys/kernel/seccomp/actions_avail",
    )));
    rows.push(cgroup_row(&opts.cgroup_root));
    rows.push(systemd_driver_row(
        Path::new("/run/systemd/system"),
        &[
            Path::new(crate::systemd::PRIVATE_SOCKET),
            Path::new(crate::systemd::SYSTEM_BUS),
        ],
    ));
    rows.push(containerd_version_row(&opts.containerd_bin));
    rows.push(ward_configured_row(&opts.containerd_config));
    Report { rows }
}

// ---------------------------------------------------------------- kernel

/// `(major, minor)` from a release string like `6.18.44-fc-v669`.
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel_row() -> Row {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("uname: {e}"));
    let ok = parse_kernel_release(&release).is_some_and(|v| v >= MIN_KERNEL);
    Row {
        name: "kernel",
        value: format!("{release} (need >= {}.{})", MIN_KERNEL.0, MIN_KERNEL.1),
        required: true,
        ok,
    }
}

// ---------------------------------------------------------------- user namespaces

fn userns_row() -> Row {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    // As `create` makes a container's: owned by the range's base uid, with its own limits.
    let range = crate::harden::IdRange {
        host_start: 100_000,
        size: 65536,
    };
    let limits = crate::config::UsernsLimits::default().sysctls();
    let probe = sys::userns::OwnedUserns::create(&range, &limits).map(drop);
    let (ok, value) = match (max, probe) {
        (Some(0), _) => (false, "max_user_namespaces = 0".to_string()),
        (None, _) => (
            false,
            "/proc/sys/user/max_user_namespaces unreadable".into(),
        ),
        (Some(m), Ok(())) => (
            true,
            format!("max_user_namespaces = {m}, owned by the range's uid with limits ok"),
        ),
        (Some(_), Err(e)) => (false, e.to_string()),
    };
    Row {
        name: "user namespaces",
        value,
        required: true,
        ok,
    }
}

// ---------------------------------------------------------------- idmapped mounts

/// Nearest existing directory at or above `p`.
fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.is_dir() {
        if !cur.pop() {
            return PathBuf::from("/");
        }
    }
    cur
}

fn fs_type(p: &Path) -> String {
    match nix::sys::statfs::statfs(p) {
        Ok(s) => {
            let t = s.filesystem_type().0 as u64;
            match t {
                0xEF53 => "ext4".into(),
                0x5846_5342 => "xfs".into(),
                0x9123_683E => "btrfs".into(),
                0x0102_1994 => "tmpfs".into(),
                0x794C_7630 => "overlay".into(),
                other => format!("fs magic {other:#x}"),
            }
        }
        Err(e) => format!("statfs: {e}"),
    }
}

fn idmap_row(root: &Path) -> Row {
    let base = existing_ancestor(root);
    let fs = fs_type(&base);
    let dir = base.join(format!(".ward-check-idmap-{}", std::process::id()));
    let value = match std::fs::create_dir(&dir) {
        Err(e) => Err(format!("create {}: {e}", dir.display())),
        Ok(()) => {
            let r = idmap_probe(&dir);
            let _ = std::fs::remove_dir(&dir);
            r
        }
    };
    let (ok, value) = match value {
        Ok(()) => (true, format!("{} ({fs}): ok", base.display())),
        Err(e) => (false, format!("{} ({fs}): {e}", base.display())),
    };
    Row {
        name: "idmapped mounts",
        value,
        required: true,
        ok,
    }
}

/// Try `open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_IDMAP)` on `dir` with the same
/// syscalls Ward's create path uses, from a forked child in a private mount namespace, with a
/// helper user namespace mapped like a container's.
fn idmap_probe(dir: &Path) -> Result<(), String> {
    let range = crate::harden::IdRange {
        host_start: 100_000,
        size: 65536,
    };
    let userns = sys::userns_for(&range).map_err(|e| e.to_string())?;
    sys::in_forked_child(|| {
        use nix::mount::{mount, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("make / private: {e}"))?;
        let tree = sys::open_tree_clone(dir).map_err(|e| e.to_string())?;
        sys::idmap(&tree, &userns, dir).map_err(|e| e.to_string())?;
        Ok(0)
    })
    .map(|_| ())
}

// ---------------------------------------------------------------- landlock

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

fn landlock_row() -> Row {
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI
    // version; it creates no fd and touches no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let (ok, value) = if abi >= 1 {
        (true, format!("ABI {abi}"))
    } else {
        (false, format!("unavailable: {}", errno_name(errno())))
    };
    Row {
        name: "landlock",
        value,
        required: true,
        ok,
    }
}

// ---------------------------------------------------------------- seccomp

/// Whether an `actions_avail` line lists `action`.
pub fn has_seccomp_action(actions_avail: &str, action: &str) -> bool {
    actions_avail.split_whitespace().any(|a| a == action)
}

fn seccomp_rows(actions_path: &Path) -> [Row; 2] {
    let actions = std::fs::read_to_string(actions_path).ok();
    let filter_ok = actions
        .as_deref()
        .is_some_and(|a| has_seccomp_action(a, "errno") && has_seccomp_action(a, "kill_process"));
    let notif = actions
        .as_deref()
        .is_some_and(|a| has_seccomp_action(a, "user_notif"));
    [
        Row {
            name: "seccomp filter",
            value: actions
                .as_deref()
                .map(|a| a.trim().to_string())
                .unwrap_or_else(|| format!("{} unreadable", actions_path.display())),
            required: true,
            ok: filter_ok,
        },
        Row {
            name: "seccomp user notification",
            value: if notif {
                "user_notif available (denial reports, learn mode)".into()
            } else {
                "user_notif missing: no denial reports / learn mode".into()
            },
            required: false,
            ok: notif,
        },
    ]
}

// ---------------------------------------------------------------- cgroups

/// How cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup2 at the root.
    Unified,
    /// v1 controllers plus a cgroup2 at `unified/`.
    Hybrid,
    /// v1 controllers only.
    Legacy,
    Unknown,
}

impl fmt::Display for CgroupLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unified => "v2 (unified)",
            Self::Hybrid => "hybrid (v1 controllers + v2 at unified/)",
            Self::Legacy => "v1 (legacy)",
            Self::Unknown => "unknown",
        })
    }
}

/// Detect the layout from the files under `root` (normally /sys/fs/cgroup).
pub fn detect_cgroup_layout(root: &Path) -> CgroupLayout {
    if root.join("cgroup.controllers").exists() {
        return CgroupLayout::Unified;
    }
    let v1 = ["memory", "cpu", "pids", "cpu,cpuacct", "devices"]
        .iter()
        .any(|c| root.join(c).join("tasks").exists() || root.join(c).join("cgroup.procs").exists());
    let v2_side = root.join("unified").join("cgroup.controllers").exists();
    match (v1, v2_side) {
        (true, true) => CgroupLayout::Hybrid,
        (true, false) => CgroupLayout::Legacy,
        _ => CgroupLayout::Unknown,
    }
}

fn cgroup_row(root: &Path) -> Row {
    let layout = detect_cgroup_layout(root);
    Row {
        name: "cgroup layout",
        value: layout.to_string(),
        required: true,
        ok: layout != CgroupLayout::Unknown,
    }
}

/// kubelet's systemd cgroup driver (`slice:prefix:name` paths): mapped to cgroupfs where no
/// systemd runs; where it runs, a transient scope asked of systemd over D-Bus (see
/// `crate::systemd`), which needs one of its sockets.
fn systemd_driver_row(marker: &Path, sockets: &[&Path]) -> Row {
    let running = marker.exists();
    let socket = sockets.iter().find(|p| p.exists());
    Row {
        name: "systemd cgroup driver",
        value: match (running, socket) {
            (false, _) => "no systemd: slice:prefix:name mapped to cgroupfs".into(),
            (true, Some(p)) => format!("systemd runs: scopes over D-Bus ({})", p.display()),
            (true, None) => "systemd runs but no D-Bus socket: slice:prefix:name fails".into(),
        },
        required: false,
        ok: !running || socket.is_some(),
    }
}

// ---------------------------------------------------------------- containerd

/// The version token of `containerd --version` output
/// (`containerd github.com/containerd/containerd 1.6.20~ds1 <rev>` or `v1.7.2`).
pub fn parse_containerd_version(out: &str) -> Option<String> {
    out.split_whitespace()
        .skip(1)
        .map(|t| t.strip_prefix('v').unwrap_or(t))
        .find(|t| t.starts_with(|c: char| c.is_ascii_digit()) && t.contains('.'))
        .map(str::to_string)
}

fn containerd_version_row(bin: &Path) -> Row {
    let value = match Command::new(bin).arg("--version").output() {
        Ok(o) => parse_containerd_version(&String::from_utf8_lossy(&o.stdout)),
        Err(_) => None,
    };
    let major_minor = value.as_deref().and_then(parse_kernel_release);
    let ok = major_minor.is_some_and(|v| v >= (1, 6));
    Row {
        name: "containerd",
        value: match &value {
            Some(v) => format!("{v} (need >= 1.6)"),
            None => format!("{} not found", bin.display()),
        },
        required: false,
        ok,
    }
}

/// Whether a containerd config text names Ward's runtime type.
pub fn config_mentions_ward(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .any(|l| l.contains(WARD_RUNTIME_TYPE))
}

/// `imports = [...]` entries of a containerd config (version 2 drop-ins).
pub fn config_imports(text: &str) -> Vec<String> {
    let Some(start) = text.find("imports") else {
        return vec![];
    };
    let rest = &text[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return vec![];
    };
    if close < open {
        return vec![];
    }
    rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn ward_configured_row(config: &Path) -> Row {
    let mut files = vec![config.to_path_buf()];
    let text = std::fs::read_to_string(config).unwrap_or_default();
    for imp in config_imports(&text) {
        if let Some(pattern_dir) = imp.strip_suffix("*.toml") {
            if let Ok(rd) = std::fs::read_dir(pattern_dir) {
                files.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "toml")),
                );
            }
        } else {
            files.push(PathBuf::from(imp));
        }
    }
    let found = files.iter().find(|f| {
        std::fs::read_to_string(f)
            .map(|t| config_mentions_ward(&t))
            .unwrap_or(false)
    });
    Row {
        name: "ward runtime in containerd",
        value: match found {
            Some(f) => format!("{WARD_RUNTIME_TYPE} in {}", f.display()),
            None => format!("{WARD_RUNTIME_TYPE} not in {}", config.display()),
        },
        required: false,
        ok: found.is_some(),
    }
}

// ---------------------------------------------------------------- helpers

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release_parses() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_release("5.10.0-28-amd64"), Some((5, 10)));
        assert_eq!(parse_kernel_release("garbage"), None);
    }

    #[test]
    fn containerd_version_parses() {
        let debian =
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n";
        assert_eq!(
            parse_containerd_version(debian).as_deref(),
            Some("1.6.20~ds1")
        );
        let upstream = "containerd containerd.io v1.7.2 0cae528dd6cb557f7201036e9f43420650207b58";
        assert_eq!(parse_containerd_version(upstream).as_deref(), Some("1.7.2"));
        let two = "containerd github.com/containerd/containerd/v2 v2.0.0 207ad711";
        assert_eq!(parse_containerd_version(two).as_deref(), Some("2.0.0"));
        assert_eq!(parse_containerd_version(""), None);
    }

    #[test]
    fn config_grep_ignores_comments() {
        let on = "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.ward]\n  runtime_type = \"io.containerd.ward.v2\"\n";
        assert!(config_mentions_ward(on));
        assert!(!config_mentions_ward(
            "# runtime_type = \"io.containerd.ward.v2\"\n"
        ));
        assert!(!config_mentions_ward("version = 2\n"));
    }

    #[test]
    fn config_imports_listed() {
        let t = "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\", '/x.toml']\n";
        assert_eq!(
            config_imports(t),
            vec![
                "/etc/containerd/conf.d/*.toml".to_string(),
                "/x.toml".into()
            ]
        );
        assert!(config_imports("version = 2\n").is_empty());
    }

    #[test]
    fn cgroup_layouts_from_fake_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        assert_eq!(detect_cgroup_layout(root), CgroupLayout::Unknown);
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::write(root.join("memory/tasks"), "").unwrap();
        assert_eq!(detect_cgroup_layout(root), CgroupLayout::Legacy);
        std::fs::create_dir_all(root.join("unified")).unwrap();
        std::fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
        assert_eq!(detect_cgroup_layout(root), CgroupLayout::Hybrid);
        std::fs::write(root.join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(detect_cgroup_layout(root), CgroupLayout::Unified);
    }

    #[test]
    fn systemd_driver() {
        let t = tempfile::tempdir().unwrap();
        let none = t.path().join("none");
        assert!(systemd_driver_row(&none, &[]).ok);
        let r = systemd_driver_row(t.path(), &[&none]);
        assert!(
            !r.ok && !r.required && r.value.contains("no D-Bus"),
            "{r:?}"
        );
        let r = systemd_driver_row(t.path(), &[&none, t.path()]);
        assert!(r.ok && r.value.contains("D-Bus"), "{r:?}");
    }

    #[test]
    fn seccomp_actions() {
        let a = "kill_process kill_thread trap errno user_notif trace log allow\n";
        assert!(has_seccomp_action(a, "user_notif"));
        assert!(!has_seccomp_action(
            "kill_process errno allow",
            "user_notif"
        ));
    }

    #[test]
    fn report_ok_ignores_optional_rows() {
        let r = Report {
            rows: vec![
                Row {
                    name: "a",
                    value: "x".into(),
                    required: true,
                    ok: true,
                },
                Row {
                    name: "b",
                    value: "y".into(),
                    required: false,
                    ok: false,
                },
            ],
        };
        assert!(r.ok());
        let text = r.to_string();
        assert!(
            text.contains("no (optional)") && text.contains("READY"),
            "{text}"
        );
    }

    /// The real probes on this machine: every row is filled in, none panics.
    #[test]
    fn run_fills_every_row() {
        let r = run(&CheckOptions {
            snapshotter_root: std::env::temp_dir(),
            ..CheckOptions::default()
        });
        eprintln!("{r}");
        assert_eq!(r.rows.len(), 10);
    }
}
