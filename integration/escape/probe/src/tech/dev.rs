//! Devices and sockets: mknod, host disks, raw/packet sockets, host sockets.

use crate::report::{errno_name, is_defence, Outcome, Verdict};
use crate::sys::{self, cs};
use crate::Ctx;

fn writable_dir(c: &Ctx) -> Option<String> {
    for d in ["/tmp", "/dev/shm", "/dev"]
        .iter()
        .map(|s| s.to_string())
        .chain(c.volume.clone())
    {
        let p = format!("{d}/.ward-probe-w");
        let fd = sys::open(&p, libc::O_WRONLY | libc::O_CREAT);
        if fd >= 0 {
            sys::close(fd);
            let _ = std::fs::remove_file(&p);
            return Some(d);
        }
    }
    None
}

fn mknod_try(c: &Ctx, id: &str, kind: u32, major: u32, minor: u32, what: &str) -> Outcome {
    let mut o = Outcome::new(
        id,
        &format!("mknod({what} {major}:{minor}) in a writable dir, then open it"),
    );
    let Some(dir) = writable_dir(c) else {
        return o.na("no writable directory to create a node in");
    };
    let path = format!("{dir}/ward-probe-node");
    let _ = std::fs::remove_file(&path);
    let p = cs(&path);
    // SAFETY: `p` is NUL-terminated; the node is removed below.
    let r = unsafe { libc::mknod(p.as_ptr(), kind | 0o600, libc::makedev(major, minor)) } as i64;
    if o.rec(&format!("mknod {path}"), r).errno.is_some() {
        return o.by_last("", Verdict::NotApplicable);
    }
    let fd = sys::open(&path, libc::O_RDONLY);
    let opened = o.rec("open node", fd).errno.is_none();
    let mut got = 0;
    if opened {
        got = sys::read_some(fd as i32, 16).0;
        o.rec("read node", got);
    }
    sys::close(fd);
    let _ = std::fs::remove_file(&path);
    if opened && got > 0 {
        return o.escaped(format!("created and read {what} {major}:{minor}"));
    }
    if opened {
        return o.escaped(format!(
            "created and opened {what} {major}:{minor} (device cgroup allows it)"
        ));
    }
    let e = o.results.last().and_then(|c| c.errno).unwrap_or(0);
    if e == libc::EPERM || e == libc::EACCES {
        return o.blocked(format!(
            "mknod succeeded (CAP_MKNOD) but open failed with {}: the device cgroup stops it",
            errno_name(e)
        ));
    }
    o.escaped(format!(
        "mknod succeeded and the device cgroup let the open through (it then failed with {}: no driver)",
        errno_name(e)
    ))
}

pub fn mknod_char(c: &Ctx) -> Outcome {
    mknod_try(c, "mknod-char", libc::S_IFCHR, 1, 1, "char /dev/mem")
}

pub fn mknod_block(c: &Ctx) -> Outcome {
    // The block device the container's own files live on (the host disk).
    let dev = sys::stat("/bin/busybox").map(|s| s.st_dev).unwrap_or(0);
    let (ma, mi) = (libc::major(dev), libc::minor(dev));
    let (ma, mi) = if ma == 0 { (253, 0) } else { (ma, mi) };
    mknod_try(c, "mknod-block", libc::S_IFBLK, ma, mi, "block host disk")
}

pub fn host_disks(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "host-disks",
        "open(/dev/{vda,sda,nvme0n1,xvda,mem,kmem,port,loop0}, O_RDONLY)",
    );
    let mut opened = Vec::new();
    for d in [
        "vda",
        "sda",
        "nvme0n1",
        "xvda",
        "mem",
        "kmem",
        "port",
        "loop0",
        "loop-control",
    ] {
        let p = format!("/dev/{d}");
        let fd = sys::open(&p, libc::O_RDONLY);
        if o.rec(&format!("open {p}"), fd).errno.is_none() {
            opened.push(p);
        }
        sys::close(fd);
    }
    if !opened.is_empty() {
        return o.escaped(format!("host devices opened: {opened:?}"));
    }
    o.blocked("no host disk or memory device exists or opens in the container's /dev")
}

pub fn dev_kmsg(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("dev-kmsg", "open(/dev/kmsg, O_RDONLY) + read one record");
    let fd = sys::open("/dev/kmsg", libc::O_RDONLY | libc::O_NONBLOCK);
    if o.rec("open /dev/kmsg", fd).errno.is_some() {
        return match o.results[0].errno {
            Some(libc::ENOENT) => o.blocked("/dev/kmsg is not in the container's /dev"),
            _ => o.by_last("", Verdict::NotApplicable),
        };
    }
    let (n, _) = sys::read_some(fd as i32, 4096);
    o.rec("read", n);
    sys::close(fd);
    if n > 0 {
        return o.escaped("host kernel log records readable");
    }
    o.by_last("/dev/kmsg", Verdict::Blocked)
}

fn sock(o: &mut Outcome, name: &str, domain: i32, ty: i32, proto: i32) -> bool {
    // SAFETY: plain integer arguments.
    let s = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) } as i64;
    let ok = o.rec(name, s).errno.is_none();
    sys::close(s);
    ok
}

pub fn raw_socket(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("raw-socket", "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)");
    if sock(
        &mut o,
        "socket(AF_INET, SOCK_RAW)",
        libc::AF_INET,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMP,
    ) {
        return o.escaped("raw IP socket opened (CAP_NET_RAW)");
    }
    family_refused(o)
}

pub fn packet_socket(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new("packet-socket", "socket(AF_PACKET, SOCK_RAW, ETH_P_ALL)");
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    if sock(
        &mut o,
        "socket(AF_PACKET)",
        libc::AF_PACKET,
        libc::SOCK_RAW,
        proto,
    ) {
        return o.escaped("packet socket opened (CVE-2020-14386 surface)");
    }
    family_refused(o)
}

/// A seccomp filter that restricts socket families answers EAFNOSUPPORT,
/// as the kernel does for a family it lacks; the host column tells them apart.
fn family_refused(o: Outcome) -> Outcome {
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::EAFNOSUPPORT) => o.blocked(
            "socket family refused (EAFNOSUPPORT: seccomp family filter or no kernel support)",
        ),
        _ => o.by_last("", Verdict::NotApplicable),
    }
}

fn connect_unix(o: &mut Outcome, label: &str, addr: &[u8]) -> bool {
    // SAFETY: plain integer arguments.
    let s = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: zeroed sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    let n = addr.len().min(sa.sun_path.len() - 1);
    for (i, b) in addr[..n].iter().enumerate() {
        sa.sun_path[i] = *b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + n) as u32;
    // SAFETY: `sa` is a valid sockaddr_un of `len` bytes.
    let r = unsafe { libc::connect(s, (&sa as *const libc::sockaddr_un).cast(), len) } as i64;
    let ok = o.rec(label, r).errno.is_none();
    sys::close(s as i64);
    ok
}

pub fn host_sockets(_c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "host-sockets",
        "connect() to containerd/docker/crio/kubelet/systemd sockets by path",
    );
    let mut reached = Vec::new();
    for p in [
        "/run/containerd/containerd.sock",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/run/crio/crio.sock",
        "/var/lib/kubelet/pod-resources/kubelet.sock",
        "/run/systemd/private",
        "/run/dbus/system_bus_socket",
    ] {
        if connect_unix(&mut o, &format!("connect {p}"), p.as_bytes()) {
            reached.push(p);
        }
    }
    if !reached.is_empty() {
        return o.escaped(format!("host control sockets reachable: {reached:?}"));
    }
    o.blocked("no host control socket is reachable from the container")
}

/// CVE-2020-15257: abstract unix sockets are scoped by network namespace.
pub fn abstract_socket(c: &Ctx) -> Outcome {
    let mut o = Outcome::new(
        "abstract-socket",
        "connect() to the runner's host abstract unix socket",
    );
    let Some(name) = &c.abstract_name else {
        return o.na("runner did not pass --abstract NAME");
    };
    let mut addr = vec![0u8];
    addr.extend_from_slice(name.as_bytes());
    if connect_unix(&mut o, &format!("connect @{name}"), &addr) {
        return o.escaped("host abstract socket reachable (shared network namespace)");
    }
    match o.results.last().and_then(|c| c.errno) {
        Some(libc::ECONNREFUSED) => {
            o.blocked("abstract name not found: separate network namespace")
        }
        Some(e) if is_defence(e) => o.blocked(format!("connect denied ({})", errno_name(e))),
        _ => o.by_last("", Verdict::NotApplicable),
    }
}
