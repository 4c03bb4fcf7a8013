//! What a container uses is charged to the container, judged from the host: its user namespace
//! is owned by its range's base uid (so per-user kernel counts such as inotify instances land
//! there, not on host root), and its seccomp supervisor sits in its cgroups.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ward_tests::{
    assert_no_leftovers, range_base, require_root, unique_id, userns_owner_uid, wait_until, Bundle,
    Ward,
};

/// The syscall helper (tests/src/bin/ward-syscall.rs), copied into bundles.
const SYSCALL_HELPER: &str = env!("CARGO_BIN_EXE_ward-syscall");

/// Whether /proc/<pid>/status says the process runs (not a zombie: container inits and
/// libcontainer's intermediate are children of the caller, the test, until reaped).
fn status_alive(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|s| !s.trim_start().starts_with(['Z', 'X']))
}

/// Pids of live (non-zombie) processes in the user namespace `userns` (a `/proc/<pid>/ns/user`
/// link text) whose pid namespace is not `except_pidns`.
fn processes_in_userns(userns: &Path, except_pidns: Option<&Path>) -> Vec<i32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let p = e.path();
        if std::fs::read_link(p.join("ns/user")).ok().as_deref() != Some(userns) {
            continue;
        }
        if except_pidns.is_some()
            && std::fs::read_link(p.join("ns/pid")).ok().as_deref() == except_pidns
        {
            continue;
        }
        if status_alive(&std::fs::read_to_string(p.join("status")).unwrap_or_default()) {
            out.push(pid);
        }
    }
    out
}

/// How many more inotify instances this process (host root) can open, up to `max`; all are
/// closed again before returning.
fn inotify_available_to_me(max: usize) -> usize {
    let mut fds = vec![];
    while fds.len() < max {
        // SAFETY: inotify_init1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            break;
        }
        fds.push(fd);
    }
    let n = fds.len();
    for fd in fds {
        // SAFETY: closes an fd opened above.
        unsafe { libc::close(fd) };
    }
    n
}

/// inotify_init1 from a host process whose uids and gids are `uid` (forked; raw syscalls only,
/// the test harness is multi-threaded). Returns the errno, or 0 on success.
fn inotify_errno_as(uid: u32) -> i32 {
    let (r, w) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only makes raw syscalls on values prepared before the fork.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            // SAFETY: raw syscalls with integer arguments and a stack buffer; leaves by _exit.
            unsafe {
                let mut e: i32 = -1;
                if libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setresgid(uid, uid, uid) == 0
                    && libc::setresuid(uid, uid, uid) == 0
                {
                    e = if libc::inotify_init1(0) >= 0 {
                        0
                    } else {
                        *libc::__errno_location()
                    };
                }
                libc::write(w.as_raw_fd(), (&e as *const i32).cast(), 4);
                libc::_exit(0)
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut b = [0u8; 4];
            std::io::Read::read_exact(&mut std::fs::File::from(r), &mut b).unwrap();
            nix::sys::wait::waitpid(child, None).unwrap();
            let e = i32::from_le_bytes(b);
            assert_ne!(e, -1, "could not become uid {uid}");
            e
        }
    }
}

fn config_with_limits(text: &str) -> (tempfile::NamedTempFile, Ward) {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), format!("[userns.limits]\n{text}")).unwrap();
    let path = cfg.path().to_str().unwrap().to_string();
    (cfg, Ward::new().with_global(["--config".to_string(), path]))
}

#[test]
fn user_namespace_is_owned_by_the_range_base_not_host_root() {
    require_root!();
    let ward = Ward::new();
    let id = unique_id("owner");
    // Keep the bundle: its rootfs is the container's image.
    let bundle = Bundle::new(&["sleep", "1000"]);
    ward.run_detached(&bundle, &id);
    let pid = ward.pid(&id);
    let base = range_base(pid);
    let userns = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let owner = userns_owner_uid(pid);
    assert_ne!(
        owner, 0,
        "the container's user namespace is owned by host root"
    );
    assert_eq!(owner, base, "owner is not the range's base uid");
    // The helper that created the namespace is gone: nothing outside the container's pid
    // namespace is in its user namespace.
    let ns_link = std::fs::read_link(&userns).unwrap();
    let pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_eq!(
        processes_in_userns(&ns_link, Some(&pidns)),
        Vec::<i32>::new()
    );
    // exec still lands in that namespace, as container root.
    let out = ward.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/user",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", ns_link.to_str().unwrap()],
        "{out}"
    );
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    assert!(
        wait_until(Duration::from_secs(2), || processes_in_userns(
            &ns_link, None
        )
        .is_empty()),
        "processes left in the container's user namespace: {:?}",
        processes_in_userns(&ns_link, None)
    );
}

#[test]
fn inotify_instances_are_charged_to_the_range_base_not_host_root() {
    require_root!();
    let host_max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The namespace's own limit above the host's per-uid one: what stops the container is
    // then the host's count of the namespace's owner.
    let (_cfg, ward) = config_with_limits(&format!("max_inotify_instances = {}\n", host_max + 16));
    let root_before = inotify_available_to_me(host_max);
    assert!(
        root_before > 16,
        "host root has only {root_before} inotify instances left before the test: cannot judge"
    );
    let id = unique_id("inotify");
    let mut b = Bundle::sh(&format!(
        "/bin/ward-syscall hold 1000 {} inotify_init1 > /tmp/out",
        host_max + 16
    ));
    b.add_host_binary(Path::new(SYSCALL_HELPER), "/bin/ward-syscall");
    ward.run_detached(&b, &id);
    let base = range_base(ward.pid(&id));
    let mut line = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            line = ward.output(&["exec", &id, "cat", "/tmp/out"]).stdout;
            line.contains("held")
        }),
        "the container did not report: {line:?}"
    );
    // The container got exactly the host's per-uid allowance, and then EMFILE.
    assert_eq!(
        line.trim(),
        format!("inotify_init1 held {host_max} errno=EMFILE")
    );
    // Charged to the range's base uid: a host process of that uid has none left ...
    assert_eq!(inotify_errno_as(base), libc::EMFILE);
    // ... while host root still has what it had (other root processes may come and go).
    let root_after = inotify_available_to_me(host_max);
    assert!(
        root_after + 8 >= root_before,
        "host root had {root_before} inotify instances left, now {root_after}: the container's were charged to uid 0"
    );
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    assert!(
        wait_until(Duration::from_secs(2), || inotify_errno_as(base) == 0),
        "uid {base} still has no inotify instance left after delete"
    );
}

#[test]
fn user_namespace_limits_apply_inside() {
    require_root!();
    let (_cfg, ward) = config_with_limits("max_inotify_instances = 5\nmax_inotify_watches = 77\n");
    let id = unique_id("limits");
    let mut b = Bundle::sh(
        "cat /proc/sys/user/max_inotify_instances /proc/sys/user/max_inotify_watches; \
         /bin/ward-syscall hold 0 50 inotify_init1",
    );
    b.add_host_binary(Path::new(SYSCALL_HELPER), "/bin/ward-syscall");
    let out = ward.run(&b, &id);
    assert!(out.success(), "{out}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["5", "77", "inotify_init1 held 5 errno=EMFILE"],
        "{out}"
    );
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

/// (mount point, path in that hierarchy) of `pid`'s cgroup for `controller`, or of the v2
/// cgroup for `None`.
fn cgroup_dir(pid: i32, controller: Option<&str>) -> PathBuf {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (path, mount) = match controller {
        None => {
            let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
            let mount = mi
                .lines()
                .find(|l| l.contains(" - cgroup2 "))
                .and_then(|l| l.split(' ').nth(4))
                .unwrap();
            (path.to_string(), mount.to_string())
        }
        Some(c) => {
            let path = cg
                .lines()
                .find_map(|l| {
                    let mut f = l.splitn(3, ':').skip(1);
                    let ctrls = f.next()?;
                    ctrls.split(',').any(|x| x == c).then(|| f.next())?
                })
                .unwrap_or_else(|| panic!("no {c} line in {cg}"));
            let mount = mi
                .lines()
                .find(|l| {
                    l.split_once(" - cgroup ").is_some_and(|(_, post)| {
                        post.split(' ')
                            .nth(1)
                            .unwrap_or("")
                            .split(',')
                            .any(|o| o == c)
                    })
                })
                .and_then(|l| l.split(' ').nth(4))
                .unwrap();
            (path.to_string(), mount.to_string())
        }
    };
    Path::new(&mount).join(path.trim_start_matches('/'))
}

#[test]
fn supervisor_is_charged_to_the_container_cgroup() {
    require_root!();
    let ward = Ward::new();
    let id = unique_id("supcg");
    // Keep the bundle: its rootfs is the container's image.
    let bundle = Bundle::new(&["sleep", "1000"]);
    ward.run_detached(&bundle, &id);
    let init = ward.pid(&id);
    let rec = ward.root().join(".ward").join(&id).join("supervisor.json");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rec).expect("report mode records a supervisor"))
            .unwrap();
    let sup = rec["pid"].as_i64().unwrap() as i32;
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let hierarchies: Vec<Option<&str>> = if pure_v2 {
        vec![None]
    } else {
        vec![Some("cpu"), Some("memory"), Some("pids")]
    };
    for h in hierarchies {
        let dir = cgroup_dir(init, h);
        assert!(
            dir.file_name().is_some_and(|n| n == id.as_str()),
            "{h:?}: the init is not in the container's cgroup: {}",
            dir.display()
        );
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        let listed: Vec<&str> = procs.lines().collect();
        assert!(
            listed.contains(&sup.to_string().as_str()),
            "{h:?}: supervisor {sup} not in {}: {listed:?}",
            dir.display()
        );
    }
    // It is charged there but is not one of the container's processes.
    let ps = ward.ok(&["ps", &id]);
    assert!(!ps.split_whitespace().any(|w| w == sup.to_string()), "{ps}");
    // A paused container (its supervisor possibly frozen with it) is still deleted at once.
    ward.ok(&["pause", &id]);
    let t = Instant::now();
    ward.ok(&["delete", "--force", &id]);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "delete of a paused container took {:?}",
        t.elapsed()
    );
    let status = std::fs::read_to_string(format!("/proc/{sup}/status")).unwrap_or_default();
    assert!(
        !(status.contains("ward-supervisor") && status_alive(&status)),
        "supervisor {sup} survived delete: {status}"
    );
    assert_no_leftovers(&ward, &id);
}
