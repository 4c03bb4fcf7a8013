//! Filesystem: read-only rootfs, writable volumes, links and symlinks that
//! point out of the container.

use crate::report::{errno_name, Outcome, Verdict};
use crate::sys::{self, cs};
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

fn volume(o: &mut Outcome, c: &Ctx) -> Option<String> {
    let v = c.volume.clone()?;
    o.rec_io(&format!("stat {v}"), &std::fs::metadata(&v));
    Some(v)
}

pub fn volume_canary_write(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-canary-write",
        "open(VOLUME/canary (owned by host uid 0, mode 0644), O_WRONLY|O_APPEND) + write",
    );
    let Some(v) = volume(&mut o, c) else {
        return o.na("runner did not pass --volume");
    };
    let p = format!("{v}/canary");
    let fd = sys::open(&p, libc::O_WRONLY | libc::O_APPEND);
    if o.rec("open canary O_WRONLY", fd).errno.is_some() {
        return o.by_last("", Verdict::NotApplicable);
    }
    let w = sys::write_all(fd as i32, b"ward-probe was here\n");
    o.rec("write canary", w);
    sys::close(fd);
    if w > 0 {
        return o.escaped("modified a host-root-owned file through the volume");
    }
    o.by_last("", Verdict::NotApplicable)
}

pub fn volume_hardlink(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-hardlink",
        "link(VOLUME/canary -> VOLUME/hl) and link(/bin/busybox -> VOLUME/hl2)",
    );
    let Some(v) = volume(&mut o, c) else {
        return o.na("runner did not pass --volume");
    };
    let mut made = Vec::new();
    for (src, dst) in [
        (format!("{v}/canary"), format!("{v}/ward-probe-hl")),
        ("/bin/busybox".to_string(), format!("{v}/ward-probe-hl2")),
    ] {
        let (s, d) = (cs(&src), cs(&dst));
        // SAFETY: both strings are NUL-terminated; the link is removed below.
        let r = unsafe { libc::link(s.as_ptr(), d.as_ptr()) } as i64;
        if o.rec(&format!("link {src} {dst}"), r).errno.is_none() {
            made.push(src.clone());
            let _ = std::fs::remove_file(&dst);
        }
    }
    if !made.is_empty() {
        return o.escaped(format!(
            "hard links to host-root-owned files created: {made:?}"
        ));
    }
    let errs: Vec<String> = o
        .results
        .iter()
        .skip(1)
        .filter_map(|c| c.errno)
        .map(errno_name)
        .collect();
    o.blocked(format!("no hard link created ({})", errs.join(",")))
}

pub fn volume_symlink(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-symlink",
        "symlink(\"/\", VOLUME/root) then open VOLUME/root/HOSTDIR/canary.txt",
    );
    let Some(v) = volume(&mut o, c) else {
        return o.na("runner did not pass --volume");
    };
    let link = format!("{v}/ward-probe-sym");
    let _ = std::fs::remove_file(&link);
    let (t, l) = (cs("/"), cs(&link));
    // SAFETY: both strings NUL-terminated.
    let r = unsafe { libc::symlink(t.as_ptr(), l.as_ptr()) } as i64;
    if o.rec("symlink / -> VOLUME/ward-probe-sym", r)
        .errno
        .is_some()
    {
        return o.by_last("", Verdict::NotApplicable);
    }
    let hd = c.host_dir.clone().unwrap_or_else(|| "/nonexistent".into());
    let target = format!("{link}{hd}/canary.txt");
    let got = std::fs::read_to_string(&target);
    o.rec_io(&format!("open {target}"), &got);
    let _ = std::fs::remove_file(&link);
    match got {
        Ok(s) if s.contains("ward-host-canary") => o.escaped("read a host canary through a symlink in the volume"),
        _ => o.blocked(
            "the symlink resolves inside the container's root; host canary not reachable (the runner also \
             checks that nothing on the host followed it)",
        ),
    }
}

/// The runner plants /ward-evil -> HOSTDIR and asks for a tmpfs mount on
/// /ward-evil/mnt. A runtime that follows the symlink on the host mounts over
/// HOSTDIR/mnt on the host (CVE-2021-30465 class); a safe one mounts inside
/// the rootfs.
pub fn symlink_mount_target(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "symlink-mount-target",
        "config mount on /ward-evil/mnt where /ward-evil -> HOSTDIR (planted by the runner)",
    );
    let Some(hd) = c.host_dir.clone() else {
        return o.na("runner did not pass --host-dir");
    };
    let mi = std::fs::read_to_string("/proc/self/mountinfo");
    o.rec_io("read mountinfo", &mi);
    let want = format!("{hd}/mnt");
    let found = mi
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()));
    let st = sys::stat("/ward-evil");
    o.rec("stat /ward-evil", if st.is_some() { 0 } else { -1 });
    if found {
        o.blocked(format!(
            "the mount landed at {want} inside the container root (symlink resolved in the rootfs)"
        ))
    } else {
        o.na(
            "no mount at the symlinked target inside the container (runtime refused or skipped it)",
        )
    }
}
