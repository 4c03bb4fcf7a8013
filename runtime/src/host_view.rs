//! What one `create` reads of the host's cgroup layout, read once and handed to every step
//! that needs it (the sandbox context, the cgroup refusals and
//! claims, the supervisor's charging), instead of each step reading /proc itself: before,
//! a create read /proc/self/mountinfo three times, /proc/self/cgroup twice and probed the
//! cgroup setup three times.
//!
//! The view is taken at the start of the create and lives as long as that create only: the
//! shim's launcher takes a new one for its next create, so a change to the host's cgroup
//! mounts between two creates is seen. Within one create nothing Ward does changes them (its
//! own mounts are made in a private mount namespace, and not on cgroup hierarchies).

use std::path::PathBuf;

/// The host's cgroup layout as one create sees it.
#[derive(Debug, Clone, Default)]
pub struct HostView {
    /// Text of /proc/self/mountinfo.
    pub mountinfo: String,
    /// Text of /proc/self/cgroup (Ward's own cgroups).
    pub own_cgroup: String,
    /// Whether the host has cgroup v2 only (else v1 or hybrid).
    pub pure_v2: bool,
}

impl HostView {
    /// Read the view (a missing file reads as empty, as each step did on its own).
    pub fn read() -> Self {
        Self {
            own_cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            pure_v2: matches!(
                libcgroups::common::get_cgroup_setup(),
                Ok(libcgroups::common::CgroupSetup::Unified)
            ),
            mountinfo: std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        }
    }

    /// Mount points of the cgroup hierarchies in this view.
    pub fn cgroup_mounts(&self) -> Vec<PathBuf> {
        crate::cgroup_guard::mounts_from(&self.mountinfo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_view_gives_what_each_step_read_on_its_own() {
        let v = HostView::read();
        assert_eq!(v.cgroup_mounts(), crate::cgroup_guard::cgroup_mounts());
        assert_eq!(
            v.own_cgroup,
            std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default()
        );
    }
}
