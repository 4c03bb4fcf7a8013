//! One run's bundle: an overlay of the image with a fresh upper layer at `<dir>/rootfs` (as
//! containerd's snapshotter hands a rootfs over, so runc's writes never reach the shared
//! image), the app's volume, and the config.json every front door gets.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::{json, Value};

use super::App;

/// runc 1.1's `runc spec` (shared with the CLI tests).
const BASE_CONFIG: &str = include_str!("../../../tests/src/base-config.json");

/// The capabilities containerd and Docker give a container by default.
const ENGINE_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A run directory; the overlay is unmounted and everything removed on drop.
pub struct RunBundle {
    dir: tempfile::TempDir,
    mounted: bool,
    pub config: Value,
}

/// uid and gid of `user` in the image's /etc/passwd.
pub fn image_user(image: &Path, user: &str) -> Result<(u32, u32), String> {
    let passwd = image.join("etc/passwd");
    let text =
        std::fs::read_to_string(&passwd).map_err(|e| format!("read {}: {e}", passwd.display()))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| format!("{}: no user {user}", passwd.display()))
}

impl RunBundle {
    /// A bundle of `app` on `image`, joining the network namespace `netns`.
    pub fn new(app: &App, image: &Path, netns: &Path) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("ward-apps-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        // The shim's containers' unprivileged root traverses to the rootfs: search only.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(|e| format!("chmod {}: {e}", dir.path().display()))?;
        let mut me = Self {
            dir,
            mounted: false,
            config: serde_json::from_str(BASE_CONFIG).expect("base config parses"),
        };
        me.mount_rootfs(image)?;
        let (uid, gid) = image_user(image, app.user)?;
        let rootfs = me.rootfs();
        let c = &mut me.config;
        c["process"]["args"] = json!(app.args);
        c["process"]["user"] = json!({"uid": uid, "gid": gid, "additionalGids": [gid]});
        c["process"]["env"] = json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8"
        ]);
        c["process"]["cwd"] = json!("/tmp");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(ENGINE_CAPS);
        }
        c["process"]["capabilities"]
            .as_object_mut()
            .expect("capabilities")
            .remove("ambient");
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]);
        c["root"] = json!({"path": rootfs, "readonly": false});
        c["hostname"] = json!(app.name);
        for ns in c["linux"]["namespaces"].as_array_mut().expect("namespaces") {
            if ns["type"] == "network" {
                ns["path"] = json!(netns);
            }
        }
        if let Some(dest) = app.volume {
            let vol = me.dir.path().join("volume");
            std::fs::create_dir(&vol).map_err(|e| format!("mkdir {}: {e}", vol.display()))?;
            chown(&vol, Some(uid), Some(gid)).map_err(|e| format!("chown volume: {e}"))?;
            std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("chmod volume: {e}"))?;
            let m = json!({"destination": dest, "type": "bind", "source": vol,
                           "options": ["rbind", "rw"]});
            me.config["mounts"].as_array_mut().expect("mounts").push(m);
        }
        me.write()?;
        Ok(me)
    }

    fn mount_rootfs(&mut self, image: &Path) -> Result<(), String> {
        for d in ["rootfs", "upper", "work"] {
            let p = self.dir.path().join(d);
            std::fs::create_dir(&p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            image.display(),
            self.dir.path().join("upper").display(),
            self.dir.path().join("work").display()
        );
        mount(
            Some("overlay"),
            &self.rootfs(),
            Some("overlay"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .map_err(|e| format!("mount overlay on {}: {e}", self.rootfs().display()))?;
        self.mounted = true;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// A log file in the run dir for the container's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("container.log")
    }

    /// Set an annotation (the shim's profile choice).
    pub fn annotate(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.config["annotations"][key] = json!(value);
        self.write()
    }

    fn write(&self) -> Result<(), String> {
        let p = self.config_path();
        std::fs::write(&p, serde_json::to_vec_pretty(&self.config).expect("json"))
            .map_err(|e| format!("write {}: {e}", p.display()))
    }
}

impl Drop for RunBundle {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.rootfs(), MntFlags::MNT_DETACH);
        }
    }
}
