//! Helpers for real-container tests of the `ward` CLI.
//!
//! - [`Bundle`]: a busybox OCI bundle in a temp dir (runc's default spec, `terminal: false`).
//! - [`Ward`]: runs the `ward` binary with a private `--root` per test; on drop it force-deletes
//!   whatever the test left behind, so a failing test does not leave containers running.
//! - [`leaks`]: what a container may leave behind (state dirs, uid ranges, mounts, cgroups,
//!   processes), checked from the host.
//! - [`probe`]: shell probes run inside a container, parsed from its stdout.
//! - [`table`]: tables of refusals (one line, exit 1, nothing left behind).
//! - [`image`]: a registry-free OCI image layout tarball for podman.
//!
//! Tests need root. Without it each test prints `SKIP: needs root` to stderr and returns
//! (see [`require_root!`]).

pub mod bundle;
pub mod image;
pub mod leaks;
pub mod probe;
pub mod table;
pub mod ward;

pub use bundle::Bundle;
pub use leaks::{assert_no_leftovers, assert_root_clean, leftovers};
pub use probe::{probe_script, Probes};
pub use ward::{Out, Ward};

use std::sync::atomic::{AtomicU32, Ordering};

/// True when the test process runs as host root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Return early from a test (printing a visible `SKIP:` line) when not root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!(
                "SKIP: needs root ({} at {}:{})",
                module_path!(),
                file!(),
                line!()
            );
            return;
        }
    };
}

/// A container id unique on this machine for this run: `<prefix>-<pid>-<n>-<nanos>`.
/// Other test binaries and other people's tests share the host's cgroup tree, so ids must
/// not collide across processes either.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Remove ANSI colour sequences (`ESC [ ... letter`) from text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Poll `f` every 50 ms until it returns true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The host uid owning the user namespace of `pid` (ioctl NS_GET_OWNER_UID on
/// `/proc/<pid>/ns/user`): the uid the kernel charges that namespace's per-user counts to.
pub fn userns_owner_uid(pid: i32) -> u32 {
    use std::os::fd::AsRawFd;
    const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;
    let path = format!("/proc/{pid}/ns/user");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut uid: libc::uid_t = u32::MAX;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t into `uid`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_OWNER_UID, &mut uid) };
    assert_eq!(
        r,
        0,
        "NS_GET_OWNER_UID {path}: {}",
        std::io::Error::last_os_error()
    );
    uid
}

/// The host uid container uid 0 of `pid` maps to (first line of /proc/<pid>/uid_map).
pub fn range_base(pid: i32) -> u32 {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let f: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"0"), "uid_map of {pid}: {map}");
    f[1].parse().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ansi() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m x"),
            "2026 ERROR x"
        );
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let a = unique_id("t");
        let b = unique_id("t");
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
