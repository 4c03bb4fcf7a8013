//! containerd runtime options (`CreateTaskRequest.options`).
//!
//! With `ConfigPath` set in containerd's runtime config (or
//! `ctr --runtime-config-path`), containerd sends `runtimeoptions.v1.Options`
//! { 1: type_url, 2: config_path }: the gVisor runsc.toml pattern. Ward reads
//! `config_path` as the node config (ward.toml).

use std::path::PathBuf;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::CodedInputStream;

use crate::error::{Error, Result};

pub const RUNTIME_OPTIONS_TYPE: &str = "runtimeoptions.v1.Options";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub config_path: Option<PathBuf>,
}

impl RuntimeOptions {
    pub fn from_any(any: Option<&Any>) -> Result<Self> {
        let Some(any) = any else {
            return Ok(Self::default());
        };
        if any.type_url.is_empty() && any.value.is_empty() {
            return Ok(Self::default());
        }
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        if name != RUNTIME_OPTIONS_TYPE {
            tracing::warn!(type_url = %any.type_url, "ignoring runtime options of an unknown type");
            return Ok(Self::default());
        }
        let config_path = parse_config_path(&any.value)?;
        Ok(Self {
            config_path: config_path.filter(|s| !s.is_empty()).map(PathBuf::from),
        })
    }
}

/// Reads field 2 (string) of `runtimeoptions.v1.Options`, skipping the rest.
fn parse_config_path(bytes: &[u8]) -> Result<Option<String>> {
    let bad = |e: containerd_shim_protos::protobuf::Error| {
        Error::InvalidArgument(format!("runtimeoptions.v1.Options: {e}"))
    };
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
    fn missing_or_foreign_options_are_defaults() {
        assert_eq!(
            RuntimeOptions::from_any(None).unwrap(),
            RuntimeOptions::default()
        );
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![8, 1],
            ..Default::default()
        };
        assert_eq!(
            RuntimeOptions::from_any(Some(&any)).unwrap(),
            RuntimeOptions::default()
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
