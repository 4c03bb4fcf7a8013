//! Which container a pod container may join. The annotation `io.kubernetes.cri.sandbox-id`
//! is a name any bundle can write: trusted alone, it lets one bundle join the user, pid,
//! network, ipc and uts namespaces (and uid range) of any live container of the same root.
//! So a join needs both:
//!
//! * pods enabled for the root: node config `[pods] enabled = true` for the `ward` CLI; the
//!   shim enables them for its own roots (containerd's CRI lays pods out there);
//! * a sandbox Ward recorded as one at its own create (`WardState::sandbox`, set when its spec
//!   carried `io.kubernetes.cri.container-type: sandbox`), never because a bundle names an id.

use oci_spec::runtime::Spec;

use crate::state::WardState;

/// The annotation containerd's CRI sets on each container: `sandbox` or `container`.
pub const CONTAINER_TYPE_ANNOTATION: &str = "io.kubernetes.cri.container-type";

/// Whether `spec` asks to be created as a pod sandbox (recorded in its Ward state).
pub fn is_sandbox(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(CONTAINER_TYPE_ANNOTATION))
        .is_some_and(|t| t == "sandbox")
}

/// Why the container whose state is `ws` cannot be joined as a pod sandbox (`None`: it can).
/// The text completes "pod sandbox X (annotation …), which …".
pub fn refuse_join(pods_enabled: bool, ws: &WardState) -> Option<String> {
    if !pods_enabled {
        return Some(
            "cannot be joined: pods are not enabled for this state root (node config [pods] enabled = true)"
                .into(),
        );
    }
    if !ws.sandbox {
        return Some(format!(
            "was not created as a pod sandbox (annotation {CONTAINER_TYPE_ANNOTATION}: sandbox)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_by_annotation_only() {
        let mut s = Spec::default();
        assert!(!is_sandbox(&s));
        let mut a = std::collections::HashMap::new();
        a.insert(
            CONTAINER_TYPE_ANNOTATION.to_string(),
            "container".to_string(),
        );
        s.set_annotations(Some(a.clone()));
        assert!(!is_sandbox(&s));
        a.insert(CONTAINER_TYPE_ANNOTATION.to_string(), "sandbox".to_string());
        s.set_annotations(Some(a));
        assert!(is_sandbox(&s));
    }
}
