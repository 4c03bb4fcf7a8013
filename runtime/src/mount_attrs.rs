//! A bind volume's mount attributes from its OCI options, as `mount_setattr` sets them.
//!
//! libcontainer applies a volume's options inside the container, from the container's user
//! namespace, on a clone of the mount Ward attached. The kernel locks the atime settings (and
//! any nosuid/nodev/noexec/ro already set) of a mount copied into a less privileged mount
//! namespace, so `noatime`, `nodiratime`, `strictatime` and their recursive forms failed there
//! with EPERM ("failed to prepare rootfs"). Ward sets them on its detached clone instead, from
//! the host's user namespace, before anything is locked; libcontainer's later call then asks
//! for what is already there, which the kernel allows. The recursive restrictions of
//! runtime-spec 1.1 (`rro`, `rnosuid`, `rnodev`, `rnoexec`, `rnosymfollow`) are set there too.
//! Options that would lift a restriction Ward forces (`rsuid`, `rdev`) are removed by harden.

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
/// The atime mode field: clear it to set one of RELATIME, NOATIME, STRICTATIME.
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// `attr_set` and `attr_clr` of one `mount_setattr` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clr: u64,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }

    fn set(&mut self, bits: u64) {
        self.set |= bits;
        self.clr &= !bits;
    }

    fn clear(&mut self, bits: u64) {
        self.clr |= bits;
        self.set &= !bits;
    }

    fn atime(&mut self, mode: u64) {
        self.set &= !MOUNT_ATTR__ATIME;
        self.set |= mode;
        self.clr |= MOUNT_ATTR__ATIME;
    }
}

/// What to set on a volume's detached clone: on its top mount, and on every mount of the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeAttrs {
    pub top: Attrs,
    pub recursive: Attrs,
}

impl VolumeAttrs {
    /// The attributes the options name, in order (a later option wins over an earlier one).
    /// Options that are not mount attributes (`rbind`, `rw`, propagation, ...) are ignored
    /// here: libcontainer applies them.
    pub fn from_options<'a>(options: impl IntoIterator<Item = &'a str>) -> Self {
        let mut v = Self::default();
        for o in options {
            let (recursive, name) = match o.strip_prefix('r') {
                Some(rest) if RECURSIVE.contains(&o) => (true, rest),
                _ => (false, o),
            };
            let a = if recursive {
                &mut v.recursive
            } else {
                &mut v.top
            };
            match name {
                "noatime" => a.atime(MOUNT_ATTR_NOATIME),
                "strictatime" => a.atime(MOUNT_ATTR_STRICTATIME),
                "relatime" => a.atime(MOUNT_ATTR_RELATIME),
                "nodiratime" => a.set(MOUNT_ATTR_NODIRATIME),
                "diratime" => a.clear(MOUNT_ATTR_NODIRATIME),
                // Plain ro/nosuid/... are libcontainer's to set on the top mount.
                _ if !recursive => {}
                "ro" => a.set(MOUNT_ATTR_RDONLY),
                "nosuid" => a.set(MOUNT_ATTR_NOSUID),
                "nodev" => a.set(MOUNT_ATTR_NODEV),
                "noexec" => a.set(MOUNT_ATTR_NOEXEC),
                "nosymfollow" => a.set(MOUNT_ATTR_NOSYMFOLLOW),
                _ => {}
            }
        }
        v
    }
}

/// runtime-spec 1.1's recursive mount options Ward sets on the clone (the lifting ones,
/// `rrw`, `rexec`, `ratime`, `rnostrictatime`, `rnorelatime`, `rsymfollow`, are left to
/// libcontainer: they ask for nothing a fresh clone does not already have, or fail there).
const RECURSIVE: &[&str] = &[
    "rro",
    "rnosuid",
    "rnodev",
    "rnoexec",
    "rnosymfollow",
    "rnoatime",
    "rstrictatime",
    "rrelatime",
    "rnodiratime",
    "rdiratime",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atime_and_recursive_options() {
        let v = VolumeAttrs::from_options(["rbind", "rw", "noatime"]);
        assert_eq!(
            v.top,
            Attrs {
                set: MOUNT_ATTR_NOATIME,
                clr: MOUNT_ATTR__ATIME
            }
        );
        assert!(v.recursive.is_empty());

        let v = VolumeAttrs::from_options(["rbind", "rro", "rnoexec", "rnodiratime"]);
        assert!(v.top.is_empty());
        assert_eq!(
            v.recursive.set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(v.recursive.clr, 0);

        let v = VolumeAttrs::from_options(["rstrictatime", "nodiratime", "ro", "nosuid"]);
        assert_eq!(
            v.recursive,
            Attrs {
                set: MOUNT_ATTR_STRICTATIME,
                clr: MOUNT_ATTR__ATIME
            }
        );
        // Plain ro/nosuid are libcontainer's (and Ward's own nosuid,nodev); only atime here.
        assert_eq!(v.top.set, MOUNT_ATTR_NODIRATIME);

        // The last atime option wins.
        let v = VolumeAttrs::from_options(["noatime", "relatime"]);
        assert_eq!(
            v.top,
            Attrs {
                set: MOUNT_ATTR_RELATIME,
                clr: MOUNT_ATTR__ATIME
            }
        );
        // Lifting options are not Ward's to set.
        assert!(
            VolumeAttrs::from_options(["rrw", "rsuid", "rexec", "ratime"])
                .recursive
                .is_empty()
        );
    }
}
