//! kubelet's systemd cgroup driver through CRI, on the `ward` handler: the pod's
//! `linux.cgroup_parent` is a slice (`kubepods-burstable-pod<uid>.slice`), as kubelet sends
//! it under `cgroupDriver: systemd`. What containerd hands the runtime is read from the
//! bundle's config.json; where the pod's processes land is read from the host's
//! /proc/<pid>/cgroup. This node runs no systemd, so Ward maps the path to the cgroupfs
//! directories systemd would have made (`kubepods.slice/kubepods-burstable.slice/...`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Containerd, K8S_NS};
use ward_integration::cri::{container_config, pod_config, CriClient};
use ward_integration::image::BUSYBOX;
use ward_integration::leaks;
use ward_runtime::cgroup_guard::cgroup_mounts;

/// `linux.cgroupsPath` of the bundle containerd wrote for task `id`.
fn sent_cgroups_path(c: &Containerd, id: &str) -> String {
    let cfg = c
        .dir
        .join("state/io.containerd.runtime.v2.task")
        .join(K8S_NS)
        .join(id)
        .join("config.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap_or_else(|e| {
        panic!("{}: {e}", cfg.display());
    }))
    .unwrap();
    v["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The memory (or unified, on pure v2) cgroup of every host process whose cgroup ends with
/// `leaf`.
fn memory_cgroups_ending_with(leaf: &str) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        for l in text.lines() {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
            let memory = ctrl.split(',').any(|c| c == "memory") || text.lines().count() == 1;
            if memory && path.ends_with(leaf) {
                out.push(path.to_string());
            }
        }
    }
    out
}

/// A pod on the `ward` handler with one container (`sleep`) started in it: (pod, container).
fn pod_with_sleeper(
    c: &Containerd,
    cri: &mut CriClient,
    config: &k8s_cri::v1::PodSandboxConfig,
) -> (String, String) {
    let pod = cri
        .run_pod(config, "ward")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log_text()));
    let cfg = container_config("main", BUSYBOX, &["sleep", "3600"]);
    let id = cri
        .create_container(&pod, config, &cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", c.log_text()));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", c.log_text()));
    (pod, id)
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn systemd_cgroup_parent_on_ward() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("SKIP: this node runs systemd: Ward asks it for the scope over D-Bus (tests/tests/systemd_dbus.rs covers that path with a test double)");
        return;
    }
    common::each_containerd("systemd_cgroup_parent_on_ward", |c| {
        if let Err(why) = common::ward_shim_status() {
            common::skip_or_fail_ward(&why);
            return;
        }
        let mut cri = CriClient::connect(&c.address).unwrap();
        let uid = format!("{}_{:x}", std::process::id(), rand_tag());
        let pod_slice = format!("kubepods-burstable-pod{uid}.slice");
        let want_dir = format!("/kubepods.slice/kubepods-burstable.slice/{pod_slice}");
        let logs = c.dir.join("logs-systemd");
        std::fs::create_dir_all(&logs).unwrap();
        let mut config = pod_config("sdpod", &logs, &[]);
        config.linux.as_mut().unwrap().cgroup_parent = pod_slice.clone();
        let kubepods_existed: Vec<bool> = cgroup_mounts()
            .iter()
            .map(|m| m.join("kubepods.slice").exists())
            .collect();

        let (pod, id) = pod_with_sleeper(c, &mut cri, &config);

        // What containerd sends (derived from the slice-named parent).
        for task in [&pod, &id] {
            let sent = sent_cgroups_path(c, task);
            eprintln!("containerd sent linux.cgroupsPath = {sent:?}");
            assert_eq!(sent, format!("{pod_slice}:cri-containerd:{task}"));
        }
        // Where the sandbox and the container run, as the host sees them.
        for task in [&pod, &id] {
            let leaf = format!("cri-containerd-{task}.scope");
            let seen = memory_cgroups_ending_with(&leaf);
            assert!(
                !seen.is_empty(),
                "no process in a cgroup ending with {leaf}"
            );
            for p in seen {
                assert_eq!(p, format!("{want_dir}/{leaf}"));
            }
        }

        cri.stop_container(&id, 2).unwrap();
        cri.remove_container(&id).unwrap();
        cri.stop_pod(&pod).unwrap();
        cri.remove_pod(&pod).unwrap();
        let ids = vec![id.clone()];
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = leaks::ward_pod_leftovers(c, K8S_NS, &pod, &ids);
            for (m, existed) in cgroup_mounts().iter().zip(&kubepods_existed) {
                let dir = m.join(want_dir.trim_start_matches('/'));
                if dir.exists() {
                    left.push(format!("cgroup {}", dir.display()));
                }
                let top = m.join("kubepods.slice");
                if !existed && top.exists() {
                    left.push(format!("cgroup {}", top.display()));
                }
            }
            left.is_empty()
        });
        assert!(clean, "left behind:\n{}", left.join("\n"));
    });
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The double of systemd's D-Bus API (tests/src/bin/fake-systemd.rs, built beside the shim).
struct FakeSystemd {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn start() -> Option<Self> {
        let bin = std::env::var_os("WARD_SHIM_DIR")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join("fake-systemd");
        if !bin.exists() {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("fake-systemd-")
            .tempdir()
            .unwrap();
        let child = std::process::Command::new(&bin)
            .arg("--socket")
            .arg(dir.path().join("private"))
            .arg("--record")
            .arg(dir.path().join("calls.jsonl"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let sock = dir.path().join("private");
        assert!(
            wait_for(Duration::from_secs(10), || sock.exists()),
            "fake-systemd did not listen"
        );
        Some(Self { child, dir })
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("private")
    }

    /// (method, unit) of every call recorded.
    fn calls(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or_default().to_string(),
                    v["name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same pod through the shim with the systemd driver's D-Bus path: the `ward` handler's
/// node config forces it (`[cgroups] driver = "systemd"`) and points it at a double of
/// systemd's API (this node runs no systemd). The sandbox and the container each get a
/// transient scope systemd (the double) made, run in it, and their units are stopped when
/// the pod is removed.
#[test]
fn systemd_scopes_over_dbus_through_the_shim() {
    common::each_containerd("systemd_scopes_over_dbus_through_the_shim", |c| {
        if let Err(why) = common::ward_shim_status() {
            common::skip_or_fail_ward(&why);
            return;
        }
        let Some(sd) = FakeSystemd::start() else {
            common::skip_or_fail_ward("fake-systemd not built beside the shim (WARD_SHIM_DIR)");
            return;
        };
        // Read by each pod's shim at its first create.
        let mut cfg = std::fs::read_to_string(&c.ward_config).unwrap();
        cfg.push_str(&format!(
            "\n[cgroups]\ndriver = \"systemd\"\nsystemd_dbus = \"unix:path={}\"\n",
            sd.socket().display()
        ));
        std::fs::write(&c.ward_config, cfg).unwrap();

        let mut cri = CriClient::connect(&c.address).unwrap();
        let uid = format!("{}_{:x}", std::process::id(), rand_tag());
        let pod_slice = format!("kubepods-besteffort-pod{uid}.slice");
        let kubepods_existed: Vec<bool> = cgroup_mounts()
            .iter()
            .map(|m| m.join("kubepods.slice/kubepods-besteffort.slice").exists())
            .collect();
        let want_dir = format!("/kubepods.slice/kubepods-besteffort.slice/{pod_slice}");
        let logs = c.dir.join("logs-sdbus");
        std::fs::create_dir_all(&logs).unwrap();
        let mut config = pod_config("sdbus", &logs, &[]);
        config.linux.as_mut().unwrap().cgroup_parent = pod_slice.clone();
        let (pod, id) = pod_with_sleeper(c, &mut cri, &config);

        let units: Vec<String> = [&pod, &id]
            .iter()
            .map(|t| format!("cri-containerd-{t}.scope"))
            .collect();
        let calls = sd.calls();
        for unit in &units {
            let started = calls
                .iter()
                .filter(|(m, u)| m == "StartTransientUnit" && u == unit)
                .count();
            assert_eq!(started, 1, "StartTransientUnit {unit}: {calls:?}");
            let seen = memory_cgroups_ending_with(unit);
            assert!(!seen.is_empty(), "no process in {unit}");
            for p in seen {
                assert_eq!(p, format!("{want_dir}/{unit}"));
            }
        }

        let log =
            |e: &dyn std::fmt::Display| format!("{e}\ncalls: {:?}\n{}", sd.calls(), c.log_text());
        cri.stop_container(&id, 2)
            .unwrap_or_else(|e| panic!("StopContainer: {}", log(&e)));
        cri.remove_container(&id)
            .unwrap_or_else(|e| panic!("RemoveContainer: {}", log(&e)));
        cri.stop_pod(&pod)
            .unwrap_or_else(|e| panic!("StopPodSandbox: {}", log(&e)));
        cri.remove_pod(&pod)
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {}", log(&e)));
        let ids = vec![id.clone()];
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = leaks::ward_pod_leftovers(c, K8S_NS, &pod, &ids);
            for m in cgroup_mounts() {
                for unit in &units {
                    let dir = m.join(want_dir.trim_start_matches('/')).join(unit);
                    if dir.exists() {
                        left.push(format!("cgroup {}", dir.display()));
                    }
                }
            }
            left.is_empty()
        });
        // The slices are the double's (systemd keeps them too): the test removes what it
        // made the double create.
        for (m, existed) in cgroup_mounts().iter().zip(&kubepods_existed) {
            let _ = std::fs::remove_dir(m.join(want_dir.trim_start_matches('/')));
            if !existed {
                let _ = std::fs::remove_dir(m.join("kubepods.slice/kubepods-besteffort.slice"));
                let _ = std::fs::remove_dir(m.join("kubepods.slice"));
            }
        }
        assert!(clean, "left behind:\n{}", left.join("\n"));
        let calls = sd.calls();
        for unit in &units {
            assert!(
                calls.iter().any(|(m, u)| m == "StopUnit" && u == unit),
                "no StopUnit {unit}: {calls:?}"
            );
        }
    });
}
