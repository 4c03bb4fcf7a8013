//! Filesystem: the read-only rootfs (volumes are in `volumes.rs`, symlinked
//! mount targets in `links.rs`).

use crate::report::{errno_name, Outcome};
use crate::sys;
use crate::Ctx;

pub fn rootfs_write(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "rootfs-write",
        "open(O_CREAT|O_WRONLY) of /ward-probe-write, /bin/ward-probe-write, /etc/ward-probe-write",
    );
    let mut wrote = Vec::new();
    for p in [
        "/ward-probe-write",
        "/bin/ward-probe-write",
        "/etc/ward-probe-write",
    ] {
        let fd = sys::open(p, libc::O_CREAT | libc::O_WRONLY);
        if o.rec(&format!("open {p}"), fd).errno.is_none() {
            wrote.push(p);
            sys::close(fd);
            let _ = std::fs::remove_file(p);
        }
    }
    if !wrote.is_empty() {
        return o.escaped(format!("rootfs is writable: {wrote:?}"));
    }
    let e = o.results.last().and_then(|c| c.errno).unwrap_or(0);
    o.blocked(format!("rootfs refused writes ({})", errno_name(e)))
}
