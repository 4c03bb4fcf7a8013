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
    /// Rootfs variants whose /proc or /dev is a symlink to the host canary dir.
    pub rootfs_proclink: PathBuf,
    pub rootfs_devlink: PathBuf,
    /// Host canary directory (never mounted into the container).
    pub host: PathBuf,
    /// Host directory bind-mounted read-write at /mnt/vol (`vols/rw`).
    pub vol: PathBuf,
    /// Host directory bind-mounted read-only at /mnt/ro (`vols/ro`), holding
    /// the host-uid-0 canary.
    pub ro_vol: PathBuf,
    /// `vols/outside.txt`: a host file next to both volumes, in neither.
    pub outside: PathBuf,
    /// `vols/src`: source of the bind mounts the symlink-race techniques ask
    /// for; holds the marker file the probe looks for.
    pub mount_src: PathBuf,
}

impl Paths {
    pub fn new(work: &Path) -> Paths {
        let vols = work.join("vols");
        Paths {
            work: work.to_path_buf(),
            rootfs: work.join("rootfs"),
            rootfs_proclink: work.join("rootfs-proclink"),
            rootfs_devlink: work.join("rootfs-devlink"),
            host: work.join("host"),
            vol: vols.join("rw"),
            ro_vol: vols.join("ro"),
            outside: vols.join("outside.txt"),
            mount_src: vols.join("src"),
        }
    }
}

pub const VOL_IN: &str = "/mnt/vol";
pub const RO_IN: &str = "/mnt/ro";
/// Must match the probe's `links::TMPFS_MARKER`; the probe finds bind mounts
/// of `mount_src` by its path (`.../vols/src`), the marker file is for people.
pub const TMPFS_SIZE_MARKER: &str = "size=1232k";
pub const BIND_MARKER: &str = "ward-mount-source";

const APPLETS: &[&str] = &[
    "sh", "sleep", "true", "cat", "ls", "echo", "id", "ps", "kill", "mkdir", "rm",
];

/// The main rootfs and its two symlinked variants, plus the mount source.
pub fn build_rootfs(p: &Paths, probe: &Path) -> Result<()> {
    build_one(p, &p.rootfs, probe, None)?;
    build_one(p, &p.rootfs_proclink, probe, Some("proc"))?;
    build_one(p, &p.rootfs_devlink, probe, Some("dev"))?;
    std::fs::create_dir_all(&p.mount_src).ctx("mkdir mount source")?;
    std::fs::write(p.mount_src.join(BIND_MARKER), "marker\n").ctx("mount source marker")?;
    Ok(())
}

/// A busybox rootfs with the probe; `link` names a top-level directory that
/// is instead a symlink to the host canary dir (CVE-2019-19921 class).
fn build_one(p: &Paths, r: &Path, probe: &Path, link: Option<&str>) -> Result<()> {
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "mnt/vol", "mnt/ro", "run", "root", "var/run",
    ] {
        if Some(d) == link {
            continue;
        }
        std::fs::create_dir_all(r.join(d)).ctx(&format!("mkdir {d}"))?;
    }
    if let Some(l) = link {
        symlink(&p.host, r.join(l)).ctx(&format!("symlink /{l}"))?;
    }
    std::fs::copy("/bin/busybox", r.join("bin/busybox")).ctx("copy /bin/busybox")?;
    for a in APPLETS {
        let _ = symlink("busybox", r.join("bin").join(a));
    }
    std::fs::copy(probe, r.join("bin/ward-probe")).ctx("copy probe")?;
    let suid = r.join("bin/ward-probe-suid");
    std::fs::copy(probe, &suid).ctx("copy suid probe")?;
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).ctx("chmod 4755")?;
    let fcap = r.join("bin/ward-probe-fcap");
    std::fs::copy(probe, &fcap).ctx("copy fcap probe")?;
    set_file_cap(&fcap)?;
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .ctx("passwd")?;
    std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").ctx("group")?;
    std::fs::write(r.join("etc/hostname"), "ward-escape\n").ctx("hostname")?;
    // The symlink-race targets: /ward-evil points at the host canary dir,
    // /ward-evil-dst at a directory inside it.
    let _ = symlink(&p.host, r.join("ward-evil"));
    let _ = symlink(p.host.join("target"), r.join("ward-evil-dst"));
    for d in [r, &r.join("tmp"), &r.join("mnt"), &r.join("mnt/vol")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).ctx("chmod")?;
    }
    Ok(())
}

/// security.capability v2: cap_dac_override in permitted, effective flag set.
fn set_file_cap(path: &Path) -> Result<()> {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    const CAP_DAC_OVERRIDE: u32 = 1;
    let words = [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        1 << CAP_DAC_OVERRIDE,
        0,
        0,
        0,
    ];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ctx("path")?;
    // SAFETY: NUL-terminated path and name; `bytes` is readable for its length.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
        )
    };
    if r != 0 {
        return Err(format!(
            "setxattr security.capability on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// What the container runs and which extras the config gets.
pub struct Spec<'a> {
    pub args: Vec<String>,
    pub cgroup_path: String,
    pub limits: Option<(i64, i64)>, // (pids, memory bytes)
    /// Run as this uid/gid instead of 0 (the setuid technique).
    pub user: Option<u32>,
    /// Another rootfs than `paths.rootfs` (the symlinked variants).
    pub rootfs: Option<PathBuf>,
    /// Mounts after the plain ones (volumes, /tmp).
    pub extra_mounts: Vec<Value>,
    pub paths: &'a Paths,
}

impl<'a> Spec<'a> {
    pub fn new(paths: &'a Paths, cgroup_path: String, args: Vec<String>) -> Self {
        Spec {
            args,
            cgroup_path,
            limits: None,
            user: None,
            rootfs: None,
            extra_mounts: Vec::new(),
            paths,
        }
    }
}

pub fn tmpfs_mount(dest: &str) -> Value {
    json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", TMPFS_SIZE_MARKER]})
}

pub fn bind_mount(src: &Path, dest: &str, ro: bool) -> Value {
    json!({"destination": dest, "type": "bind", "source": src.to_string_lossy(),
        "options": ["rbind", if ro { "ro" } else { "rw" }]})
}

/// The mounts every technique gets after the runtime's defaults (the two
/// volumes and /tmp), then the technique's own.
pub fn suite_mounts(s: &Spec) -> Vec<Value> {
    let mut v = vec![
        bind_mount(&s.paths.vol, VOL_IN, false),
        bind_mount(&s.paths.ro_vol, RO_IN, true),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"]}),
    ];
    v.extend(s.extra_mounts.iter().cloned());
    v
}

pub fn write_config(bundle: &Path, s: &Spec) -> Result<()> {
    std::fs::create_dir_all(bundle).ctx("mkdir bundle")?;
    let mut c: Value = serde_json::from_str(PLAIN_CONFIG).ctx("plain config")?;
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(s.args);
    let root = s.rootfs.as_ref().unwrap_or(&s.paths.rootfs);
    c["root"]["path"] = json!(root.to_string_lossy());
    c["hostname"] = json!("ward-escape");
    let mounts = c["mounts"].as_array_mut().ctx("mounts")?;
    mounts.extend(suite_mounts(s));
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
