//! The test bundle: a busybox rootfs with the probe copied in, and a plain
//! runc-spec config.json rewritten per technique.

use anyhow_lite::{Context, Result};
use serde_json::{json, Value};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The output of `runc spec` (runc 1.1), checked in so the suite does not
/// depend on runc being installed to test ward.
const PLAIN_CONFIG: &str = include_str!("plain-config.json");

pub struct Paths {
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// Host canary directory (never mounted into the container).
    pub host: PathBuf,
    /// Host directory bind-mounted at /mnt/vol.
    pub vol: PathBuf,
}

pub const VOL_IN: &str = "/mnt/vol";

const APPLETS: &[&str] = &[
    "sh", "sleep", "true", "cat", "ls", "echo", "id", "ps", "kill", "mkdir", "rm",
];

pub fn build_rootfs(p: &Paths, probe: &Path) -> Result<()> {
    let r = &p.rootfs;
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "mnt/vol", "run", "root", "var/run",
    ] {
        std::fs::create_dir_all(r.join(d)).ctx(&format!("mkdir {d}"))?;
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).ctx("copy /bin/busybox")?;
    for a in APPLETS {
        let _ = symlink("busybox", r.join("bin").join(a));
    }
    std::fs::copy(probe, r.join("bin/ward-probe")).ctx("copy probe")?;
    let suid = r.join("bin/ward-probe-suid");
    std::fs::copy(probe, &suid).ctx("copy suid probe")?;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).ctx("chmod 4755")?;
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .ctx("passwd")?;
    std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").ctx("group")?;
    std::fs::write(r.join("etc/hostname"), "ward-escape\n").ctx("hostname")?;
    // The symlink-race target: /ward-evil points at the host canary dir.
    let _ = symlink(&p.host, r.join("ward-evil"));
    for d in [
        r.as_path(),
        &r.join("tmp"),
        &r.join("mnt"),
        &r.join("mnt/vol"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).ctx("chmod")?;
    }
    Ok(())
}

/// What the container runs and which extras the config gets.
pub struct Spec<'a> {
    pub args: Vec<String>,
    pub cgroup_path: String,
    pub symlink_mount: bool,
    pub limits: Option<(i64, i64)>, // (pids, memory bytes)
    /// Run as this uid/gid instead of 0 (the setuid technique).
    pub user: Option<u32>,
    pub paths: &'a Paths,
}

pub fn write_config(bundle: &Path, s: &Spec) -> Result<()> {
    std::fs::create_dir_all(bundle).ctx("mkdir bundle")?;
    let mut c: Value = serde_json::from_str(PLAIN_CONFIG).ctx("plain config")?;
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(s.args);
    c["root"]["path"] = json!(s.paths.rootfs.to_string_lossy());
    c["hostname"] = json!("ward-escape");
    let mounts = c["mounts"].as_array_mut().ctx("mounts")?;
    mounts.push(json!({"destination": VOL_IN, "type": "bind",
        "source": s.paths.vol.to_string_lossy(), "options": ["rbind", "rw"]}));
    mounts.push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777"]}),
    );
    if s.symlink_mount {
        mounts.push(
            json!({"destination": "/ward-evil/mnt", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=1m"]}),
        );
    }
    c["linux"]["cgroupsPath"] = json!(s.cgroup_path);
    if let Some(u) = s.user {
        c["process"]["user"] = json!({"uid": u, "gid": u});
    }
    if let Some((pids, mem)) = s.limits {
        c["linux"]["resources"]["pids"] = json!({"limit": pids});
        c["linux"]["resources"]["memory"] = json!({"limit": mem, "swap": mem});
    }
    let text = serde_json::to_string_pretty(&c).ctx("serialize")?;
    std::fs::write(bundle.join("config.json"), text).ctx("write config.json")?;
    Ok(())
}

/// A tiny stand-in for anyhow: errors are strings naming the operation.
pub mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, String>;
    pub trait Context<T> {
        fn ctx(self, what: &str) -> Result<T>;
    }
    impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
        fn ctx(self, what: &str) -> Result<T> {
            self.map_err(|e| format!("{what}: {e}"))
        }
    }
    impl<T> Context<T> for Option<T> {
        fn ctx(self, what: &str) -> Result<T> {
            self.ok_or_else(|| format!("{what}: missing"))
        }
    }
}
