//! A busybox OCI bundle in a temp dir.
//!
//! The rootfs holds `/bin/busybox` (the host's static busybox) with every applet symlinked to
//! it (not `busybox` itself), `/etc/passwd`, `/etc/group` and the usual empty directories. The
//! config is runc's default `runc spec` with `terminal: false`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::TempDir;

/// runc 1.1's `runc spec`, with `process.terminal = false`.
const BASE_CONFIG: &str = include_str!("base-config.json");

/// The host's static busybox (Debian `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

pub struct Bundle {
    dir: TempDir,
    config: Value,
}

fn applets() -> Vec<String> {
    let out = std::process::Command::new(HOST_BUSYBOX)
        .arg("--list")
        .output()
        .unwrap_or_else(|e| panic!("{HOST_BUSYBOX} --list: {e} (install busybox-static)"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect()
}

impl Bundle {
    /// A bundle whose process runs `args`.
    pub fn new(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ward-bundle-")
            .tempdir()
            .expect("bundle tempdir");
        let rootfs = dir.path().join("rootfs");
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "mnt", "root", "run", "var",
        ] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir rootfs dir");
        }
        std::fs::copy(HOST_BUSYBOX, rootfs.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copy {HOST_BUSYBOX}: {e}"));
        for a in applets() {
            symlink("busybox", rootfs.join("bin").join(&a)).expect("applet symlink");
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
        let mut config: Value = serde_json::from_str(BASE_CONFIG).expect("base config parses");
        config["process"]["args"] = json!(args);
        let b = Self { dir, config };
        b.write();
        b
    }

    /// A bundle whose process is `sh -c script`.
    pub fn sh(script: &str) -> Self {
        Self::new(&["sh", "-c", script])
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

    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Change the config; it is written to disk again afterwards.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.write();
        self
    }

    /// Bind-mount host `source` at `destination` (created in the rootfs), read-only if `ro`.
    pub fn bind(&mut self, source: &Path, destination: &str, ro: bool) -> &mut Self {
        let inside = self.rootfs().join(destination.trim_start_matches('/'));
        std::fs::create_dir_all(&inside).expect("mkdir mount point");
        let opts = if ro {
            json!(["rbind", "ro"])
        } else {
            json!(["rbind", "rw"])
        };
        let m = json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": opts,
        });
        self.edit(|c| c["mounts"].as_array_mut().expect("mounts").push(m))
    }

    /// Copy a host binary to `inside` (absolute path in the rootfs) with the shared libraries
    /// `ldd` lists for it, each at its host path, so a dynamically linked program runs in the
    /// busybox rootfs.
    pub fn add_host_binary(&mut self, host: &Path, inside: &str) -> &mut Self {
        let dest = self.rootfs().join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(host, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", host.display()));
        for lib in shared_libraries(host) {
            let d = self.rootfs().join(lib.trim_start_matches('/'));
            if d.exists() {
                continue;
            }
            std::fs::create_dir_all(d.parent().expect("parent")).expect("mkdir lib dir");
            std::fs::copy(&lib, &d).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
        }
        self
    }

    /// Copy a host binary to `inside` (absolute path in the rootfs) without its shared
    /// libraries or loader: it exists and is executable, but execve fails (ENOENT).
    pub fn add_host_binary_alone(&mut self, host: &Path, inside: &str) -> &mut Self {
        let dest = self.rootfs().join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(host, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", host.display()));
        self
    }

    /// Overwrite config.json with raw text (for malformed-JSON cases).
    pub fn write_raw(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config.json");
    }

    fn write(&self) {
        std::fs::write(
            self.config_path(),
            serde_json::to_vec_pretty(&self.config).expect("serialize config"),
        )
        .expect("write config.json");
    }
}

/// Absolute paths of the shared libraries (and the loader) `ldd` lists for `bin`.
pub fn shared_libraries(bin: &Path) -> Vec<String> {
    let out = std::process::Command::new("ldd")
        .arg(bin)
        .output()
        .unwrap_or_else(|e| panic!("ldd {}: {e}", bin.display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}
