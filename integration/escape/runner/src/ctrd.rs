//! Containerd mode: the probe runs through a private containerd (the
//! integration harness: own root, state, socket, CNI bridge) with Ward's shim
//! (`io.containerd.ward.v2`), from an OCI image built from the suite's rootfs
//! and unpacked by containerd's overlay snapshotter, as a node would run it.
//! One private containerd per release: containerd 2 (`make peers`, the `ward-shim`
//! columns) and Debian 12's 1.6 (`ward-shim-1.6`).
//! The same host-side checks apply, and the technique's extra mounts (the
//! symlinked mount targets, the host socket) go through `ctr run --mount`;
//! the symlinked-rootfs variants and the mount race are CLI-only.

use crate::bundle::{self, Spec};
use crate::rt::{run_cmd, Output};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ward_integration::containerd::{mounts_under, Containerd, WARD_RUNTIME};
use ward_integration::image::{self, ImageSpec};
use ward_integration::release::{self, ContainerdRelease};

const IMAGE: &str = "localhost/ward-escape-probe:latest";
/// The same rootfs, run as uid 65534 (ctr 1.6 has no --user).
const IMAGE_NOBODY: &str = "localhost/ward-escape-probe-nobody:latest";
const NS: &str = "default";

/// The shim's state dir (node config `shim.state_dir`; the suite's configs keep the default).
const SHIM_STATE_DIR: &str = "/run/containerd/ward";

pub struct Ctrd {
    harness: Containerd,
    /// Node config per profile (`default_profile` = that profile).
    configs: BTreeMap<String, PathBuf>,
}

impl std::fmt::Debug for Ctrd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ctrd({})", self.harness.dir.display())
    }
}

/// The shim columns' kind for `release`: `ward-shim` for containerd 2 (the primary target),
/// `ward-shim-1.6` for Debian 12's containerd.
pub fn kind(release: &ContainerdRelease) -> String {
    if release.major >= 2 {
        SHIM_KIND.into()
    } else {
        let minor = release
            .version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        format!("{SHIM_KIND}-{minor}")
    }
}

/// The primary shim column's kind (containerd 2).
pub const SHIM_KIND: &str = "ward-shim";

/// The containerd releases the shim columns run on, containerd 2 first (see
/// `ward_integration::release`: a missing containerd 2 fails unless
/// `WARD_E2E_SKIP_CONTAINERD2=1`; `WARD_E2E_CONTAINERD=2` or `1.6` narrows to one).
pub fn releases() -> Vec<ContainerdRelease> {
    release::releases_under_test("escape suite")
}

/// Why a technique is not tried in containerd mode, if it is not.
pub fn unsupported(tech: &str) -> Option<&'static str> {
    match tech {
        "symlink-proc-target" | "symlink-dev-target" => Some(
            "needs a rootfs whose /proc or /dev is a symlink (a crafted bundle): tried through the CLI columns",
        ),
        "symlink-mount-race" => Some(
            "creates dozens of victim containers against a racing neighbour: tried through the CLI columns",
        ),
        _ => None,
    }
}

impl Ctrd {
    /// Start `release`'s private containerd, import the probe images, write one Ward
    /// node config per profile.
    pub fn start(
        release: ContainerdRelease,
        rootfs: &Path,
        profiles: &[String],
    ) -> Result<Ctrd, String> {
        if let Some(why) = ward_integration::containerd::skip_reason() {
            return Err(format!("containerd mode: {why}"));
        }
        ward_integration::containerd::ward_shim_status()
            .map_err(|e| format!("containerd mode: Ward shim unavailable: {e}"))?;
        let label = release.label();
        let harness =
            Containerd::start_temp_release(release).map_err(|e| format!("start {label}: {e}"))?;
        let layer = image::layer_from_dir(rootfs).map_err(|e| format!("probe layer: {e}"))?;
        for (name, user) in [
            (IMAGE, None),
            (IMAGE_NOBODY, Some("65534:65534".to_string())),
        ] {
            let spec = ImageSpec {
                name: name.into(),
                entrypoint: vec![],
                cmd: vec!["/bin/ward-probe".into(), "list".into()],
                user,
            };
            let tar = image::oci_archive(&spec, &layer).map_err(|e| format!("image: {e}"))?;
            let file = harness
                .dir
                .join(format!("{}.tar", name.replace(['/', ':'], "-")));
            std::fs::write(&file, tar).map_err(|e| format!("write {}: {e}", file.display()))?;
            harness
                .ctr_ok(NS, &["images", "import", &file.to_string_lossy()])
                .map_err(|e| format!("import {name}: {e}"))?;
        }
        let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../profiles/builtin");
        let mut configs = BTreeMap::new();
        for p in profiles {
            let f = harness.dir.join(format!("ward-{p}.toml"));
            let text = format!(
                "default_profile = \"{p}\"\nallowed_profiles = [\"{p}\"]\nprofile_dirs = [\"{}\"]\n",
                builtin.display()
            );
            std::fs::write(&f, text).map_err(|e| format!("write {}: {e}", f.display()))?;
            configs.insert(p.clone(), f);
        }
        Ok(Ctrd { harness, configs })
    }

    pub fn dir(&self) -> &Path {
        &self.harness.dir
    }

    /// The containerd release this instance runs.
    pub fn release(&self) -> &ContainerdRelease {
        &self.harness.release
    }

    fn mount_flag(m: &Value) -> Option<String> {
        let opts: Vec<&str> = m["options"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Some(format!(
            "type={},src={},dst={},options={}",
            m["type"].as_str()?,
            m["source"].as_str()?,
            m["destination"].as_str()?,
            opts.join(":")
        ))
    }

    fn run_cmd(
        &self,
        profile: &str,
        spec: &Spec,
        id: &str,
        detach: bool,
        extra: &[String],
    ) -> std::process::Command {
        let mut c = self.harness.ctr_cmd(Some(NS));
        c.arg("run").arg(if detach { "-d" } else { "--rm" });
        c.args(extra);
        c.args(["--runtime", WARD_RUNTIME]);
        if let Some(cfg) = self.configs.get(profile) {
            c.arg("--runtime-config-path").arg(cfg);
        }
        c.arg("--cgroup").arg(&spec.cgroup_path);
        for m in bundle::suite_mounts(spec) {
            if let Some(f) = Self::mount_flag(&m) {
                c.arg("--mount").arg(f);
            }
        }
        c.arg(if spec.user.is_some() {
            IMAGE_NOBODY
        } else {
            IMAGE
        });
        c.arg(id);
        c
    }

    /// `ctr run --rm` of the spec's args, foreground.
    pub fn run(&self, profile: &str, spec: &Spec, id: &str, timeout: Duration) -> Output {
        let mut c = self.run_cmd(profile, spec, id, false, &[]);
        c.args(&spec.args);
        run_cmd(c, timeout)
    }

    /// `ctr run` (`-d` if `detach`, else `--rm` in the foreground) of the spec's args, with
    /// `extra` flags (`--annotation`, `--with-ns`, ...) before the image.
    pub fn run_with(
        &self,
        profile: &str,
        spec: &Spec,
        id: &str,
        detach: bool,
        extra: &[String],
        timeout: Duration,
    ) -> Output {
        let mut c = self.run_cmd(profile, spec, id, detach, extra);
        c.args(&spec.args);
        run_cmd(c, timeout)
    }

    /// The pid of `id`'s task, from `ctr tasks ls`.
    pub fn task_pid(&self, id: &str) -> Option<i32> {
        let out = self.harness.ctr_ok(NS, &["tasks", "ls"]).ok()?;
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f.get(1)?.parse().ok())?
            })
            .next()
    }

    /// Where Ward's shim keeps this namespace's containers (its state root).
    pub fn ward_root(&self) -> PathBuf {
        Path::new(SHIM_STATE_DIR).join(NS)
    }

    /// Start `sleep` detached, then `ctr tasks exec` the probe into it.
    pub fn exec(
        &self,
        profile: &str,
        spec: &Spec,
        id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Output {
        let mut c = self.run_cmd(profile, spec, id, true, &[]);
        c.args(["/bin/sleep", "3600"]);
        let started = run_cmd(c, Duration::from_secs(60));
        if started.status != Some(0) {
            return started;
        }
        let mut c = self.harness.ctr_cmd(Some(NS));
        c.args(["tasks", "exec", "--exec-id", "probe", id])
            .args(args);
        run_cmd(c, timeout)
    }

    /// Kill and delete the task and the container; an already removed one
    /// (`run --rm`) is fine.
    pub fn remove(&self, id: &str) -> Output {
        let ctr = |args: &[&str]| {
            run_cmd(
                {
                    let mut c = self.harness.ctr_cmd(Some(NS));
                    c.args(args);
                    c
                },
                Duration::from_secs(30),
            )
        };
        if self.tasks().iter().any(|t| t == id) {
            let _ = ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            for _ in 0..50 {
                if ctr(&["tasks", "delete", "-f", id]).status == Some(0) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if self.containers().iter().any(|c| c == id) {
            return ctr(&["containers", "delete", id]);
        }
        Output {
            status: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            timed_out: false,
        }
    }

    fn ls(&self, what: &str) -> Vec<String> {
        self.harness
            .ctr_ok(NS, &[what, "ls", "-q"])
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn tasks(&self) -> Vec<String> {
        self.ls("tasks")
    }

    fn containers(&self) -> Vec<String> {
        self.ls("containers")
    }

    /// Containers and tasks containerd still knows.
    pub fn list(&self) -> Vec<String> {
        let mut v = self.containers();
        v.extend(self.tasks());
        v.sort();
        v.dedup();
        v
    }

    /// Mounts under containerd's directory that name `id` (its rootfs).
    pub fn leaked_mounts(&self, id: &str) -> Vec<String> {
        mounts_under(&self.harness.dir)
            .into_iter()
            .filter(|m| m.to_string_lossy().contains(id))
            .map(|m| format!("mount left: {}", m.display()))
            .collect()
    }
}
