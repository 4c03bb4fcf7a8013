//! Namespaces: nested user namespaces and setns into host namespaces.

use crate::report::{errno_name, Outcome};
use crate::sys;
use crate::Ctx;

/// unshare(CLONE_NEWUSER) and, if it worked, whether we now hold a full
/// capability set inside it.
pub fn userns_unshare(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("userns-unshare", "unshare(CLONE_NEWUSER)");
    // SAFETY: unshare takes a flag word; this child process is ours to change.
    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) } as i64;
    let c = o.rec("unshare", r);
    if c.errno.is_none() {
        let eff = sys::status_field("CapEff").unwrap_or_default();
        return o.escaped(format!(
            "new user namespace created; CapEff inside it = {eff} (full caps over namespaces it owns)"
        ));
    }
    o.by_last(
        "nested user namespace",
        crate::report::Verdict::NotApplicable,
    )
}

/// clone(CLONE_NEWUSER) via the raw syscall; the child exits at once.
pub fn userns_clone(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("userns-clone", "clone(CLONE_NEWUSER|SIGCHLD)");
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: raw clone without CLONE_VM behaves like fork: the child gets a
    // copy of the address space and immediately calls _exit.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if r == 0 {
        sys::exit(0);
    }
    let c = o.rec("clone", r);
    if c.errno.is_none() {
        sys::wait(r as i32);
        return o.escaped("child created in a new user namespace");
    }
    o.by_last("clone", crate::report::Verdict::NotApplicable)
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3 with CLONE_NEWUSER (seccomp cannot inspect clone3's flags, so a
/// filter must make clone3 fail with ENOSYS to push libc back to clone).
pub fn userns_clone3(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("userns-clone3", "clone3({flags: CLONE_NEWUSER})");
    let args = CloneArgs {
        flags: libc::CLONE_NEWUSER as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM forks; `args` outlives the call and
    // its size is passed. The child exits immediately.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r == 0 {
        sys::exit(0);
    }
    let c = o.rec("clone3", r);
    if c.errno.is_none() {
        sys::wait(r as i32);
        return o.escaped("clone3 created a child in a new user namespace");
    }
    o.by_last("clone3", crate::report::Verdict::NotApplicable)
}

/// Can the container raise the user-namespace limit?
pub fn userns_max_raise(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "userns-max-raise",
        "open(/proc/sys/user/max_user_namespaces, O_WRONLY) (no write)",
    );
    let fd = sys::open("/proc/sys/user/max_user_namespaces", libc::O_WRONLY);
    o.rec("open O_WRONLY", fd);
    sys::close(fd);
    o.by_last(
        "user namespace limit writable",
        crate::report::Verdict::NotApplicable,
    )
}

/// CVE-2020-14386 pattern: a new user+net namespace grants CAP_NET_RAW over
/// it, which opens AF_PACKET.
pub fn userns_packet(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "userns-netns-packet",
        "unshare(CLONE_NEWUSER|CLONE_NEWNET); socket(AF_PACKET, SOCK_RAW)",
    );
    // SAFETY: flag word only; this forked child is ours to change.
    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } as i64;
    if o.rec("unshare", r).errno.is_some() {
        return o.by_last("", crate::report::Verdict::NotApplicable);
    }
    // SAFETY: plain integer arguments.
    let s = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    } as i64;
    o.rec("socket(AF_PACKET)", s);
    sys::close(s);
    if o.results.last().and_then(|c| c.errno) == Some(libc::EAFNOSUPPORT) {
        return o.blocked("user+net namespace created, but AF_PACKET refused (EAFNOSUPPORT)");
    }
    o.by_last(
        "packet socket in a nested user+net namespace",
        crate::report::Verdict::NotApplicable,
    )
}

const NS_KINDS: [(&str, i32); 7] = [
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("user", libc::CLONE_NEWUSER),
];

fn targets(c: &Ctx) -> Vec<i32> {
    let mut t = vec![1];
    if let Some(p) = c.host_pid {
        t.push(p);
    }
    t
}

/// setns into the namespaces of /proc/1 and of the host process.
pub fn setns_proc(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "setns-proc-ns",
        "open(/proc/{1,HOSTPID}/ns/*) + setns() into namespaces other than ours",
    );
    let mut entered = Vec::new();
    let mut foreign = 0;
    for pid in targets(c) {
        for (kind, flag) in NS_KINDS {
            let path = format!("/proc/{pid}/ns/{kind}");
            let mine = sys::stat(&format!("/proc/self/ns/{kind}"));
            let fd = sys::open(&path, libc::O_RDONLY);
            let call = o.rec(&format!("open {path}"), fd);
            if call.errno.is_some() {
                continue;
            }
            let theirs = sys::fstat(fd as i32);
            let same = matches!((mine, theirs), (Some(a), Some(b)) if a.st_ino == b.st_ino && a.st_dev == b.st_dev);
            if !same {
                foreign += 1;
                // SAFETY: `fd` is a namespace fd we opened; flag names its type.
                let r = unsafe { libc::setns(fd as i32, flag) } as i64;
                if o.rec(&format!("setns {path}"), r).errno.is_none() {
                    entered.push(path);
                }
            }
            sys::close(fd);
        }
    }
    if !entered.is_empty() {
        return o.escaped(format!(
            "entered foreign namespaces: {}",
            entered.join(", ")
        ));
    }
    if foreign == 0 {
        return o.blocked(
            "no foreign namespace reachable: /proc/1 is our own init and the host pid is not visible",
        );
    }
    o.blocked(format!(
        "{foreign} foreign namespace fds opened but every setns failed"
    ))
}

/// pidfd_open(1 / HOSTPID) + setns(pidfd, all namespaces).
pub fn setns_pidfd(c: &Ctx) -> Outcome {
    let mut o = Outcome::new("setns-pidfd", "pidfd_open(pid) + setns(pidfd, CLONE_NEW*)");
    let mine = sys::stat("/proc/self/ns/mnt");
    for pid in targets(c) {
        // SAFETY: plain integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if o.rec(&format!("pidfd_open({pid})"), fd).errno.is_some() {
            continue;
        }
        let theirs = sys::stat(&format!("/proc/{pid}/ns/mnt"));
        let same = matches!((mine, theirs), (Some(a), Some(b)) if a.st_ino == b.st_ino);
        let flags =
            libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        // SAFETY: `fd` is a pidfd we own.
        let r = unsafe { libc::setns(fd as i32, flags) } as i64;
        let call = o.rec(&format!("setns(pidfd {pid})"), r);
        sys::close(fd);
        if call.errno.is_none() && !same {
            return o.escaped(format!(
                "joined the namespaces of pid {pid}, which are not ours"
            ));
        }
    }
    let errs: Vec<String> = o
        .results
        .iter()
        .filter_map(|c| c.errno.map(|e| format!("{} {}", c.call, errno_name(e))))
        .collect();
    o.blocked(format!("no foreign namespace joined ({})", errs.join("; ")))
}
