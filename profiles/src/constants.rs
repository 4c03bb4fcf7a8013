//! Symbolic constants usable as seccomp argument values, and errno names.
//!
//! Values are per architecture where the uapi differs (some `O_*` flags on aarch64).

use crate::arch::Arch;

const COMMON: &[(&str, u64)] = &[
    // Address families.
    ("AF_UNSPEC", 0),
    ("AF_UNIX", 1),
    ("AF_LOCAL", 1),
    ("AF_INET", 2),
    ("AF_AX25", 3),
    ("AF_IPX", 4),
    ("AF_APPLETALK", 5),
    ("AF_NETROM", 6),
    ("AF_BRIDGE", 7),
    ("AF_ATMPVC", 8),
    ("AF_X25", 9),
    ("AF_INET6", 10),
    ("AF_ROSE", 11),
    ("AF_DECnet", 12),
    ("AF_NETBEUI", 13),
    ("AF_SECURITY", 14),
    ("AF_KEY", 15),
    ("AF_NETLINK", 16),
    ("AF_PACKET", 17),
    ("AF_ASH", 18),
    ("AF_ECONET", 19),
    ("AF_ATMSVC", 20),
    ("AF_RDS", 21),
    ("AF_SNA", 22),
    ("AF_IRDA", 23),
    ("AF_PPPOX", 24),
    ("AF_WANPIPE", 25),
    ("AF_LLC", 26),
    ("AF_IB", 27),
    ("AF_MPLS", 28),
    ("AF_CAN", 29),
    ("AF_TIPC", 30),
    ("AF_BLUETOOTH", 31),
    ("AF_IUCV", 32),
    ("AF_RXRPC", 33),
    ("AF_ISDN", 34),
    ("AF_PHONET", 35),
    ("AF_IEEE802154", 36),
    ("AF_CAIF", 37),
    ("AF_ALG", 38),
    ("AF_NFC", 39),
    ("AF_VSOCK", 40),
    ("AF_KCM", 41),
    ("AF_QIPCRTR", 42),
    ("AF_SMC", 43),
    ("AF_XDP", 44),
    ("AF_MCTP", 45),
    // Socket types.
    ("SOCK_STREAM", 1),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("SOCK_RDM", 4),
    ("SOCK_SEQPACKET", 5),
    ("SOCK_PACKET", 10),
    ("SOCK_NONBLOCK", 0o4000),
    ("SOCK_CLOEXEC", 0o2000000),
    // Netlink protocols.
    ("NETLINK_ROUTE", 0),
    ("NETLINK_AUDIT", 9),
    // clone / unshare flags.
    ("CSIGNAL", 0xff),
    ("CLONE_NEWTIME", 0x80),
    ("CLONE_VM", 0x100),
    ("CLONE_FS", 0x200),
    ("CLONE_FILES", 0x400),
    ("CLONE_SIGHAND", 0x800),
    ("CLONE_PIDFD", 0x1000),
    ("CLONE_PTRACE", 0x2000),
    ("CLONE_VFORK", 0x4000),
    ("CLONE_PARENT", 0x8000),
    ("CLONE_THREAD", 0x10000),
    ("CLONE_NEWNS", 0x20000),
    ("CLONE_SYSVSEM", 0x40000),
    ("CLONE_SETTLS", 0x80000),
    ("CLONE_PARENT_SETTID", 0x100000),
    ("CLONE_CHILD_CLEARTID", 0x200000),
    ("CLONE_DETACHED", 0x400000),
    ("CLONE_UNTRACED", 0x800000),
    ("CLONE_CHILD_SETTID", 0x1000000),
    ("CLONE_NEWCGROUP", 0x2000000),
    ("CLONE_NEWUTS", 0x4000000),
    ("CLONE_NEWIPC", 0x8000000),
    ("CLONE_NEWUSER", 0x10000000),
    ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWNET", 0x40000000),
    ("CLONE_IO", 0x80000000),
    // personality(2).
    ("PER_LINUX", 0),
    ("PER_LINUX32", 0x8),
    ("UNAME26", 0x20000),
    ("ADDR_NO_RANDOMIZE", 0x40000),
    ("FDPIC_FUNCPTRS", 0x80000),
    ("MMAP_PAGE_ZERO", 0x100000),
    ("ADDR_COMPAT_LAYOUT", 0x200000),
    ("READ_IMPLIES_EXEC", 0x400000),
    ("ADDR_LIMIT_32BIT", 0x800000),
    ("SHORT_INODE", 0x1000000),
    ("WHOLE_SECONDS", 0x2000000),
    ("STICKY_TIMEOUTS", 0x4000000),
    ("ADDR_LIMIT_3GB", 0x8000000),
    ("PER_QUERY", 0xffffffff),
    // Common ioctl requests (same numbers on x86_64 and aarch64).
    ("TCGETS", 0x5401),
    ("TCSETS", 0x5402),
    ("TCSETSW", 0x5403),
    ("TCSETSF", 0x5404),
    ("TCGETA", 0x5405),
    ("TCSETA", 0x5406),
    ("TCSBRK", 0x5409),
    ("TCXONC", 0x540a),
    ("TCFLSH", 0x540b),
    ("TIOCEXCL", 0x540c),
    ("TIOCNXCL", 0x540d),
    ("TIOCSCTTY", 0x540e),
    ("TIOCGPGRP", 0x540f),
    ("TIOCSPGRP", 0x5410),
    ("TIOCOUTQ", 0x5411),
    ("TIOCSTI", 0x5412),
    ("TIOCGWINSZ", 0x5413),
    ("TIOCSWINSZ", 0x5414),
    ("TIOCMGET", 0x5415),
    ("FIONREAD", 0x541b),
    ("TIOCINQ", 0x541b),
    ("TIOCLINUX", 0x541c),
    ("TIOCCONS", 0x541d),
    ("FIONBIO", 0x5421),
    ("TIOCNOTTY", 0x5422),
    ("TIOCSETD", 0x5423),
    ("TIOCGETD", 0x5424),
    ("TIOCGSID", 0x5429),
    ("TIOCGPTPEER", 0x5441),
    ("FIONCLEX", 0x5450),
    ("FIOCLEX", 0x5451),
    ("FIOASYNC", 0x5452),
    ("TIOCGPTN", 0x80045430),
    ("TIOCSPTLCK", 0x40045431),
    ("TIOCGPTLCK", 0x80045439),
    ("FS_IOC_GETFLAGS", 0x80086601),
    ("FS_IOC_SETFLAGS", 0x40086602),
    ("FICLONE", 0x40049409),
    ("SIOCGIFCONF", 0x8912),
    ("SIOCGIFFLAGS", 0x8913),
    ("SIOCGIFADDR", 0x8915),
    ("SIOCGIFMTU", 0x8921),
    ("SIOCGIFHWADDR", 0x8927),
    ("SIOCGIFINDEX", 0x8933),
    // open(2) flags that are the same on both architectures.
    ("O_RDONLY", 0),
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_ACCMODE", 0o3),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_DSYNC", 0o10000),
    ("O_ASYNC", 0o20000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_SYNC", 0o4010000),
    ("O_PATH", 0o10000000),
    // The bit that makes O_TMPFILE (which also includes O_DIRECTORY) create a file.
    ("__O_TMPFILE", 0o20000000),
    // File type and set-id mode bits (chmod, open, mknod, mkdir mode arguments).
    ("S_IFMT", 0o170000),
    ("S_IFSOCK", 0o140000),
    ("S_IFLNK", 0o120000),
    ("S_IFREG", 0o100000),
    ("S_IFBLK", 0o60000),
    ("S_IFDIR", 0o40000),
    ("S_IFCHR", 0o20000),
    ("S_IFIFO", 0o10000),
    ("S_ISUID", 0o4000),
    ("S_ISGID", 0o2000),
    ("S_ISVTX", 0o1000),
    // prctl(2) options.
    ("PR_SET_PDEATHSIG", 1),
    ("PR_GET_DUMPABLE", 3),
    ("PR_SET_DUMPABLE", 4),
    ("PR_SET_NAME", 15),
    ("PR_GET_NAME", 16),
    ("PR_GET_SECCOMP", 21),
    ("PR_SET_SECCOMP", 22),
    ("PR_CAPBSET_READ", 23),
    ("PR_SET_CHILD_SUBREAPER", 36),
    ("PR_SET_NO_NEW_PRIVS", 38),
    ("PR_GET_NO_NEW_PRIVS", 39),
];

const X86_64_ONLY: &[(&str, u64)] = &[
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_TMPFILE", 0o20200000),
];

const AARCH64_ONLY: &[(&str, u64)] = &[
    ("O_DIRECTORY", 0o40000),
    ("O_NOFOLLOW", 0o100000),
    ("O_DIRECT", 0o200000),
    ("O_LARGEFILE", 0o400000),
    ("O_TMPFILE", 0o20040000),
];

/// errno names accepted in `errno:NAME` actions (identical on both architectures).
const ERRNOS: &[(&str, u32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOTTY", 25),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EPIPE", 32),
    ("ENOSYS", 38),
    ("EPROTONOSUPPORT", 93),
    ("EOPNOTSUPP", 95),
    ("EAFNOSUPPORT", 97),
];

/// The value of a named constant on `arch`.
pub fn constant(name: &str, arch: Arch) -> Option<u64> {
    let specific = match arch {
        Arch::X86_64 => X86_64_ONLY,
        Arch::Aarch64 => AARCH64_ONLY,
    };
    specific
        .iter()
        .chain(COMMON)
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// errno number for a name like `EPERM`, or a plain decimal number.
pub fn errno(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return (n > 0 && n < 4096).then_some(n);
    }
    ERRNOS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of an errno number, when it has one in the table.
pub fn errno_name(n: u32) -> Option<&'static str> {
    ERRNOS.iter().find(|(_, v)| *v == n).map(|(name, _)| *name)
}

fn number(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = s.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else {
        s.parse().ok()
    }
}

/// Evaluate an expression like `CLONE_NEWUSER|CLONE_NEWNS|0x10` on `arch`.
/// Errors name the first part that is neither a number nor a known constant.
pub fn eval(expr: &str, arch: Arch) -> Result<u64, String> {
    let mut acc = 0u64;
    for part in expr.split('|') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty term in {expr:?}"));
        }
        let v = number(part)
            .or_else(|| constant(part, arch))
            .ok_or_else(|| format!("unknown constant {part:?}"))?;
        acc |= v;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_arch_flags() {
        assert_eq!(
            eval("O_DIRECTORY", Arch::X86_64),
            Ok(libc_o_directory_x86())
        );
        assert_eq!(eval("O_DIRECTORY", Arch::Aarch64), Ok(0o40000));
        assert_eq!(
            eval("CLONE_NEWUSER|CLONE_NEWNS | 0x1", Arch::X86_64),
            Ok(0x10020001)
        );
        assert_eq!(eval("AF_PACKET", Arch::Aarch64), Ok(17));
        assert!(eval("AF_NOPE", Arch::X86_64)
            .unwrap_err()
            .contains("AF_NOPE"));
        assert!(eval("A||B", Arch::X86_64).is_err());
        assert_eq!(errno("ENOSYS"), Some(38));
        assert_eq!(errno("0"), None);
        assert_eq!(errno_name(1), Some("EPERM"));
    }

    fn libc_o_directory_x86() -> u64 {
        if cfg!(target_arch = "x86_64") {
            libc::O_DIRECTORY as u64
        } else {
            0o200000
        }
    }

    #[test]
    fn constants_match_libc_on_native() {
        let n = crate::Arch::native();
        for (name, v) in [
            ("AF_PACKET", libc::AF_PACKET as u64),
            ("AF_NETLINK", libc::AF_NETLINK as u64),
            ("AF_INET6", libc::AF_INET6 as u64),
            ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
            ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
            ("CLONE_NEWTIME", libc::CLONE_NEWTIME as u64),
            ("O_NOFOLLOW", libc::O_NOFOLLOW as u64),
            ("O_PATH", libc::O_PATH as u64),
            ("O_CLOEXEC", libc::O_CLOEXEC as u64),
            ("TIOCGWINSZ", libc::TIOCGWINSZ),
            ("FIONREAD", libc::FIONREAD),
            ("TIOCSTI", libc::TIOCSTI),
            ("SOCK_CLOEXEC", libc::SOCK_CLOEXEC as u64),
            ("S_IFMT", libc::S_IFMT as u64),
            ("S_IFCHR", libc::S_IFCHR as u64),
            ("S_IFBLK", libc::S_IFBLK as u64),
            ("S_IFREG", libc::S_IFREG as u64),
            ("S_ISUID", libc::S_ISUID as u64),
            ("S_ISGID", libc::S_ISGID as u64),
        ] {
            assert_eq!(constant(name, n), Some(v), "{name}");
        }
    }
}
