//! Devices: only the standard set (null, zero, full, random, urandom, tty, ptmx, pts); the
//! device cgroup denies everything else.

use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType, Spec};

use super::PolicyError;

/// (path, type, major, minor) of the devices every container gets.
pub const STANDARD: &[(&str, char, i64, i64)] = &[
    ("/dev/null", 'c', 1, 3),
    ("/dev/zero", 'c', 1, 5),
    ("/dev/full", 'c', 1, 7),
    ("/dev/random", 'c', 1, 8),
    ("/dev/urandom", 'c', 1, 9),
    ("/dev/tty", 'c', 5, 0),
    ("/dev/ptmx", 'c', 5, 2),
];

pub fn apply(spec: &mut Spec) -> Result<(), PolicyError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    if let Some(devices) = linux.devices() {
        for d in devices {
            // Every standard device is a character device ('u' is the same node type); a
            // block device or fifo with a standard path and numbers is not one of them.
            let char_dev = matches!(d.typ(), LinuxDeviceType::C | LinuxDeviceType::U);
            let ok = char_dev
                && STANDARD.iter().any(|(p, _, maj, min)| {
                    d.path().as_os_str() == *p && d.major() == *maj && d.minor() == *min
                });
            if !ok {
                return Err(PolicyError::Device {
                    path: format!(
                        "{} (type {}, {}:{})",
                        d.path().display(),
                        d.typ().as_str(),
                        d.major(),
                        d.minor()
                    ),
                });
            }
        }
    }
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .expect("valid")];
    for (_, _, maj, min) in STANDARD {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(*maj)
                .minor(*min)
                .access("rwm")
                .build()
                .expect("valid"),
        );
    }
    // /dev/pts/* (unix98 ptys)
    rules.push(
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(136)
            .access("rwm")
            .build()
            .expect("valid"),
    );
    linux
        .resources_mut()
        .get_or_insert_with(Default::default)
        .set_devices(Some(rules));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    #[test]
    fn refuses_host_disk() {
        let mut s = Spec::default();
        let d = LinuxDeviceBuilder::default()
            .path("/dev/vda")
            .typ(LinuxDeviceType::B)
            .major(254)
            .minor(0)
            .build()
            .unwrap();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_devices(Some(vec![d]));
        let e = apply(&mut s).unwrap_err();
        assert!(e.to_string().contains("/dev/vda"), "{e}");
    }

    #[test]
    fn cgroup_allowlist() {
        let mut s = Spec::default();
        apply(&mut s).unwrap();
        let r = s.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let d = r.devices().as_ref().unwrap();
        assert!(!d[0].allow());
        assert_eq!(d.len(), STANDARD.len() + 2);
    }

    #[test]
    fn refuses_a_block_device_with_a_standard_path_and_numbers() {
        for t in [LinuxDeviceType::B, LinuxDeviceType::P] {
            let mut s = Spec::default();
            let d = LinuxDeviceBuilder::default()
                .path("/dev/null")
                .typ(t)
                .major(1)
                .minor(3)
                .build()
                .unwrap();
            s.linux_mut()
                .get_or_insert_with(Default::default)
                .set_devices(Some(vec![d]));
            let e = apply(&mut s).unwrap_err().to_string();
            assert!(
                e.starts_with("linux.devices: device /dev/null (type "),
                "{e}"
            );
        }
    }
}
