//! containerd runtime options (`CreateTaskRequest.options`).
//!
//! With `ConfigPath` set in containerd's runtime config (or
//! `ctr --runtime-config-path`), containerd sends `runtimeoptions.v1.Options`
//! { 1: type_url, 2: config_path }: the gVisor runsc.toml pattern. Ward reads
//! `config_path` as the node config (ward.toml).
//!
//! A handler without an options table sends nothing, except that containerd 2's CRI sets the
//! IO owner of a user-namespaced pod's containers (`WithUIDOwner`/`WithGIDOwner`) in runc's
//! `containerd.runc.v1.Options` { 4: io_uid, 5: io_gid }, whatever the runtime type; it
//! fails at StartContainer for a handler whose options are of another type (containerd:
//! "can't unmarshal type runtimeoptions.v1.Options"). So Ward reads that type too: the IO
//! owner is honoured (within the container's mapping, see the runtime's stdio_owner.rs), the
//! runc-only fields are reported as ignored, and the node config is then the shim's
//! `WARD_CONFIG` environment (containerd's own, set by the node admin) or /etc/ward/ward.toml.

use std::path::PathBuf;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::CodedInputStream;

use ward_runtime::stdio_owner::IoOwner;

use crate::error::{Error, Result};

pub const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";
pub const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The node config of a create whose options name none (the `ward` CLI's variable too).
pub const CONFIG_ENV: &str = "WARD_CONFIG";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub config_path: Option<PathBuf>,
    /// The handler named its config (`runtimeoptions.v1.Options` with `ConfigPath`).
    pub handler_config: bool,
    /// containerd's IO owner (runc's options); `None` for the other types.
    pub io_owner: IoOwner,
}

/// runc's option fields Ward has no use for (it has no runc binary, root or criu, always
/// pivots, and reads the cgroup driver from `cgroupsPath`): field number and name.
const RUNC_IGNORED: &[(u32, &str)] = &[
    (1, "NoPivotRoot"),
    (2, "NoNewKeyring"),
    (3, "ShimCgroup"),
    (6, "BinaryName"),
    (7, "Root"),
    (9, "SystemdCgroup"),
    (10, "CriuImagePath"),
    (11, "CriuWorkPath"),
    (12, "TaskApiAddress"),
    (13, "TaskApiVersion"),
];

impl RuntimeOptions {
    pub fn from_any(any: Option<&Any>) -> Result<Self> {
        let Some(any) = any else {
            return Ok(Self::default());
        };
        if any.type_url.is_empty() && any.value.is_empty() {
            return Ok(Self::default());
        }
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            RUNTIME_OPTIONS_TYPE => {
                let config_path = parse_config_path(&any.value)?
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from);
                Ok(Self {
                    handler_config: config_path.is_some(),
                    config_path,
                    io_owner: IoOwner::default(),
                })
            }
            RUNC_OPTIONS_TYPE => {
                let (io_owner, ignored) = parse_runc(&any.value)?;
                if !ignored.is_empty() {
                    tracing::warn!(
                        fields = ?ignored,
                        "runc's runtime options: ignored (Ward has no runc binary, root or criu, \
                         always pivots, and reads the cgroup driver from cgroupsPath)"
                    );
                }
                Ok(Self {
                    config_path: None,
                    handler_config: false,
                    io_owner,
                })
            }
            _ => Err(Error::InvalidArgument(format!(
                "runtime options of type {:?}: Ward reads {RUNTIME_OPTIONS_TYPE} (ConfigPath) \
                 and {RUNC_OPTIONS_TYPE} (IoUid, IoGid) only",
                any.type_url
            ))),
        }
    }

    /// The node config to use: the options' `ConfigPath`, else `env` (the shim's
    /// `WARD_CONFIG`), which must be an absolute path; `None`: /etc/ward/ward.toml.
    pub fn with_config_default(mut self, env: Option<std::ffi::OsString>) -> Result<Self> {
        if self.config_path.is_none() {
            if let Some(p) = env.filter(|p| !p.is_empty()).map(PathBuf::from) {
                if !p.is_absolute() {
                    return Err(Error::InvalidArgument(format!(
                        "{CONFIG_ENV}={}: must be an absolute path",
                        p.display()
                    )));
                }
                self.config_path = Some(p);
            }
        }
        Ok(self)
    }
}

/// A user-namespaced pod (`hostUsers: false`: a CRI sandbox whose spec has a user namespace
/// and mappings) on a handler that names its config with `ConfigPath`: containerd 2
/// would run the sandbox and then fail every container of the pod at StartContainer (it sets
/// their IO owner through runc's options type). Refused here, at RunPodSandbox, saying so.
pub fn refuse_pod_userns_on_config_path(
    options: &RuntimeOptions,
    spec: &serde_json::Value,
) -> Result<()> {
    if !options.handler_config {
        return Ok(());
    }
    let sandbox =
        spec["annotations"]["io.kubernetes.cri.container-type"].as_str() == Some("sandbox");
    // containerd 2 pins the pod's user namespace and names it by path; kubelet's mapping
    // comes with it.
    let userns = spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|ns| ns.iter().any(|n| n["type"].as_str() == Some("user")));
    let mapped = spec["linux"]["uidMappings"]
        .as_array()
        .is_some_and(|m| !m.is_empty());
    if sandbox && userns && mapped {
        return Err(Error::InvalidArgument(
            "spec.hostUsers: false (user-namespaced pod): this runtime handler names its node \
             config with ConfigPath, and containerd 2 sets such a pod's IO owner through runc's \
             options type, so its containers could not start; run it on a handler without an \
             options table (deploy/containerd: `ward`, whose shim reads /etc/ward/ward.toml or \
             WARD_CONFIG)"
                .into(),
        ));
    }
    Ok(())
}

fn bad(e: containerd_shim_protos::protobuf::Error) -> Error {
    Error::InvalidArgument(format!("runtime options: {e}"))
}

/// Reads io_uid (4) and io_gid (5) of `containerd.runc.v1.Options` (0, proto3's unset, is
/// none), and names the other fields that are set.
fn parse_runc(bytes: &[u8]) -> Result<(IoOwner, Vec<&'static str>)> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut owner = IoOwner::default();
    let mut ignored = vec![];
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        let (field, wire_type) = (tag >> 3, tag & 7);
        match (field, wire_type) {
            (4, 0) => owner.uid = Some(input.read_uint32().map_err(bad)?).filter(|&u| u != 0),
            (5, 0) => owner.gid = Some(input.read_uint32().map_err(bad)?).filter(|&g| g != 0),
            _ => {
                let wt = containerd_shim_protos::protobuf::rt::WireType::new(wire_type)
                    .ok_or_else(|| Error::InvalidArgument(format!("wire type {wire_type}")))?;
                input.skip_field(wt).map_err(bad)?;
                if let Some((_, name)) = RUNC_IGNORED.iter().find(|(f, _)| *f == field) {
                    ignored.push(*name);
                }
            }
        }
    }
    Ok((owner, ignored))
}

/// Reads field 2 (string) of `runtimeoptions.v1.Options`, skipping the rest.
fn parse_config_path(bytes: &[u8]) -> Result<Option<String>> {
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut config_path = None;
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        let (field, wire_type) = (tag >> 3, tag & 7);
        if field == 2 && wire_type == 2 {
            config_path = Some(input.read_string().map_err(bad)?);
        } else {
            let wt = containerd_shim_protos::protobuf::rt::WireType::new(wire_type)
                .ok_or_else(|| Error::InvalidArgument(format!("wire type {wire_type}")))?;
            input.skip_field(wt).map_err(bad)?;
        }
    }
    Ok(config_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    fn encode(type_url: &str, config_path: &str) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut out);
            os.write_string(1, type_url).unwrap();
            os.write_string(2, config_path).unwrap();
            os.flush().unwrap();
        }
        out
    }

    #[test]
    fn reads_config_path() {
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: encode("io.containerd.ward.v1.Config", "/etc/ward/ward.toml"),
            ..Default::default()
        };
        let opts = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!(opts.config_path, Some(PathBuf::from("/etc/ward/ward.toml")));
    }

    #[test]
    fn missing_options_are_defaults() {
        assert_eq!(
            RuntimeOptions::from_any(None).unwrap(),
            RuntimeOptions::default()
        );
    }

    fn runc(value: Vec<u8>) -> Any {
        Any {
            type_url: "containerd.runc.v1.Options".into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn runc_options_give_the_io_owner_only() {
        let mut out = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut out);
            os.write_bool(1, true).unwrap(); // NoPivotRoot: ignored, and said so
            os.write_uint32(4, 2_000_000).unwrap();
            os.write_uint32(5, 2_000_001).unwrap();
            os.write_string(6, "/usr/bin/runc").unwrap();
            os.flush().unwrap();
        }
        let opts = RuntimeOptions::from_any(Some(&runc(out.clone()))).unwrap();
        assert_eq!(opts.config_path, None);
        assert_eq!(
            opts.io_owner,
            IoOwner {
                uid: Some(2_000_000),
                gid: Some(2_000_001),
                ..Default::default()
            }
        );
        assert_eq!(
            parse_runc(&out).unwrap().1,
            vec!["NoPivotRoot", "BinaryName"]
        );
        // proto3's 0 is "unset": never "give the stdio to host root".
        let opts = RuntimeOptions::from_any(Some(&runc(vec![0x20, 0]))).unwrap();
        assert_eq!(opts.io_owner, IoOwner::default());
    }

    #[test]
    fn an_unknown_options_type_is_refused_naming_it() {
        let any = Any {
            type_url: "io.example.Options".into(),
            value: vec![8, 1],
            ..Default::default()
        };
        let e = RuntimeOptions::from_any(Some(&any))
            .unwrap_err()
            .to_string();
        assert!(e.contains("io.example.Options"), "{e}");
    }

    #[test]
    fn a_user_namespaced_pod_on_a_config_path_handler_is_refused_naming_the_field() {
        let with_path = RuntimeOptions {
            config_path: Some("/etc/ward/ward-strict.toml".into()),
            handler_config: true,
            ..Default::default()
        };
        let pod = serde_json::json!({
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "user", "path": "/run/x/userns"}],
                "uidMappings": [{"containerID": 0, "hostID": 327680000, "size": 65536}]
            }
        });
        let e = refuse_pod_userns_on_config_path(&with_path, &pod)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hostUsers") && e.contains("ConfigPath"), "{e}");
        // Without ConfigPath, or for a pod on the host's users, or a container: fine.
        refuse_pod_userns_on_config_path(&RuntimeOptions::default(), &pod).unwrap();
        let mut host_users = pod.clone();
        host_users["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
        host_users["linux"]["uidMappings"] = serde_json::json!([]);
        refuse_pod_userns_on_config_path(&with_path, &host_users).unwrap();
        let mut container = pod.clone();
        container["annotations"]["io.kubernetes.cri.container-type"] = "container".into();
        refuse_pod_userns_on_config_path(&with_path, &container).unwrap();
    }

    #[test]
    fn the_config_env_applies_only_without_a_config_path() {
        let env = Some("/etc/ward/other.toml".into());
        let o = RuntimeOptions::default()
            .with_config_default(env.clone())
            .unwrap();
        assert_eq!(o.config_path, Some(PathBuf::from("/etc/ward/other.toml")));
        let given = RuntimeOptions {
            config_path: Some("/etc/ward/ward.toml".into()),
            ..Default::default()
        };
        let o = given.with_config_default(env).unwrap();
        assert_eq!(o.config_path, Some(PathBuf::from("/etc/ward/ward.toml")));
        let e = RuntimeOptions::default()
            .with_config_default(Some("rel.toml".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("WARD_CONFIG") && e.contains("absolute"), "{e}");
        assert_eq!(
            RuntimeOptions::default()
                .with_config_default(None)
                .unwrap()
                .config_path,
            None
        );
    }

    #[test]
    fn garbage_is_invalid_argument() {
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0x12, 0x50, b'a'],
            ..Default::default()
        };
        assert!(RuntimeOptions::from_any(Some(&any)).is_err());
    }
}
