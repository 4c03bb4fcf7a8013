//! Learn mode: what the supervisor records of each notified call (syscall, arguments,
//! best-effort paths) for `draft_from_recording`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::BorrowedFd;

use serde::{Deserialize, Serialize};
use ward_profiles::Arch;

use crate::sys::notify as sn;

/// Syscalls whose arguments learn mode keeps (the draft writes argument rules for them).
const ARG_FILTERED: &[&str] = &["clone", "socket", "ioctl", "personality", "prctl"];
const MAX_ARG_SETS: usize = 256;
const MAX_PATHS: usize = 10_000;

/// What learn mode saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recording {
    pub arch: String,
    /// Notifications handled.
    pub calls: u64,
    /// Syscall name → argument vectors seen (all distinct ones, up to 256, for the
    /// argument-filtered calls; the first one otherwise).
    pub syscalls: BTreeMap<String, Vec<[u64; 6]>>,
    /// Absolute paths opened for writing, created, removed or renamed.
    pub written: BTreeSet<String>,
    /// Absolute paths opened read-only, stat'ed or checked.
    pub read: BTreeSet<String>,
    /// Programs executed.
    pub exec: BTreeSet<String>,
    /// Path arguments that could not be used (relative, unreadable, or the notification
    /// went away while reading).
    pub paths_skipped: u64,
}

impl Recording {
    /// Record one notified call; `listener` re-validates the notification after reading
    /// the caller's memory.
    pub(crate) fn observe(&mut self, arch: Arch, listener: BorrowedFd<'_>, n: &sn::Notif) {
        self.calls += 1;
        let nr = n.data.nr as u32;
        let args = n.data.args;
        let Some(name) = arch.syscall_name(nr) else {
            return;
        };
        let seen = self.syscalls.entry(name.to_string()).or_default();
        if ARG_FILTERED.contains(&name) {
            if seen.len() < MAX_ARG_SETS && !seen.contains(&args) {
                seen.push(args);
            }
        } else if seen.is_empty() {
            seen.push(args);
        }
        let Some((idx, how)) = path_arg(name) else {
            return;
        };
        // Best effort, and racy by nature: another thread of the caller may change the
        // string after we read it (TOCTOU). The kernel reads it again itself when the call
        // continues, so a recorded path is a hint for a draft, never a security decision.
        let path = read_cstr(n.pid, args[idx]);
        let how = match how {
            PathUse::Open(flags) => {
                if is_write_open(args[flags]) {
                    PathUse::Write
                } else {
                    PathUse::Read
                }
            }
            PathUse::OpenHow => {
                let mut b = [0u8; 8];
                match sn::read_mem(n.pid, args[2], &mut b) {
                    Ok(8) if is_write_open(u64::from_ne_bytes(b)) => PathUse::Write,
                    _ => PathUse::Read,
                }
            }
            other => other,
        };
        // The memory we read belonged to the caller only if its call is still pending.
        let valid = sn::notif_id_valid(listener, n.id);
        match path {
            Some(p) if valid && p.starts_with('/') => {
                let set = match how {
                    PathUse::Write => &mut self.written,
                    PathUse::Exec => &mut self.exec,
                    _ => &mut self.read,
                };
                if set.len() < MAX_PATHS {
                    set.insert(p);
                }
            }
            _ => self.paths_skipped += 1,
        }
    }
}

/// Which argument of a path-taking syscall is the path, and how it uses it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathUse {
    Read,
    Write,
    Exec,
    /// open-like: flags in argument `.1` decide read or write.
    Open(usize),
    /// openat2: `struct open_how` at argument 2, flags first.
    OpenHow,
}

fn path_arg(name: &str) -> Option<(usize, PathUse)> {
    use PathUse::*;
    Some(match name {
        "execve" => (0, Exec),
        "execveat" => (1, Exec),
        "open" => (0, Open(1)),
        "openat" => (1, Open(2)),
        "openat2" => (1, OpenHow),
        "creat" | "mkdir" | "rmdir" | "unlink" | "truncate" | "chmod" | "chown" | "lchown"
        | "mknod" => (0, Write),
        "mkdirat" | "unlinkat" | "fchmodat" | "fchownat" | "mknodat" | "renameat" | "renameat2"
        | "link" | "symlink" => (1, Write),
        "rename" => (1, Write),
        "linkat" => (3, Write),
        "symlinkat" => (2, Write),
        "stat" | "lstat" | "access" | "readlink" | "chdir" | "statfs" => (0, Read),
        "newfstatat" | "statx" | "faccessat" | "faccessat2" | "readlinkat" => (1, Read),
        _ => return None,
    })
}

fn is_write_open(flags: u64) -> bool {
    let f = flags as i32;
    (f & libc::O_ACCMODE) != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0
}

/// Read a NUL-terminated string from `pid`'s memory (at most 4096 bytes).
fn read_cstr(pid: u32, addr: u64) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut off = 0u64;
    while out.len() < 4096 {
        // Stay within the page: a read across into an unmapped page fails as a whole.
        let page_left = 4096 - ((addr + off) % 4096) as usize;
        let mut buf = vec![0u8; page_left.min(256)];
        let n = sn::read_mem(pid, addr + off, &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..i]);
            return String::from_utf8(out).ok();
        }
        out.extend_from_slice(&buf[..n]);
        off += n as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_decide_write() {
        assert!(!is_write_open(libc::O_RDONLY as u64));
        assert!(!is_write_open((libc::O_RDONLY | libc::O_CLOEXEC) as u64));
        assert!(is_write_open(libc::O_WRONLY as u64));
        assert!(is_write_open(libc::O_RDWR as u64));
        assert!(is_write_open((libc::O_RDONLY | libc::O_CREAT) as u64));
    }
}
