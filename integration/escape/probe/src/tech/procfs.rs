//! /proc and /sys: writable kernel knobs, kernel memory, runtime binaries
//! reachable through /proc/<pid>/exe, leaked fds and the working directory.

use crate::report::{errno_name, Outcome, Verdict};
use crate::sys;
use crate::Ctx;

/// Open a file for writing without writing anything.
fn open_w(o: &mut Outcome, path: &str) -> bool {
    let fd = sys::open(path, libc::O_WRONLY);
    let ok = o.rec(&format!("open {path} O_WRONLY"), fd).errno.is_none();
    sys::close(fd);
    ok
}

pub fn core_pattern(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "core-pattern",
        "open(/proc/sys/kernel/core_pattern, O_WRONLY) (no write)",
    );
    if open_w(&mut o, "/proc/sys/kernel/core_pattern") {
        return o.escaped(
            "core_pattern writable: a '|/path' pattern runs a host-root command on crash",
        );
    }
    o.by_last("", Verdict::NotApplicable)
}

pub fn sysrq(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "sysrq-trigger",
        "open(/proc/sysrq-trigger, O_WRONLY) (no write)",
    );
    if open_w(&mut o, "/proc/sysrq-trigger") {
        return o.escaped("sysrq-trigger writable (could crash or reboot the host)");
    }
    if o.results[0].errno == Some(libc::ENOENT) {
        return o.na("this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)");
    }
    o.by_last("", Verdict::NotApplicable)
}

pub fn proc_sys_vm(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "proc-sys-vm",
        "open(/proc/sys/vm/{drop_caches,overcommit_memory}, O_WRONLY) (no write)",
    );
    let a = open_w(&mut o, "/proc/sys/vm/drop_caches");
    let b = open_w(&mut o, "/proc/sys/vm/overcommit_memory");
    if a || b {
        return o.escaped("host VM sysctls writable");
    }
    any_defence(o)
}

pub fn kcore(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("kcore", "open+read(/proc/kcore, 64 bytes)");
    let fd = sys::open("/proc/kcore", libc::O_RDONLY);
    if o.rec("open /proc/kcore", fd).errno.is_some() {
        if o.results[0].errno == Some(libc::ENOENT) && sys::stat("/proc/kcore").is_none() {
            return o.na("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off)");
        }
        return o.by_last("", Verdict::Blocked);
    }
    let (n, _) = sys::read_some(fd as i32, 64);
    o.rec("read", n);
    sys::close(fd);
    if n > 0 {
        return o.escaped(format!("read {n} bytes of kernel memory image"));
    }
    if n == 0 {
        return o.blocked("/proc/kcore reads as empty (masked with /dev/null)");
    }
    o.by_last("", Verdict::Blocked)
}

pub fn kallsyms(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "kallsyms",
        "read /proc/kallsyms, look for non-zero addresses",
    );
    let r = std::fs::read_to_string("/proc/kallsyms");
    o.rec_io("read /proc/kallsyms", &r);
    match r {
        Err(e) => o.blocked(format!("unreadable: {e}")),
        Ok(s) if s.is_empty() => o.blocked("empty (masked)"),
        Ok(s) => {
            let nz = s
                .lines()
                .take(2000)
                .filter(|l| {
                    l.split(' ')
                        .next()
                        .is_some_and(|a| a.chars().any(|ch| ch != '0'))
                })
                .count();
            if nz > 0 {
                o.escaped(format!(
                    "{nz} kernel symbol addresses visible (KASLR defeated)"
                ))
            } else {
                o.blocked("addresses are zeroed (kptr_restrict / no CAP_SYSLOG)")
            }
        }
    }
}

pub fn sys_firmware(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "sys-firmware",
        "readdir(/sys/firmware) + read DMI/ACPI tables",
    );
    let rd = std::fs::read_dir("/sys/firmware");
    o.rec_io("readdir /sys/firmware", &rd);
    let entries: Vec<String> = rd
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut readable = Vec::new();
    for p in [
        "/sys/firmware/dmi/tables/DMI",
        "/sys/firmware/acpi/tables/DSDT",
    ] {
        let fd = sys::open(p, libc::O_RDONLY);
        if o.rec(&format!("open {p}"), fd).errno.is_none() {
            let (n, _) = sys::read_some(fd as i32, 16);
            if n > 0 {
                readable.push(p);
            }
        }
        sys::close(fd);
    }
    if !readable.is_empty() {
        return o.escaped(format!("host firmware tables readable: {readable:?}"));
    }
    if entries.is_empty() {
        return o.blocked("/sys/firmware is empty or absent (masked)");
    }
    o.blocked(format!("entries {entries:?} visible but tables unreadable"))
}

pub fn sys_kernel_write(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "sys-kernel-write",
        "open(/sys/kernel/uevent_helper, /sys/kernel/mm/transparent_hugepage/enabled, O_WRONLY) (no write)",
    );
    let a = open_w(&mut o, "/sys/kernel/uevent_helper");
    let b = open_w(&mut o, "/sys/kernel/mm/transparent_hugepage/enabled");
    if a || b {
        return o.escaped("/sys/kernel writable (uevent_helper runs a host-root command)");
    }
    let entries = std::fs::read_dir("/sys/kernel")
        .map(|r| r.count())
        .unwrap_or(0);
    if entries == 0 {
        return o.blocked("/sys/kernel is empty or absent (masked)");
    }
    any_defence(o)
}

/// Blocked if any attempt failed with a defence errno, else not applicable.
fn any_defence(o: Outcome) -> Outcome {
    let errs: Vec<String> = o
        .results
        .iter()
        .filter_map(|c| c.errno.map(|e| format!("{} {}", c.call, errno_name(e))))
        .collect();
    if o.results
        .iter()
        .any(|c| c.errno.is_some_and(crate::report::is_defence))
    {
        o.blocked(errs.join("; "))
    } else {
        o.na(errs.join("; "))
    }
}

/// Is this fd's file reachable by path from our root? Compares (dev, ino).
fn same_file(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// CVE-2019-5736: open the executable of ourselves and of every visible
/// process for writing (a runtime process entering the container would be
/// the host runtime binary).
pub fn proc_exe(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "proc-exe-overwrite",
        "open(/proc/{self,1,*}/exe, O_WRONLY) (no write)",
    );
    let mut pids = vec!["self".to_string(), "1".to_string()];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.chars().all(|c| c.is_ascii_digit()) && n != "1" {
                pids.push(n);
            }
        }
    }
    let mut writable = Vec::new();
    let mut foreign = Vec::new();
    for pid in pids.iter().take(64) {
        let p = format!("/proc/{pid}/exe");
        let target = std::fs::read_link(&p).map(|t| t.to_string_lossy().into_owned());
        let Ok(target) = target else { continue };
        // An exe that is not a file of our rootfs (memfd, deleted, or outside) is foreign.
        let in_root = sys::stat(&target)
            .zip(sys::stat(&p))
            .is_some_and(|(a, b)| same_file(&a, &b));
        if !in_root {
            foreign.push(format!("{pid}->{target}"));
        }
        let fd = sys::open(&p, libc::O_WRONLY);
        if o.rec(&format!("open {p} O_WRONLY"), fd).errno.is_none() {
            writable.push(format!("{pid}->{target}"));
        }
        sys::close(fd);
    }
    if !writable.is_empty() {
        return o.escaped(format!(
            "process executables writable: {writable:?} (foreign: {foreign:?})"
        ));
    }
    let errs: Vec<String> = o
        .results
        .iter()
        .filter_map(|c| c.errno)
        .map(errno_name)
        .collect();
    let mut uniq = errs.clone();
    uniq.sort();
    uniq.dedup();
    o.blocked(format!(
        "no executable writable ({}); foreign exes visible: {foreign:?}",
        uniq.join(",")
    ))
}

/// Climb ".." from a directory fd until it stops moving; return the top.
fn climb(fd: i32) -> Option<libc::stat> {
    let mut cur = sys::openat(fd, ".", libc::O_RDONLY | libc::O_DIRECTORY);
    if cur < 0 {
        return None;
    }
    for _ in 0..256 {
        let before = sys::fstat(cur as i32)?;
        let up = sys::openat(cur as i32, "..", libc::O_RDONLY | libc::O_DIRECTORY);
        if up < 0 {
            break;
        }
        let after = sys::fstat(up as i32)?;
        sys::close(cur);
        cur = up;
        if same_file(&before, &after) {
            break;
        }
    }
    let st = sys::fstat(cur as i32);
    sys::close(cur);
    st
}

/// Prove a host write: create `escaped-<id>` in the host canary dir
/// through a directory fd that reaches the host root.
fn mark(c: &Ctx, rootfd: i32, id: &str) -> String {
    let Some(hd) = &c.host_dir else {
        return String::new();
    };
    let rel = format!("{}/escaped-{id}", hd.trim_start_matches('/'));
    let fd = sys::openat(rootfd, &rel, libc::O_WRONLY | libc::O_CREAT);
    let r = if fd >= 0 {
        "; marker written on the host".into()
    } else {
        String::new()
    };
    sys::close(fd);
    r
}

/// CVE-2024-21626: an fd inherited from the runtime that points at a host
/// directory lets `openat(fd, "..")` climb to the host root.
pub fn leaked_fd(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "leaked-fd",
        "scan /proc/self/fd; openat(fd, \"..\") up to the top and compare with our /",
    );
    let root = sys::stat("/");
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let rd = std::fs::read_dir("/proc/self/fd");
    o.rec_io("readdir /proc/self/fd", &rd);
    let fds: Vec<i32> = rd
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        if fd <= 2 || fd == crate::REPORT_FD.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let Some(st) = sys::fstat(fd) else { continue };
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if link.starts_with("/proc/") && link.ends_with("/fd") {
            continue; // the read_dir handle itself
        }
        seen.push(format!("{fd}->{link}"));
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            continue;
        }
        if let (Some(top), Some(r)) = (climb(fd), root) {
            o.rec(&format!("climb fd {fd}"), 0);
            if !same_file(&top, &r) {
                let m = mark(c, fd_top(fd), "leaked-fd");
                found.push(format!("{fd}->{link}{m}"));
            }
        }
    }
    if !found.is_empty() {
        return o.escaped(format!(
            "fd reaches a root outside the container: {found:?}"
        ));
    }
    if seen.is_empty() {
        return o.blocked("no fd above stdio was inherited");
    }
    o.blocked(format!("inherited fds stay inside the container: {seen:?}"))
}

/// An fd for the top of the tree above `fd` (for the marker); -1 on failure.
fn fd_top(fd: i32) -> i32 {
    let mut cur = sys::openat(fd, ".", libc::O_RDONLY | libc::O_DIRECTORY);
    for _ in 0..256 {
        let up = sys::openat(cur as i32, "..", libc::O_RDONLY | libc::O_DIRECTORY);
        if up < 0 {
            break;
        }
        let same = sys::fstat(cur as i32)
            .zip(sys::fstat(up as i32))
            .is_some_and(|(a, b)| same_file(&a, &b));
        sys::close(cur);
        cur = up;
        if same {
            break;
        }
    }
    cur as i32
}

pub fn cwd_outside(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "cwd-outside-rootfs",
        "getcwd() and climb \"..\" from the cwd; compare with our /",
    );
    let cwd = std::env::current_dir();
    o.rec_io("getcwd", &cwd);
    let dot = sys::open(".", libc::O_RDONLY | libc::O_DIRECTORY);
    o.rec("open .", dot);
    if dot < 0 {
        return o.by_last("", Verdict::NotApplicable);
    }
    let top = climb(dot as i32);
    let root = sys::stat("/");
    let outside = matches!((top, root), (Some(t), Some(r)) if !same_file(&t, &r));
    let m = if outside {
        mark(c, fd_top(dot as i32), "cwd")
    } else {
        String::new()
    };
    sys::close(dot);
    match cwd {
        Err(e) => o.escaped(format!("cwd is not under our root ({e}){m}")),
        Ok(_) if outside => o.escaped(format!("climbing from the cwd reaches a foreign root{m}")),
        Ok(p) => o.blocked(format!("cwd {} is inside the container root", p.display())),
    }
}
