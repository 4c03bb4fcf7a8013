//! The last step inside the container, in Ward's libcontainer `Executor`: right before
//! `execve`, with `/` already the container rootfs, as the final user, with no capabilities:
//! close inherited fds, check the cwd, apply Landlock, then seccomp, then exec.
//! Everything is computed in the parent before fork; nothing here allocates after seccomp.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::Arc;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI,
};
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use ward_profiles::{FsAccess, LandlockPlan};

use crate::sys;

/// Everything the executor applies, built before the container is forked.
#[derive(Debug, Clone)]
pub struct SandboxPlan {
    pub profile: String,
    pub seccomp: Vec<seccompiler::BpfProgram>,
    pub landlock: LandlockPlan,
    pub preserve_fds: u32,
    /// Report and learn modes: `seccomp[0]` (the profile's program) is installed last, with a
    /// listener that goes to the container's supervisor through this connection.
    pub notify: Option<crate::supervisor::Handoff>,
    /// The init's end of the exec-status FIFO ([`crate::exec_status`]): a failure before or
    /// at execve is written there for `start` to report.
    pub exec_status: Option<std::os::fd::RawFd>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error("landlock: the kernel does not support Landlock ({0}); Ward requires it (ABI >= {1})")]
    LandlockMissing(nix::errno::Errno, i64),
    #[error("landlock: kernel ABI {0} is older than the {1} this profile needs")]
    LandlockTooOld(i64, i64),
    #[error("landlock: {0}")]
    Landlock(String),
    #[error("landlock: ruleset not fully enforced ({0:?})")]
    LandlockNotEnforced(RulesetStatus),
    #[error("seccomp: this kernel has no seccomp filter support")]
    SeccompMissing,
    #[error("seccomp: installing filter {index}: {message}")]
    Seccomp { index: usize, message: String },
    #[error("fds: close_range: {0}")]
    CloseRange(nix::errno::Errno),
    #[error("cwd: the working directory is outside the container's root ({0})")]
    CwdOutside(String),
    #[error("seccomp: handing the notification listener to the supervisor: sendmsg: {0}")]
    Handoff(nix::errno::Errno),
    #[error("process.args: {0}")]
    Args(String),
    #[error("stdio: re-open /dev/null for writing: {0}")]
    Stdio(nix::errno::Errno),
}

#[derive(Clone)]
pub struct WardExecutor {
    plan: Arc<SandboxPlan>,
}

impl WardExecutor {
    pub fn new(plan: SandboxPlan) -> Self {
        Self {
            plan: Arc::new(plan),
        }
    }
}

fn fs_access(a: FsAccess, abi: ABI) -> landlock::BitFlags<AccessFs> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = AccessFs::from_write(abi) & !(AccessFs::MakeBlock | AccessFs::MakeChar);
    match a {
        FsAccess::Read => read,
        FsAccess::ReadExec => read | AccessFs::Execute,
        FsAccess::ReadWrite => read | write,
        FsAccess::ReadWriteExec => read | write | AccessFs::Execute,
    }
}

fn needs_net(plan: &LandlockPlan) -> bool {
    plan.tcp_bind.is_some() || plan.tcp_connect.is_some()
}

/// Check before `start` that the kernel can enforce what the plan asks.
pub fn check_kernel(plan: &SandboxPlan) -> Result<(), SandboxError> {
    let need = if needs_net(&plan.landlock) { 4 } else { 3 };
    let abi = sys::landlock_abi().map_err(|e| SandboxError::LandlockMissing(e, need))?;
    if abi < need {
        return Err(SandboxError::LandlockTooOld(abi, need));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status.lines().any(|l| l.starts_with("Seccomp:")) {
        return Err(SandboxError::SeccompMissing);
    }
    Ok(())
}

/// Apply the Landlock ruleset to the calling process, as a hard requirement.
pub fn apply_landlock(plan: &LandlockPlan) -> Result<(), SandboxError> {
    let abi = ABI::V3;
    let err = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    // Handle (restrict) only the TCP operations the plan limits: a plan that limits binds
    // but allows any connect must not deny every connect.
    if plan.tcp_bind.is_some() {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(err)?;
    }
    if plan.tcp_connect.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp).map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    for rule in &plan.rules {
        created = created
            .add_rules(path_beneath_rules(
                [&rule.path],
                fs_access(rule.access, abi),
            ))
            .map_err(err)?;
    }
    // The process's own stdio FIFOs (containerd's, outside the container): reopening them
    // through /proc/self/fd (`/dev/stdout`, the official nginx image's log files) is allowed
    // with the access the fd already has, and nothing else on that filesystem.
    for (fd, read, write) in sys::fs::stdio_fifos() {
        let mut access = landlock::BitFlags::<AccessFs>::empty();
        if read {
            access |= AccessFs::ReadFile;
        }
        if write {
            access |= AccessFs::WriteFile;
        }
        created = created
            .add_rule(landlock::PathBeneath::new(fd, access))
            .map_err(err)?;
    }
    for port in plan.tcp_bind.iter().flatten() {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::BindTcp))
            .map_err(err)?;
    }
    for port in plan.tcp_connect.iter().flatten() {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(err)?;
    }
    let status = created.restrict_self().map_err(err)?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(SandboxError::LandlockNotEnforced(status.ruleset));
    }
    Ok(())
}

/// Install every seccomp filter, in order.
pub fn apply_seccomp(filters: &[seccompiler::BpfProgram]) -> Result<(), SandboxError> {
    for (index, f) in filters.iter().enumerate() {
        seccompiler::apply_filter(f).map_err(|e| SandboxError::Seccomp {
            index,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Install the profile's program with a notification listener and send the listener to the
/// supervisor. Between the install and the end of `sendmsg` only
/// [`ward_profiles::NOTIFY_PROTOCOL_SYSCALLS`] run (no allocation, no other call): those are
/// never notified (learn mode) and must be allowed by the profile (report mode), so nothing
/// here can wait for a supervisor that does not hold the listener yet. The spec's own
/// filters are installed before this one, so they cannot deny a later install.
pub fn install_and_hand_off(
    program: &seccompiler::BpfProgram,
    handoff: crate::supervisor::Handoff,
) -> Result<(), SandboxError> {
    let Some(sock) = handoff.sock else {
        // The supervisor is gone (an exec, see supervisor/health.rs): the same program, no
        // listener. The kernel fails every call it hands to user space with ENOSYS.
        return apply_seccomp(std::slice::from_ref(program));
    };
    let listener =
        sys::notify::install_listener_filter(program).map_err(|e| SandboxError::Seccomp {
            index: 0,
            message: format!("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER): {e}"),
        })?;
    let sent = sys::notify::send_fd(sock, std::os::fd::AsRawFd::as_raw_fd(&listener));
    drop(listener);
    // SAFETY: `sock` is the inherited handoff connection; its owner (a UnixStream in Ward's
    // memory, copied by clone) is never dropped in this process, which execs next.
    unsafe { libc::close(sock) };
    if let Err(e) = sent {
        if handoff.mode == ward_profiles::Mode::Record {
            // With the listener closed every notified call fails with ENOSYS, memory
            // allocation included: leave without running more Rust code.
            // SAFETY: _exit ends the process at once (exit_group is a protocol syscall).
            unsafe { libc::_exit(125) };
        }
        if handoff.exec {
            // The supervisor died during the handoff: the filter is installed and its
            // listener closed, so denied calls fail closed (ENOSYS), unreported.
            return Ok(());
        }
        return Err(SandboxError::Handoff(e));
    }
    Ok(())
}

fn exec_error(e: SandboxError) -> ExecutorError {
    ExecutorError::Other(format!("sandbox: {e}"))
}

impl Executor for WardExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        check_kernel(&self.plan)
            .map_err(|e| ExecutorValidationError::ArgValidationError(e.to_string()))?;
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                ExecutorValidationError::ArgValidationError("process.args: empty".into())
            })?;
        let _ = args;
        Ok(())
    }

    fn setup_envs(&self, envs: HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        // Same as libcontainer's default: the host's environment never reaches the container.
        for (k, _) in std::env::vars_os() {
            // SAFETY: the container init is single-threaded at this point.
            unsafe { std::env::remove_var(k) };
        }
        for (k, v) in envs {
            // set_var panics on these; Ward's preflight refuses them before launch.
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                let msg = format!("process.env: {k:?}: not a valid NAME=VALUE entry");
                if let Some(fd) = self.plan.exec_status {
                    crate::exec_status::report(fd, &msg);
                }
                return Err(ExecutorSetEnvsError::Other(msg));
            }
            // SAFETY: as above.
            unsafe { std::env::set_var(k, v) };
        }
        Ok(())
    }

    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let r = self.exec_inner(spec);
        if let (Err(e), Some(fd)) = (&r, self.plan.exec_status) {
            crate::exec_status::report(fd, &e.to_string());
        }
        r
    }
}

impl WardExecutor {
    fn exec_inner(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .ok_or(ExecutorError::InvalidArg)?;
        let argv: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|e| exec_error(SandboxError::Args(e.to_string())))?;
        // fds: nothing inherited beyond stdio and the ones passed on purpose survives exec.
        sys::cloexec_from(3 + self.plan.preserve_fds)
            .map_err(|e| exec_error(SandboxError::CloseRange(e)))?;
        sys::writable_dev_null_stdio().map_err(|e| exec_error(SandboxError::Stdio(e)))?;
        // cwd: must resolve inside the rootfs (CVE-2024-21626).
        match std::env::current_dir() {
            Ok(p) if p.is_absolute() && !p.to_string_lossy().starts_with("(unreachable)") => {}
            Ok(p) => {
                return Err(exec_error(SandboxError::CwdOutside(
                    p.display().to_string(),
                )))
            }
            Err(e) => return Err(exec_error(SandboxError::CwdOutside(e.to_string()))),
        }
        apply_landlock(&self.plan.landlock).map_err(exec_error)?;
        match self.plan.notify {
            None => apply_seccomp(&self.plan.seccomp).map_err(exec_error)?,
            Some(handoff) => {
                let (profile, spec_filters) = self
                    .plan
                    .seccomp
                    .split_first()
                    .ok_or_else(|| exec_error(SandboxError::SeccompMissing))?;
                apply_seccomp(spec_filters).map_err(exec_error)?;
                install_and_hand_off(profile, handoff).map_err(exec_error)?;
            }
        }
        let err = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
        let hint = match err {
            nix::errno::Errno::EPERM => {
                " (the sandbox profile's seccomp filter or Landlock rules deny it)"
            }
            nix::errno::Errno::EACCES => " (not executable, or Landlock denies executing it)",
            nix::errno::Errno::ENOENT => {
                " (the program, or its ELF interpreter, is not in the container)"
            }
            nix::errno::Errno::ENOEXEC => " (not a format this kernel can run)",
            _ => "",
        };
        Err(ExecutorError::Other(format!(
            "process.args[0]: exec {:?}: {err}{hint}",
            args[0]
        )))
    }
}
