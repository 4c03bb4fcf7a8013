//! Masked and read-only paths: at least runc's defaults, always, whatever the spec says.

use oci_spec::runtime::Spec;

pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/kernel",
];

pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `cgroup_dirs`: container paths of the cgroup hierarchies (`/sys/fs/cgroup`,
/// `/sys/fs/cgroup/memory`, ...). libcontainer mounts cgroup v1 hierarchies read-write whatever
/// the mount options say, and a read-only path is remounted without MS_REC, so each hierarchy
/// is listed on its own (CVE-2022-0492: release_agent).
pub fn apply(spec: &mut Spec, cgroup_dirs: &[String]) {
    let has_cgroup_mount = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")));
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    if has_cgroup_mount {
        let ro: Vec<&str> = cgroup_dirs.iter().map(String::as_str).collect();
        add_all(linux.readonly_paths_mut(), &ro);
    }
    add_all(linux.masked_paths_mut(), MASKED);
    add_all(linux.readonly_paths_mut(), READONLY);
}

fn add_all(list: &mut Option<Vec<String>>, defaults: &[&str]) {
    let l = list.get_or_insert_with(Vec::new);
    for p in defaults {
        if !l.iter().any(|x| x == p) {
            l.push(p.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_even_if_removed() {
        let mut s = Spec::default();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_masked_paths(Some(vec![]));
        apply(&mut s, &["/sys/fs/cgroup".to_string()]);
        let l = s.linux().as_ref().unwrap();
        assert!(l
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".into()));
        assert!(l
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".into()));
    }
}
