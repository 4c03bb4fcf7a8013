//! Target architectures and their syscall tables.

use std::fmt;
use std::str::FromStr;

use crate::error::ProfileError;

#[path = "tables/aarch64.rs"]
mod aarch64_table;
#[path = "tables/x86_64.rs"]
mod x86_64_table;

/// A CPU architecture Ward compiles seccomp filters for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64 (native 64-bit ABI; the x32 ABI is always refused).
    X86_64,
    /// 64-bit ARM.
    Aarch64,
}

impl Arch {
    /// Both supported architectures.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The architecture this crate was compiled for.
    pub fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The name used in profiles, caches and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub(crate) fn target(self) -> seccompiler::TargetArch {
        match self {
            Arch::X86_64 => seccompiler::TargetArch::x86_64,
            Arch::Aarch64 => seccompiler::TargetArch::aarch64,
        }
    }

    /// `AUDIT_ARCH_*`: `seccomp_data.arch` of a native call.
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 0xc000_003e,
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    /// `SCMP_ARCH_*` name as used by OCI `linux.seccomp.architectures`.
    pub(crate) fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => x86_64_table::TABLE,
            Arch::Aarch64 => aarch64_table::TABLE,
        }
    }

    /// The number of `name` on this architecture, if the call exists here.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }

    /// The name of syscall number `nr` on this architecture.
    pub fn syscall_name(self, nr: u32) -> Option<&'static str> {
        self.table().iter().find(|(_, n)| *n == nr).map(|(s, _)| *s)
    }

    /// Every syscall name known on this architecture, sorted.
    pub fn syscall_names(self) -> impl Iterator<Item = &'static str> {
        self.table().iter().map(|(n, _)| *n)
    }
}

/// Whether `name` is a syscall on at least one supported architecture.
pub fn is_known_syscall(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.syscall_number(name).is_some())
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => Err(ProfileError::Parse {
                file: "<arch>".into(),
                line: 0,
                key: "arch".into(),
                message: format!("unknown architecture {other:?} (x86_64 or aarch64)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_sorted_and_unique() {
        for arch in Arch::ALL {
            let t = arch.table();
            for w in t.windows(2) {
                assert!(w[0].0 < w[1].0, "{arch}: {} !< {}", w[0].0, w[1].0);
            }
        }
    }

    #[test]
    fn known_numbers() {
        let x = Arch::X86_64;
        assert_eq!(x.syscall_number("read"), Some(0));
        assert_eq!(x.syscall_number("unshare"), Some(272));
        assert_eq!(x.syscall_number("clone3"), Some(435));
        assert_eq!(x.syscall_number("io_uring_setup"), Some(425));
        assert_eq!(x.syscall_number("landlock_restrict_self"), Some(446));
        assert_eq!(x.syscall_number("mount_setattr"), Some(442));
        assert_eq!(x.syscall_number("file_setattr"), Some(469));
        let a = Arch::Aarch64;
        assert_eq!(a.syscall_number("unshare"), Some(97));
        assert_eq!(a.syscall_number("openat"), Some(56));
        assert_eq!(a.syscall_number("open"), None);
        assert_eq!(a.syscall_number("clone3"), Some(435));
        assert_eq!(a.syscall_name(220), Some("clone"));
    }

    #[test]
    fn native_matches_libc() {
        let n = Arch::native();
        assert_eq!(n.syscall_number("getpid"), Some(libc::SYS_getpid as u32));
        assert_eq!(n.syscall_number("unshare"), Some(libc::SYS_unshare as u32));
        assert_eq!(n.syscall_number("clone3"), Some(libc::SYS_clone3 as u32));
        assert_eq!("arm64".parse::<Arch>().unwrap(), Arch::Aarch64);
        assert!("mips".parse::<Arch>().is_err());
    }
}
