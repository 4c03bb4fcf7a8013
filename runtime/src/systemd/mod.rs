//! The systemd cgroup driver: where systemd runs (or the node config forces it), the scope of
//! a `slice:prefix:name` `linux.cgroupsPath` is systemd's to make, as runc and crun ask for it:
//! a transient scope `<prefix>-<name>.scope` in the slice, over systemd's D-Bus API
//! (`StartTransientUnit`, mode "fail", `Delegate=yes`), waited for by its job's `JobRemoved`.
//!
//! Ward then checks from the kernel side that the scope's cgroup is the one
//! [`crate::harden::systemd_path`] computes and holds nothing but Ward's helper: a unit that
//! exists already is refused by systemd itself (mode "fail"), a scope placed elsewhere or
//! holding other processes is refused here. Hierarchies systemd does not manage (v1
//! controllers it leaves alone: cpuset, freezer, ...) get the leaf from Ward, by the same
//! exclusive mkdir as the cgroupfs path ([`crate::cgroup_guard::claim`]). libcontainer's fs
//! manager then builds the container into that cgroup and writes its limits through cgroupfs;
//! the same limits also go to systemd as unit properties, so a `daemon-reload` that reapplies
//! the unit's settings keeps them.
//!
//! The scope's first process is a helper forked for the D-Bus exchange (see [`helper`]): Ward
//! itself stays single-threaded for the clone that follows. On a failed create, and on
//! `delete`, the unit is stopped (`StopUnit`, "replace") once its processes are killed, and
//! reset if it failed.

pub mod dbus;
mod helper;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use crate::config::CgroupsConfig;
use crate::harden::HardenContext;
use dbus::{Endpoint, Failure, Property};
use zbus::zvariant::Value;

/// systemd's own socket, peer-to-peer: what runc and go-systemd use as root.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus, where systemd is `org.freedesktop.systemd1`.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    #[error("linux.cgroupsPath: {asked}: systemd already has a unit {unit}; refusing to take it over ({reason})")]
    Exists {
        asked: String,
        unit: String,
        reason: String,
    },
    #[error("linux.cgroupsPath: {asked}: systemd scope {unit}: {op}: {reason}")]
    Call {
        asked: String,
        unit: String,
        op: &'static str,
        reason: String,
    },
    #[error("linux.cgroupsPath: {asked}: systemd scope {unit}: the {op} job ended with result {result:?}, not \"done\"")]
    Job {
        asked: String,
        unit: String,
        op: &'static str,
        result: String,
    },
    #[error("linux.cgroupsPath: {asked}: systemd scope {unit}: {}: {reason}; refusing it", path.display())]
    Misplaced {
        asked: String,
        unit: String,
        path: PathBuf,
        reason: String,
    },
    #[error("systemd scope {unit}: move the container's init (pid {pid}) into {}: {reason}", path.display())]
    Join {
        unit: String,
        pid: i32,
        path: PathBuf,
        reason: String,
    },
    #[error("systemd scope {unit}: update its limits: {reason}")]
    Update { unit: String, reason: String },
    #[error("systemd scope {unit}: stop: {reason}")]
    Stop { unit: String, reason: String },
    #[error("node config: {0}")]
    Config(String),
}

/// A scope this create asks of systemd.
#[derive(Debug, Clone)]
pub struct ScopePlan {
    /// `linux.cgroupsPath` as the spec wrote it (for error lines).
    asked: String,
    unit: String,
    slice: String,
    id: String,
    endpoints: Vec<Endpoint>,
}

/// Where to reach systemd: the configured socket alone, else its private socket then the
/// system bus.
pub fn endpoints(cfg: &CgroupsConfig) -> Result<Vec<Endpoint>, ScopeError> {
    Ok(match cfg.systemd_socket().map_err(ScopeError::Config)? {
        Some(p) => vec![Endpoint::Private(p)],
        None => vec![
            Endpoint::Private(PRIVATE_SOCKET.into()),
            Endpoint::Bus(SYSTEM_BUS.into()),
        ],
    })
}

/// The scope to ask of systemd for `spec` (before harden rewrites its `cgroupsPath`): none
/// when systemd does not make this node's scopes (`ctx.systemd_running`, from the node
/// config only) or the path is a cgroupfs one.
/// The fewest pids a create under the systemd driver needs in the container's cgroup.
const MIN_PIDS: i64 = 3;

pub fn plan(
    spec: &Spec,
    ctx: &HardenContext,
    cfg: &CgroupsConfig,
) -> crate::Result<Option<ScopePlan>> {
    if !ctx.systemd_running {
        return Ok(None);
    }
    let asked = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let Some((text, p)) = crate::harden::cgroups::systemd_form(asked.as_deref(), ctx)? else {
        return Ok(None);
    };
    let pids = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.pids().as_ref())
        .map(|p| p.limit());
    if let Some(n) = pids.filter(|n| (1..MIN_PIDS).contains(n)) {
        return Err(crate::harden::PolicyError::Spec {
            field: "linux.resources.pids.limit".into(),
            detail: format!(
                "{n} is below the {MIN_PIDS} processes a create needs in the scope under the \
                 systemd driver (the scope's first process, libcontainer's intermediate \
                 process and the init)"
            ),
        }
        .into());
    }
    Ok(Some(ScopePlan {
        asked: text,
        unit: p.unit(),
        slice: p.slice.clone(),
        id: ctx.id.clone(),
        endpoints: endpoints(cfg)?,
    }))
}

/// A started scope. Dropped without [`Scope::keep`] (a failed create), it kills what is in
/// its cgroups and stops the unit.
#[derive(Debug)]
pub struct Scope {
    unit: String,
    endpoints: Vec<Endpoint>,
    holder: Option<helper::Holder>,
    /// The scope's cgroup in every hierarchy (systemd's and those Ward made).
    dirs: Vec<PathBuf>,
    kept: bool,
}

impl Scope {
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// The container's init `pid` holds the scope from now on: put it in each of the scope's
    /// cgroups it is not in yet (libcontainer's v1 manager joins no named hierarchy nor the
    /// controller-less cgroup2 one, where systemd tracks the unit: a scope empty there is one
    /// systemd stops), then let the helper go. Call right after the init is cloned.
    pub fn hold(&mut self, pid: i32) -> Result<(), ScopeError> {
        for d in &self.dirs {
            let procs = d.join("cgroup.procs");
            let there = std::fs::read_to_string(&procs)
                .is_ok_and(|t| t.split_whitespace().any(|p| p == pid.to_string()));
            if there {
                continue;
            }
            std::fs::write(&procs, pid.to_string()).map_err(|e| ScopeError::Join {
                unit: self.unit.clone(),
                pid,
                path: procs.clone(),
                reason: e.to_string(),
            })?;
        }
        if let Some(h) = self.holder.take() {
            h.release();
        }
        Ok(())
    }

    /// The create succeeded: the scope is the container's until `delete`.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        drop(self.holder.take());
        // A scope is stopped by signalling its processes and waiting for them: kill them
        // first (only the helper and the container's were ever in it).
        crate::cgroup_guard::kill_all(&self.dirs, std::time::Duration::from_secs(2));
        if let Err(e) = helper::stop(&self.endpoints, &self.unit) {
            tracing::warn!(unit = %self.unit, error = ?e, "failed create: stop the systemd scope");
        }
    }
}

/// Stop `unit` (on delete, once its processes are gone).
pub fn stop(cfg: &CgroupsConfig, unit: &str) -> Result<(), ScopeError> {
    helper::stop(&endpoints(cfg)?, unit).map_err(|f| ScopeError::Stop {
        unit: unit.to_string(),
        reason: describe(&f),
    })
}

/// `ward update`: the limits just written through cgroupfs, also as the unit's properties (so
/// systemd reapplying its settings does not undo the update).
pub fn set_limits(cfg: &CgroupsConfig, unit: &str, res: &LinuxResources) -> Result<(), ScopeError> {
    let props = limit_properties(Some(res), pure_v2());
    if props.is_empty() {
        return Ok(());
    }
    helper::set(&endpoints(cfg)?, unit, props).map_err(|f| ScopeError::Update {
        unit: unit.to_string(),
        reason: describe(&f),
    })
}

/// Whether the host has cgroup v2 only (no v1 hierarchy mounted).
fn pure_v2() -> bool {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    !mi.contains(" - cgroup ")
}

fn describe(f: &Failure) -> String {
    match f {
        Failure::Connect(r) => format!("connect: {r}"),
        Failure::Exists(r) => r.clone(),
        Failure::Call { op, reason } => format!("{op}: {reason}"),
        Failure::Job { op, result } => format!("{op} job result {result:?}"),
    }
}

/// The container's leaf cgroups, made for it alone: by Ward ([`crate::cgroup_guard::claim`])
/// for a cgroupfs path, or by systemd as the scope of `plan` (then checked, and completed in
/// the hierarchies systemd leaves alone). Returns the leaf directories and the scope to keep.
/// Forks (the D-Bus helper): call from a single-threaded process.
pub fn claim(
    plan: Option<&ScopePlan>,
    spec: &Spec,
    cgroup: &Path,
    mounts: &[PathBuf],
) -> crate::Result<(Vec<PathBuf>, Option<Scope>)> {
    let Some(plan) = plan else {
        return Ok((crate::cgroup_guard::claim(cgroup, mounts)?, None));
    };
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let props = properties(plan, resources, !mountinfo.contains(" - cgroup "));
    let holder =
        helper::start(&plan.endpoints, &plan.unit, props).map_err(|f| start_error(plan, f))?;
    let mut scope = Scope {
        unit: plan.unit.clone(),
        endpoints: plan.endpoints.clone(),
        dirs: vec![],
        holder: None,
        kept: false,
    };
    let pid = holder.pid();
    scope.holder = Some(holder);
    let owned = systemd_hierarchies(&mountinfo);
    let (found, missing) =
        placement(cgroup, mounts, &owned, pid).map_err(|(d, reason)| misplaced(plan, d, reason))?;
    scope.dirs = found;
    let made = crate::cgroup_guard::claim(cgroup, &missing)?;
    scope.dirs.extend(made);
    Ok((scope.dirs.clone(), Some(scope)))
}

fn misplaced(plan: &ScopePlan, path: PathBuf, reason: String) -> crate::Error {
    ScopeError::Misplaced {
        asked: plan.asked.clone(),
        unit: plan.unit.clone(),
        path,
        reason,
    }
    .into()
}

fn start_error(plan: &ScopePlan, f: Failure) -> crate::Error {
    let (asked, unit) = (plan.asked.clone(), plan.unit.clone());
    match f {
        Failure::Exists(reason) => ScopeError::Exists {
            asked,
            unit,
            reason,
        },
        Failure::Job { op, result } => ScopeError::Job {
            asked,
            unit,
            op,
            result,
        },
        f => ScopeError::Call {
            asked,
            unit,
            op: "start",
            reason: describe(&f),
        },
    }
    .into()
}

/// Where systemd put the scope of `cgroup`, checked: its directory in each hierarchy of
/// `mounts`, and the hierarchies where it is missing (ones systemd leaves alone: Ward makes the
/// leaf there). In a hierarchy systemd places every unit in (`owned`) it must exist and hold
/// `pid`; anywhere it exists it must hold nothing else. An error names the directory.
fn placement(
    cgroup: &Path,
    mounts: &[PathBuf],
    owned: &[PathBuf],
    pid: i32,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), (PathBuf, String)> {
    let (mut found, mut missing) = (vec![], vec![]);
    for m in mounts {
        let d = m.join(cgroup.strip_prefix("/").unwrap_or(cgroup));
        match check_dir(&d, pid, owned.contains(m)) {
            Ok(true) => found.push(d),
            Ok(false) if !owned.contains(m) => missing.push(m.clone()),
            Ok(false) => {
                // Where systemd did put it, in the hierarchies systemd tracks units in.
                let now = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("0::") || l.contains(":name=systemd:"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err((d, format!("missing (the scope's process is in {now})")));
            }
            Err(reason) => return Err((d, reason)),
        }
    }
    if found.is_empty() {
        return Err((cgroup.into(), "in no cgroup hierarchy".into()));
    }
    Ok((found, missing))
}

/// Whether `dir` exists; if so it must hold no process but `pid` (the helper systemd moved
/// in), and hold it when `required` (a hierarchy systemd places every unit in).
fn check_dir(dir: &Path, pid: i32, required: bool) -> Result<bool, String> {
    let procs = match std::fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => return Ok(false),
        Err(e) => return Err(format!("read cgroup.procs: {e}")),
    };
    let pids: Vec<&str> = procs.split_whitespace().collect();
    let own = pid.to_string();
    if pids.iter().any(|p| *p != own) || (required && pids.is_empty()) {
        return Err(format!(
            "holds processes {pids:?}, not only Ward's ({pid}): not a scope made for this container"
        ));
    }
    Ok(true)
}

/// The hierarchies systemd places every unit in: the cgroup2 one, and v1's `name=systemd`.
fn systemd_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut f = post.split(' ');
            let (fstype, _, opts) = (f.next()?, f.next()?, f.next()?);
            let mp = pre.split(' ').nth(4)?;
            let ours = fstype == "cgroup2"
                || (fstype == "cgroup" && opts.split(',').any(|o| o == "name=systemd"));
            ours.then(|| PathBuf::from(mp))
        })
        .collect()
}

/// The unit's properties, as runc sets them for a container scope, with Ward's limits.
fn properties(plan: &ScopePlan, res: Option<&LinuxResources>, pure_v2: bool) -> Vec<Property> {
    let mut p: Vec<Property> = vec![
        (
            "Description",
            Value::from(format!("ward container {}", plan.id)),
        ),
        ("Slice", Value::from(plan.slice.clone())),
        ("Delegate", Value::from(true)),
        // Not stopped by shutdown.target ordering before the engine that manages it.
        ("DefaultDependencies", Value::from(false)),
        ("MemoryAccounting", Value::from(true)),
        ("CPUAccounting", Value::from(true)),
        ("TasksAccounting", Value::from(true)),
    ];
    p.extend(limit_properties(res, pure_v2));
    p
}

/// Ward's limits (already in the hardened spec) as unit properties: systemd reapplies a
/// unit's settings (daemon-reload), which must not lift them.
fn limit_properties(res: Option<&LinuxResources>, pure_v2: bool) -> Vec<Property> {
    let mut p: Vec<Property> = vec![];
    let Some(res) = res else { return p };
    if let Some(max) = res.pids().as_ref().map(|x| x.limit()).filter(|v| *v > 0) {
        p.push(("TasksMax", Value::from(max as u64)));
    }
    let mem = res
        .memory()
        .as_ref()
        .and_then(|m| m.limit())
        .filter(|v| *v > 0);
    if let Some(mem) = mem {
        let key = if pure_v2 { "MemoryMax" } else { "MemoryLimit" };
        p.push((key, Value::from(mem as u64)));
    }
    if let Some(cpu) = res.cpu() {
        let quota = cpu.quota().filter(|q| *q > 0);
        let period = cpu.period().filter(|p| *p > 0);
        if let (Some(q), Some(per)) = (quota, period) {
            // systemd keeps a quota per second, at 1% (10 ms) granularity: round up.
            let per_sec = (q as u64).saturating_mul(1_000_000) / per;
            p.push((
                "CPUQuotaPerSecUSec",
                Value::from(per_sec.div_ceil(10_000) * 10_000),
            ));
        }
        if let Some(shares) = cpu.shares().filter(|s| *s > 0) {
            if pure_v2 {
                // The kernel's and runc's mapping of shares [2, 262144] to weight [1, 10000].
                let s = shares.clamp(2, 262_144);
                p.push(("CPUWeight", Value::from(1 + ((s - 2) * 9999) / 262_142)));
            } else {
                p.push(("CPUShares", Value::from(shares)));
            }
        }
    }
    p
}

#[cfg(test)]
mod tests;
