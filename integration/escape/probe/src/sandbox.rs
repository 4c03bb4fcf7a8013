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
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--rootfs" => rootfs = args.get(i + 1).cloned(),
            "--bind" => binds.push(args.get(i + 1).cloned().unwrap_or_default()),
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
    let r = cs(&rootfs);
    // SAFETY: `r` is NUL-terminated.
    if unsafe { libc::chroot(r.as_ptr()) } != 0 {
        die("chroot");
    }
    let slash = cs("/");
    // SAFETY: `slash` is NUL-terminated.
    unsafe { libc::chdir(slash.as_ptr()) };
    let c: Vec<_> = cmd.iter().map(|a| cs(a)).collect();
    let mut argv: Vec<*const libc::c_char> = c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: argv is a NULL-terminated array of valid strings.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    die("execv")
}
