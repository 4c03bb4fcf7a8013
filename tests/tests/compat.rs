//! What ordinary workloads and OCI tools expect of a runtime (issue 11), each run in a real
//! container through the CLI and judged from inside and from the host:
//! - root binds ports below 1024 in a network namespace of its own (no NET_BIND_SERVICE);
//! - `rbind` carries host submounts, `bind` does not; a volume below a profile tmpfs stays
//!   visible; recursive mount attributes (`rro`, ...) and atime options on volumes work;
//! - supplementary groups (`process.user.additionalGids`) reach the init and `ward exec`;
//! - the set-id seccomp rules look at open's mode only when a file is created;
//! - `linux.resources.memory.disableOOMKiller` is applied (cgroup v1) or refused, never ignored.

use std::path::{Path, PathBuf};

use serde_json::json;
use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Ward};

/// The syscall helper (tests/src/bin/ward-syscall.rs), copied into bundles.
const SYSCALL_HELPER: &str = env!("CARGO_BIN_EXE_ward-syscall");

/// A tmpfs mounted on the host for the test's lifetime, unmounted on drop.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "ward-compat"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs at {}", at.display());
        Self(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The line of `ward run` stdout that starts with `key=`, without the key.
fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::trim)
}

/// Root without NET_BIND_SERVICE binds :80 in its own network namespace (containerd 2 sets
/// `net.ipv4.ip_unprivileged_port_start=0` there; so does Ward), unless the spec sets the key.
#[test]
fn root_binds_port_80_in_its_own_network_namespace() {
    require_root!();
    let ward = Ward::new();
    // LISTEN (0A) on local port 80 (0050) in /proc/net/tcp{,6}, and a connection over loopback.
    let script = "echo start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
                  httpd -f -p 80 -h /tmp & sleep 0.5; \
                  echo listen=$(cat /proc/net/tcp /proc/net/tcp6 | grep -c ':0050 [0-9A-F]*:0000 0A'); \
                  echo hello > /tmp/index.html; \
                  echo got=$(wget -q -O - http://127.0.0.1:80/index.html 2>&1); kill $!";
    let b = Bundle::sh(script);
    let id = unique_id("port80");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    assert_eq!(field(&o.stdout, "start"), Some("0"), "{o}");
    assert_eq!(field(&o.stdout, "listen"), Some("1"), "{o}");
    assert_eq!(field(&o.stdout, "got"), Some("hello"), "{o}");
    assert_no_leftovers(&ward, &id);

    // The spec's own value wins.
    let mut b = Bundle::sh(
        "echo start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
         nc -l -p 80 2>&1 | head -c 200; echo",
    );
    b.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "1024"}));
    let id = unique_id("port80-spec");
    let o = ward.run(&b, &id);
    assert_eq!(field(&o.stdout, "start"), Some("1024"), "{o}");
    assert!(o.stdout.contains("Permission denied"), "{o}");
    assert_no_leftovers(&ward, &id);
}

/// A process reopens its stdio by path (`/dev/stdout`, `/dev/stderr`; the official nginx
/// image's log files are symlinks to them), as under runc, whose containers run as host root.
/// The caller's anonymous pipes go to the container's root; a pipe of an exec'd process too.
#[test]
fn stdio_pipes_reopen_by_path() {
    require_root!();
    let ward = Ward::new();
    // ... for writing only: reading back what goes into a pipe the caller may share with
    // others (`make | tee`) stays refused.
    let b = Bundle::sh(
        "echo to-stdout > /dev/stdout && echo to-stderr > /dev/stderr && echo done; \
         (exec 3</dev/stdout) 2>/dev/null && echo READ-REOPENED || echo read-refused",
    );
    let id = unique_id("reopen");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    assert!(
        o.stdout.contains("to-stdout") && o.stdout.contains("done"),
        "{o}"
    );
    assert!(o.stdout.contains("read-refused"), "{o}");
    assert!(o.stderr.contains("to-stderr"), "{o}");
    assert_no_leftovers(&ward, &id);

    let b = Bundle::sh("exec sleep 1000");
    let id = unique_id("reopen-exec");
    ward.run_detached(&b, &id);
    let o = ward.output(&["exec", &id, "sh", "-c", "echo from-exec > /dev/stdout"]);
    assert!(o.success() && o.stdout.contains("from-exec"), "{o}");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

/// A host directory with a tmpfs mounted below it (`sub`) holding `sub/marker`.
fn dir_with_submount() -> (tempfile::TempDir, HostTmpfs) {
    let dir = tempfile::Builder::new()
        .prefix("ward-compat-vol-")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("top"), "top").unwrap();
    let sub = HostTmpfs::mount(&dir.path().join("sub"));
    std::fs::write(sub.0.join("marker"), "sub").unwrap();
    (dir, sub)
}

fn volume(b: &mut Bundle, source: &Path, dest: &str, options: &[&str]) {
    std::fs::create_dir_all(b.rootfs().join(dest.trim_start_matches('/'))).unwrap();
    let m = json!({"destination": dest, "type": "bind", "source": source, "options": options});
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    require_root!();
    let (dir, _sub) = dir_with_submount();
    let ward = Ward::new();
    for (opt, want) in [("rbind", "sub"), ("bind", "none")] {
        let mut b = Bundle::sh(
            "echo top=$(cat /vol/top); echo sub=$(cat /vol/sub/marker 2>/dev/null || echo none)",
        );
        volume(&mut b, dir.path(), "/vol", &[opt, "rw"]);
        let id = unique_id("rbind");
        let o = ward.run(&b, &id);
        assert!(o.success(), "{opt}: {o}");
        assert_eq!(field(&o.stdout, "top"), Some("top"), "{opt}: {o}");
        assert_eq!(field(&o.stdout, "sub"), Some(want), "{opt}: {o}");
        assert_no_leftovers(&ward, &id);
    }
}

/// A volume at `/tmp/vol` below the profile's `/tmp` tmpfs (appended after the spec's mounts)
/// is mounted after it, not hidden by it.
#[test]
fn volume_below_a_profile_tmpfs_stays_visible() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), "from-host").unwrap();
    let mut b = Bundle::sh(
        "echo f=$(cat /tmp/vol/f); echo tmp=$(grep -c ' /tmp tmpfs ' /proc/self/mounts)",
    );
    volume(&mut b, dir.path(), "/tmp/vol", &["rbind", "ro"]);
    let ward = Ward::new();
    let id = unique_id("tmpvol");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    assert_eq!(field(&o.stdout, "f"), Some("from-host"), "{o}");
    assert_eq!(
        field(&o.stdout, "tmp"),
        Some("1"),
        "the profile's /tmp is still there: {o}"
    );
    assert_no_leftovers(&ward, &id);
}

/// `rro` makes the submounts of an rbind volume read-only too; `rnoexec` non-executable.
#[test]
fn recursive_mount_attributes_reach_submounts() {
    require_root!();
    let (dir, _sub) = dir_with_submount();
    std::fs::copy("/bin/busybox", dir.path().join("sub/bb")).unwrap();
    let mut b = Bundle::sh(
        "echo top=$(touch /vol/x 2>&1 || echo refused); \
         echo sub=$(touch /vol/sub/x 2>&1 || echo refused); \
         echo exec=$(/vol/sub/bb true 2>&1 && echo ran || echo refused)",
    );
    volume(&mut b, dir.path(), "/vol", &["rbind", "rro", "rnoexec"]);
    let ward = Ward::new();
    let id = unique_id("rro");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    for k in ["top", "sub"] {
        let v = field(&o.stdout, k).unwrap_or_default();
        assert!(v.contains("Read-only file system"), "{k}: {o}");
    }
    assert!(
        field(&o.stdout, "exec")
            .unwrap_or_default()
            .contains("ermission denied"),
        "{o}"
    );
    assert!(!dir.path().join("sub/x").exists());
    assert_no_leftovers(&ward, &id);
}

/// atime options on a bind volume (plain and recursive) are applied, and show in mountinfo.
#[test]
fn atime_options_on_volumes_apply() {
    require_root!();
    let (dir, _sub) = dir_with_submount();
    let ward = Ward::new();
    let cases: &[(&[&str], &[&str])] = &[
        (&["rbind", "noatime"], &["noatime"]),
        (&["rbind", "rnoatime"], &["noatime"]),
        (&["rbind", "nodiratime"], &["nodiratime"]),
        (&["rbind", "rnodiratime"], &["nodiratime"]),
        (&["rbind", "strictatime"], &[]),
        (&["rbind", "rstrictatime"], &[]),
    ];
    for (opts, want) in cases {
        let mut b = Bundle::sh(
            "grep ' /vol ' /proc/self/mountinfo; grep ' /vol/sub ' /proc/self/mountinfo",
        );
        volume(&mut b, dir.path(), "/vol", opts);
        let id = unique_id("atime");
        let o = ward.run(&b, &id);
        assert!(o.success(), "{opts:?}: {o}");
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{opts:?}: {o}");
        // Recursive options reach the submount too; plain ones the top mount only.
        let reach = if opts[1].starts_with('r') { 2 } else { 1 };
        for l in &lines[..reach] {
            let mopts = l.split(' ').nth(5).unwrap_or_default();
            for w in *want {
                assert!(
                    mopts.split(',').any(|x| x == *w),
                    "{opts:?}: {w} missing in {l}"
                );
            }
            if opts[1].ends_with("strictatime") {
                assert!(
                    !mopts.contains("relatime") && !mopts.contains("noatime"),
                    "{opts:?}: {l}"
                );
            }
        }
        assert_no_leftovers(&ward, &id);
    }
}

fn groups_of(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect()
}

/// `process.user.additionalGids` reach the init and `ward exec`, which also accepts runc's
/// `--ignore-paused` and `--cgroup`; without any, the process has no stray host groups.
#[test]
fn supplementary_groups_reach_init_and_exec() {
    require_root!();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["process"]["user"]["additionalGids"] = json!([1234, 5678]));
    let ward = Ward::new();
    let id = unique_id("groups");
    ward.run_detached(&b, &id);
    let init = ward.pid(&id);
    let host = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    let inside = ward.ok(&["exec", &id, "cat", "/proc/1/status"]);
    assert_eq!(groups_of(&inside), vec![1234, 5678], "init: {inside}");
    // The same from the host: the range's gids, nothing of the host's own.
    let base = ward_tests::range_base(init);
    assert_eq!(groups_of(&host), vec![base + 1234, base + 5678], "{host}");
    let o = ward.ok(&["exec", &id, "id", "-G"]);
    assert_eq!(o.trim(), "0 1234 5678", "exec id -G");
    let o = ward.ok(&[
        "exec",
        "--ignore-paused",
        "--cgroup",
        "/",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(groups_of(&o), vec![1234, 5678], "exec: {o}");
    let o = ward.output(&["exec", "--cgroup", "memory:/sub", &id, "true"]);
    assert!(!o.success() && o.stderr.contains("--cgroup"), "{o}");
    ward.ok(&["pause", &id]);
    let o = ward.output(&["exec", "--ignore-paused", &id, "true"]);
    assert!(!o.success() && o.stderr.contains("paused"), "{o}");
    ward.ok(&["resume", &id]);
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);

    // No additionalGids: no supplementary groups, even when whoever runs Ward has some
    // (host groups would show as the overflow gid 65534 inside).
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("nogroups");
    let st = std::process::Command::new("setpriv")
        .args(["--groups", "4,27", "--"])
        .arg(ward.bin())
        .arg("--root")
        .arg(ward.root())
        .args(["run", "-d", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    ward.track(ward.pid(&id));
    let inside = ward.ok(&["exec", &id, "cat", "/proc/1/status"]);
    let exec = ward.ok(&["exec", &id, "cat", "/proc/self/status"]);
    for (who, st) in [("init", &inside), ("exec", &exec)] {
        assert_eq!(groups_of(st), Vec::<u32>::new(), "{who}: {st}");
    }
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

/// The profiles' set-id rules refuse creating a set-id file, not an open whose (ignored) mode
/// register happens to hold S_ISUID.
#[test]
fn set_id_rules_refuse_only_creating_opens() {
    require_root!();
    let mut b = Bundle::sh(
        "cd /tmp; \
         /bin/ward-syscall openat -100 /dev/null 0 0o4755; \
         /bin/ward-syscall openat -100 /tmp/new 0o101 0o4755; \
         /bin/ward-syscall openat -100 /tmp/plain 0o101 0o755; \
         /bin/ward-syscall openat -100 /tmp 0o20200002 0o2755; \
         /bin/ward-syscall openat -100 /tmp 0o200000 0o2755",
    );
    b.add_host_binary(Path::new(SYSCALL_HELPER), "/bin/ward-syscall");
    for profile in ["default", "strict"] {
        let ward = Ward::new().with_global(["--profile", profile]);
        let id = unique_id("setid");
        let o = ward.run(&b, &id);
        assert!(o.success(), "{profile}: {o}");
        let lines: Vec<&str> = o.stdout.lines().collect();
        assert_eq!(lines.len(), 5, "{profile}: {o}");
        assert!(
            lines[0].starts_with("openat ret="),
            "{profile}: O_RDONLY with 04755: {o}"
        );
        assert_eq!(
            lines[1], "openat errno=EPERM",
            "{profile}: O_CREAT with 04755: {o}"
        );
        assert!(
            lines[2].starts_with("openat ret="),
            "{profile}: O_CREAT 0755: {o}"
        );
        assert_eq!(
            lines[3], "openat errno=EPERM",
            "{profile}: O_TMPFILE with 02755: {o}"
        );
        assert!(
            lines[4].starts_with("openat ret="),
            "{profile}: O_DIRECTORY: {o}"
        );
        assert_no_leftovers(&ward, &id);
    }
}

/// The container's memory cgroup directory (v1) from the host, by its init pid.
fn memory_cgroup_v1(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        ctrl.split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    Some(PathBuf::from("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/')))
}

#[test]
fn disable_oom_killer_is_applied_or_refused() {
    require_root!();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864, "disableOOMKiller": true}})
    });
    let ward = Ward::new();
    let id = unique_id("oomctl");
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists();
    if !v1 {
        let o = ward.create(&b, &id);
        assert!(!o.success(), "{o}");
        assert!(
            o.stderr.contains("linux.resources.memory.disableOOMKiller"),
            "{o}"
        );
        assert_no_leftovers(&ward, &id);
        return;
    }
    ward.run_detached(&b, &id);
    let dir = memory_cgroup_v1(ward.pid(&id)).expect("memory cgroup");
    let ctl = std::fs::read_to_string(dir.join("memory.oom_control")).unwrap();
    assert!(
        ctl.contains("oom_kill_disable 1"),
        "{}: {ctl}",
        dir.display()
    );
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);

    // Without the field the OOM killer stays on.
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("oomctl-off");
    ward.run_detached(&b, &id);
    let dir = memory_cgroup_v1(ward.pid(&id)).expect("memory cgroup");
    let ctl = std::fs::read_to_string(dir.join("memory.oom_control")).unwrap();
    assert!(ctl.contains("oom_kill_disable 0"), "{ctl}");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

/// A pod sandbox in a pod network Ward joins (made by the engine, owned by the host user
/// namespace): ports from 0 there too, unless the sandbox's spec sets the key; a namespace a
/// person names without being a pod sandbox is left as it is.
#[test]
fn pod_sandbox_network_gets_unprivileged_ports() {
    require_root!();
    let sysctl = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let host_before = std::fs::read_to_string(sysctl).unwrap();
    for (sandbox, spec_value, want) in [
        (true, None, "0"),
        (true, Some("2000"), "2000"),
        (false, None, "1024"),
    ] {
        let mut holder = std::process::Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .unwrap();
        let pid = holder.id();
        let me = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert!(ward_tests::wait_until(
            std::time::Duration::from_secs(5),
            || std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l != me)
        ));
        let id = unique_id("podports");
        let mut b = Bundle::new(&["sleep", "1000"]);
        b.edit(|c| {
            let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
            nss.retain(|n| n["type"] != "network");
            nss.push(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
            if sandbox {
                c["annotations"] = json!({
                    "io.kubernetes.cri.sandbox-id": id,
                    "io.kubernetes.cri.container-type": "sandbox",
                });
            }
            if let Some(v) = spec_value {
                c["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": v});
            }
        });
        let ward = Ward::new();
        ward.run_detached(&b, &id);
        // Read from the host, in the pod namespace.
        let o = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "cat", sysctl])
            .output()
            .unwrap();
        let _ = holder.kill();
        let _ = holder.wait();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            want,
            "sandbox={sandbox} spec={spec_value:?}"
        );
        ward.ok(&["delete", "--force", &id]);
        assert_no_leftovers(&ward, &id);
    }
    assert_eq!(std::fs::read_to_string(sysctl).unwrap(), host_before);
}
