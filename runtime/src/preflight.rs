//! Checks before launch of what would otherwise fail inside the container's init, where
//! libcontainer reports it without the field ("failed syscall", "io error", bare EPERM) or
//! not at all (exit 255): NUL bytes, execve's size limits, rlimits and `oomScoreAdj` this
//! process cannot grant, sysctls the kernel does not have, a uid or gid outside the
//! container's mapping, a missing cwd, a program that is not in the rootfs, a `--pid-file`
//! that cannot be written. Each error names the field (or flag), the operation and why.

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, PosixRlimit, Process, Spec};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    #[error("{field}: {reason}")]
    Refused { field: String, reason: String },
}

fn refused(field: impl Into<String>, reason: impl Into<String>) -> PreflightError {
    PreflightError::Refused {
        field: field.into(),
        reason: reason.into(),
    }
}

type Result<T> = std::result::Result<T, PreflightError>;

/// capability(7) number of CAP_SYS_RESOURCE.
const CAP_SYS_RESOURCE: u32 = 24;

/// The kernel's limit on one argv or envp string (MAX_ARG_STRLEN, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// What this process may grant, read from the host (for [`spec_input`]).
#[derive(Debug, Clone)]
pub struct Host {
    /// `sysconf(_SC_ARG_MAX)`: argv + envp (with their pointers) must fit.
    pub arg_max: usize,
    /// Whether this process holds CAP_SYS_RESOURCE (raise hard rlimits, lower oom_score_adj).
    pub sys_resource: bool,
    /// This process's own `oom_score_adj`.
    pub oom_score_adj: i32,
    /// This process's hard limit for a resource (`RLIMIT_*` name), if known.
    pub hard_limit: fn(&str) -> Option<u64>,
    /// Whether `/proc/sys/<path>` exists for a sysctl key.
    pub sysctl_exists: fn(&str) -> bool,
}

fn own_hard_limit(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let label = limits_label(name)?;
    let line = text.lines().find(|l| l.starts_with(label))?;
    let hard = line[label.len()..].split_whitespace().nth(1)?;
    Some(if hard == "unlimited" {
        u64::MAX
    } else {
        hard.parse().ok()?
    })
}

/// The row of /proc/self/limits for an `RLIMIT_*` name.
fn limits_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "RLIMIT_CPU" => "Max cpu time",
        "RLIMIT_FSIZE" => "Max file size",
        "RLIMIT_DATA" => "Max data size",
        "RLIMIT_STACK" => "Max stack size",
        "RLIMIT_CORE" => "Max core file size",
        "RLIMIT_RSS" => "Max resident set",
        "RLIMIT_NPROC" => "Max processes",
        "RLIMIT_NOFILE" => "Max open files",
        "RLIMIT_MEMLOCK" => "Max locked memory",
        "RLIMIT_AS" => "Max address space",
        "RLIMIT_LOCKS" => "Max file locks",
        "RLIMIT_SIGPENDING" => "Max pending signals",
        "RLIMIT_MSGQUEUE" => "Max msgqueue size",
        "RLIMIT_NICE" => "Max nice priority",
        "RLIMIT_RTPRIO" => "Max realtime priority",
        "RLIMIT_RTTIME" => "Max realtime timeout",
        _ => return None,
    })
}

fn sysctl_exists(key: &str) -> bool {
    Path::new("/proc/sys").join(host_sysctl(key)).is_file()
}

/// The /proc/sys path (relative) to look for on the host for `key`. Per-interface keys
/// (`net.ipv4.conf.eth0.forwarding`) name an interface of the container's network
/// namespace that the host may lack: their `default` entry is looked for instead.
fn host_sysctl(key: &str) -> String {
    let parts: Vec<&str> = key.split(['.', '/']).collect();
    match parts.as_slice() {
        // The interface name may itself hold dots (written as `/`, as in `eth0/100`).
        ["net", ip @ ("ipv4" | "ipv6"), kind @ ("conf" | "neigh"), .., leaf] if parts.len() > 4 => {
            format!("net/{ip}/{kind}/default/{leaf}")
        }
        _ => parts.join("/"),
    }
}

impl Host {
    /// This process, now.
    pub fn current() -> Self {
        // SAFETY: sysconf has no memory effects.
        let arg_max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        let oom = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Self {
            arg_max: if arg_max > 0 {
                arg_max as usize
            } else {
                128 * 1024
            },
            sys_resource: cap_eff & (1 << CAP_SYS_RESOURCE) != 0,
            oom_score_adj: oom,
            hard_limit: own_hard_limit,
            sysctl_exists,
        }
    }
}

/// Refuse a `--pid-file` that cannot be written, before anything is created: libcontainer
/// only logs a failed write and the engine reading the file breaks later.
pub fn pid_file(flag: &str, path: Option<&Path>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let field = format!("{flag} {}", path.display());
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(refused(field, "not a file name"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refused(
                field,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Err(e) => return Err(refused(field, format!("directory {}: {e}", dir.display()))),
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(refused(field, "is a directory"));
    }
    Ok(())
}

/// Checks of config.json's process that need nothing but the spec and this process.
pub fn spec_input(spec: &Spec, host: &Host) -> Result<()> {
    let Some(p) = spec.process().as_ref() else {
        return Ok(());
    };
    strings(p, host.arg_max)?;
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(refused(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
        if adj < host.oom_score_adj && !host.sys_resource {
            return Err(refused(
                "process.oomScoreAdj",
                format!(
                    "{adj} is below Ward's own {} and lowering it needs CAP_SYS_RESOURCE, which this process lacks",
                    host.oom_score_adj
                ),
            ));
        }
    }
    if let Some(limits) = p.rlimits() {
        rlimits(limits, host)?;
    }
    resources::check(spec)?;
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctl {
            sysctl_entry(key, value, host)?;
        }
    }
    Ok(())
}

/// NUL bytes and execve's limits (E2BIG) in process.args and process.env.
fn strings(p: &Process, arg_max: usize) -> Result<()> {
    let args = p.args().as_deref().unwrap_or_default();
    let env = p.env().as_deref().unwrap_or_default();
    let mut total = 0usize;
    for (name, list) in [("process.args", args), ("process.env", env)] {
        for (i, s) in list.iter().enumerate() {
            let field = format!("{name}[{i}]");
            if s.as_bytes().contains(&0) {
                return Err(refused(field, "contains a NUL byte"));
            }
            if s.len() + 1 > MAX_ARG_STRLEN {
                return Err(refused(
                    field,
                    format!(
                        "{} bytes, more than execve's {MAX_ARG_STRLEN} per string (E2BIG)",
                        s.len()
                    ),
                ));
            }
            if name == "process.env" && !s.contains('=') {
                return Err(refused(field, format!("{s:?} is not NAME=VALUE")));
            }
            total += s.len() + 1 + std::mem::size_of::<usize>();
        }
    }
    if total > arg_max {
        return Err(refused(
            "process.args + process.env",
            format!("{total} bytes, more than the kernel's ARG_MAX of {arg_max}: execve would fail (E2BIG)"),
        ));
    }
    Ok(())
}

fn rlimits(limits: &[PosixRlimit], host: &Host) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for l in limits {
        let name = serde_json::to_value(l.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("{:?}", l.typ()));
        let field = format!("process.rlimits[{name}]");
        if !seen.insert(name.clone()) {
            return Err(refused(field, "given twice"));
        }
        if l.soft() > l.hard() {
            return Err(refused(
                field,
                format!(
                    "soft {} is above hard {}: setrlimit would fail (EINVAL)",
                    l.soft(),
                    l.hard()
                ),
            ));
        }
        if let Some(own) = (host.hard_limit)(&name) {
            if l.hard() > own && !host.sys_resource {
                return Err(refused(
                    field,
                    format!("hard {} is above Ward's own hard limit {own}, and raising it needs CAP_SYS_RESOURCE, which this process lacks", l.hard()),
                ));
            }
        }
    }
    Ok(())
}

fn sysctl_entry(key: &str, value: &str, host: &Host) -> Result<()> {
    let field = format!("linux.sysctl[{key}]");
    let well_formed = !key.is_empty()
        && key
            .split(['.', '/'])
            .all(|c| !c.is_empty() && c != ".." && c != ".")
        && !key.contains('\0');
    if !well_formed {
        return Err(refused(field, "not a sysctl name"));
    }
    if value.contains(['\0', '\n']) {
        return Err(refused(field, "value contains a NUL byte or a newline"));
    }
    if !(host.sysctl_exists)(key) {
        return Err(refused(
            field,
            format!("this kernel has no /proc/sys/{}", key.replace('.', "/")),
        ));
    }
    Ok(())
}

fn mapped(id: u32, maps: Option<&Vec<LinuxIdMapping>>) -> bool {
    maps.is_some_and(|m| {
        m.iter().any(|m| {
            id >= m.container_id()
                && u64::from(id) < u64::from(m.container_id()) + u64::from(m.size())
        })
    })
}

/// The process's uid, gid and additional gids must be mapped in the (hardened) spec's user
/// namespace: an unmapped id would fail in the init ("failed syscall") or, for
/// 4294967295 (-1), mean "unchanged" to setresuid and run the process as the container's root.
pub fn identity(spec: &Spec) -> Result<()> {
    let Some(user) = spec.process().as_ref().map(|p| p.user()) else {
        return Ok(());
    };
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().as_ref());
    let gids = linux.and_then(|l| l.gid_mappings().as_ref());
    let ranges = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.map(|m| {
            m.iter()
                .map(|m| {
                    format!(
                        "{}..{}",
                        m.container_id(),
                        u64::from(m.container_id()) + u64::from(m.size())
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    let outside = |field: String, id: u32, maps| {
        Err(refused(
            field,
            format!(
                "{id} is not mapped in the container's user namespace (container ids {})",
                ranges(maps)
            ),
        ))
    };
    if !mapped(user.uid(), uids) {
        return outside("process.user.uid".into(), user.uid(), uids);
    }
    if !mapped(user.gid(), gids) {
        return outside("process.user.gid".into(), user.gid(), gids);
    }
    for (i, g) in user.additional_gids().iter().flatten().enumerate() {
        if !mapped(*g, gids) {
            return outside(format!("process.user.additionalGids[{i}]"), *g, gids);
        }
    }
    Ok(())
}

/// Checks of a process `ward exec` is to start in a container whose (hardened) spec is
/// `container`: its `--pid-file`, NUL bytes and execve's limits, and a mapped uid and gid.
pub fn exec_process(
    container: &Spec,
    process: &Process,
    pid_file_path: Option<&Path>,
) -> Result<()> {
    pid_file("--pid-file", pid_file_path)?;
    strings(process, Host::current().arg_max)?;
    let mut s = container.clone();
    s.set_process(Some(process.clone()));
    identity(&s)
}

mod resources;
mod rootfs;
pub use rootfs::rootfs_view;

#[cfg(test)]
mod tests;

/// Used by the rootfs checks: a path is at or below one of the spec's mount destinations
/// (its content is only known once mounted).
pub(crate) fn under_mount(spec: &Spec, path: &Path) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        let d = m.destination();
        d != Path::new("/") && path.starts_with(d)
    })
}

/// `path` without `.` and with `..` applied lexically (a container path, for comparisons).
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
