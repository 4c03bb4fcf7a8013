//! Capabilities: all five sets empty unless the policy allows a named capability.

use std::collections::{BTreeSet, HashSet};
use std::str::FromStr;

use oci_spec::runtime::{Capability, LinuxCapabilities, Spec};

use super::{Policy, PolicyError};

/// Every container engine's default set (Docker, containerd, CRI). Asking for these is not an
/// explicit request, so unless the node is strict they are dropped (and the drop is reported)
/// rather than refused.
pub const ENGINE_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A capability name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("unknown capability {0:?}")]
pub struct UnknownCap(pub String);

/// `SYS_ADMIN`, `cap_sys_admin` and `CAP_SYS_ADMIN` all become `CAP_SYS_ADMIN`.
pub fn normalize_cap(name: &str) -> Result<String, UnknownCap> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    caps::Capability::from_str(&full).map_err(|_| UnknownCap(name.to_string()))?;
    Ok(full)
}

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{c:?}"))
}

fn to_oci(name: &str) -> Result<Capability, PolicyError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        PolicyError::UnknownCapability {
            field: "process.capabilities".into(),
            name: name.into(),
        }
    })
}

/// Compute the capability set the container keeps and rewrite all five sets to it.
/// Returns the names dropped (engine defaults the policy does not allow).
pub fn apply(spec: &mut Spec, policy: &Policy) -> Result<Vec<String>, PolicyError> {
    let Some(process) = spec.process_mut() else {
        return Ok(vec![]);
    };
    let requested: BTreeSet<String> = match process.capabilities() {
        None => BTreeSet::new(),
        Some(c) => [
            ("bounding", c.bounding()),
            ("effective", c.effective()),
            ("inheritable", c.inheritable()),
            ("permitted", c.permitted()),
            ("ambient", c.ambient()),
        ]
        .into_iter()
        .flat_map(|(_, set)| set.iter().flatten().map(cap_name))
        .collect(),
    };
    let (keep, dropped) = decide(&requested, policy)?;
    let set: HashSet<Capability> = keep.iter().map(|c| to_oci(c)).collect::<Result<_, _>>()?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set.clone()));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));
    process.set_capabilities(Some(caps));
    Ok(dropped)
}

/// The decision itself, on names: (kept, dropped) or the refusal.
pub fn decide(
    requested: &BTreeSet<String>,
    policy: &Policy,
) -> Result<(BTreeSet<String>, Vec<String>), PolicyError> {
    // A spec that asks for (nearly) everything is a privileged container.
    if requested.len() >= 30 || requested.contains("CAP_SYS_ADMIN") && requested.len() >= 20 {
        return Err(PolicyError::Privileged);
    }
    let mut keep = BTreeSet::new();
    let mut dropped = vec![];
    for cap in requested {
        if policy.denied_caps.contains(cap) && !policy.allowed_caps.contains(cap) {
            let engine_default = ENGINE_DEFAULT_CAPS.contains(&cap.as_str());
            if policy.strict_caps || !engine_default {
                return Err(PolicyError::DeniedCapability {
                    name: cap.clone(),
                    profile: policy.profile_name.clone(),
                });
            }
            dropped.push(cap.clone());
        } else if policy.allowed_caps.contains(cap) {
            keep.insert(cap.clone());
        } else if policy.strict_caps {
            return Err(PolicyError::DeniedCapability {
                name: cap.clone(),
                profile: policy.profile_name.clone(),
            });
        } else {
            dropped.push(cap.clone());
        }
    }
    Ok((keep, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::test_policy;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_cap("sys_admin").unwrap(), "CAP_SYS_ADMIN");
        assert!(normalize_cap("CAP_NOPE").is_err());
    }

    #[test]
    fn engine_defaults_dropped_denied_refused() {
        let p = test_policy();
        let (keep, dropped) = decide(&set(&["CAP_CHOWN", "CAP_NET_RAW"]), &p).unwrap();
        assert!(keep.is_empty());
        assert_eq!(dropped, vec!["CAP_CHOWN", "CAP_NET_RAW"]);
        let e = decide(&set(&["CAP_SYS_ADMIN"]), &p).unwrap_err();
        assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
        let e = decide(&set(&["CAP_BPF"]), &p).unwrap_err();
        assert!(e.to_string().contains("CAP_BPF"), "{e}");
    }

    #[test]
    fn strict_refuses_engine_defaults_and_allowed_kept() {
        let mut p = test_policy();
        p.strict_caps = true;
        assert!(decide(&set(&["CAP_NET_RAW"]), &p).is_err());
        p.allowed_caps.insert("CAP_NET_BIND_SERVICE".into());
        let (keep, _) = decide(&set(&["CAP_NET_BIND_SERVICE"]), &p).unwrap();
        assert_eq!(keep, set(&["CAP_NET_BIND_SERVICE"]));
    }

    #[test]
    fn privileged_refused() {
        let all: BTreeSet<String> = caps::all().iter().map(|c| c.to_string()).collect();
        assert!(matches!(
            decide(&all, &test_policy()),
            Err(PolicyError::Privileged)
        ));
    }
}
