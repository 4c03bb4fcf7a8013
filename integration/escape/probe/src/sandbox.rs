//! `ward-probe host-sandbox`: the runner's unconfined sanity mode. Runs the
//! probe as full root in a throwaway mount namespace chrooted into the bundle
//! rootfs, with the host's pid and network namespaces, /proc, /sys and /dev.
//! Nothing is confined, so each technique shows that it *can* succeed; every
//! mount made here is private to the namespace and vanishes with it.

use crate::sys::cs;

fn die(what: &str) -> ! {
    eprintln!("host-sandbox: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(125)
}

fn mnt(src: &str, dst: &str, fstype: Option<&str>, flags: libc::c_ulong) {
    let (s, d) = (cs(src), cs(dst));
    let f = fstype.map(cs);
    // SAFETY: NUL-terminated strings alive for the call; null data.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        die(&format!("mount {src} on {dst}"));
    }
}

pub fn main(args: &[String]) -> ! {
    let mut rootfs = None;
    let mut binds = Vec::new();
    let mut cwd_fd: Option<i32> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--rootfs" => rootfs = args.get(i + 1).cloned(),
            "--bind" => binds.push(args.get(i + 1).cloned().unwrap_or_default()),
            // Leave the cwd on this (host) directory fd, as a careless runtime would.
            "--cwd-fd" => cwd_fd = args.get(i + 1).and_then(|v| v.parse().ok()),
            "--" => break,
            _ => die("usage: host-sandbox --rootfs DIR [--bind SRC:DST]... -- ARGS"),
        }
        i += 2;
    }
    let cmd: Vec<String> = args.get(i + 1..).map(|a| a.to_vec()).unwrap_or_default();
    let Some(rootfs) = rootfs else {
        die("--rootfs missing")
    };
    if cmd.is_empty() {
        die("no command");
    }
    // SAFETY: flag word only; this process is ours to move.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        die("unshare(CLONE_NEWNS)");
    }
    // Nothing below may propagate back to the host.
    mnt("none", "/", None, libc::MS_REC | libc::MS_PRIVATE);
    mnt(&rootfs, &rootfs, None, libc::MS_BIND | libc::MS_REC);
    mnt("proc", &format!("{rootfs}/proc"), Some("proc"), 0);
    mnt(
        "/sys",
        &format!("{rootfs}/sys"),
        None,
        libc::MS_BIND | libc::MS_REC,
    );
    mnt(
        "/dev",
        &format!("{rootfs}/dev"),
        None,
        libc::MS_BIND | libc::MS_REC,
    );
    mnt("tmpfs", &format!("{rootfs}/tmp"), Some("tmpfs"), 0);
    for b in &binds {
        let Some((s, d)) = b.split_once(':') else {
            die("--bind SRC:DST")
        };
        mnt(s, &format!("{rootfs}{d}"), None, libc::MS_BIND);
    }
    // pivot_root rather than chroot: the kernel refuses new user namespaces
    // to a chrooted process, which would hide what an unconfined one can do.
    let r = cs(&rootfs);
    let dot = cs(".");
    // SAFETY: `r` and `dot` are NUL-terminated strings.
    unsafe {
        if libc::chdir(r.as_ptr()) != 0 {
            die("chdir rootfs");
        }
        if libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0 {
            die("pivot_root");
        }
        if libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0 {
            die("umount old root");
        }
        let slash = cs("/");
        libc::chdir(slash.as_ptr());
        if let Some(fd) = cwd_fd {
            libc::fchdir(fd);
        }
    }
    let c: Vec<_> = cmd.iter().map(|a| cs(a)).collect();
    let mut argv: Vec<*const libc::c_char> = c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: argv is a NULL-terminated array of valid strings.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    die("execv")
}
