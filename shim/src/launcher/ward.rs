//! The production backend: Ward's runtime library, called in-process (in the
//! launcher). Same policy, profiles and sandbox as the `ward` CLI: one code
//! path. The `ward.dev/profile` annotation is read by the library from the
//! bundle's config.json; the node config comes from containerd's runtime
//! options (`ConfigPath`).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ward_runtime::config::{NodeConfig, DEFAULT_CONFIG_PATH};

use ward_runtime::libcgroups;
use ward_runtime::libcgroups::common::CgroupSetup;
use ward_runtime::oci_spec::runtime::{LinuxResources, Process};
use ward_runtime::stdio_owner::IoOwner;
use ward_runtime::{ContainerId, CreateOptions, ExecOptions, Runtime, RuntimeOptions, Signal};

use super::backend::{Backend, CreateArgs, ExecArgs};
use super::protocol::{self, BlkioEntry, CgroupPaths, CgroupStats, HugetlbEntry};
use crate::error::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub struct WardBackend {
    /// containerd namespace: containers live in `<shim.state_dir>/<namespace>`.
    namespace: String,
    /// One runtime per node config path (`None`: the node default).
    runtimes: HashMap<Option<PathBuf>, Runtime>,
    /// Which node config each container was created with.
    configs: HashMap<String, Option<PathBuf>>,
}

/// What `create` records in containerd's bundle dir, for the `delete` action of a shim that
/// did not create the container (after a crash): which node config and state root it used.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Record {
    config_path: Option<PathBuf>,
    root: PathBuf,
}

const RECORD_FILE: &str = "ward-shim.json";

/// containerd's namespace rule (`[A-Za-z0-9][A-Za-z0-9._-]*`): it becomes a path component.
fn check_namespace(ns: &str) -> Result<()> {
    let ok = ns.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "containerd namespace {ns:?}: not a valid namespace name"
        )))
    }
}

impl WardBackend {
    pub fn new(namespace: &str) -> Result<Self> {
        check_namespace(namespace)?;
        Ok(Self {
            namespace: namespace.to_string(),
            runtimes: HashMap::new(),
            configs: HashMap::new(),
        })
    }

    /// The state root for containers created with `config_path` (the node config's
    /// `shim.state_dir`, default /run/containerd/ward, plus the namespace).
    fn root_for(&self, config_path: Option<&Path>) -> Result<PathBuf> {
        let node = match config_path {
            Some(p) => NodeConfig::load(p, true),
            None => NodeConfig::load(Path::new(DEFAULT_CONFIG_PATH), false),
        }
        .map_err(ward_runtime::Error::from)?;
        Ok(node.shim.state_dir.join(&self.namespace))
    }

    fn runtime_for(&mut self, config_path: Option<PathBuf>) -> Result<&Runtime> {
        if !self.runtimes.contains_key(&config_path) {
            let root = self.root_for(config_path.as_deref())?;
            self.insert_runtime(config_path.clone(), root)?;
        }
        Ok(&self.runtimes[&config_path])
    }

    fn insert_runtime(&mut self, config_path: Option<PathBuf>, root: PathBuf) -> Result<()> {
        let rt = Runtime::new(RuntimeOptions {
            root,
            config_path: config_path.clone(),
            // containerd's CRI lays pods out in the shim's roots: a pod container joins the
            // sandbox Ward recorded as one (never a container merely named by annotation).
            pods: true,
            ..Default::default()
        })?;
        self.runtimes.insert(config_path, rt);
        Ok(())
    }

    /// The runtime a container was created with (the default one for a
    /// container this launcher did not create, e.g. in the `delete` action).
    fn runtime(&mut self, id: &str) -> Result<&Runtime> {
        let config = self.configs.get(id).cloned().flatten();
        self.runtime_for(config)
    }
}

fn cid(id: &str) -> Result<ContainerId> {
    ContainerId::new(id).map_err(|e| Error::Runtime(e.into()))
}

fn signal(sig: i32) -> Result<Signal> {
    nix::sys::signal::Signal::try_from(sig)
        .map(Signal::from)
        .map_err(|_| Error::InvalidArgument(format!("signal {sig}")))
}

fn unified() -> bool {
    matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(CgroupSetup::Unified)
    )
}

/// Where the memory controller of `cgroup` (a path relative to each cgroup mount) lives.
fn cgroup_paths(cgroup: &Path) -> CgroupPaths {
    let rel = cgroup.strip_prefix("/").unwrap_or(cgroup);
    if unified() {
        CgroupPaths {
            memory_v1: None,
            unified: Some(Path::new(CGROUP_ROOT).join(rel)),
        }
    } else {
        CgroupPaths {
            memory_v1: Some(Path::new(CGROUP_ROOT).join("memory").join(rel)),
            unified: None,
        }
    }
}

fn memory_entry(d: &libcgroups::stats::MemoryData) -> protocol::MemoryEntry {
    protocol::MemoryEntry {
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        limit: d.limit,
    }
}

pub fn convert_stats(s: &libcgroups::stats::Stats, unified: bool) -> CgroupStats {
    let mut blkio = Vec::new();
    for (kind, list) in [
        ("service_bytes", &s.blkio.service_bytes),
        ("serviced", &s.blkio.serviced),
        ("time", &s.blkio.time),
        ("sectors", &s.blkio.sectors),
        ("service_time", &s.blkio.service_time),
        ("wait_time", &s.blkio.wait_time),
        ("queued", &s.blkio.queued),
        ("merged", &s.blkio.merged),
    ] {
        blkio.extend(list.iter().map(|d| BlkioEntry {
            kind: kind.to_string(),
            op: d.op_type.clone().unwrap_or_default(),
            major: d.major,
            minor: d.minor,
            value: d.value,
        }));
    }
    CgroupStats {
        unified,
        cpu_total: s.cpu.usage.usage_total,
        cpu_user: s.cpu.usage.usage_user,
        cpu_kernel: s.cpu.usage.usage_kernel,
        cpu_per_core: s.cpu.usage.per_core_usage_total.clone(),
        cpu_periods: s.cpu.throttling.periods,
        cpu_throttled_periods: s.cpu.throttling.throttled_periods,
        cpu_throttled_time: s.cpu.throttling.throttled_time,
        pids_current: s.pids.current,
        pids_limit: s.pids.limit,
        memory: memory_entry(&s.memory.memory),
        swap: memory_entry(&s.memory.memswap),
        kernel: memory_entry(&s.memory.kernel),
        kernel_tcp: memory_entry(&s.memory.kernel_tcp),
        memory_cache: s.memory.cache,
        memory_stat: s
            .memory
            .stats
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(k, h)| {
                (
                    k.clone(),
                    HugetlbEntry {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.fail_count,
                    },
                )
            })
            .collect(),
        blkio,
    }
}

impl Backend for WardBackend {
    fn create(&mut self, args: CreateArgs) -> Result<(i32, CgroupPaths)> {
        let id = cid(&args.id)?;
        let rt = self.runtime_for(args.config_path.clone())?;
        let record = Record {
            config_path: args.config_path.clone(),
            root: rt.root().to_path_buf(),
        };
        let record_path = args.bundle.join(RECORD_FILE);
        std::fs::write(
            &record_path,
            serde_json::to_vec(&record).expect("serializable"),
        )
        .map_err(Error::io("write", &record_path))?;
        let pid = rt.create(
            &id,
            CreateOptions {
                bundle: args.bundle,
                console_socket: args.console_socket,
                stdin: args.stdio.stdin,
                stdout: args.stdio.stdout,
                stderr: args.stdio.stderr,
                io_owner: Some(IoOwner {
                    fifos: true,
                    ..args.io_owner
                }),
                ..Default::default()
            },
        )?;
        let cgroup = match rt.cgroup_path(&id) {
            Ok(p) => cgroup_paths(&p),
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "no cgroup path: no OOM events");
                CgroupPaths::default()
            }
        };
        self.configs.insert(args.id, args.config_path);
        Ok((pid, cgroup))
    }

    fn start(&mut self, id: &str) -> Result<()> {
        let cid = cid(id)?;
        Ok(self.runtime(id)?.start(&cid)?)
    }

    fn exec(&mut self, args: ExecArgs) -> Result<i32> {
        let id = cid(&args.id)?;
        let process: Process = serde_json::from_value(args.process)
            .map_err(|e| Error::InvalidArgument(format!("exec process: {e}")))?;
        let opts = ExecOptions {
            process,
            console_socket: args.console_socket,
            stdin: args.stdio.stdin,
            stdout: args.stdio.stdout,
            stderr: args.stdio.stderr,
            // containerd names no owner for an exec: its own user's ids in the container.
            io_owner: Some(IoOwner {
                fifos: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(self.runtime(&args.id)?.exec(&id, opts, true)?)
    }

    fn kill(&mut self, id: &str, sig: i32, all: bool) -> Result<()> {
        let cid = cid(id)?;
        let sig = signal(sig)?;
        Ok(self.runtime(id)?.kill(&cid, sig, all)?)
    }

    fn delete(&mut self, id: &str, bundle: &Path) -> Result<()> {
        let cid = cid(id)?;
        if !self.configs.contains_key(id) {
            // Not created by this launcher (the `delete` action): use what create recorded.
            match self.adopt(id, bundle) {
                Ok(()) => {}
                Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.runtime(id)?.delete(&cid, true)?;
        self.configs.remove(id);
        Ok(())
    }

    /// Registers the node config the container was created with, from the record `create`
    /// left in its bundle (the state root must match what that config names now).
    fn adopt(&mut self, id: &str, bundle: &Path) -> Result<()> {
        cid(id)?;
        let path = bundle.join(RECORD_FILE);
        let bytes = std::fs::read(&path).map_err(Error::io("read", &path))?;
        let r: Record = serde_json::from_slice(&bytes)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
        if self.runtimes.get(&r.config_path).map(|rt| rt.root()) != Some(&r.root) {
            self.insert_runtime(r.config_path.clone(), r.root)?;
        }
        self.configs.insert(id.to_string(), r.config_path);
        Ok(())
    }

    fn pause(&mut self, id: &str) -> Result<()> {
        let cid = cid(id)?;
        Ok(self.runtime(id)?.pause(&cid)?)
    }

    fn resume(&mut self, id: &str) -> Result<()> {
        let cid = cid(id)?;
        Ok(self.runtime(id)?.resume(&cid)?)
    }

    fn update(&mut self, id: &str, resources: &serde_json::Value) -> Result<()> {
        let cid = cid(id)?;
        let resources: LinuxResources = serde_json::from_value(resources.clone())
            .map_err(|e| Error::InvalidArgument(format!("resources: {e}")))?;
        Ok(self.runtime(id)?.update(&cid, &resources)?)
    }

    fn pids(&mut self, id: &str) -> Result<Vec<i32>> {
        let cid = cid(id)?;
        Ok(self.runtime(id)?.pids(&cid)?)
    }

    fn stats(&mut self, id: &str) -> Result<CgroupStats> {
        let cid = cid(id)?;
        let stats = self.runtime(id)?.stats(&cid)?;
        Ok(convert_stats(&stats, unified()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_convert_field_by_field() {
        let mut s = libcgroups::stats::Stats::default();
        s.cpu.usage.usage_total = 10;
        s.pids.current = 2;
        s.memory.memory.usage = 100;
        s.memory.stats.insert("rss".into(), 5);
        let c = convert_stats(&s, false);
        assert_eq!(c.cpu_total, 10);
        assert_eq!(c.pids_current, 2);
        assert_eq!(c.memory.usage, 100);
        assert_eq!(c.memory_stat["rss"], 5);
        assert!(!c.unified);
    }

    #[test]
    fn namespaces_that_cannot_be_path_components_are_refused() {
        for ok in ["default", "k8s.io", "moby", "a-b_c.d"] {
            assert!(WardBackend::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "../etc", "a b"] {
            assert!(WardBackend::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_root_comes_from_the_node_config() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("ward.toml");
        std::fs::write(&cfg, "[shim]\nstate_dir = \"/run/ward-test-x\"\n").unwrap();
        let b = WardBackend::new("k8s.io").unwrap();
        assert_eq!(
            b.root_for(Some(&cfg)).unwrap(),
            PathBuf::from("/run/ward-test-x/k8s.io")
        );
        // A ConfigPath that does not exist is an error, not a silent default.
        assert!(b.root_for(Some(&d.path().join("missing.toml"))).is_err());
        std::fs::write(&cfg, "[shim]\nstate_dir = \"relative\"\n").unwrap();
        assert!(b.root_for(Some(&cfg)).is_err());
    }

    #[test]
    fn v1_memory_cgroup_path() {
        if unified() {
            return;
        }
        let p = cgroup_paths(Path::new("/ward/c1"));
        assert_eq!(
            p.memory_v1.unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/ward/c1")
        );
    }
}
