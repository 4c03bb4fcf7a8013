//! `Runtime::create`, as one orchestrator over the steps of ARCHITECTURE.md:
//! spec → policy (`harden`) → resolve (handles) → prepare (identity + range under one lock,
//! private mounts) → launch (libcontainer + Ward's executor).

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use oci_spec::runtime::Spec;
use ward_profiles::{Mode, Profile};

use super::{load_spec, migration_warmup, remove_cgroup_dirs, Runtime};
use crate::alloc::AllocError;
use crate::charge::{self, ContainerUserns};
use crate::error::{io, Error, Result};
use crate::harden::{self, HardenedSpec, IdRange};
use crate::hook_run;
use crate::host_view::HostView;
use crate::id::ContainerId;
use crate::pod;
use crate::prepare::{self, PrivateMounts};
use crate::resolve::{self, Protected, Resolved};
use crate::rootfs;
use crate::sandbox::SandboxPlan;
use crate::state::WardState;
use crate::CreateOptions;

/// Undo list for a create that fails half-way: nothing may be left behind. Armed only once
/// this create owns the id (its state dir and range claim), so a losing same-id create never
/// touches the winner's state.
struct Cleanup<'a> {
    rt: &'a Runtime,
    id: &'a ContainerId,
    armed: bool,
    prepared: Option<rootfs::Prepared>,
    cgroup_dirs: Vec<PathBuf>,
    cgroup_leaf: Option<PathBuf>,
}

impl<'a> Cleanup<'a> {
    fn new(rt: &'a Runtime, id: &'a ContainerId) -> Self {
        Self {
            rt,
            id,
            armed: true,
            prepared: None,
            cgroup_dirs: vec![],
            cgroup_leaf: None,
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let wdir = self.rt.ward_dir.join(self.id.as_str());
        let _ = crate::supervisor::stop(&wdir);
        let cdir = self.rt.root.join(self.id.as_str());
        if cdir.exists() {
            if let Ok(mut c) = Container::load(cdir.clone()) {
                let _ = c.delete(true);
            }
            let _ = std::fs::remove_dir_all(&cdir);
        }
        if let Some(leaf) = &self.cgroup_leaf {
            remove_cgroup_dirs(std::slice::from_ref(leaf));
        }
        remove_cgroup_dirs(&self.cgroup_dirs);
        if let Some(p) = &self.prepared {
            let _ = p.undo();
        }
        let _ = pod::undo_sysfs(&wdir);
        let _ = std::fs::remove_dir_all(&wdir);
        let _ = self.rt.allocator().release(self.id.as_str());
    }
}

/// Directories (absolute, under every cgroup mount) that do not exist yet on the way to
/// `cgroup` (exclusive of the leaf, which libcontainer owns), deepest first.
fn missing_cgroup_ancestors(cgroup: &Path, mounts: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = vec![];
    for m in mounts {
        let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
        let mut cur = m.clone();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            cur.push(c);
            if !cur.exists() {
                out.push(cur.clone());
            }
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// Say once per field what Ward applied instead of what the spec asked: a warning in the log
/// (info where the spec left the field out and Ward's default filled it), and a
/// `spec-override` event in `ward events` (`ward state` shows them as annotations).
fn report_overrides(
    id: &ContainerId,
    wdir: &Path,
    profile: &Profile,
    overrides: &[harden::overrides::Override],
) {
    let mut lines = String::new();
    for o in overrides {
        if o.explicit {
            tracing::warn!(id = %id, field = %o.field, asked = %o.asked, applied = %o.applied, "spec overridden");
        } else {
            tracing::info!(id = %id, field = %o.field, asked = %o.asked, applied = %o.applied, "spec completed by Ward's defaults");
        }
        let mut e = crate::supervisor::Event::new("spec-override", id.as_str(), profile.name());
        e.message = Some(o.line());
        lines.push_str(&serde_json::to_string(&e).expect("serializable"));
        lines.push('\n');
    }
    if lines.is_empty() {
        return;
    }
    let path = wdir.join(crate::supervisor::EVENTS_FILE);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()));
    if let Err(e) = written {
        // The log line above already said it; the event file is a convenience.
        tracing::warn!(path = %path.display(), error = %e, "cannot record spec-override events");
    }
}

/// Ward's own state (root's only): the undo record `delete` works from.
fn save_ward_state(wdir: &Path, state: &WardState) -> Result<()> {
    let data = serde_json::to_vec_pretty(state).expect("serializable");
    let path = WardState::path(wdir);
    prepare::write_private(&path, &data).map_err(io("write", &path))
}

/// libcontainer's config.json and Ward's own state.
fn save_state(wdir: &Path, spec: &Spec, state: &WardState) -> Result<()> {
    let cfg = wdir.join("config.json");
    prepare::write_private(
        &cfg,
        &serde_json::to_vec_pretty(spec).expect("serializable"),
    )
    .map_err(io("write", &cfg))?;
    save_ward_state(wdir, state)
}

/// What [`Runtime::admit`] decided.
struct Admitted {
    bundle: PathBuf,
    spec: Spec,
    profile: Profile,
    policy: harden::Policy,
    ctx: harden::HardenContext,
    joins: pod::Joins,
    protected: Protected,
    rootfs: resolve::Handle,
    /// The cgroup hierarchies' mount points, read once per create.
    mounts: Vec<PathBuf>,
}

fn new_netns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| {
            nss.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none()
            })
        })
}

impl Runtime {
    /// Create a container: everything up to (not including) the user program.
    /// Returns the init pid, a child of the caller.
    ///
    /// Crash-safe: each side effect is recorded before it is made (the state dir and range
    /// claim together, then `ward.json` naming the cgroup dirs before they exist, the
    /// supervisor's pid record before it serves), and every mount lives in a private mount
    /// namespace that dies with the process; so `delete --force` after a kill at any point
    /// removes everything.
    pub fn create(&self, id: &ContainerId, opts: CreateOptions) -> Result<i32> {
        if opts.no_pivot {
            return Err(Error::Unsupported(
                "--no-pivot: refused: the sandbox needs pivot_root (chroot can be escaped)".into(),
            ));
        }
        crate::preflight::pid_file("--pid-file", opts.pid_file.as_deref())?;
        let wdir = self.ward_dir.join(id.as_str());
        if self.root.join(id.as_str()).exists() || wdir.exists() {
            return Err(Error::Exists(id.to_string()));
        }
        // The warm-up child lives for the grace period it waits for: fork it before this
        // create's reads grow the heap it shares.
        let _warmup = migration_warmup();
        let host = HostView::read();
        let Admitted {
            bundle,
            spec,
            profile,
            policy,
            ctx,
            mut joins,
            protected,
            rootfs,
            mounts,
        } = self.admit(id, &opts.bundle, &host)?;
        self.ensure_dirs()?;

        let requested = harden::userns::requested(&spec)?;
        let scope_plan = crate::systemd::plan(&spec, &ctx, &self.node.cgroups)?;
        let range = self.claim(id, &wdir, joins.sandbox.as_ref(), requested)?;
        let mut cleanup = Cleanup::new(self, id);
        let HardenedSpec {
            mut spec,
            volumes,
            spec_seccomp,
            dropped_caps,
            overrides,
            writable_rootfs,
        } = harden::harden(spec, &policy, &range, &ctx)?;
        crate::preflight::identity(&spec)?;
        crate::preflight::rootfs_view(&spec, rootfs.fd.as_fd())?;
        crate::hooks::bound_timeouts(&mut spec, self.node.hooks.default_timeout_secs);
        let hooks = hook_run::take(&mut spec);
        let cgroup = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .expect("harden sets cgroupsPath");
        cleanup.cgroup_dirs = missing_cgroup_ancestors(&cgroup, &mounts);
        let mut state = WardState {
            id: id.to_string(),
            bundle,
            profile: profile.name().to_string(),
            profile_hash: profile.hash(),
            range,
            prepared: rootfs::Prepared::default(),
            // Planned leaves first: a kill between the claim and the next record must not
            // leave them behind.
            created_cgroup_dirs: crate::cgroup_guard::planned_leaves(&cgroup, &mounts)
                .into_iter()
                .chain(cleanup.cgroup_dirs.iter().cloned())
                .collect(),
            dropped_caps,
            config_path: self.config_path.clone(),
            preserve_fds: opts.preserve_fds,
            sandbox: crate::pod_trust::is_sandbox(&spec),
            cgroup_claimed: false,
            systemd_unit: None,
            overrides,
            hooks,
        };
        save_ward_state(&wdir, &state)?;
        let resolved = Resolved {
            rootfs,
            volumes: resolve::volumes(&spec, &volumes, &protected)?,
        };
        let mode = self.seccomp_mode(&profile);
        let mut plan = self.sandbox_plan(
            &profile,
            &spec,
            spec_seccomp.as_ref(),
            opts.preserve_fds,
            mode,
        )?;
        // Report and learn modes: the container's supervisor, started before the clone so
        // the init inherits the connection its listener goes through (and before the private
        // mount namespace, which it must not hold on to).
        let _supervisor = self.start_supervisor(id, &wdir, &profile, mode, &mut plan)?;

        // The container's user namespace, owned by the range's base uid (charged there, not
        // to host root); it also idmaps the layers and volumes, cloned from the handles.
        let (userns, userns_fd) =
            ContainerUserns::create(&range, &self.node.userns.limits, joins.sandbox.is_none())?;
        let detached = rootfs::detach(&resolved, &userns_fd, self.node.mounts.allow_unmapped)?;
        drop((userns_fd, resolved));
        let private = PrivateMounts::enter()?;
        let prepared = rootfs::attach(detached, &wdir, &range, writable_rootfs)?;
        cleanup.prepared = Some(prepared.clone());
        self.point_spec_at(&mut spec, &prepared);
        joins.rewrite(&mut spec, &wdir)?;
        userns.join_in(&mut spec);
        // Ward (or systemd, for a scope it is asked for) makes the leaf, failing if it appeared
        // meanwhile; only then is it ours to remove, and its processes ours to kill.
        let (leaves, mut scope) =
            crate::systemd::claim(scope_plan.as_ref(), &spec, &cgroup, &mounts)?;
        state.systemd_unit = scope.as_ref().map(|s| s.unit().to_string());
        cleanup.cgroup_dirs.splice(0..0, leaves);
        cleanup.cgroup_leaf = Some(cgroup.clone());
        state.prepared = prepared;
        state.created_cgroup_dirs = cleanup.cgroup_dirs.clone();
        state.cgroup_claimed = true;
        save_state(&wdir, &spec, &state)?;
        let user = spec
            .process()
            .as_ref()
            .map(|p| p.user().clone())
            .unwrap_or_default();
        crate::stdio_owner::own_stdio(
            &spec,
            &user,
            opts.io_owner,
            [
                opts.stdin.as_ref(),
                opts.stdout.as_ref(),
                opts.stderr.as_ref(),
            ],
        )?;

        let pid = self.launch(id, &wdir, plan, &joins, opts)?;
        scope.as_mut().map(|s| s.hold(pid)).transpose()?;
        drop(private);
        joins.verify(pid)?;
        userns.verify(pid)?;
        charge::supervisor_into_cgroup(&wdir, &cgroup, &host)?;
        crate::oom::apply(&spec, &cgroup, &mounts)?;
        if new_netns(&spec) {
            // A network namespace of the container's own: loopback up, ports from 0 (see
            // netns.rs). Ward, in the host's user namespace, sets them from outside.
            crate::netns::setup_own(pid, &spec)?;
        }
        // prestart (deprecated) and createRuntime: the container exists, nothing runs yet.
        let hook_state = hook_run::HookState {
            oci_version: "1.0.2",
            id: id.as_str(),
            status: "created",
            pid,
            bundle: &state.bundle,
            annotations: spec.annotations().as_ref(),
        };
        hook_run::run_all("prestart", &state.hooks.prestart, &hook_state)?;
        hook_run::run_all("createRuntime", &state.hooks.create_runtime, &hook_state)?;
        // Said once the container exists: a refused create prints its one error line only.
        report_overrides(id, &wdir, &profile, &state.overrides);
        if let Some(s) = scope {
            s.keep();
        }
        cleanup.armed = false;
        Ok(pid)
    }

    /// Everything decided before the create owns anything: the spec, the profile and policy,
    /// pod joins, the hook and cgroup refusals, and the rootfs resolved to a checked handle.
    fn admit(&self, id: &ContainerId, bundle: &Path, host: &HostView) -> Result<Admitted> {
        let bundle = std::fs::canonicalize(bundle).map_err(|e| Error::Spec {
            path: bundle.to_path_buf(),
            message: format!("bundle: {e}"),
        })?;
        let mut spec = load_spec(&bundle)?;
        crate::preflight::spec_input(&spec, &crate::preflight::Host::current())?;
        let profile = self.select_profile(&spec)?;
        let policy = self.policy(&profile)?;
        let ctx = self.context(id, &spec, host);
        // A user-namespaced pod (hostUsers: false): the engine's own user namespace is not
        // joined; Ward makes one on the same mapping (see pod_userns.rs).
        let host_userns = ctx.host_ns.get("user").cloned().unwrap_or_default();
        crate::pod_userns::adopt_engine_userns(&mut spec, id.as_str(), &host_userns)?;
        let joins = pod::plan(&spec, id.as_str(), &ctx, |sid| self.pod_sandbox(sid))?;
        crate::hooks::check(&spec, &self.node.hooks.allow)?;
        // The cgroup hierarchies, read once for every cgroup step of this create.
        let mounts = host.cgroup_mounts();
        crate::cgroup_guard::refuse_taken(&spec, &ctx, &mounts)?;
        crate::oom::check(&spec, &mounts)?;
        let protected = Protected::new(
            &[&self.root, &self.node.userns.claims_dir],
            &self.node.mounts.allowed_sensitive,
        );
        let root_path = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .ok_or_else(|| harden::PolicyError::Spec {
                field: "root".into(),
                detail: "missing".into(),
            })?;
        let rootfs = resolve::rootfs(&bundle, &root_path, &protected)?;
        Ok(Admitted {
            bundle,
            spec,
            profile,
            policy,
            ctx,
            joins,
            protected,
            rootfs,
            mounts,
        })
    }

    /// The id and a uid range, in one step under the range table's lock: the state dir is made
    /// there (failing if the id is taken), so a same-id race has one winner and the loser
    /// touches nothing; and an owner whose state dir is missing is provably gone. A range the
    /// spec's own mapping asks for (`requested`) is held as it is when it overlaps nothing
    /// held on the node; a pod container shares its sandbox's range either way.
    fn claim(
        &self,
        id: &ContainerId,
        wdir: &Path,
        sandbox: Option<&pod::PodSandbox>,
        requested: Option<IdRange>,
    ) -> Result<IdRange> {
        let cdir = self.root.join(id.as_str());
        let identity = || {
            if cdir.exists() {
                return Err(AllocError::Exists(id.to_string()));
            }
            prepare::make_state_dir(wdir).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => AllocError::Exists(id.to_string()),
                _ => AllocError::Table {
                    path: wdir.to_path_buf(),
                    message: format!("mkdir: {e}"),
                },
            })
        };
        let alloc = self.allocator();
        let alive = |o: &str| o != id.as_str() && self.is_alive_owner(o);
        let claimed = match (sandbox, requested) {
            (Some(sb), _) => alloc.claim_shared(&sb.id, id.as_str(), identity),
            (None, Some(r)) => alloc.claim_chosen(id.as_str(), r, identity, alive),
            (None, None) => alloc.claim_new(id.as_str(), identity, alive),
        };
        let range = claimed.map_err(|e| match e {
            AllocError::Exists(id) => Error::Exists(id),
            e => {
                // A refused range (overlap, exhausted): the state dir this claim made, still
                // empty, goes too (an id taken by another create is the `Exists` case).
                prepare::remove_fresh_state_dir(wdir);
                e.into()
            }
        })?;
        if let Some(sb) = sandbox {
            if range != sb.range {
                // The table and the sandbox's state disagree: do not guess which uids it runs
                // as.
                let _ = std::fs::remove_dir_all(wdir);
                self.allocator().release(id.as_str())?;
                return Err(Error::Unsupported(format!(
                    "pod sandbox {}: its recorded uid range {}+{} is not the one the range table holds for it ({}+{})",
                    sb.id, sb.range.host_start, sb.range.size, range.host_start, range.size
                )));
            }
        }
        Ok(range)
    }

    /// Point the spec at the prepared rootfs and idmapped volumes.
    fn point_spec_at(&self, spec: &mut Spec, prepared: &rootfs::Prepared) {
        let mut root = spec.root().clone().expect("checked");
        root.set_path(prepared.rootfs.clone());
        spec.set_root(Some(root));
        if let Some(mounts) = spec.mounts_mut() {
            for (index, src) in &prepared.volume_sources {
                mounts[*index].set_source(Some(src.clone()));
            }
        }
    }

    /// Clone the container's init (from the private mount namespace, inside a joined pod
    /// network namespace if any).
    fn launch(
        &self,
        id: &ContainerId,
        wdir: &Path,
        mut plan: SandboxPlan,
        joins: &pod::Joins,
        opts: CreateOptions,
    ) -> Result<i32> {
        crate::groups::clear_callers()?;
        // The init's end of the exec-status FIFO (the init inherits it; `start` reads it).
        let status = crate::exec_status::create(wdir, 3 + opts.preserve_fds as i32)?;
        plan.exec_status = Some(status.as_raw_fd());
        // Ward enters a pod's host-owned network namespace itself; the clone inherits it.
        let entered = joins.enter(wdir)?;
        let container = self
            .builder(
                id,
                "create",
                opts.pid_file.as_ref(),
                opts.console_socket.as_ref(),
                opts.preserve_fds,
                plan,
                [opts.stdin, opts.stdout, opts.stderr],
            )?
            .as_init(wdir)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|source| Error::Container {
                op: "create",
                source,
            })?;
        drop(entered);
        drop(status);
        Ok(container.pid().map(|p| p.as_raw()).unwrap_or(0))
    }

    fn start_supervisor(
        &self,
        id: &ContainerId,
        wdir: &Path,
        profile: &Profile,
        mode: Mode,
        plan: &mut SandboxPlan,
    ) -> Result<Option<crate::supervisor::Connection>> {
        if mode == Mode::Enforce {
            return Ok(None);
        }
        let conn = crate::supervisor::spawn(&crate::supervisor::Config {
            id: id.as_str(),
            dir: wdir,
            profile,
            mode,
            log: &self.event_log,
        })?;
        plan.notify = Some(conn.handoff());
        Ok(Some(conn))
    }
}
