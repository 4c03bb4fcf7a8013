//! The Landlock plan: which paths the container may read, execute and write.

use crate::profile::{ExecScope, Profile};

/// Directories execution is confined to under [`ExecScope::BinDirs`].
pub const BIN_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/lib",
    "/lib64",
];

/// Device nodes that must stay read-write (`>/dev/null` must work).
pub const RW_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// A mount of the spec (tmpfs or volume), by container path after pivot_root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountAccess {
    /// Container path.
    pub path: String,
    /// Mounted read-write.
    pub writable: bool,
}

/// Access granted beneath a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FsAccess {
    /// Read files and list directories.
    Read,
    /// Read and execute.
    ReadExec,
    /// Read, write, create, remove (no execute).
    ReadWrite,
    /// Everything.
    ReadWriteExec,
}

/// One Landlock path rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandlockRule {
    /// Container path.
    pub path: String,
    /// Access beneath it.
    pub access: FsAccess,
}

/// Everything the runtime needs to build the Landlock ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandlockPlan {
    /// Path rules, sorted by path, one per path.
    pub rules: Vec<LandlockRule>,
    /// TCP ports allowed for bind; `None` = unrestricted.
    pub tcp_bind: Option<Vec<u16>>,
    /// TCP ports allowed for connect; `None` = unrestricted.
    pub tcp_connect: Option<Vec<u16>>,
}

fn join(a: FsAccess, b: FsAccess) -> FsAccess {
    use FsAccess::*;
    let exec = matches!(a, ReadExec | ReadWriteExec) || matches!(b, ReadExec | ReadWriteExec);
    let write = matches!(a, ReadWrite | ReadWriteExec) || matches!(b, ReadWrite | ReadWriteExec);
    match (write, exec) {
        (true, true) => ReadWriteExec,
        (true, false) => ReadWrite,
        (false, true) => ReadExec,
        (false, false) => Read,
    }
}

fn norm(p: &str) -> String {
    let n: String = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .fold(String::new(), |acc, c| acc + "/" + c);
    if n.is_empty() {
        "/".into()
    } else {
        n
    }
}

/// Landlock rules from the profile and the container's own mounts.
///
/// `/` is read+exec (read only under `exec = "bin-dirs"`, with read+exec on [`BIN_DIRS`]),
/// writable mounts read-write, read-only mounts read(+exec under `rootfs`), the profile's
/// tmpfs read-write (+exec only when the tmpfs is not `noexec` and exec scope is `rootfs`),
/// [`RW_DEVICES`] and `/dev/shm` (if mounted) read-write, plus the profile's extras.
/// Rules on the same path are merged (union of access).
pub fn landlock_plan(profile: &Profile, mounts: &[MountAccess]) -> LandlockPlan {
    landlock_plan_rootfs(profile, mounts, false)
}

/// [`landlock_plan`] for a container whose spec asked for a writable rootfs
/// (`root.readonly: false`): `/` is also writable, but only when the profile allows it
/// (`[rootfs] writable = true`); otherwise the rootfs stays read-only and so does `/` here.
pub fn landlock_plan_rootfs(
    profile: &Profile,
    mounts: &[MountAccess],
    spec_writable_rootfs: bool,
) -> LandlockPlan {
    let ll = profile.landlock();
    let strict = ll.exec == ExecScope::BinDirs;
    let mut rules: Vec<LandlockRule> = Vec::new();
    let mut add = |path: &str, access: FsAccess| {
        let path = norm(path);
        match rules.iter_mut().find(|r| r.path == path) {
            Some(r) => r.access = join(r.access, access),
            None => rules.push(LandlockRule { path, access }),
        }
    };
    if strict {
        add("/", FsAccess::Read);
        for d in BIN_DIRS {
            add(d, FsAccess::ReadExec);
        }
    } else {
        add("/", FsAccess::ReadExec);
    }
    if spec_writable_rootfs && profile.rootfs().writable {
        add("/", FsAccess::ReadWrite);
    }
    for d in RW_DEVICES {
        add(d, FsAccess::ReadWrite);
    }
    for m in mounts {
        let path = norm(&m.path);
        let tmpfs = profile.tmpfs().iter().find(|t| t.path == path);
        let access = match (m.writable, tmpfs) {
            (_, Some(t)) if !t.noexec && !strict => FsAccess::ReadWriteExec,
            (_, Some(_)) => FsAccess::ReadWrite,
            (true, None) => FsAccess::ReadWrite,
            (false, None) if strict => FsAccess::Read,
            (false, None) => FsAccess::ReadExec,
        };
        add(&path, access);
    }
    for t in profile.tmpfs() {
        let access = if !t.noexec && !strict {
            FsAccess::ReadWriteExec
        } else {
            FsAccess::ReadWrite
        };
        add(&t.path, access);
    }
    for p in &ll.read {
        add(p, FsAccess::Read);
    }
    for p in &ll.read_exec {
        add(p, FsAccess::ReadExec);
    }
    for p in &ll.write {
        add(p, FsAccess::ReadWrite);
    }
    rules.sort_by(|a, b| a.path.cmp(&b.path));
    LandlockPlan {
        rules,
        tcp_bind: ll.tcp_bind.clone(),
        tcp_connect: ll.tcp_connect.clone(),
    }
}
