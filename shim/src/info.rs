//! `containerd-shim-ward-v2 -info`: containerd 2 runs it (runtime options on stdin) before it
//! creates a task whose spec has idmapped mounts, and reads the `RuntimeInfo` protobuf it
//! prints: the runtime's name, version and runtime-spec features document, whose
//! `mountExtensions.idmap` must be enabled (a user-namespaced pod's volumes are idmapped).
//!
//! `containerd.types.RuntimeInfo` { 1: name, 2: RuntimeVersion { 1: version, 2: revision },
//! 4: features (Any: runtime-spec's `features.Features`, as JSON) }.

use std::io::Read;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{CodedOutputStream, Message};

use crate::error::{Error, Result};
use crate::options::RuntimeOptions;

/// The options containerd sends are small; more is refused.
const STDIN_CAP: u64 = 1 << 20;

/// Read the runtime options (a marshalled `Any`, possibly empty) from `input`, check them as a
/// create would, and return the `RuntimeInfo` bytes.
pub fn run(input: impl Read) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    input
        .take(STDIN_CAP + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::InvalidArgument(format!("-info: reading the options: {e}")))?;
    if raw.len() as u64 > STDIN_CAP {
        return Err(Error::InvalidArgument(
            "-info: runtime options over 1 MiB".into(),
        ));
    }
    if !raw.is_empty() {
        let any = Any::parse_from_bytes(&raw)
            .map_err(|e| Error::InvalidArgument(format!("-info: runtime options: {e}")))?;
        RuntimeOptions::from_any(Some(&any))?;
    }
    Ok(encode(&ward_runtime::features::document()))
}

fn encode(features: &serde_json::Value) -> Vec<u8> {
    let write = |f: &mut dyn FnMut(
        &mut CodedOutputStream,
    ) -> containerd_shim_protos::protobuf::Result<()>| {
        let mut out = Vec::new();
        {
            let mut os = CodedOutputStream::vec(&mut out);
            f(&mut os).expect("writing to a Vec");
            os.flush().expect("writing to a Vec");
        }
        out
    };
    let version = write(&mut |os| {
        os.write_string(1, env!("CARGO_PKG_VERSION"))?;
        os.write_string(2, option_env!("WARD_GIT_REVISION").unwrap_or("unknown"))
    });
    let json = serde_json::to_vec(features).expect("serializable");
    let any = write(&mut |os| {
        os.write_string(1, ward_runtime::features::FEATURES_TYPE_URL)?;
        os.write_bytes(2, &json)
    });
    write(&mut |os| {
        os.write_string(1, crate::shim::RUNTIME_ID)?;
        os.write_bytes(2, &version)?;
        os.write_bytes(4, &any)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedInputStream;

    /// Field number → bytes of each length-delimited field.
    fn fields(b: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut i = CodedInputStream::from_bytes(b);
        let mut v = vec![];
        while let Some(tag) = i.read_raw_tag_or_eof().unwrap() {
            assert_eq!(tag & 7, 2, "only length-delimited fields");
            v.push((tag >> 3, i.read_bytes().unwrap()));
        }
        v
    }

    #[test]
    fn info_carries_name_version_and_the_idmap_feature() {
        let out = run(&b""[..]).unwrap();
        let f = fields(&out);
        assert_eq!(f[0], (1, crate::shim::RUNTIME_ID.as_bytes().to_vec()));
        let version = fields(&f[1].1);
        assert_eq!(version[0].1, env!("CARGO_PKG_VERSION").as_bytes());
        let any = fields(&f.iter().find(|(n, _)| *n == 4).unwrap().1);
        assert_eq!(
            any[0].1,
            ward_runtime::features::FEATURES_TYPE_URL.as_bytes()
        );
        let doc: serde_json::Value = serde_json::from_slice(&any[1].1).unwrap();
        assert_eq!(doc["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    }

    #[test]
    fn options_are_checked_as_a_create_would() {
        let any = Any {
            type_url: "io.example.Unknown".into(),
            value: vec![],
            ..Default::default()
        };
        let raw = any.write_to_bytes().unwrap();
        let e = run(&raw[..]).unwrap_err().to_string();
        assert!(e.contains("io.example.Unknown"), "{e}");
        let runc = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0x20, 0x80, 0x80, 0x80, 0x01],
            ..Default::default()
        };
        run(&runc.write_to_bytes().unwrap()[..]).unwrap();
        assert!(run(std::io::repeat(0).take(STDIN_CAP + 10)).is_err());
    }
}
