//! Symlink and rename races on mount targets (CVE-2021-30465, CVE-2019-19921,
//! CVE-2025-31133 class). The runner prepares the trap (a symlink in the
//! rootfs or in a shared volume pointing at a host directory, or a rootfs
//! whose /proc or /dev is such a symlink, or a second container flipping a
//! symlink while this one is created) and asks for a mount there. A safe
//! runtime resolves the target inside the rootfs or refuses the config; an
//! unsafe one mounts over the host path in the container's mount namespace
//! before pivot_root, so the mount vanishes with the old root and is missing
//! inside. The probe reports where the mount landed; the runner checks the
//! host directory and the host mount table.

use crate::report::Outcome;
use crate::Ctx;

/// tmpfs mounts the runner asks for carry this unusual size, so the probe can
/// find them in mountinfo wherever they landed (a whole number of 4 KiB
/// pages: the kernel rounds the size up and shows the rounded value).
pub const TMPFS_MARKER: &str = "size=1232k";
/// Bind mounts the runner asks for come from the host dir `<work>/vols/src`:
/// mountinfo shows that path as the mount's root wherever it landed.
const BIND_SOURCE_TAIL: &str = "/vols/src";

/// (mount point, fs type, super options, root within its fs) of every mount.
fn mounts() -> Vec<(String, String, String, String)> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let (root, mp) = (f.get(3)?.to_string(), f.get(4)?.to_string());
            let mut p = post.split(' ');
            let fstype = p.next()?.to_string();
            let _src = p.next();
            Some((mp, fstype, p.next().unwrap_or("").to_string(), root))
        })
        .collect()
}

const NO_RUNTIME: &str =
    "tests a runtime's handling of a config mount; the host column has no runtime";

/// The marked tmpfs the runner asked for at `want` (a path that crosses a
/// symlink pointing outside the rootfs).
fn tmpfs_placement(mut o: Outcome, c: &Ctx, want: &str) -> Outcome {
    if c.host_mode {
        return o.na(NO_RUNTIME);
    }
    let ms = mounts();
    o.rec(
        "read /proc/self/mountinfo",
        if ms.is_empty() { -1 } else { 0 },
    );
    let found: Vec<&String> = ms
        .iter()
        .filter(|(_, t, opts, _)| t == "tmpfs" && opts.split(',').any(|x| x == TMPFS_MARKER))
        .map(|(mp, _, _, _)| mp)
        .collect();
    match found.first() {
        Some(mp) => o.blocked(format!(
            "the mount for {want} landed inside the container at {mp} (the symlink was resolved within the rootfs)"
        )),
        None => o.escaped(format!(
            "the runtime started the container but the tmpfs for {want} is not in its mount table: it was mounted outside the rootfs (or silently dropped)"
        )),
    }
}

pub fn symlink_mount_target(c: &Ctx) -> Outcome {
    let o = Outcome::new(
        "symlink-mount-target",
        "config tmpfs on /ward-evil/mnt where the rootfs has /ward-evil -> HOSTDIR (absolute)",
    );
    tmpfs_placement(o, c, "/ward-evil/mnt")
}

pub fn symlink_mount_dest(c: &Ctx) -> Outcome {
    let o = Outcome::new(
        "symlink-mount-dest",
        "config tmpfs on /ward-evil-dst, itself a symlink -> HOSTDIR/target (absolute)",
    );
    tmpfs_placement(o, c, "/ward-evil-dst")
}

/// The marked bind mount the runner asked for at `want`: where does the
/// mount table say it is? (Only mountinfo is read: in the race the path to
/// `want` is being swapped with a symlink while we look.)
fn bind_placement(mut o: Outcome, c: &Ctx, want: &str) -> Outcome {
    if c.host_mode {
        return o.na(NO_RUNTIME);
    }
    let ms = mounts();
    o.rec(
        "read /proc/self/mountinfo",
        if ms.is_empty() { -1 } else { 0 },
    );
    let found: Vec<&String> = ms
        .iter()
        .filter(|(_, _, _, root)| root.ends_with(BIND_SOURCE_TAIL))
        .map(|(mp, _, _, _)| mp)
        .collect();
    match found.first() {
        Some(mp) if mp.as_str() == want => {
            o.blocked(format!("the bind mount landed inside the container at {want}"))
        }
        Some(mp) => o.blocked(format!(
            "the bind mount for {want} landed inside the container at {mp} (resolved within the rootfs)"
        )),
        None => o.escaped(format!(
            "the runtime started the container but the bind mount for {want} (root ...{BIND_SOURCE_TAIL}) is not in its mount table: it was mounted outside the rootfs (or silently dropped)"
        )),
    }
}

pub fn symlink_mount_volume(c: &Ctx) -> Outcome {
    let o = Outcome::new(
        "symlink-mount-volume",
        "config bind on VOLUME/ward-link/target where a previous container left VOLUME/ward-link -> ../../(x24)HOSTDIR",
    );
    let v = c.volume.clone().unwrap_or_else(|| "/mnt/vol".into());
    bind_placement(o, c, &format!("{v}/ward-link/target"))
}

pub fn symlink_mount_race(c: &Ctx) -> Outcome {
    let o = Outcome::new(
        "symlink-mount-race",
        "config bind on VOLUME/race/target while another container swaps VOLUME/race with a symlink -> HOSTDIR (renameat2 RENAME_EXCHANGE in a loop)",
    );
    let v = c.volume.clone().unwrap_or_else(|| "/mnt/vol".into());
    bind_placement(o, c, &format!("{v}/race/target"))
}

/// The rootfs' /proc is a symlink to a host path: procfs must still be at
/// /proc inside (resolved in the rootfs) with its masks, or the config refused.
pub fn symlink_proc_target(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "symlink-proc-target",
        "rootfs whose /proc is a symlink -> HOSTDIR: where does procfs land, are /proc/kcore and /proc/sys still masked?",
    );
    if c.host_mode {
        return o.na(NO_RUNTIME);
    }
    let ms = mounts();
    let procs: Vec<&String> = ms
        .iter()
        .filter(|(_, t, _, _)| t == "proc")
        .map(|(mp, _, _, _)| mp)
        .collect();
    o.rec(
        "find proc in mountinfo",
        if procs.is_empty() { -1 } else { 0 },
    );
    if procs.is_empty() {
        return o.escaped(
            "the runtime started the container without procfs in its mount table: it was mounted outside the rootfs",
        );
    }
    // Masks must hold wherever proc is.
    let sys_w = crate::sys::open("/proc/sys/kernel/core_pattern", libc::O_WRONLY);
    o.rec("open /proc/sys/kernel/core_pattern O_WRONLY", sys_w);
    crate::sys::close(sys_w);
    if sys_w >= 0 {
        return o
            .escaped("procfs landed in the rootfs but /proc/sys is writable (masks not applied)");
    }
    o.blocked(format!(
        "procfs landed inside the container at {:?}; /proc/sys stays read-only",
        procs
    ))
}

/// The rootfs' /dev is a symlink to a host path: the runtime's /dev tmpfs and
/// device nodes must land inside (or the config be refused).
pub fn symlink_dev_target(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "symlink-dev-target",
        "rootfs whose /dev is a symlink -> HOSTDIR: where do /dev and /dev/null land?",
    );
    if c.host_mode {
        return o.na(NO_RUNTIME);
    }
    let st = crate::sys::stat("/dev/null");
    o.rec("stat /dev/null", if st.is_some() { 0 } else { -1 });
    match st {
        Some(s) if s.st_mode & libc::S_IFMT == libc::S_IFCHR => {
            o.blocked("/dev/null is a character device inside the container (the runtime's /dev landed in the rootfs)")
        }
        Some(s) => o.escaped(format!(
            "/dev/null is not a device inside (mode {:o}): the runtime's /dev went elsewhere",
            s.st_mode
        )),
        None => o.escaped(
            "no /dev/null inside although the container started: the runtime's /dev was mounted outside the rootfs",
        ),
    }
}

/// `ward-probe race-flip DIR TARGET SECS`: run by the attacker container of
/// `symlink-mount-race`. Makes DIR/race (with race/target) and DIR/race-alt ->
/// TARGET, then swaps them with renameat2(RENAME_EXCHANGE) until SECS pass or
/// DIR/race-stop appears; writes the number of swaps to DIR/race-flips.
pub fn race_flip(args: &[String]) -> ! {
    let (Some(dir), Some(target), Some(secs)) = (
        args.first(),
        args.get(1),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: ward-probe race-flip DIR TARGET SECS");
        std::process::exit(2)
    };
    let race = format!("{dir}/race");
    let alt = format!("{dir}/race-alt");
    let _ = std::fs::create_dir_all(format!("{race}/target"));
    let _ = std::fs::remove_file(&alt);
    if let Err(e) = std::os::unix::fs::symlink(target, &alt) {
        eprintln!("race-flip: symlink {alt}: {e}");
        std::process::exit(1)
    }
    let (a, b) = (crate::sys::cs(&race), crate::sys::cs(&alt));
    let stop = format!("{dir}/race-stop");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut flips = 0u64;
    let mut err = None;
    while std::time::Instant::now() < end {
        for _ in 0..256 {
            // SAFETY: both paths NUL-terminated; RENAME_EXCHANGE swaps two existing entries.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_renameat2,
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            if r != 0 {
                err = Some(crate::sys::errno());
                break;
            }
            flips += 1;
        }
        if err.is_some() || std::path::Path::new(&stop).exists() {
            break;
        }
    }
    // Leave the real directory in place, then report.
    if std::fs::symlink_metadata(&race).is_ok_and(|m| m.file_type().is_symlink()) {
        // SAFETY: as above.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
    }
    let msg = match err {
        Some(e) => format!("{flips} error {}\n", crate::report::errno_name(e)),
        None => format!("{flips}\n"),
    };
    let _ = std::fs::write(format!("{dir}/race-flips"), msg);
    std::process::exit(if err.is_some() { 1 } else { 0 })
}
