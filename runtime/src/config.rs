//! The node's configuration, `/etc/ward/ward.toml` (or `--config`): what a
//! container on this node may be given. Safe defaults are built in; a missing
//! default config file means "use the defaults", a missing `--config` file is an error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/ward/ward.toml";

/// Capabilities that are refused outright when a spec asks for them.
pub const DEFAULT_DENIED_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_MKNOD",
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_RESOURCE",
    "CAP_SYSLOG",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_IPC_LOCK",
    "CAP_SYS_PACCT",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_LEASE",
];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("read node config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Profile used when neither `--profile` nor an allowed annotation picks one.
    pub default_profile: String,
    /// Profiles a `ward.dev/profile` annotation may select (a pod cannot weaken its own sandbox).
    pub allowed_profiles: Vec<String>,
    /// Directories searched for `<name>.toml` profiles.
    pub profile_dirs: Vec<PathBuf>,
    pub userns: UsernsConfig,
    pub capabilities: CapsConfig,
    pub mounts: MountsConfig,
    pub namespaces: NamespacesConfig,
    pub shim: ShimConfig,
    pub hooks: HooksConfig,
    pub pods: PodsConfig,
    /// What happens to a denied syscall: `report` (default: denied with the profile's errno
    /// and reported as an event by the container's supervisor) or `enforce` (denied in the
    /// kernel only, no supervisor process, no events).
    pub seccomp_mode: SeccompMode,
    pub cgroups: CgroupsConfig,
}

/// How a systemd-style `linux.cgroupsPath` (`slice:prefix:name`) becomes a cgroup.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    /// Ask systemd for a transient scope over D-Bus where systemd runs (`/run/systemd/system`
    /// exists); elsewhere make the same path through cgroupfs.
    #[default]
    Auto,
    /// Always ask systemd over D-Bus (at `systemd_dbus`), even where `/run/systemd/system` is
    /// missing (a systemd Ward cannot detect, or a test double).
    Systemd,
}

/// `[cgroups]`: the node's cgroup driver. Node-wide: no config.json can choose it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupsConfig {
    pub driver: CgroupDriver,
    /// systemd's peer-to-peer D-Bus socket, as a D-Bus address `unix:path=/abs/path`. Unset:
    /// `/run/systemd/private`, then the system bus.
    pub systemd_dbus: Option<String>,
}

impl CgroupsConfig {
    /// Whether systemd makes the scope of a `slice:prefix:name` path (over D-Bus).
    pub fn systemd_driver(&self) -> bool {
        self.driver == CgroupDriver::Systemd || Path::new("/run/systemd/system").exists()
    }

    /// The socket path of `systemd_dbus`, checked: only `unix:path=<absolute path>`.
    pub fn systemd_socket(&self) -> Result<Option<PathBuf>, String> {
        let Some(addr) = &self.systemd_dbus else {
            return Ok(None);
        };
        let path = addr.strip_prefix("unix:path=").map(PathBuf::from);
        match path {
            Some(p)
                if p.is_absolute()
                    && !addr.contains([',', ';', '\0'])
                    && p.components().all(|c| {
                        matches!(
                            c,
                            std::path::Component::RootDir | std::path::Component::Normal(_)
                        )
                    }) =>
            {
                Ok(Some(p))
            }
            _ => Err(format!(
                "cgroups.systemd_dbus: {addr:?} must be unix:path=<absolute path> (systemd's private socket)"
            )),
        }
    }
}

/// How denied syscalls are handled (node config `seccomp_mode`, `ward --seccomp-mode`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// Denied in the kernel and reported through seccomp user notification.
    #[default]
    Report,
    /// Denied in the kernel only.
    Enforce,
}

impl SeccompMode {
    pub fn as_profiles_mode(self) -> ward_profiles::Mode {
        match self {
            SeccompMode::Report => ward_profiles::Mode::EnforceAndReport,
            SeccompMode::Enforce => ward_profiles::Mode::Enforce,
        }
    }
}

/// Settings only `containerd-shim-ward-v2` reads.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShimConfig {
    /// The shim's state root: containers of containerd namespace `<ns>` live in
    /// `<state_dir>/<ns>` (as runc-v2 uses /run/containerd/runc/<ns>), with the uid range
    /// table. Handlers whose configs name different state dirs must use disjoint
    /// `[userns]` ranges: each table only knows its own.
    pub state_dir: PathBuf,
}

impl Default for ShimConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(DEFAULT_SHIM_STATE_DIR),
        }
    }
}

/// Where node-wide uid range claims live (see [`UsernsConfig::claims_dir`]).
pub const DEFAULT_CLAIMS_DIR: &str = "/run/ward-uid-claims";

pub const DEFAULT_SHIM_STATE_DIR: &str = "/run/containerd/ward";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsernsConfig {
    /// First host id of the first range. Must be > 0.
    pub base: u32,
    /// Ids per container.
    pub size: u32,
    /// How many ranges exist.
    pub count: u32,
    /// Node-wide claims on range slots, shared by every `--root` (the CLI's, each shim
    /// namespace's): a slot that another root's live container holds is never handed out,
    /// so two roots cannot give two containers the same host uids.
    pub claims_dir: PathBuf,
    /// Limits of the container's own user namespace (`/proc/sys/user/*` inside it).
    pub limits: UsernsLimits,
}

/// Per-user-namespace limits, set in every container's user namespace as it is created. They
/// bound each uid of the container; above them the kernel also counts everything against the
/// namespace's owner, the range's base host uid, under the host's own limits
/// (`fs.inotify.max_user_instances`, ...).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsernsLimits {
    /// `user.max_inotify_instances`: inotify instances per uid of the container.
    pub max_inotify_instances: u64,
    /// `user.max_inotify_watches`: inotify watches per uid of the container.
    pub max_inotify_watches: u64,
}

impl Default for UsernsLimits {
    fn default() -> Self {
        Self {
            max_inotify_instances: 128,
            max_inotify_watches: 8192,
        }
    }
}

impl UsernsLimits {
    /// (file under /proc/sys/user, value), as the namespace's creator writes them.
    pub fn sysctls(&self) -> [(&'static str, u64); 2] {
        [
            ("max_inotify_instances", self.max_inotify_instances),
            ("max_inotify_watches", self.max_inotify_watches),
        ]
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CapsConfig {
    /// Capabilities a container may keep on this node (besides what its profile allows).
    pub allowed: Vec<String>,
    /// Capabilities that are an error when requested.
    pub denied: Vec<String>,
    /// When true, any requested capability that is not allowed is an error, even those
    /// (NET_RAW, MKNOD, ...) found in every engine's default set. When false those are dropped
    /// and the drop is logged.
    pub strict: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MountsConfig {
    /// Sensitive host paths that bind mounts may nevertheless use.
    pub allowed_sensitive: Vec<PathBuf>,
    /// Allow a container whose rootfs or volume cannot be idmapped to run with
    /// host-owned files shown as the overflow uid (weaker; `ward check` and logs say so).
    pub allow_unmapped: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NamespacesConfig {
    /// Host namespaces a container may share: "pid", "network", "ipc".
    pub allow_host: Vec<String>,
}

/// OCI hooks from config.json. Host-side hooks (`prestart`, `createRuntime`, `poststart`,
/// `poststop`) and `createContainer` (a host binary run before the container's sandbox is in
/// place) run with the runtime's privileges: only the programs listed here may be named.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Absolute paths of hook programs a config.json may name (no symlink anywhere in them).
    pub allow: Vec<PathBuf>,
    /// Timeout (seconds) given to a hook whose config.json entry has none, or one that is not
    /// positive: a hook that never ends would otherwise hold `create` or `start` forever.
    pub default_timeout_secs: u32,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            allow: vec![],
            default_timeout_secs: 30,
        }
    }
}

/// Pods through the `ward` CLI: a container naming a pod sandbox
/// (`io.kubernetes.cri.sandbox-id`) joins its namespaces and uid range. The shim always
/// allows it for its own roots (containerd's CRI lays pods out).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PodsConfig {
    pub enabled: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            default_profile: "default".into(),
            allowed_profiles: vec!["default".into(), "restricted".into(), "strict".into()],
            profile_dirs: vec![PathBuf::from("/etc/ward/profiles")],
            userns: UsernsConfig::default(),
            capabilities: CapsConfig::default(),
            mounts: MountsConfig::default(),
            namespaces: NamespacesConfig::default(),
            shim: ShimConfig::default(),
            hooks: HooksConfig::default(),
            pods: PodsConfig::default(),
            seccomp_mode: SeccompMode::default(),
            cgroups: CgroupsConfig::default(),
        }
    }
}

impl Default for UsernsConfig {
    fn default() -> Self {
        Self {
            base: 1 << 20,
            size: 65536,
            count: 4096,
            claims_dir: PathBuf::from(DEFAULT_CLAIMS_DIR),
            limits: UsernsLimits::default(),
        }
    }
}

impl Default for CapsConfig {
    fn default() -> Self {
        Self {
            allowed: vec![],
            denied: DEFAULT_DENIED_CAPS.iter().map(|s| s.to_string()).collect(),
            strict: false,
        }
    }
}

impl NodeConfig {
    /// Load `path`; when `explicit` is false a missing file means the built-in defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        match ward_profiles::bounded::read_text(path, ward_profiles::bounded::Follow::Yes) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().replace('\n', " "),
        })?;
        cfg.validate().map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        let u = &self.userns;
        if u.base == 0 {
            return Err("userns.base: must be > 0 (host uid 0 is never mapped)".into());
        }
        if u.size == 0 || u.count == 0 {
            return Err("userns.size and userns.count must be > 0".into());
        }
        if u64::from(u.base) + u64::from(u.size) * u64::from(u.count) > u64::from(u32::MAX) {
            return Err("userns: base + size * count exceeds the uid space".into());
        }
        for (name, v) in u.limits.sysctls() {
            if v > i32::MAX as u64 {
                return Err(format!("userns.limits.{name}: {v} is above {}", i32::MAX));
            }
        }
        for c in self
            .capabilities
            .allowed
            .iter()
            .chain(&self.capabilities.denied)
        {
            crate::harden::caps::normalize_cap(c)
                .map_err(|_| format!("capabilities: unknown capability {c:?}"))?;
        }
        if !self.shim.state_dir.is_absolute() {
            return Err(format!(
                "shim.state_dir: {} must be an absolute path",
                self.shim.state_dir.display()
            ));
        }
        if self.hooks.default_timeout_secs == 0 {
            return Err("hooks.default_timeout_secs: must be > 0".into());
        }
        if !u.claims_dir.is_absolute() {
            return Err(format!(
                "userns.claims_dir: {} must be an absolute path (claims are node-wide)",
                u.claims_dir.display()
            ));
        }
        for p in &self.hooks.allow {
            let plain = p.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
            if !p.is_absolute() || !plain {
                return Err(format!(
                    "hooks.allow: {} must be an absolute path without \".\" or \"..\"",
                    p.display()
                ));
            }
        }
        self.cgroups.systemd_socket()?;
        for ns in &self.namespaces.allow_host {
            if !matches!(ns.as_str(), "pid" | "network" | "ipc") {
                return Err(format!(
                    "namespaces.allow_host: {ns:?} is not one of \"pid\", \"network\", \"ipc\""
                ));
            }
        }
        Ok(())
    }

    pub fn denied_caps(&self) -> BTreeSet<String> {
        self.capabilities
            .denied
            .iter()
            .filter_map(|c| crate::harden::caps::normalize_cap(c).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parse() {
        let c = NodeConfig::parse(Path::new("w.toml"), "default_profile = \"strict\"\n").unwrap();
        assert_eq!(c.default_profile, "strict");
        assert_eq!(c.userns, UsernsConfig::default());
        let e = NodeConfig::parse(Path::new("w.toml"), "bogus = 1\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = NodeConfig::parse(Path::new("w.toml"), "[userns]\nbase = 0\n").unwrap_err();
        assert!(e.to_string().contains("userns.base"), "{e}");
        let e = NodeConfig::parse(Path::new("w.toml"), "[capabilities]\nallowed=[\"FOO\"]\n")
            .unwrap_err();
        assert!(e.to_string().contains("FOO"), "{e}");
        assert_eq!(c.seccomp_mode, SeccompMode::Report);
        let c = NodeConfig::parse(Path::new("w.toml"), "seccomp_mode = \"enforce\"\n").unwrap();
        assert_eq!(c.seccomp_mode, SeccompMode::Enforce);
        let e = NodeConfig::parse(Path::new("w.toml"), "seccomp_mode = \"off\"\n").unwrap_err();
        assert!(e.to_string().contains("seccomp_mode"), "{e}");
        assert!(NodeConfig::load(Path::new("/nonexistent/w.toml"), false).is_ok());
        assert_eq!(c.shim.state_dir, PathBuf::from("/run/containerd/ward"));
        let c = NodeConfig::parse(Path::new("w.toml"), "[shim]\nstate_dir = \"/run/w\"\n").unwrap();
        assert_eq!(c.shim.state_dir, PathBuf::from("/run/w"));
        let e =
            NodeConfig::parse(Path::new("w.toml"), "[shim]\nstate_dir = \"run/w\"\n").unwrap_err();
        assert!(e.to_string().contains("shim.state_dir"), "{e}");
        assert!(NodeConfig::load(Path::new("/nonexistent/w.toml"), true).is_err());
        assert!(c.hooks.allow.is_empty() && !c.pods.enabled);
        let c = NodeConfig::parse(
            Path::new("w.toml"),
            "[hooks]\nallow = [\"/usr/bin/h\"]\n[pods]\nenabled = true\n",
        )
        .unwrap();
        assert_eq!(c.hooks.allow, vec![PathBuf::from("/usr/bin/h")]);
        assert!(c.pods.enabled);
        assert_eq!(c.hooks.default_timeout_secs, 30);
        let c =
            NodeConfig::parse(Path::new("w.toml"), "[hooks]\ndefault_timeout_secs = 5\n").unwrap();
        assert_eq!(c.hooks.default_timeout_secs, 5);
        for bad in [
            "[hooks]\ndefault_timeout_secs = 0\n",
            "[hooks]\ndefault_timeout_secs = -1\n",
        ] {
            let e = NodeConfig::parse(Path::new("w.toml"), bad).unwrap_err();
            assert!(e.to_string().contains("default_timeout_secs"), "{e}");
        }
        let e = NodeConfig::parse(Path::new("w.toml"), "[userns]\nclaims_dir = \"claims\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("userns.claims_dir"), "{e}");
        for bad in ["h", "/usr/../tmp/h"] {
            let e = NodeConfig::parse(
                Path::new("w.toml"),
                &format!("[hooks]\nallow = [{bad:?}]\n"),
            )
            .unwrap_err();
            assert!(e.to_string().contains("hooks.allow"), "{e}");
        }
    }

    #[test]
    fn cgroups_driver_and_address() {
        let c = NodeConfig::default();
        assert_eq!(c.cgroups.driver, CgroupDriver::Auto);
        assert_eq!(c.cgroups.systemd_socket(), Ok(None));
        let text = "[cgroups]\ndriver = \"systemd\"\nsystemd_dbus = \"unix:path=/run/t/sd\"\n";
        let c = NodeConfig::parse(Path::new("w.toml"), text).unwrap();
        assert_eq!(c.cgroups.driver, CgroupDriver::Systemd);
        assert!(c.cgroups.systemd_driver());
        assert_eq!(
            c.cgroups.systemd_socket(),
            Ok(Some(PathBuf::from("/run/t/sd")))
        );
        for bad in [
            "[cgroups]\ndriver = \"cgroupfs\"\n",
            "[cgroups]\nsystemd_dbus = \"/run/systemd/private\"\n",
            "[cgroups]\nsystemd_dbus = \"unix:path=run/x\"\n",
            "[cgroups]\nsystemd_dbus = \"unix:path=/run/../x\"\n",
            "[cgroups]\nsystemd_dbus = \"unix:path=/x,guid=1\"\n",
            "[cgroups]\nsystemd_dbus = \"tcp:host=127.0.0.1,port=1\"\n",
            "[cgroups]\nsystemd_dbus = \"unix:abstract=x\"\n",
        ] {
            let e = NodeConfig::parse(Path::new("w.toml"), bad).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("cgroups") || e.contains("driver"), "{bad}: {e}");
        }
    }

    #[test]
    fn shipped_node_configs_parse() {
        for (name, text) in [
            ("ward.toml", include_str!("../../deploy/etc/ward.toml")),
            (
                "ward-strict.toml",
                include_str!("../../deploy/etc/ward-strict.toml"),
            ),
        ] {
            let c = NodeConfig::parse(Path::new(name), text).unwrap();
            assert_eq!(c.cgroups, CgroupsConfig::default(), "{name}");
        }
    }

    #[test]
    fn userns_limits() {
        let c = NodeConfig::default();
        assert_eq!(
            c.userns.limits.sysctls(),
            [
                ("max_inotify_instances", 128),
                ("max_inotify_watches", 8192)
            ]
        );
        let text = "[userns.limits]\nmax_inotify_instances = 16\n";
        let c = NodeConfig::parse(Path::new("w.toml"), text).unwrap();
        assert_eq!(c.userns.limits.max_inotify_instances, 16);
        assert_eq!(c.userns.limits.max_inotify_watches, 8192);
        let e = NodeConfig::parse(Path::new("w.toml"), "[userns.limits]\nmax_mqueues = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("max_mqueues"), "{e}");
        let text = "[userns.limits]\nmax_inotify_watches = 4294967296\n";
        let e = NodeConfig::parse(Path::new("w.toml"), text).unwrap_err();
        assert!(
            e.to_string().contains("userns.limits.max_inotify_watches"),
            "{e}"
        );
    }
}
