//! Messages between the shim (multi-threaded ttrpc server) and its launcher
//! (single-threaded, calls the runtime library). One JSON document per
//! SOCK_SEQPACKET datagram; file descriptors ride along as SCM_RIGHTS in the
//! order given by [`StdioSlots`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Kind;

/// A mount from `CreateTaskRequest.rootfs` (the snapshotter's overlay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsMount {
    pub fs_type: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Which stdio fds are attached to a request, in the order stdin, stdout, stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioSlots {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl StdioSlots {
    pub fn count(&self) -> usize {
        usize::from(self.stdin) + usize::from(self.stdout) + usize::from(self.stderr)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Create {
        id: String,
        bundle: PathBuf,
        rootfs: Vec<RootfsMount>,
        /// Node config (ward.toml) from containerd's runtime options.
        config_path: Option<PathBuf>,
        /// containerd's IO owner (runc's options), if it sent one.
        #[serde(default)]
        io_owner: ward_runtime::stdio_owner::IoOwner,
        console_socket: Option<PathBuf>,
        stdio: StdioSlots,
    },
    Start {
        id: String,
    },
    Exec {
        id: String,
        /// The OCI `Process` as containerd sent it (JSON).
        process: serde_json::Value,
        console_socket: Option<PathBuf>,
        stdio: StdioSlots,
    },
    /// Signal the container's init (or every process in it with `all`).
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    /// Signal one exec'd process. The launcher only signals pids it has not
    /// reaped yet, so a recycled pid is never hit.
    KillPid {
        pid: i32,
        signal: i32,
    },
    /// Delete the container (force) and unmount `<bundle>/rootfs` if it was
    /// mounted. Succeeds when the container is already gone.
    Delete {
        id: String,
        bundle: PathBuf,
    },
    /// Take over a container another launcher created (that launcher died): find the node
    /// config and state root it was created with, recorded in its bundle.
    Adopt {
        id: String,
        bundle: PathBuf,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    Update {
        id: String,
        /// OCI `LinuxResources` (JSON).
        resources: serde_json::Value,
    },
    Pids {
        id: String,
    },
    Stats {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Created { pid: i32, cgroup: CgroupPaths },
    Pid(i32),
    Done,
    Pids(Vec<i32>),
    Stats(Box<CgroupStats>),
}

/// An error raised in the launcher, carried to the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    pub kind: Kind,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LauncherMessage {
    Reply {
        seq: u64,
        result: Result<Reply, RemoteError>,
    },
    /// A process the launcher started (init or exec) was reaped.
    /// `status` is the exit code, or 128 + signal number.
    Exit { pid: i32, status: i32 },
}

/// Where a container's memory cgroup lives (for OOM monitoring).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// cgroup v1 memory controller directory.
    pub memory_v1: Option<PathBuf>,
    /// cgroup v2 (unified) directory.
    pub unified: Option<PathBuf>,
}

/// Cgroup statistics, independent of libcgroups' (serialize-only) types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// True when the container's cgroup is on the unified (v2) hierarchy.
    pub unified: bool,
    pub cpu_total: u64,
    pub cpu_user: u64,
    pub cpu_kernel: u64,
    pub cpu_per_core: Vec<u64>,
    pub cpu_periods: u64,
    pub cpu_throttled_periods: u64,
    pub cpu_throttled_time: u64,
    pub pids_current: u64,
    pub pids_limit: u64,
    pub memory: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    pub kernel_tcp: MemoryEntry,
    pub memory_cache: u64,
    /// Raw `memory.stat` keys.
    pub memory_stat: BTreeMap<String, u64>,
    pub hugetlb: BTreeMap<String, HugetlbEntry>,
    pub blkio: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbEntry {
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Which blkio file: "service_bytes", "serviced", ...
    pub kind: String,
    pub op: String,
    pub major: u64,
    pub minor: u64,
    pub value: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_json() {
        let req = Envelope {
            seq: 7,
            request: Request::Create {
                id: "c1".into(),
                bundle: "/b".into(),
                rootfs: vec![RootfsMount {
                    fs_type: "overlay".into(),
                    source: "overlay".into(),
                    options: vec!["lowerdir=/a:/b".into()],
                }],
                config_path: Some("/etc/ward/ward.toml".into()),
                io_owner: ward_runtime::stdio_owner::IoOwner {
                    uid: Some(2_000_000),
                    gid: None,
                    ..Default::default()
                },
                console_socket: None,
                stdio: StdioSlots {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
            },
        };
        let bytes = serde_json::to_vec(&req).unwrap();
        assert_eq!(serde_json::from_slice::<Envelope>(&bytes).unwrap(), req);
    }

    #[test]
    fn error_reply_round_trips() {
        let msg = LauncherMessage::Reply {
            seq: 1,
            result: Err(RemoteError {
                kind: Kind::NotFound,
                message: "container x not found".into(),
            }),
        };
        let bytes = serde_json::to_vec(&msg).unwrap();
        assert_eq!(
            serde_json::from_slice::<LauncherMessage>(&bytes).unwrap(),
            msg
        );
    }
}
