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

pub fn apply(spec: &mut Spec) {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
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
        apply(&mut s);
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
