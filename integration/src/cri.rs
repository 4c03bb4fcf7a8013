//! A CRI v1 client acting as kubelet, over containerd's unix socket.
//!
//! Blocking wrapper over tonic: each call runs on a private current-thread
//! tokio runtime, so tests stay plain `#[test]` functions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// A CRI call that failed, with the method name.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("CRI {method}: {status}")]
    Call {
        method: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("CRI {method}: no answer within {}s", CALL_TIMEOUT.as_secs())]
    Timeout { method: &'static str },
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
}

/// Longest a CRI call may take: a runtime that never answers fails the test instead of
/// hanging it (`ExecSync` calls ask for at most 20 s, `StopContainer` for a few).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Result of `ExecSync`.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Kubelet-side CRI client.
pub struct CriClient {
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
}

macro_rules! call {
    ($self:ident, $method:ident, $req:expr) => {{
        let req = $req;
        let rs = &mut $self.rs;
        $self
            .rt
            .block_on(async {
                tokio::time::timeout(CALL_TIMEOUT, rs.$method(tonic::Request::new(req))).await
            })
            .map_err(|_| CriError::Timeout {
                method: stringify!($method),
            })?
            .map(tonic::Response::into_inner)
            .map_err(|status| CriError::Call {
                method: stringify!($method),
                status: Box::new(status),
            })
    }};
}

impl CriClient {
    /// Connect to the CRI service at containerd's gRPC socket `path`.
    pub fn connect(path: &Path) -> Result<Self, CriError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CriError::Runtime)?;
        let p = path.to_path_buf();
        let channel = rt
            .block_on(async move {
                Endpoint::from_static("http://[::]:50051")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let p = p.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(p).await?,
                            ))
                        }
                    }))
                    .await
            })
            .map_err(|source| CriError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            rt,
            rs: RuntimeServiceClient::new(channel),
        })
    }

    /// `Version`: the runtime name reported by the CRI plugin.
    pub fn version(&mut self) -> Result<String, CriError> {
        let r = call!(
            self,
            version,
            cri::VersionRequest {
                version: "v1".into()
            }
        )?;
        Ok(format!("{} {}", r.runtime_name, r.runtime_version))
    }

    /// `RunPodSandbox` with `runtime_handler` (the RuntimeClass handler).
    pub fn run_pod(
        &mut self,
        config: &cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let r = call!(
            self,
            run_pod_sandbox,
            cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: runtime_handler.into(),
            }
        )?;
        Ok(r.pod_sandbox_id)
    }

    /// `PodSandboxStatus`.
    pub fn pod_status(&mut self, pod: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let r = call!(
            self,
            pod_sandbox_status,
            cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.into(),
                verbose: false,
            }
        )?;
        Ok(r.status.unwrap_or_default())
    }

    /// `CreateContainer` in `pod`.
    pub fn create_container(
        &mut self,
        pod: &str,
        pod_config: &cri::PodSandboxConfig,
        config: &cri::ContainerConfig,
    ) -> Result<String, CriError> {
        let r = call!(
            self,
            create_container,
            cri::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config.clone()),
                sandbox_config: Some(pod_config.clone()),
            }
        )?;
        Ok(r.container_id)
    }

    /// `StartContainer`.
    pub fn start_container(&mut self, id: &str) -> Result<(), CriError> {
        call!(
            self,
            start_container,
            cri::StartContainerRequest {
                container_id: id.into()
            }
        )
        .map(drop)
    }

    /// `ExecSync` with a timeout in seconds.
    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<ExecResult, CriError> {
        let r = call!(
            self,
            exec_sync,
            cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_s,
            }
        )?;
        Ok(ExecResult {
            exit_code: r.exit_code,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        })
    }

    /// `ContainerStats`.
    pub fn container_stats(&mut self, id: &str) -> Result<cri::ContainerStats, CriError> {
        let r = call!(
            self,
            container_stats,
            cri::ContainerStatsRequest {
                container_id: id.into()
            }
        )?;
        Ok(r.stats.unwrap_or_default())
    }

    /// `UpdateContainerResources`: set the memory limit (bytes).
    pub fn update_memory(&mut self, id: &str, bytes: i64) -> Result<(), CriError> {
        call!(
            self,
            update_container_resources,
            cri::UpdateContainerResourcesRequest {
                container_id: id.into(),
                linux: Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: bytes,
                    ..Default::default()
                }),
                ..Default::default()
            }
        )
        .map(drop)
    }

    /// `ContainerStatus`: state and exit code.
    pub fn container_status(&mut self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let r = call!(
            self,
            container_status,
            cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }
        )?;
        Ok(r.status.unwrap_or_default())
    }

    /// `StopContainer` with a grace period in seconds.
    pub fn stop_container(&mut self, id: &str, timeout_s: i64) -> Result<(), CriError> {
        call!(
            self,
            stop_container,
            cri::StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_s,
            }
        )
        .map(drop)
    }

    /// `RemoveContainer`.
    pub fn remove_container(&mut self, id: &str) -> Result<(), CriError> {
        call!(
            self,
            remove_container,
            cri::RemoveContainerRequest {
                container_id: id.into()
            }
        )
        .map(drop)
    }

    /// `ListPodSandbox`: ids of every pod sandbox.
    pub fn list_pods(&mut self) -> Result<Vec<String>, CriError> {
        let r = call!(
            self,
            list_pod_sandbox,
            cri::ListPodSandboxRequest { filter: None }
        )?;
        Ok(r.items.into_iter().map(|p| p.id).collect())
    }

    /// `StopPodSandbox`.
    pub fn stop_pod(&mut self, pod: &str) -> Result<(), CriError> {
        call!(
            self,
            stop_pod_sandbox,
            cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.into()
            }
        )
        .map(drop)
    }

    /// `RemovePodSandbox`.
    pub fn remove_pod(&mut self, pod: &str) -> Result<(), CriError> {
        call!(
            self,
            remove_pod_sandbox,
            cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod.into()
            }
        )
        .map(drop)
    }
}

/// A pod config as kubelet would send it for a simple pod.
pub fn pod_config(
    name: &str,
    log_dir: &Path,
    annotations: &[(&str, &str)],
) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "ward-test".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        annotations: to_map(annotations),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

/// A container config running `command` from the busybox test image.
pub fn container_config(name: &str, image: &str, command: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

fn to_map(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What kubelet sends for a `hostUsers: false` pod: a user namespace per pod (mode POD) with
/// the uid and gid mapping it chose, `0 → host_start` for `size` ids, in the pod's and in each
/// container's namespace options (network and IPC of the pod, a pid namespace per container).
pub fn userns_options(host_start: u32, size: u32) -> cri::NamespaceOption {
    let map = vec![cri::IdMapping {
        host_id: host_start,
        container_id: 0,
        length: size,
    }];
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        target_id: String::new(),
        userns_options: Some(cri::UserNamespace {
            mode: cri::NamespaceMode::Pod as i32,
            uids: map.clone(),
            gids: map,
        }),
    }
}

/// `pod` (from [`pod_config`]) as a `hostUsers: false` pod on kubelet's range.
pub fn with_pod_userns(pod: &mut cri::PodSandboxConfig, host_start: u32, size: u32) {
    let linux = pod.linux.get_or_insert_with(Default::default);
    let sc = linux.security_context.get_or_insert_with(Default::default);
    sc.namespace_options = Some(userns_options(host_start, size));
}

/// `container` (from [`container_config`]) in a `hostUsers: false` pod on kubelet's range.
pub fn with_container_userns(container: &mut cri::ContainerConfig, host_start: u32, size: u32) {
    let linux = container.linux.get_or_insert_with(Default::default);
    let sc = linux.security_context.get_or_insert_with(Default::default);
    sc.namespace_options = Some(userns_options(host_start, size));
}
