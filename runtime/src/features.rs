//! The OCI runtime features document (runtime-spec features.md): `ward features` prints it,
//! and the shim's `-info` hands it to containerd 2, which reads `mountExtensions.idmap` before
//! it creates a task whose spec has idmapped mounts (a user-namespaced pod's volumes).

use serde_json::{json, Value};

/// The typeurl containerd registers runtime-spec's `features.Features` under (a JSON value).
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// What Ward supports, as runtime-spec's features document.
pub fn document() -> Value {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private", "rprivate", "slave", "rslave", "shared", "rshared", "relatime", "noatime", "strictatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": {
            "dev.ward.sandbox": "userns,idmap,caps,nnp,ro-rootfs,masked-paths,seccomp,landlock,cgroup-limits",
            "dev.ward.profile-annotation": crate::PROFILE_ANNOTATION
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn idmap_mounts_are_announced() {
        let d = super::document();
        assert_eq!(d["linux"]["mountExtensions"]["idmap"]["enabled"], true);
        assert_eq!(d["ociVersionMax"], "1.2.0");
    }
}
