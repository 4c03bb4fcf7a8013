//! Volumes: a read-write volume is the container's to write, so what matters
//! is what it can do *through* it to the host: plant set-id files or device
//! nodes (container root writes as host root through an idmapped mount),
//! link to host files outside the volume, or write into a volume given
//! read-only. The runner checks each from the host side as well.

use crate::report::{errno_name, Outcome, Verdict};
use crate::sys::{self, cs};
use crate::Ctx;

fn dir(o: &mut Outcome, v: &Option<String>) -> Option<String> {
    let v = v.clone()?;
    o.rec_io(&format!("stat {v}"), &std::fs::metadata(&v));
    Some(v)
}

fn errnos(o: &Outcome, skip: usize) -> String {
    let e: Vec<String> = o
        .results
        .iter()
        .skip(skip)
        .filter_map(|c| c.errno)
        .map(errno_name)
        .collect();
    e.join(",")
}

/// Write, create, chmod and link in the read-only volume, whose canary is
/// owned by host uid 0. Every step must fail (EROFS); the runner compares
/// the canary's hash, mode and link count.
pub fn ro_volume_write(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "ro-volume-write",
        "in the read-only volume: open(canary, O_WRONLY|O_APPEND)+write, creat, chmod, link, rename",
    );
    let Some(v) = dir(&mut o, &c.ro_volume) else {
        return o.na("runner did not pass --ro-volume");
    };
    let canary = format!("{v}/canary");
    let mut done = Vec::new();
    let fd = sys::open(&canary, libc::O_WRONLY | libc::O_APPEND);
    if o.rec("open canary O_WRONLY|O_APPEND", fd).errno.is_none() {
        let w = sys::write_all(fd as i32, b"ward-probe was here\n");
        if o.rec("write canary", w).errno.is_none() && w > 0 {
            done.push("wrote the host-root-owned canary");
        }
        sys::close(fd);
    }
    let nf = format!("{v}/ward-probe-new");
    let fd = sys::open(&nf, libc::O_CREAT | libc::O_WRONLY);
    if o.rec("creat VOLUME/ward-probe-new", fd).errno.is_none() {
        sys::close(fd);
        let _ = std::fs::remove_file(&nf);
        done.push("created a file");
    }
    let cc = cs(&canary);
    // SAFETY: NUL-terminated path; the mode is a plain integer.
    let r = unsafe { libc::chmod(cc.as_ptr(), 0o666) } as i64;
    if o.rec("chmod canary 0666", r).errno.is_none() {
        done.push("changed the canary's mode");
    }
    let hl = cs(&format!("{v}/ward-probe-hl"));
    // SAFETY: both paths NUL-terminated.
    let r = unsafe { libc::link(cc.as_ptr(), hl.as_ptr()) } as i64;
    if o.rec("link canary VOLUME/ward-probe-hl", r).errno.is_none() {
        done.push("hard-linked the canary");
    }
    let mv = cs(&format!("{v}/canary-moved"));
    // SAFETY: both paths NUL-terminated.
    let r = unsafe { libc::rename(cc.as_ptr(), mv.as_ptr()) } as i64;
    if o.rec("rename canary", r).errno.is_none() {
        // SAFETY: as above, undoing the rename.
        unsafe { libc::rename(mv.as_ptr(), cc.as_ptr()) };
        done.push("renamed the canary");
    }
    if !done.is_empty() {
        return o.escaped(format!(
            "the read-only volume was modified: {}",
            done.join(", ")
        ));
    }
    let e = errnos(&o, 1);
    if o.results
        .iter()
        .skip(1)
        .all(|c| c.errno == Some(libc::EROFS))
    {
        o.blocked(format!("every change failed with EROFS ({e})"))
    } else if o
        .results
        .iter()
        .skip(1)
        .any(|c| c.errno.is_some_and(crate::report::is_defence))
    {
        o.blocked(format!("every change failed ({e})"))
    } else {
        o.na(format!("changes failed with unexpected errnos ({e})"))
    }
}

/// Try every way to leave a set-id file or a device node in the read-write
/// volume. The kernel lets a file's owner set S_ISUID on it without any
/// capability, and container root owns what it creates there.
pub fn volume_setuid_plant(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-setuid-plant",
        "in the rw volume: chmod/fchmod/fchmodat 04755|02755, open/creat/mkdir/mknod with set-id modes, mknod c 1:3 and b 7:0",
    );
    let Some(v) = dir(&mut o, &c.volume) else {
        return o.na("runner did not pass --volume");
    };
    let f = format!("{v}/ward-plant");
    let fd = sys::open(&f, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC);
    if o.rec("create VOLUME/ward-plant 0600", fd).errno.is_some() {
        return o.by_last("the rw volume is not writable", Verdict::NotApplicable);
    }
    let fc = cs(&f);
    let mut tries: Vec<(String, i64)> = Vec::new();
    // SAFETY: every call below gets NUL-terminated paths that outlive it and
    // plain integer modes and flags; created files are removed by the runner.
    unsafe {
        tries.push((
            "chmod 04755".into(),
            libc::chmod(fc.as_ptr(), 0o4755) as i64,
        ));
        tries.push((
            "fchmod 02755".into(),
            libc::fchmod(fd as i32, 0o2755) as i64,
        ));
        tries.push((
            "fchmodat 06755".into(),
            libc::fchmodat(libc::AT_FDCWD, fc.as_ptr(), 0o6755, 0) as i64,
        ));
        let p = cs(&format!("{v}/ward-open-suid"));
        let r = libc::open(
            p.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o4755,
        );
        tries.push(("open O_CREAT 04755".into(), r as i64));
        sys::close(r as i64);
        let p = cs(&format!("{v}/ward-openat-sgid"));
        let r = libc::openat(
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o2755,
        );
        tries.push(("openat O_CREAT 02755".into(), r as i64));
        sys::close(r as i64);
        let p = cs(&format!("{v}/ward-creat-suid"));
        let r = libc::creat(p.as_ptr(), 0o4755);
        tries.push(("creat 04755".into(), r as i64));
        sys::close(r as i64);
        let p = cs(&format!("{v}/ward-mkdir-sgid"));
        tries.push(("mkdir 02755".into(), libc::mkdir(p.as_ptr(), 0o2755) as i64));
        let p = cs(&format!("{v}/ward-mknod-suid"));
        tries.push((
            "mknod S_IFREG|04755".into(),
            libc::mknod(p.as_ptr(), libc::S_IFREG | 0o4755, 0) as i64,
        ));
        let p = cs(&format!("{v}/ward-null"));
        tries.push((
            "mknod c 1:3".into(),
            libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) as i64,
        ));
        let p = cs(&format!("{v}/ward-loop0"));
        tries.push((
            "mknod b 7:0".into(),
            libc::mknod(p.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0)) as i64,
        ));
    }
    sys::close(fd);
    for (what, r) in &tries {
        o.rec(what, *r);
    }
    // What is actually there now, seen from inside (the runner looks from the host).
    let mut planted = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&v) {
        for e in rd.flatten() {
            let p = e.path().to_string_lossy().into_owned();
            if let Some(st) = sys::lstat(&p) {
                let fmt = st.st_mode & libc::S_IFMT;
                if st.st_mode & 0o6000 != 0 || fmt == libc::S_IFCHR || fmt == libc::S_IFBLK {
                    planted.push(format!("{p} mode {:o}", st.st_mode));
                }
            }
        }
    }
    if !planted.is_empty() {
        return o.escaped(format!(
            "set-id file or device node left in the rw volume (owned by host root through the idmap): {planted:?}"
        ));
    }
    let e = errnos(&o, 2);
    if o.results.iter().skip(2).any(|c| c.errno.is_none()) {
        // A call succeeded but the bits did not stick (the kernel strips S_ISGID
        // for a non-member, mkdir ignores S_ISUID): nothing planted.
        return o.blocked(format!(
            "no set-id file or device left in the volume (some calls succeeded without the bits sticking; errnos: {e})"
        ));
    }
    o.blocked(format!("every attempt was refused ({e})"))
}

/// Hard links from the rw volume to files outside it: the read-only volume's
/// host-root canary, a rootfs binary, the canary through an fd
/// (AT_EMPTY_PATH) and through /proc/self/fd, and any inherited directory fd.
pub fn volume_hardlink_out(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-hardlink-out",
        "link() into the rw volume from the ro volume's canary, /bin/busybox, an O_PATH fd (AT_EMPTY_PATH, /proc/self/fd/N) and inherited fds",
    );
    let Some(v) = dir(&mut o, &c.volume) else {
        return o.na("runner did not pass --volume");
    };
    let mut made = Vec::new();
    let mut n = 0;
    let mut try_link = |o: &mut Outcome, what: &str, r: i64, dst: &str| {
        if o.rec(what, r).errno.is_none() {
            made.push(what.to_string());
            let _ = std::fs::remove_file(dst);
        }
    };
    let mut srcs = vec!["/bin/busybox".to_string()];
    if let Some(ro) = &c.ro_volume {
        srcs.insert(0, format!("{ro}/canary"));
    }
    for src in &srcs {
        n += 1;
        let dst = format!("{v}/ward-hl{n}");
        let (s, d) = (cs(src), cs(&dst));
        // SAFETY: both strings are NUL-terminated.
        let r = unsafe { libc::link(s.as_ptr(), d.as_ptr()) } as i64;
        try_link(&mut o, &format!("link {src} -> {dst}"), r, &dst);
        let pfd = sys::open(src, libc::O_PATH);
        if pfd >= 0 {
            n += 1;
            let dst = format!("{v}/ward-hl{n}");
            let d = cs(&dst);
            let empty = cs("");
            // SAFETY: `pfd` is our O_PATH fd, strings NUL-terminated.
            let r = unsafe {
                libc::linkat(
                    pfd as i32,
                    empty.as_ptr(),
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            } as i64;
            try_link(
                &mut o,
                &format!("linkat(fd of {src}, AT_EMPTY_PATH)"),
                r,
                &dst,
            );
            n += 1;
            let dst = format!("{v}/ward-hl{n}");
            let d = cs(&dst);
            let via = cs(&format!("/proc/self/fd/{pfd}"));
            // SAFETY: as above.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    via.as_ptr(),
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            } as i64;
            try_link(
                &mut o,
                &format!("linkat(/proc/self/fd/N of {src}, AT_SYMLINK_FOLLOW)"),
                r,
                &dst,
            );
            sys::close(pfd);
        }
    }
    // Inherited directory fds (a careless runtime's leak): link a file from there.
    for fd in 3..64 {
        if let Some(st) = sys::fstat(fd) {
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                n += 1;
                let dst = format!("{v}/ward-hl{n}");
                let (s, d) = (cs("canary.txt"), cs(&dst));
                // SAFETY: `fd` is an open directory fd; strings NUL-terminated.
                let r =
                    unsafe { libc::linkat(fd, s.as_ptr(), libc::AT_FDCWD, d.as_ptr(), 0) } as i64;
                try_link(
                    &mut o,
                    &format!("linkat(inherited dir fd {fd}, canary.txt)"),
                    r,
                    &dst,
                );
            }
        }
    }
    if !made.is_empty() {
        return o.escaped(format!(
            "hard links to files outside the volume created: {made:?}"
        ));
    }
    let e = errnos(&o, 1);
    o.blocked(format!("no hard link out of the volume ({e}): links never cross mounts (EXDEV), AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH"))
}

/// Symlinks in the rw volume pointing out of it, then writes through them:
/// an absolute link to the host canary dir's host path, a relative one
/// climbing far above the volume, and one to the volume's host parent's
/// `outside.txt`. Inside the container they resolve in its own root; the
/// runner checks that no host file outside the volume changed.
pub fn volume_symlink_out(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "volume-symlink-out",
        "symlinks VOLUME/{abs,rel,up} -> HOSTDIR, ../../../..HOSTDIR, ../outside.txt; open O_WRONLY|O_APPEND / O_CREAT through them",
    );
    let Some(v) = dir(&mut o, &c.volume) else {
        return o.na("runner did not pass --volume");
    };
    let hd = c.host_dir.clone().unwrap_or_else(|| "/nonexistent".into());
    let up = "../".repeat(24);
    let links = [
        ("abs", hd.clone()),
        ("rel", format!("{up}{}", hd.trim_start_matches('/'))),
        ("up", "../outside.txt".to_string()),
    ];
    let mut wrote = Vec::new();
    for (name, target) in &links {
        let l = format!("{v}/ward-sym-{name}");
        let _ = std::fs::remove_file(&l);
        let (t, lc) = (cs(target), cs(&l));
        // SAFETY: both strings NUL-terminated.
        let r = unsafe { libc::symlink(t.as_ptr(), lc.as_ptr()) } as i64;
        if o.rec(&format!("symlink {target} -> {l}"), r)
            .errno
            .is_some()
        {
            continue;
        }
        let paths = if *name == "up" {
            vec![l.clone()]
        } else {
            vec![
                format!("{l}/canary.txt"),
                format!("{l}/escaped-volume-symlink"),
            ]
        };
        for p in paths {
            let flags = if p.ends_with("canary.txt") || *name == "up" {
                libc::O_WRONLY | libc::O_APPEND
            } else {
                libc::O_WRONLY | libc::O_CREAT
            };
            let fd = sys::open(&p, flags);
            if o.rec(&format!("open {p}"), fd).errno.is_none() {
                let w = sys::write_all(fd as i32, b"ward-probe was here\n");
                sys::close(fd);
                if w > 0 {
                    wrote.push(p);
                }
            }
        }
    }
    if !wrote.is_empty() {
        // Inside the container's own root these are its own files (e.g. a
        // /tmp of the same name): the runner decides whether the host changed.
        return o.blocked(format!(
            "wrote through {wrote:?}, which resolved inside the container (the runner checks the host files)"
        ));
    }
    let e = errnos(&o, 1);
    o.blocked(format!(
        "the symlinks resolve inside the container's root; nothing outside reachable ({e})"
    ))
}
