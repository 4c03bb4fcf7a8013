//! [`Runtime`]: the one path every container takes (policy → harden → resolve → prepare →
//! launch), and the lifecycle verbs over it. The `ward` CLI and the shim both call this;
//! neither re-implements a step. This file holds the shared pieces (policy, context, sandbox
//! plan, builder, start/kill/pause); `create.rs`, `delete.rs`, `exec.rs` and `query.rs` beside
//! it hold those verbs.
//!
//! Forking: `create` and `exec` fork (libcontainer clones the container init, Ward forks a
//! helper that creates and holds the container's user namespace until the init has joined it,
//! see `charge.rs`). Call them only from a single-threaded process.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Process, Spec};
use ward_profiles::{Arch, Mode, MountAccess, Profile};

use crate::alloc::Allocator;
use crate::cgroup_guard::cgroup_mounts;
use crate::config::{NodeConfig, DEFAULT_CONFIG_PATH};
use crate::error::{io, Error, Result};
use crate::harden::{self, HardenContext, HardenedSpec, Limits, Policy, Tmpfs};
use crate::host_view::HostView;
use crate::id::{ContainerId, Signal};
use crate::pod;
use crate::sandbox::{SandboxPlan, WardExecutor};
use crate::state::{State, WardState};
use crate::sys;

mod control;
mod create;
mod delete;
mod exec;
mod query;

pub const PROFILE_ANNOTATION: &str = "ward.dev/profile";

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub root: PathBuf,
    /// Node config; `None` means /etc/ward/ward.toml if present, else built-in defaults.
    pub config_path: Option<PathBuf>,
    /// Profile chosen by the operator (`--profile`): beats the annotation and the node default.
    pub profile: Option<String>,
    pub systemd_cgroup: bool,
    /// `--seccomp-mode`: beats the node config's `seccomp_mode`.
    pub seccomp_mode: Option<crate::config::SeccompMode>,
    /// Where the seccomp supervisor writes denial events besides the events file.
    pub event_log: crate::supervisor::EventLog,
    /// Allow pod joins whatever the node config says (the shim: containerd lays pods out).
    pub pods: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/run/ward"),
            config_path: None,
            profile: None,
            systemd_cgroup: false,
            seccomp_mode: None,
            event_log: Default::default(),
            pods: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub no_pivot: bool,
    /// Give the stdio pipes/FIFOs to the process's ids in the container (the shim; see
    /// stdio_owner.rs). `None` (the CLI, as runc): the caller's stdio is left as it is.
    pub io_owner: Option<crate::stdio_owner::IoOwner>,
}

#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process: Process,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// As [`CreateOptions::io_owner`], for the exec'd process's ids.
    pub io_owner: Option<crate::stdio_owner::IoOwner>,
}

pub struct Runtime {
    root: PathBuf,
    ward_dir: PathBuf,
    node: NodeConfig,
    config_path: Option<PathBuf>,
    profile_flag: Option<String>,
    seccomp_mode: Option<crate::config::SeccompMode>,
    event_log: crate::supervisor::EventLog,
    pods_enabled: bool,
    systemd_cgroup: bool,
}

/// `ward state` annotations: the container's own, plus one `ward.dev/override.<field>` per
/// field Ward did not honour as asked (so `crictl inspect` and engines can show them).
fn with_overrides(
    annotations: Option<std::collections::HashMap<String, String>>,
    ws: Option<&WardState>,
) -> Option<std::collections::HashMap<String, String>> {
    let overrides = ws.map(|w| w.overrides.as_slice()).unwrap_or_default();
    if overrides.is_empty() {
        return annotations;
    }
    let mut a = annotations.unwrap_or_default();
    a.extend(overrides.iter().map(|o| o.annotation()));
    Some(a)
}

fn remove_cgroup_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        if d.is_absolute() && d.starts_with("/sys/fs/cgroup") {
            remove_cgroup_dir(d);
        } else {
            for m in cgroup_mounts() {
                remove_cgroup_dir(&m.join(d.strip_prefix("/").unwrap_or(d)));
            }
        }
    }
}

/// rmdir a cgroup, waiting up to a second while tasks keep it busy: after a create that
/// failed in the container's init (e.g. a mount target that cannot be prepared), that
/// process may still be exiting when the undo list runs (seen by the escape suite's leak
/// check). A cgroup busy because it has child cgroups (other containers) is left at once.
fn remove_cgroup_dir(d: &Path) {
    let has_children = || {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            })
            .unwrap_or(true)
    };
    for _ in 0..50 {
        match std::fs::remove_dir(d) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !has_children() => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

/// See [`sys::start_migration_warmup`]: the grace period of the container's move into its
/// cgroup then runs while Ward prepares the container.
fn migration_warmup() -> sys::MigrationWarmup {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    sys::start_migration_warmup(&sys::own_cgroup_procs(&own, pure_cgroup_v2()))
}

/// Whether the host has cgroup v2 only (else v1 or hybrid).
fn pure_cgroup_v2() -> bool {
    matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(libcgroups::common::CgroupSetup::Unified)
    )
}

fn ns_id(path: &Path) -> std::result::Result<(u64, u64), String> {
    std::fs::metadata(path)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
        .map_err(|e| e.to_string())
}

fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    // A regular file (not a symlink, FIFO or device) of bounded size.
    let text = ward_profiles::bounded::read_text(&path, ward_profiles::bounded::Follow::No)
        .map_err(|e| Error::Spec {
            path: path.clone(),
            message: e.to_string(),
        })?;
    serde_json::from_str(&text).map_err(|e| Error::Spec {
        path,
        message: e.to_string(),
    })
}

/// Wait (bounded) until the container's init has exec'd its program. `start` returns once the
/// init is told to go; until its execve the init is not dumpable and its memory belongs to the
/// host's user namespace, so an exec's helper, already inside the container's user namespace,
/// could not read its namespaces (EACCES on /proc/<init>/ns/*). An exec right after start
/// (a kubelet probe) would fail for a few milliseconds. libcontainer names the init
/// `youki:[2:INIT]` until then.
fn wait_init_exec(pid: i32) {
    let comm = PathBuf::from(format!("/proc/{pid}/comm"));
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < end {
        match std::fs::read_to_string(&comm) {
            Ok(c) if c.starts_with("youki:") => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            _ => return,
        }
    }
}

fn arch() -> Arch {
    Arch::native()
}

impl Runtime {
    pub fn new(opts: RuntimeOptions) -> Result<Self> {
        let (node, config_path) = match &opts.config_path {
            Some(p) => (NodeConfig::load(p, true)?, Some(p.clone())),
            None => (
                NodeConfig::load(Path::new(DEFAULT_CONFIG_PATH), false)?,
                None,
            ),
        };
        // A relative --root is taken from the current directory, once, here.
        let root = std::path::absolute(&opts.root).map_err(io("--root", &opts.root))?;
        let ward_dir = root.join(".ward");
        let pods_enabled = opts.pods || node.pods.enabled;
        Ok(Self {
            root,
            ward_dir,
            node,
            config_path,
            profile_flag: opts.profile,
            seccomp_mode: opts.seccomp_mode,
            event_log: opts.event_log,
            pods_enabled,
            systemd_cgroup: opts.systemd_cgroup,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node_config(&self) -> &NodeConfig {
        &self.node
    }

    fn allocator(&self) -> Allocator {
        Allocator::new(&self.ward_dir, &self.node.userns)
    }

    fn ensure_dirs(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            // 0711: the container's own root (an unprivileged host uid) must be able to
            // traverse to its rootfs mount; nothing here is listable or readable by it.
            .mode(0o711)
            .create(&self.ward_dir)
            .map_err(io("mkdir", &self.ward_dir))?;
        use std::os::unix::fs::PermissionsExt;
        // The container's root is an unprivileged host uid: it must be able to walk down to its
        // rootfs mount under --root. Refuse (clearly) rather than fail later with EACCES.
        let abs = std::fs::canonicalize(&self.root).map_err(io("resolve", &self.root))?;
        for anc in abs.ancestors().skip(1) {
            let mode = std::fs::metadata(anc)
                .map_err(io("stat", anc))?
                .permissions()
                .mode();
            if mode & 0o001 == 0 {
                return Err(Error::Unsupported(format!(
                    "--root {}: parent directory {} (mode {:o}) is not searchable by others; the container's unprivileged user could not reach its rootfs (chmod o+x it or choose another --root)",
                    self.root.display(),
                    anc.display(),
                    mode & 0o7777
                )));
            }
        }
        for d in [&self.root, &self.ward_dir] {
            let mode = std::fs::metadata(d)
                .map_err(io("stat", d))?
                .permissions()
                .mode();
            if mode & 0o111 != 0o111 {
                std::fs::set_permissions(
                    d,
                    std::fs::Permissions::from_mode((mode & 0o7777) | 0o711),
                )
                .map_err(io("chmod", d))?;
            }
        }
        Ok(())
    }

    /// Which profile: `--profile` > allowed annotation > node default.
    pub fn select_profile(&self, spec: &Spec) -> Result<Profile> {
        let annotation = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(PROFILE_ANNOTATION).cloned());
        let name = match (&self.profile_flag, annotation) {
            (Some(flag), _) => flag.clone(),
            (None, Some(a)) => {
                if !self.node.allowed_profiles.iter().any(|p| p == &a) {
                    return Err(Error::ProfileNotAllowed {
                        name: a,
                        allowed: self.node.allowed_profiles.clone(),
                    });
                }
                a
            }
            (None, None) => self.node.default_profile.clone(),
        };
        ward_profiles::load(&name, &self.node.profile_dirs)
            .map_err(|source| Error::Profile { name, source })
    }

    /// Node config + profile → the policy harden applies.
    pub fn policy(&self, profile: &Profile) -> Result<Policy> {
        let denied = self.node.denied_caps();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        for c in self
            .node
            .capabilities
            .allowed
            .iter()
            .chain(profile.capabilities())
        {
            let c = harden::caps::normalize_cap(c).map_err(|_| {
                harden::PolicyError::UnknownCapability {
                    field: format!("profile {} capabilities", profile.name()),
                    name: c.clone(),
                }
            })?;
            if denied.contains(&c) && !self.node.capabilities.allowed.contains(&c) {
                return Err(harden::PolicyError::DeniedCapability {
                    name: c,
                    profile: profile.name().to_string(),
                }
                .into());
            }
            allowed.insert(c);
        }
        let l = profile.limits();
        Ok(Policy {
            profile_name: profile.name().to_string(),
            allowed_caps: allowed,
            denied_caps: denied,
            strict_caps: self.node.capabilities.strict,
            tmpfs: profile
                .tmpfs()
                .iter()
                .map(|t| Tmpfs {
                    path: t.path.clone(),
                    size_bytes: t.size_bytes,
                    mode: t.mode,
                    noexec: t.noexec,
                })
                .collect(),
            limits: Limits {
                pids: l.pids,
                memory_bytes: l.memory_bytes,
                cpu_shares: l.cpu_shares,
                cpu_quota_us: l.cpu_quota_us,
                cpu_period_us: l.cpu_period_us,
            },
            host_namespaces: self.node.namespaces.allow_host.iter().cloned().collect(),
            allowed_sensitive: self.node.mounts.allowed_sensitive.clone(),
            writable_rootfs: profile.rootfs().writable_size(),
        })
    }

    fn context(&self, id: &ContainerId, spec: &Spec, host: &HostView) -> HardenContext {
        let (pure_v2, own) = (host.pure_v2, &host.own_cgroup);
        let mut cgroup_dirs: Vec<String> = vec!["/sys/fs/cgroup".into()];
        for m in host.cgroup_mounts() {
            if let Some(name) = m
                .strip_prefix("/sys/fs/cgroup")
                .ok()
                .and_then(|r| r.to_str())
            {
                if !name.is_empty() {
                    cgroup_dirs.push(format!("/sys/fs/cgroup/{}", name.trim_start_matches('/')));
                }
            }
        }
        let mut ctx = HardenContext {
            id: id.to_string(),
            cgroup_dirs,
            own_cgroup: harden::cgroups::own_cgroup_from(own, pure_v2),
            systemd_cgroup: self.systemd_cgroup,
            systemd_running: self.node.cgroups.systemd_driver(),
            ..Default::default()
        };
        // The host's namespaces: those of pid 1, and Ward's own (Ward runs in the host's
        // namespaces; /proc/1 may be unreadable). A path matching either is the host's.
        for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
            for who in ["1", "self"] {
                if let Ok(v) = ns_id(&PathBuf::from(format!("/proc/{who}/ns/{kind}"))) {
                    ctx.host_ns.entry(kind.to_string()).or_default().push(v);
                }
            }
        }
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(p) = ns.path() {
                ctx.path_ns.insert(p.clone(), ns_id(p));
            }
        }
        ctx
    }

    fn is_alive_owner(&self, owner: &str) -> bool {
        self.ward_dir.join(owner).exists() || self.root.join(owner).exists()
    }

    /// How denied syscalls are handled: learn mode for the `record` profile, else
    /// `--seccomp-mode` > node config (default: report).
    pub fn seccomp_mode(&self, profile: &Profile) -> Mode {
        if profile.name() == "record" {
            return Mode::Record;
        }
        self.seccomp_mode
            .unwrap_or(self.node.seccomp_mode)
            .as_profiles_mode()
    }

    /// Seccomp filters (profile's, then the spec's own) and the Landlock plan.
    fn sandbox_plan(
        &self,
        profile: &Profile,
        spec: &Spec,
        spec_seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
        preserve_fds: u32,
        mode: Mode,
    ) -> Result<SandboxPlan> {
        let perr = |source| Error::Profile {
            name: profile.name().to_string(),
            source,
        };
        // Compiled programs are cached by the resolved profile's hash, arch and mode.
        let cache = self.ward_dir.join("bpf-cache");
        let mut seccomp =
            match ward_profiles::compile_seccomp_cached(profile, arch(), mode, &cache) {
                Err(ward_profiles::ProfileError::Cache { path, message }) => {
                    tracing::debug!(path = %path.display(), %message, "seccomp cache not usable");
                    ward_profiles::compile_seccomp(profile, arch(), mode)
                }
                other => other,
            }
            .map_err(perr)?
            .filters;
        if let Some(s) = spec_seccomp {
            seccomp.extend(
                ward_profiles::compile_oci_seccomp(s, arch()).map_err(|source| Error::Profile {
                    name: "linux.seccomp".into(),
                    source,
                })?,
            );
        }
        let mounts: Vec<MountAccess> = harden::mounts::writable_paths(spec)
            .into_iter()
            .map(|(path, writable)| MountAccess { path, writable })
            .collect();
        Ok(SandboxPlan {
            profile: profile.name().to_string(),
            seccomp,
            landlock: ward_profiles::landlock_plan_rootfs(
                profile,
                &mounts,
                crate::rootfs::spec_writable(spec),
            ),
            preserve_fds,
            notify: None,
            exec_status: None,
        })
    }

    /// Ward's state directory of a container (its events file, recording, supervisor).
    pub fn state_dir(&self, id: &ContainerId) -> PathBuf {
        self.ward_dir.join(id.as_str())
    }

    /// libcontainer's builder with what `create` and `exec` share: state root, pid file,
    /// console socket, preserved fds, Ward's executor and the caller's stdio.
    #[allow(clippy::too_many_arguments)]
    fn builder(
        &self,
        id: &ContainerId,
        op: &'static str,
        pid_file: Option<&PathBuf>,
        console_socket: Option<&PathBuf>,
        preserve_fds: u32,
        plan: SandboxPlan,
        [stdin, stdout, stderr]: [Option<OwnedFd>; 3],
    ) -> Result<ContainerBuilder> {
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.root)
            .map_err(|source| Error::Container { op, source })?
            .with_pid_file(pid_file)
            .map_err(|source| Error::Container { op, source })?
            .with_console_socket(console_socket)
            .with_preserved_fds(preserve_fds as i32)
            .with_executor(WardExecutor::new(plan));
        if let Some(fd) = stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stderr {
            builder = builder.with_stderr(fd);
        }
        Ok(builder)
    }

    fn load(&self, id: &ContainerId) -> Result<Container> {
        let cdir = self.root.join(id.as_str());
        if !cdir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let mut c = Container::load(cdir).map_err(|source| Error::Container {
            op: "load state",
            source,
        })?;
        c.refresh_status().map_err(|source| Error::Container {
            op: "refresh state",
            source,
        })?;
        Ok(c)
    }

    pub fn ward_state(&self, id: &ContainerId) -> Result<WardState> {
        let dir = self.ward_dir.join(id.as_str());
        WardState::load(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(id.to_string())
            } else {
                Error::Io {
                    op: "read",
                    path: WardState::path(&dir),
                    source: e,
                }
            }
        })
    }

    /// The container's own process (from its hardened config): what `exec` starts from when
    /// it is given a bare command line, as runc does (env, cwd, user, terminal).
    pub fn init_process(&self, id: &ContainerId) -> Result<oci_spec::runtime::Process> {
        let wdir = self.ward_dir.join(id.as_str());
        if !wdir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(load_spec(&wdir)?.process().clone().unwrap_or_default())
    }

    pub fn start(&self, id: &ContainerId) -> Result<()> {
        let mut c = self.load(id)?;
        // Opened before the init is told to go: its exec result comes back through it.
        let status = crate::exec_status::Waiter::open(&self.ward_dir.join(id.as_str()))?;
        c.start().map_err(|source| Error::Container {
            op: "start",
            source,
        })?;
        // The program's own exec result first: poststart hooks run once it has started.
        if let Some(line) = status.and_then(|s| s.wait(crate::exec_status::WAIT)) {
            if let Some(pid) = c.pid() {
                crate::exec_status::wait_exited(pid.as_raw(), std::time::Duration::from_secs(2));
            }
            return Err(Error::ProgramStart(line));
        }
        if let Ok(ws) = self.ward_state(id) {
            let pid = c.pid().map(|p| p.as_raw()).unwrap_or(0);
            let state = crate::hook_run::HookState {
                oci_version: "1.0.2",
                id: id.as_str(),
                status: "running",
                pid,
                bundle: &ws.bundle,
                annotations: c.state.annotations.as_ref(),
            };
            crate::hook_run::run_all_warn("poststart", &ws.hooks.poststart, &state);
        }
        Ok(())
    }

    /// The pod sandbox `sid` (annotation `io.kubernetes.cri.sandbox-id`), if it is a live Ward
    /// container of this root; otherwise why not.
    fn pod_sandbox(&self, sid: &str) -> std::result::Result<pod::PodSandbox, String> {
        let not_ours = || format!("is not a Ward container in {}", self.root.display());
        let id = ContainerId::new(sid).map_err(|_| not_ours())?;
        let ws = self.ward_state(&id).map_err(|_| not_ours())?;
        if let Some(why) = crate::pod_trust::refuse_join(self.pods_enabled, &ws) {
            return Err(why);
        }
        let c = self.load(&id).map_err(|_| not_ours())?;
        let pid = match c.status() {
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused => {
                c.pid().map(|p| p.as_raw())
            }
            _ => None,
        }
        .ok_or_else(|| format!("is {} (no init process to join)", c.status()))?;
        Ok(pod::PodSandbox {
            id: sid.to_string(),
            pid,
            range: ws.range,
        })
    }

    /// Ids and uid ranges Ward currently holds (for leak checks).
    pub fn allocated_ranges(&self) -> Result<Vec<String>> {
        if !self.ward_dir.exists() {
            return Ok(vec![]);
        }
        Ok(self.allocator().owners()?)
    }

    /// Map an annotation-free spec to its hardened form, for `ward spec` and `ward profile`.
    pub fn preview(&self, id: &ContainerId, spec: Spec) -> Result<HardenedSpec> {
        let profile = self.select_profile(&spec)?;
        let policy = self.policy(&profile)?;
        let ctx = self.context(id, &spec, &HostView::read());
        let range = harden::IdRange {
            host_start: self.node.userns.base,
            size: self.node.userns.size,
        };
        Ok(harden::harden(spec, &policy, &range, &ctx)?)
    }
}
