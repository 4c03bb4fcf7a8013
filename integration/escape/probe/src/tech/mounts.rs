//! The mount family: classic mount(2) and the new mount API, plus cgroup v1
//! release_agent. Harmless variants are used where the real call would change
//! more than the container's own mount namespace: an errno other than EPERM
//! after the capability check (ENOENT, ENODEV, EINVAL) shows the capability
//! check passed.

use crate::report::{Outcome, Verdict};
use crate::sys::{self, cs};
use crate::Ctx;

const MISSING: &str = "/ward-probe-nonexistent";

/// A directory the probe may mount over inside its own mount namespace.
fn scratch_dir(c: &Ctx) -> String {
    for d in ["/tmp", "/dev/shm", "/run"] {
        let p = format!("{d}/ward-probe-mnt");
        let _ = std::fs::create_dir(&p);
        if std::path::Path::new(&p).is_dir() {
            return p;
        }
    }
    c.volume.clone().unwrap_or_else(|| "/mnt".into())
}

fn mount(src: &str, target: &str, fstype: Option<&str>, flags: libc::c_ulong, data: &str) -> i64 {
    let (s, t, d) = (cs(src), cs(target), cs(data));
    let f = fstype.map(cs);
    // SAFETY: every pointer is a NUL-terminated string alive for the call.
    unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            d.as_ptr().cast(),
        ) as i64
    }
}

fn umount(target: &str, flags: i32) -> i64 {
    let t = cs(target);
    // SAFETY: `t` is NUL-terminated.
    unsafe { libc::umount2(t.as_ptr(), flags) as i64 }
}

/// Meaning of a non-defence errno after a call that checks CAP_SYS_ADMIN first.
fn cap_passed(o: Outcome, what: &str) -> Outcome {
    match o.results.last().and_then(|c| c.errno) {
        Some(e) if !crate::report::is_defence(e) => {
            let call = o.results.last().map(|c| c.call.clone()).unwrap_or_default();
            o.escaped(format!(
                "{call} passed the CAP_SYS_ADMIN check (failed later with {}): {what}",
                crate::report::errno_name(e)
            ))
        }
        _ => o.by_last(what, Verdict::Escaped),
    }
}

pub fn mount_tmpfs(c: &Ctx) -> Outcome {
    let mut o = Outcome::new("mount-tmpfs", "mount(\"none\", DIR, \"tmpfs\")");
    let dir = scratch_dir(c);
    let r = mount("none", &dir, Some("tmpfs"), 0, "size=1m");
    if o.rec(&format!("mount tmpfs {dir}"), r).errno.is_none() {
        o.rec("umount2", umount(&dir, libc::MNT_DETACH));
        return o.escaped("a new filesystem was mounted");
    }
    o.by_last("mount", Verdict::NotApplicable)
}

pub fn mount_remount_rw(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "mount-remount-rootfs-rw",
        "mount(NULL, \"/\", NULL, MS_REMOUNT|MS_BIND, NULL) (clears a read-only root)",
    );
    let r = mount("none", "/", None, libc::MS_REMOUNT | libc::MS_BIND, "");
    o.rec("mount MS_REMOUNT|MS_BIND /", r);
    o.by_last(
        "root mount flags changed (read-only cleared)",
        Verdict::NotApplicable,
    )
}

pub fn umount2(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "umount2",
        "umount2(\"/etc\") on a non-mountpoint (EINVAL = capability present, EPERM = denied)",
    );
    o.rec("umount2 /etc", umount("/etc", 0));
    cap_passed(o, "a masked path (e.g. /proc/kcore) could be unmounted")
}

pub fn pivot_root(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "pivot-root",
        "pivot_root(MISSING, MISSING) (ENOENT = capability present)",
    );
    let p = cs(MISSING);
    // SAFETY: both pointers are NUL-terminated strings.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, p.as_ptr(), p.as_ptr()) };
    o.rec("pivot_root", r);
    cap_passed(o, "pivot_root reachable")
}

fn fsopen(o: &mut Outcome) -> i64 {
    let t = cs("tmpfs");
    // SAFETY: `t` is NUL-terminated.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), 0) };
    o.rec("fsopen(tmpfs)", fd);
    fd
}

const FSCONFIG_CMD_CREATE: u32 = 6;

pub fn fsopen_t(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("fsopen", "fsopen(\"tmpfs\", 0)");
    let fd = fsopen(&mut o);
    sys::close(fd);
    o.by_last(
        "filesystem context created (CAP_SYS_ADMIN)",
        Verdict::NotApplicable,
    )
}

pub fn fsconfig(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("fsconfig", "fsopen(tmpfs) + fsconfig(FSCONFIG_CMD_CREATE)");
    let fd = fsopen(&mut o);
    // SAFETY: null key/value are valid for FSCONFIG_CMD_CREATE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd,
            FSCONFIG_CMD_CREATE,
            0usize,
            0usize,
            0,
        )
    };
    o.rec("fsconfig(CREATE)", r);
    sys::close(fd);
    if fd < 0 {
        let e = o.results[0].errno.unwrap_or(0);
        return o.blocked(format!(
            "no fs context obtainable (fsopen {}); fsconfig cannot create a superblock",
            crate::report::errno_name(e)
        ));
    }
    o.by_last("superblock created", Verdict::NotApplicable)
}

pub fn fsmount(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "fsmount",
        "fsopen + fsconfig(CREATE) + fsmount + move_mount onto a scratch dir",
    );
    let fd = fsopen(&mut o);
    if fd < 0 {
        // SAFETY: plain integer arguments; -1 is an invalid fd by design.
        let r = unsafe { libc::syscall(libc::SYS_fsmount, -1, 0, 0) };
        o.rec("fsmount(-1)", r);
        let e = o.results[0].errno.unwrap_or(0);
        return o.blocked(format!(
            "fsopen failed with {}, so no fs context reaches fsmount",
            crate::report::errno_name(e)
        ));
    }
    // SAFETY: null key/value are valid for FSCONFIG_CMD_CREATE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd,
            FSCONFIG_CMD_CREATE,
            0usize,
            0usize,
            0,
        )
    };
    o.rec("fsconfig(CREATE)", r);
    // SAFETY: plain integer arguments.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fd, 0, 0) };
    o.rec("fsmount", m);
    sys::close(fd);
    if m < 0 {
        return o.by_last("fsmount", Verdict::NotApplicable);
    }
    let dir = scratch_dir(c);
    let (empty, t) = (cs(""), cs(&dir));
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    // SAFETY: strings are NUL-terminated; `m` is our mount fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            m,
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    o.rec("move_mount", r);
    sys::close(m);
    if r == 0 {
        umount(&dir, libc::MNT_DETACH);
    }
    o.escaped("a detached mount was created with the new mount API")
}

pub fn move_mount(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "move-mount",
        "move_mount(AT_FDCWD, MISSING, AT_FDCWD, MISSING) (ENOENT = capability present)",
    );
    let p = cs(MISSING);
    // SAFETY: strings are NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            libc::AT_FDCWD,
            p.as_ptr(),
            libc::AT_FDCWD,
            p.as_ptr(),
            0,
        )
    };
    o.rec("move_mount", r);
    cap_passed(o, "move_mount reachable")
}

pub fn open_tree(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("open-tree", "open_tree(AT_FDCWD, \"/\", OPEN_TREE_CLONE)");
    let p = cs("/");
    const OPEN_TREE_CLONE: u32 = 1;
    // SAFETY: `p` is NUL-terminated.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            p.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32,
        )
    };
    o.rec("open_tree(CLONE)", fd);
    sys::close(fd);
    o.by_last(
        "detached copy of the mount tree obtained",
        Verdict::NotApplicable,
    )
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub fn mount_setattr(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "mount-setattr",
        "mount_setattr(\"/\", attr_clr=MOUNT_ATTR_RDONLY) then restore",
    );
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let ro = sys::stat("/").is_some() && {
        let p = cs("/");
        // SAFETY: zeroed statvfs is valid; `p` is NUL-terminated.
        let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::statvfs(p.as_ptr(), &mut sv) == 0 && sv.f_flag & libc::ST_RDONLY != 0 }
    };
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: if ro { MOUNT_ATTR_RDONLY } else { 0 },
        propagation: 0,
        userns_fd: 0,
    };
    let p = cs("/");
    // SAFETY: `p` is NUL-terminated and `attr` is a valid mount_attr of the given size.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            0,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    o.rec("mount_setattr /", r);
    if r == 0 && ro {
        let back = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: as above.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                p.as_ptr(),
                0,
                &back as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        return o.escaped("the read-only root was made writable with mount_setattr");
    }
    o.by_last("mount attributes of / changed", Verdict::NotApplicable)
}

/// CVE-2022-0492: mount a cgroup v1 hierarchy and reach its release_agent.
pub fn cgroup_mount(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "cgroup-v1-mount",
        "mount -t cgroup -o memory (or rdma) and open release_agent O_WRONLY (no write)",
    );
    let dir = scratch_dir(c);
    // memory first: an existing hierarchy, so even the unconfined host column
    // never creates a new one.
    for ctrl in ["memory", "pids", "rdma"] {
        let r = mount("cgroup", &dir, Some("cgroup"), 0, ctrl);
        if o.rec(&format!("mount cgroup -o {ctrl}"), r).errno.is_none() {
            let fd = sys::open(&format!("{dir}/release_agent"), libc::O_WRONLY);
            let w = o.rec("open release_agent O_WRONLY", fd).errno.is_none();
            sys::close(fd);
            umount(&dir, libc::MNT_DETACH);
            if w {
                return o.escaped(format!(
                    "mounted cgroup v1 {ctrl}; its release_agent is writable (host-root command on release)"
                ));
            }
            return o.escaped(format!(
                "mounted cgroup v1 {ctrl} (release_agent not writable)"
            ));
        }
    }
    o.by_last("cgroup mount", Verdict::NotApplicable)
}

fn cgroup_files(name: &str) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path().join(name);
            if p.exists() {
                v.push(p.to_string_lossy().into_owned());
            }
        }
    }
    if std::path::Path::new(&format!("/sys/fs/cgroup/{name}")).exists() {
        v.push(format!("/sys/fs/cgroup/{name}"));
    }
    v
}

pub fn cgroup_release_agent(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "cgroup-release-agent",
        "open every visible /sys/fs/cgroup/*/release_agent O_WRONLY (no write)",
    );
    let files = cgroup_files("release_agent");
    let mut writable = Vec::new();
    for f in &files {
        let fd = sys::open(f, libc::O_WRONLY);
        if o.rec(&format!("open {f}"), fd).errno.is_none() {
            writable.push(f.clone());
        }
        sys::close(fd);
    }
    if !writable.is_empty() {
        return o.escaped(format!("writable release_agent: {}", writable.join(", ")));
    }
    if files.is_empty() {
        return o.blocked(
            "no release_agent file visible (cgroup v1 root not mounted in the container)",
        );
    }
    o.blocked("every visible release_agent refused a write open")
}

pub fn cgroup_notify(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "cgroup-notify-on-release",
        "open /sys/fs/cgroup/*/notify_on_release O_WRONLY (no write)",
    );
    let files = cgroup_files("notify_on_release");
    let mut writable = Vec::new();
    for f in &files {
        let fd = sys::open(f, libc::O_WRONLY);
        if o.rec(&format!("open {f}"), fd).errno.is_none() {
            writable.push(f.clone());
        }
        sys::close(fd);
    }
    if !writable.is_empty() {
        return o.escaped(format!(
            "writable notify_on_release: {}",
            writable.join(", ")
        ));
    }
    if files.is_empty() {
        return o.blocked("no cgroup v1 notify_on_release visible");
    }
    o.blocked("cgroup files are read-only")
}
