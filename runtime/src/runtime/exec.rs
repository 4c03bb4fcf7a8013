//! `Runtime::exec`: a new process in a running container, with every restriction of its init
//! (same user namespace, capabilities, no_new_privs, seccomp filter, Landlock rules, cgroup).

use super::*;

impl Runtime {
    /// Start another process in a running container, with exactly the init's user namespace,
    /// capabilities, no_new_privs, seccomp, Landlock and cgroup. Returns its pid (a child of
    /// the caller).
    pub fn exec(&self, id: &ContainerId, opts: ExecOptions, detach: bool) -> Result<i32> {
        let c = self.load(id)?;
        if c.status() != ContainerStatus::Running {
            return Err(Error::State {
                id: id.to_string(),
                status: c.status().to_string(),
                what: "exec needs a running container",
            });
        }
        let _warmup = migration_warmup();
        let ws = self.ward_state(id)?;
        let wdir = self.ward_dir.join(id.as_str());
        let spec = load_spec(&wdir)?;
        let profile =
            ward_profiles::load(&ws.profile, &self.node.profile_dirs).map_err(|source| {
                Error::Profile {
                    name: ws.profile.clone(),
                    source,
                }
            })?;
        // The exec'd process gets the init's capabilities and no_new_privs, whatever it asked.
        let mut process = opts.process;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(harden::PolicyError::Spec {
                field: "process.args".into(),
                detail: "must name a program to run".into(),
            }
            .into());
        }
        if !process.cwd().is_absolute() {
            return Err(harden::PolicyError::Spec {
                field: "process.cwd".into(),
                detail: format!("{} must be an absolute path", process.cwd().display()),
            }
            .into());
        }
        let init = spec.process().clone().unwrap_or_default();
        process.set_capabilities(init.capabilities().clone());
        process.set_no_new_privileges(Some(true));
        crate::preflight::exec_process(&spec, &process, opts.pid_file.as_deref())?;
        crate::stdio_owner::own_stdio(
            &spec,
            process.user(),
            opts.io_owner,
            [
                opts.stdin.as_ref(),
                opts.stdout.as_ref(),
                opts.stderr.as_ref(),
            ],
        )?;
        // Supplementary groups: set by the helper below, not libcontainer (see groups.rs).
        let gids = crate::groups::take_for_exec(&mut process);
        process.set_apparmor_profile(None);
        process.set_selinux_label(None);
        // The exec'd process reports to the container's supervisor, if it has one (one that
        // died: the same filter, unreported, and a warning; see supervisor/health.rs).
        let supervisor = crate::supervisor::connect_for_exec(&wdir, id.as_str(), &ws.profile)?;
        let mode = supervisor.mode;
        let mut plan = self.sandbox_plan(&profile, &spec, None, opts.preserve_fds, mode)?;
        plan.notify = supervisor.handoff();
        // The spec's own linux.seccomp was moved out by harden; recompile it from the bundle.
        if let Ok(orig) = load_spec(&ws.bundle) {
            if let Some(s) = orig.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
                plan.seccomp
                    .extend(
                        ward_profiles::compile_oci_seccomp(s, arch()).map_err(|source| {
                            Error::Profile {
                                name: "linux.seccomp".into(),
                                source,
                            }
                        })?,
                    );
            }
        }
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let pfile = wdir.join(format!("exec-{}-{n}.json", std::process::id()));
        std::fs::write(&pfile, serde_json::to_vec(&process).expect("serializable"))
            .map_err(io("write", &pfile))?;
        let builder = self.builder(
            id,
            "exec",
            opts.pid_file.as_ref(),
            opts.console_socket.as_ref(),
            opts.preserve_fds,
            plan,
            [opts.stdin, opts.stdout, opts.stderr],
        )?;
        // libcontainer 0.7's tenant (exec) path joins ipc, uts, net, pid, mnt, cgroup and time
        // namespaces but NOT the user namespace: the exec'd process would run as host uid 0.
        // So a forked helper first joins the container's user namespace (irreversible, hence
        // the fork), then builds the tenant as a sibling, i.e. a child of the caller.
        let init_pid = c.pid().map(|p| p.as_raw()).ok_or_else(|| Error::State {
            id: id.to_string(),
            status: c.status().to_string(),
            what: "exec needs the init pid",
        })?;
        wait_init_exec(init_pid);
        let userns_path = PathBuf::from(format!("/proc/{init_pid}/ns/user"));
        let userns = std::fs::File::open(&userns_path).map_err(io("open", &userns_path))?;
        let console = opts.console_socket.is_some();
        let r = sys::in_forked_child(|| {
            pod::enter_inherited_netns(&spec, init_pid).map_err(|e| e.to_string())?;
            nix::sched::setns(&userns, nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("setns {}: {e}", userns_path.display()))?;
            crate::groups::set_in_container(&gids)?;
            builder
                .as_tenant()
                .with_process(Some(&pfile))
                // libcontainer only uses `detach` to check the terminal setup: a console
                // socket needs it, whether or not the caller waits for the process.
                .with_detach(detach || console)
                .as_sibling(true)
                .build()
                .map(|p| p.as_raw())
                .map_err(|e| {
                    let mut msg = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        let t = s.to_string();
                        if !msg.contains(&t) {
                            msg = format!("{msg}: {t}");
                        }
                        src = s.source();
                    }
                    msg
                })
        });
        let _ = std::fs::remove_file(&pfile);
        r.map_err(Error::Exec)
    }
}
