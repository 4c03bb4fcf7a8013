//! No silent overrides: what the spec asked and Ward did differently, one entry per field.
//! `harden` computes them (pure: the spec before and after); `create` reports each once, as
//! a warning in the log, a `spec-override` event in `ward events`, and an annotation
//! `ward.dev/override.<field>` in `ward state`.

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// One field of the spec Ward did not honour as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The config.json field, e.g. `process.capabilities`.
    pub field: String,
    /// What the spec asked.
    pub asked: String,
    /// What Ward applied instead, and why.
    pub applied: String,
    /// The Kubernetes field that sets it, where one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<String>,
    /// The spec set the field (a warning); else Ward filled in what the spec left out (info).
    #[serde(default)]
    pub explicit: bool,
}

impl Override {
    fn new(field: &str, asked: String, applied: String, k8s: Option<&str>) -> Self {
        Self {
            field: field.into(),
            asked,
            applied,
            kubernetes: k8s.map(str::to_string),
            explicit: true,
        }
    }

    fn implicit(mut self, unset: bool) -> Self {
        self.explicit = !unset;
        self
    }

    /// One line for logs and events.
    pub fn line(&self) -> String {
        let k8s = self
            .kubernetes
            .as_deref()
            .map(|k| format!(" (Kubernetes: {k})"))
            .unwrap_or_default();
        format!(
            "{}{k8s}: asked {}; Ward applied {}",
            self.field, self.asked, self.applied
        )
    }

    /// The `ward state` annotation: key and value.
    pub fn annotation(&self) -> (String, String) {
        (
            format!("ward.dev/override.{}", self.field),
            format!("asked {}; applied {}", self.asked, self.applied),
        )
    }
}

fn limit_override(
    out: &mut Vec<Override>,
    field: &str,
    before: Option<i64>,
    after: Option<i64>,
    k8s: &str,
) {
    let Some(a) = after else { return };
    let asked = match before {
        Some(b) if b > 0 && b <= a => return,
        Some(b) if b > 0 => b.to_string(),
        _ => "no limit".to_string(),
    };
    out.push(
        Override::new(
            field,
            asked,
            format!("{a} (the profile's limit; a tighter spec value is kept)"),
            Some(k8s),
        )
        .implicit(before.is_none()),
    );
}

/// Compare the spec as given with the hardened one.
pub fn detect(
    before: &Spec,
    after: &Spec,
    dropped_caps: &[String],
    profile: &str,
) -> Vec<Override> {
    let mut out = vec![];
    if !dropped_caps.is_empty() {
        out.push(Override::new(
            "process.capabilities",
            dropped_caps.join(","),
            "none of these (not allowed by the node's policy)".into(),
            Some("securityContext.capabilities"),
        ));
    }
    let ro = |s: &Spec| s.root().as_ref().and_then(|r| r.readonly());
    if ro(before) != Some(true) && ro(after) == Some(true) {
        out.push(
            Override::new(
                "root.readonly",
                "false".into(),
                format!(
                    "true (profile {profile:?} does not allow a writable rootfs ([rootfs] \
                     writable); its tmpfs paths are writable; writes elsewhere fail with EROFS)"
                ),
                Some("securityContext.readOnlyRootFilesystem"),
            )
            .implicit(ro(before).is_none()),
        );
    }
    let nnp = before
        .process()
        .as_ref()
        .and_then(|p| p.no_new_privileges());
    if !nnp.unwrap_or(false) {
        out.push(
            Override::new(
                "process.noNewPrivileges",
                "false".into(),
                "true".into(),
                Some("securityContext.allowPrivilegeEscalation"),
            )
            .implicit(nnp.is_none()),
        );
    }
    let seccomp = before.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let unconfined = seccomp.is_none_or(|s| {
        s.syscalls().as_ref().is_none_or(|v| v.is_empty())
            && format!("{:?}", s.default_action()).contains("Allow")
    });
    if unconfined {
        out.push(
            Override::new(
                "linux.seccomp",
                if seccomp.is_none() {
                    "none"
                } else {
                    "allow all"
                }
                .into(),
                format!("profile {profile:?}'s filter"),
                Some("securityContext.seccompProfile: Unconfined"),
            )
            .implicit(seccomp.is_none()),
        );
    }
    let has_userns = |s: &Spec| {
        s.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
            })
    };
    if !has_userns(before) && has_userns(after) {
        out.push(
            Override::new(
                "linux.namespaces",
                "no user namespace (container root = host root)".into(),
                "a user namespace on a host uid range of its own".into(),
                Some("hostUsers"),
            )
            .implicit(true),
        );
    }
    resource_overrides(before, after, &mut out);
    out
}

fn resource_overrides(before: &Spec, after: &Spec, out: &mut Vec<Override>) {
    let res = |s: &Spec| s.linux().as_ref().and_then(|l| l.resources().clone());
    let (b, a) = (res(before), res(after));
    let pids = |r: &Option<oci_spec::runtime::LinuxResources>| {
        r.as_ref()
            .and_then(|r| r.pids().as_ref())
            .map(|p| p.limit())
    };
    limit_override(
        out,
        "linux.resources.pids.limit",
        pids(&b),
        pids(&a),
        "pod pid limit (kubelet podPidsLimit)",
    );
    let mem = |r: &Option<oci_spec::runtime::LinuxResources>| {
        r.as_ref()
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
    };
    limit_override(
        out,
        "linux.resources.memory.limit",
        mem(&b),
        mem(&a),
        "resources.limits.memory",
    );
    let quota = |r: &Option<oci_spec::runtime::LinuxResources>| {
        r.as_ref()
            .and_then(|r| r.cpu().as_ref())
            .and_then(|c| c.quota())
    };
    if quota(&b) != quota(&a) {
        limit_override(
            out,
            "linux.resources.cpu.quota",
            quota(&b),
            quota(&a),
            "resources.limits.cpu",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::{harden, test_ctx, test_policy, IdRange};

    #[test]
    fn runc_spec_overrides_are_all_named() {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/src/base-config.json")).unwrap();
        // As containerd sends for a default pod: a writable rootfs, privilege escalation on.
        v["root"]["readonly"] = false.into();
        v["process"]["noNewPrivileges"] = false.into();
        let spec: Spec = serde_json::from_value(v).unwrap();
        let range = IdRange {
            host_start: 1 << 20,
            size: 65536,
        };
        let h = harden(spec.clone(), &test_policy(), &range, &test_ctx()).unwrap();
        let o = detect(&spec, &h.spec, &h.dropped_caps, "default");
        let fields: Vec<&str> = o.iter().map(|o| o.field.as_str()).collect();
        for f in [
            "root.readonly",
            "process.noNewPrivileges",
            "linux.seccomp",
            "linux.namespaces",
            "linux.resources.pids.limit",
            "linux.resources.memory.limit",
        ] {
            assert!(fields.contains(&f), "{f} not reported: {fields:?}");
        }
        // Warnings for what the spec set, info for what Ward's defaults filled in.
        let explicit = |f: &str| o.iter().find(|o| o.field == f).map(|o| o.explicit);
        assert_eq!(explicit("root.readonly"), Some(true));
        assert_eq!(explicit("process.noNewPrivileges"), Some(true));
        assert_eq!(explicit("linux.seccomp"), Some(false));
        assert_eq!(explicit("linux.namespaces"), Some(false));
        let line = o
            .iter()
            .find(|o| o.field == "linux.seccomp")
            .unwrap()
            .line();
        assert!(
            line.contains("Unconfined") && line.contains("default"),
            "{line}"
        );
        // A spec that already asks for what Ward applies reports nothing for those fields.
        let o2 = detect(&h.spec, &h.spec, &[], "default");
        assert!(
            !o2.iter().any(|o| o.field == "root.readonly"
                || o.field == "process.noNewPrivileges"
                || o.field.starts_with("linux.resources")),
            "{o2:?}"
        );
    }
}
