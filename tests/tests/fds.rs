//! File descriptors: whatever ward inherits beyond stdio never reaches the container
//! (CVE-2024-21626), except the ones passed on purpose with `--preserve-fds`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use ward_tests::{assert_no_leftovers, assert_root_clean, require_root, unique_id, Bundle, Ward};

/// Make `src` appear as fd `target` (without close-on-exec) in the child of `cmd`.
fn inherit_fd(cmd: &mut Command, src: i32, target: i32) {
    // SAFETY: the closure runs between fork and exec and only calls dup2/fcntl, which are
    // async-signal-safe; `src` stays open in the parent until the command has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            if src == target {
                let flags = libc::fcntl(target, libc::F_GETFD);
                if flags < 0 || libc::fcntl(target, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(src, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `ls -l /proc/self/fd` lines → (fd, link target).
fn fd_list(text: &str) -> Vec<(i32, String)> {
    text.lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect()
}

/// The fds other than `allowed`, ignoring the directory `ls` itself opened.
fn unexpected(list: &[(i32, String)], allowed: &[i32]) -> Vec<(i32, String)> {
    list.iter()
        .filter(|(fd, target)| {
            let own_dir = target.starts_with("/proc/") && target.ends_with("/fd");
            !allowed.contains(fd) && !own_dir
        })
        .cloned()
        .collect()
}

#[test]
fn inherited_fds_do_not_reach_the_container() {
    require_root!();
    let secret = tempfile::NamedTempFile::new().unwrap();
    let secret_path = secret.path().display().to_string();
    let dir = std::fs::File::open("/").unwrap();
    let b = Bundle::new(&["ls", "-l", "/proc/self/fd"]);
    let ward = Ward::new();

    // Control: the same fd setup really is inherited by a plain child.
    let mut ctl = Command::new("/bin/busybox");
    ctl.args(["ls", "-l", "/proc/self/fd"]);
    inherit_fd(&mut ctl, secret.as_file().as_raw_fd(), 5);
    inherit_fd(&mut ctl, dir.as_raw_fd(), 9);
    inherit_fd(&mut ctl, secret.as_file().as_raw_fd(), 200);
    let ctl_out = String::from_utf8_lossy(&ctl.output().unwrap().stdout).into_owned();
    let ctl_fds: Vec<i32> = fd_list(&ctl_out).iter().map(|(f, _)| *f).collect();
    for fd in [5, 9, 200] {
        assert!(
            ctl_fds.contains(&fd),
            "control child lacks fd {fd}:\n{ctl_out}"
        );
    }

    let id = unique_id("fds");
    let mut c = ward.cmd(&[
        "run".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref(),
    ]);
    inherit_fd(&mut c, secret.as_file().as_raw_fd(), 5);
    inherit_fd(&mut c, dir.as_raw_fd(), 9);
    inherit_fd(&mut c, secret.as_file().as_raw_fd(), 200);
    let o = Ward::output_of(c);
    assert!(o.success(), "{o}");
    let list = fd_list(&o.stdout);
    assert!(list.iter().any(|(f, _)| *f == 0), "no fd list parsed:\n{o}");
    let extra = unexpected(&list, &[0, 1, 2]);
    assert!(
        extra.is_empty(),
        "fds beyond stdio inside the container: {extra:?}\n{o}"
    );
    assert!(!o.stdout.contains(&secret_path), "{o}");
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

#[test]
fn preserve_fds_passes_fd_3_and_only_it() {
    require_root!();
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    nix::unistd::write(&w, b"hello-fd3\n").unwrap();
    drop(w);
    let other = std::fs::File::open("/").unwrap();
    let b = Bundle::sh("cat <&3; ls -l /proc/self/fd");
    let ward = Ward::new();
    let id = unique_id("pfd");
    let mut c = ward.cmd(&[
        "run".as_ref(),
        "--preserve-fds".as_ref(),
        "1".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref(),
    ]);
    inherit_fd(&mut c, r.as_raw_fd(), 3);
    inherit_fd(&mut c, other.as_raw_fd(), 4);
    inherit_fd(&mut c, other.as_raw_fd(), 12);
    let o = Ward::output_of(c);
    assert!(o.success(), "{o}");
    assert!(
        o.stdout.contains("hello-fd3"),
        "fd 3 not readable inside:\n{o}"
    );
    let list = fd_list(&o.stdout);
    assert!(
        list.iter().any(|(f, t)| *f == 3 && t.starts_with("pipe:")),
        "fd 3 is not the pipe:\n{o}"
    );
    let extra = unexpected(&list, &[0, 1, 2, 3]);
    assert!(extra.is_empty(), "fds beyond 0-3 inside: {extra:?}\n{o}");
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}
