//! The sandbox seen from inside a real container (its own stdout, parsed) and from the host
//! (state, list, ps, pause/resume, kill, delete, and what is left afterwards).

use std::os::unix::fs::{chown, MetadataExt};
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use ward_tests::probe::{parse_id_map, status_fields};
use ward_tests::{
    assert_no_leftovers, assert_root_clean, leaks::range_slot, probe_script, require_root,
    unique_id, Bundle, Probes, Ward,
};

/// Assert a uid/gid map is a real user namespace mapping: not the identity, host id 0 not
/// mapped, host start ≥ 1.
#[track_caller]
fn assert_not_host_root_map(what: &str, text: &str) {
    let map = parse_id_map(text);
    assert!(!map.is_empty(), "{what}: empty map {text:?}");
    assert_ne!(
        map,
        vec![(0, 0, 4294967295)],
        "{what}: identity map (no user namespace)"
    );
    for (inside, host, len) in &map {
        assert!(*len > 0, "{what}: empty range in {text:?}");
        assert!(
            *host >= 1,
            "{what}: maps container {inside} to host 0 ({text:?})"
        );
        assert_ne!(inside, host, "{what}: identity range {text:?}");
    }
}

fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the ABI version (or an error); it reads no memory.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    }
}

#[test]
fn sandbox_facts_from_inside() {
    require_root!();
    let vols = tempfile::tempdir().unwrap();
    let ro = vols.path().join("ro");
    let rw = vols.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("hostfile"), "from-host\n").unwrap();
    std::fs::write(rw.join("rootfile"), "root-owned\n").unwrap();
    std::fs::write(rw.join("userfile"), "uid-1000\n").unwrap();
    chown(rw.join("userfile"), Some(1000), Some(1000)).unwrap();
    // The test creates these as host root: check that, it is what the assertions rely on.
    assert_eq!(std::fs::metadata(rw.join("rootfile")).unwrap().uid(), 0);

    let script = probe_script(&[
        ("uid_map", "cat /proc/self/uid_map"),
        ("gid_map", "cat /proc/self/gid_map"),
        (
            "status",
            "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        ),
        ("id", "id -u; id -g"),
        ("unshare_user", "unshare -U true"),
        ("unshare_mount", "unshare -m true"),
        ("mount_tmpfs", "mount -t tmpfs x /mnt"),
        ("mnt_after", "grep -c ' /mnt ' /proc/self/mounts"),
        ("write_root", "echo x > /probe"),
        ("write_etc", "echo x > /etc/probe"),
        ("mkdir_root", "mkdir /newdir"),
        ("rm_bin", "rm /bin/sh"),
        (
            "write_core_pattern",
            "echo x > /proc/sys/kernel/core_pattern",
        ),
        ("write_sysrq", "echo h > /proc/sysrq-trigger"),
        ("write_tmp", "echo tmp-ok > /tmp/f && cat /tmp/f"),
        ("write_ro_volume", "echo x > /ro/new"),
        ("read_ro_volume", "cat /ro/hostfile"),
        (
            "write_rw_volume",
            "echo inside > /rw/created && cat /rw/created",
        ),
        ("ls_busybox", "ls -ln /bin/busybox"),
        ("ls_vol_root", "ls -ln /rw/rootfile"),
        ("ls_vol_user", "ls -ln /rw/userfile"),
        // A rw volume is the container's to write, but never a way to plant set-id files or
        // devices for the host (container root writes as host root through the idmap).
        ("rw_mount_opts", "grep ' /rw ' /proc/self/mountinfo"),
        ("chmod_setuid", "chmod 4755 /rw/created"),
        ("chmod_plain", "chmod 755 /rw/created && echo chmod-ok"),
        ("mknod_char", "mknod /rw/null c 1 3"),
        (
            "cpu_quota",
            "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us",
        ),
    ]);
    let mut b = Bundle::sh(&script);
    b.bind(&ro, "/ro", true).bind(&rw, "/rw", false);
    let ward = Ward::new();
    let id = unique_id("facts");
    let out = ward.run(&b, &id);
    assert!(out.success(), "container failed:\n{out}");
    let p = Probes::parse(&out.stdout);

    assert_not_host_root_map("uid_map", p.ok("uid_map"));
    assert_not_host_root_map("gid_map", p.ok("gid_map"));
    let st = status_fields(p.ok("status"));
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = st
            .get(cap)
            .unwrap_or_else(|| panic!("{cap} missing: {st:?}"));
        assert_eq!(
            u64::from_str_radix(v, 16).unwrap(),
            0,
            "{cap} = {v}, want 0"
        );
    }
    assert_eq!(
        st.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "{st:?}"
    );
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"), "{st:?}");
    assert_eq!(
        p.ok("id"),
        "0 0",
        "container process is not uid/gid 0 inside"
    );

    p.fails_with("unshare_user", "Operation not permitted");
    p.fails_with("unshare_mount", "");
    p.fails_with("mount_tmpfs", "");
    assert_eq!(p.get("mnt_after").out, "0", "something got mounted on /mnt");
    p.fails_with("write_root", "Read-only file system");
    p.fails_with("write_etc", "");
    p.fails_with("mkdir_root", "");
    p.fails_with("rm_bin", "");
    p.fails_with("write_core_pattern", "");
    p.fails_with("write_sysrq", "");
    assert_eq!(p.ok("write_tmp"), "tmp-ok");
    p.fails_with("write_ro_volume", "Read-only file system");
    assert_eq!(p.ok("read_ro_volume"), "from-host");
    assert_eq!(p.ok("write_rw_volume"), "inside");
    let opts = p.ok("rw_mount_opts");
    assert!(
        opts.contains("nosuid") && opts.contains("nodev") && opts.contains("idmapped"),
        "rw volume mount: {opts}"
    );
    p.fails_with("chmod_setuid", "Operation not permitted");
    assert_eq!(p.ok("chmod_plain"), "chmod-ok");
    p.fails_with("mknod_char", "Operation not permitted");
    // Default quota: one CPU (the spec sets none).
    assert_eq!(
        p.ok("cpu_quota").split_whitespace().collect::<Vec<_>>(),
        ["100000", "100000"],
        "cpu.cfs_quota_us / cpu.cfs_period_us"
    );

    // Ownership through the idmapped rootfs and volume: host uid 0 shows as 0 inside, host
    // uid 1000 as 1000 (offset mapping), not as the overflow uid 65534.
    let owner = |name: &str| -> (String, String) {
        let f: Vec<&str> = p.ok(name).split_whitespace().collect();
        (f[2].to_string(), f[3].to_string())
    };
    assert_eq!(owner("ls_busybox"), ("0".into(), "0".into()), "rootfs");
    assert_eq!(owner("ls_vol_root"), ("0".into(), "0".into()), "volume");
    assert_eq!(
        owner("ls_vol_user"),
        ("1000".into(), "1000".into()),
        "volume"
    );

    // On the host: the file created by container root is owned by host 0 through the
    // idmapped mount; the files that were there keep their owners.
    let created = std::fs::metadata(rw.join("created")).expect("file created in the volume");
    assert_eq!(
        (created.uid(), created.gid()),
        (0, 0),
        "owner on the host of a file created by container root in an idmapped volume"
    );
    assert_eq!(
        std::fs::read_to_string(rw.join("created")).unwrap(),
        "inside\n"
    );
    assert_eq!(
        created.mode() & 0o7777,
        0o755,
        "mode on the host of the file the container tried to make setuid"
    );
    assert!(
        !rw.join("null").exists(),
        "device node created in the volume"
    );
    let m = std::fs::metadata(rw.join("userfile")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    let m = std::fs::metadata(rw.join("rootfile")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert!(!ro.join("new").exists());
    let bb = std::fs::metadata(b.rootfs().join("bin/busybox")).unwrap();
    assert_eq!(bb.uid(), 0, "rootfs owner on the host changed");

    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

/// Landlock on its own: under `--profile strict` (exec only from the rootfs' bin dirs) a
/// binary on a writable volume cannot be executed, although the mount allows exec and the
/// same binary runs under the default profile.
#[test]
fn landlock_strict_profile_denies_exec_outside_bin_dirs() {
    require_root!();
    let abi = landlock_abi();
    if abi < 1 {
        eprintln!(
            "SKIP: kernel feature missing: Landlock (landlock_create_ruleset returned {abi})"
        );
        return;
    }
    let vol = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", vol.path().join("true")).unwrap();
    let script = "/vol/true; echo \"vol=$?\"; /bin/true; echo \"bin=$?\"";
    let mut b = Bundle::sh(script);
    b.bind(vol.path(), "/vol", false);

    let ward = Ward::new();
    let id = unique_id("ll-default");
    let out = ward.run(&b, &id);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("vol=0") && out.stdout.contains("bin=0"),
        "default profile: exec from the volume should work:\n{out}"
    );
    assert_no_leftovers(&ward, &id);

    let strict = Ward::new().with_global(["--profile", "strict"]);
    let id = unique_id("ll-strict");
    let out = strict.run(&b, &id);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("vol=126") && out.stdout.contains("bin=0"),
        "strict profile: exec from the volume must be denied (126), /bin allowed:\n{out}"
    );
    assert!(out.stderr.contains("Permission denied"), "{out}");
    assert_no_leftovers(&strict, &id);
    assert_root_clean(&strict);
}

/// A fork loop stops at the spec's pids limit; the host is unaffected.
#[test]
fn pids_limit_stops_fork_loop() {
    require_root!();
    let script = "( i=0; while [ $i -lt 2000 ]; do sleep 30 & i=$((i+1)); done ) 2>&1; \
                  echo \"loop-ended rc=$?\"; exec sleep 1000";
    let mut b = Bundle::sh(script);
    b.edit(|c| c["linux"]["resources"] = json!({ "pids": { "limit": 50 } }));
    let ward = Ward::new();
    let id = unique_id("pids");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut c = ward.cmd(&[
        "run".as_ref(),
        "-d".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref(),
    ]);
    c.stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap());
    let st = c.status().unwrap();
    assert!(st.success(), "run -d failed: {st}");
    let pid = ward.pid(&id);
    ward.track(pid);

    let ended = ward_tests::wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .contains("loop-ended")
    });
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(ended, "fork loop did not end within 20s:\n{text}");
    assert!(
        text.contains("can't fork") || text.contains("Resource temporarily unavailable"),
        "no fork failure reported:\n{text}"
    );
    let pids: Vec<i32> = serde_json::from_str(&ward.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(
        pids.len() <= 50 && pids.len() >= 20,
        "{} processes in the container (limit 50)",
        pids.len()
    );
    // The limit is the kernel's, on the container's pids cgroup.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    if let Some(path) = cg
        .lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, p)| p.to_string()))
    {
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{path}/pids.max")).unwrap();
        assert_eq!(max.trim(), "50");
    } else {
        let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/pids.max")).unwrap();
        assert_eq!(max.trim(), "50");
    }
    // The host still forks.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());

    ward.ok(&["delete", "--force", &id]);
    assert!(
        ward_tests::wait_until(Duration::from_secs(5), || ward_tests::leftovers(&ward, &id)
            .is_empty()),
        "leftovers after delete --force"
    );
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

fn proc_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with(['Z', 'X']))
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

#[test]
fn lifecycle_state_list_ps_pause_resume_kill_delete() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("life");
    let o = ward.create(&b, &id);
    assert!(o.success(), "create: {o}");
    let s = ward.state(&id);
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], id.as_str());
    let pid = s["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && proc_alive(pid), "init pid {pid} not alive");
    assert_eq!(
        Path::new(s["bundle"].as_str().unwrap()),
        b.path().canonicalize().unwrap()
    );
    // The init's user namespace, seen from the host, maps onto the range ward holds for it.
    let slot = range_slot(ward.root(), &id).expect("range allocated while the container exists");
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_not_host_root_map("host view of uid_map", &map);
    let (_, host, len) = parse_id_map(&map)[0];
    assert_eq!(
        host,
        1_048_576 + u64::from(slot) * len,
        "uid range not slot {slot}"
    );

    ward.ok(&["start", &id]);
    assert!(
        ward.wait_status(&id, "running", Duration::from_secs(5)),
        "not running: {}",
        ward.state(&id)
    );
    let list = ward.ok(&["list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{list}"
    );
    assert_eq!(ward.ok(&["list", "-q"]).trim(), id);
    let all: serde_json::Value =
        serde_json::from_str(&ward.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(all[0]["id"], id.as_str(), "{all}");
    let pids: Vec<i32> = serde_json::from_str(&ward.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![pid]);
    let table = ward.ok(&["ps", &id]);
    assert!(
        table.contains(&pid.to_string()) && table.contains("sleep"),
        "{table}"
    );

    ward.ok(&["pause", &id]);
    assert_eq!(ward.status(&id), "paused");
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(proc_alive(pid), "{st}");
    ward.ok(&["resume", &id]);
    assert_eq!(ward.status(&id), "running");

    ward.ok(&["kill", &id, "KILL"]);
    assert!(
        ward.wait_status(&id, "stopped", Duration::from_secs(5)),
        "not stopped after SIGKILL: {}",
        ward.state(&id)
    );
    assert_eq!(ward.state(&id)["pid"], 0);
    ward.reap();
    assert!(!proc_alive(pid));

    ward.ok(&["delete", &id]);
    let o = ward.output(&["state", &id]);
    assert!(!o.success() && o.stderr.contains("does not exist"), "{o}");
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
    assert!(ward.ok(&["list", "-q"]).trim().is_empty());
}

#[test]
fn delete_force_kills_a_running_container() {
    require_root!();
    let b = Bundle::sh("sleep 1000 & sleep 1000 & exec sleep 1000");
    let ward = Ward::new();
    let id = unique_id("delf");
    ward.run_detached(&b, &id);
    assert_eq!(ward.status(&id), "running");
    let pids: Vec<i32> = serde_json::from_str(&ward.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    let o = ward.output(&["delete", &id]);
    assert!(
        !o.success(),
        "delete without --force of a running container: {o}"
    );
    ward.ok(&["delete", "--force", &id]);
    ward.reap();
    for p in pids {
        assert!(!proc_alive(p), "pid {p} survived delete --force");
    }
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

#[test]
fn foreground_run_returns_the_exit_code() {
    require_root!();
    let b = Bundle::sh("echo out; echo err >&2; exit 7");
    let ward = Ward::new();
    let id = unique_id("exit");
    let o = ward.run(&b, &id);
    assert_eq!(o.code, Some(7), "{o}");
    assert_eq!(o.stdout.trim(), "out");
    assert!(o.stderr.contains("err"), "{o}");
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

/// THREATS.md: "no cgroupfs mount possible, cgroup dir read-only". The spec's cgroup mount
/// is forced `ro` by harden; every cgroup filesystem mounted inside must be read-only.
#[test]
fn cgroup_mounts_are_read_only_inside() {
    require_root!();
    let b = Bundle::new(&["cat", "/proc/self/mountinfo"]);
    let ward = Ward::new();
    let id = unique_id("cgro");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    // The effective mount of a path is the last (topmost) entry for it; earlier entries are
    // stacked underneath and unreachable without CAP_SYS_ADMIN.
    let mut top: std::collections::BTreeMap<String, String> = Default::default();
    for l in o.stdout.lines() {
        if let Some(mp) = l.split(' ').nth(4) {
            top.insert(mp.to_string(), l.to_string());
        }
    }
    let mut rw = vec![];
    for l in top.values() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let fstype = post.split(' ').next().unwrap_or("");
        let f: Vec<&str> = pre.split(' ').collect();
        let (mp, opts) = (
            f.get(4).copied().unwrap_or(""),
            f.get(5).copied().unwrap_or(""),
        );
        let cgroupish = fstype == "cgroup" || fstype == "cgroup2" || mp == "/sys/fs/cgroup";
        if cgroupish && !opts.split(',').any(|o| o == "ro") {
            rw.push(format!("{mp} ({fstype}, {opts})"));
        }
    }
    assert_no_leftovers(&ward, &id);
    assert!(
        rw.is_empty(),
        "cgroup mounts writable inside the container:\n  {}",
        rw.join("\n  ")
    );
}

/// A bind mount whose destination is missing from the (read-only) rootfs either works (the
/// mount point is provided) or is refused with an error naming the mount; never an opaque
/// failure, and never leftovers.
#[test]
fn bind_to_missing_destination_is_named_or_works() {
    require_root!();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "vol\n").unwrap();
    let mut b = Bundle::new(&["cat", "/not-in-image/f"]);
    let m = json!({
        "destination": "/not-in-image",
        "type": "bind",
        "source": vol.path(),
        "options": ["rbind", "ro"],
    });
    b.edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
    let ward = Ward::new();
    let id = unique_id("nodest");
    let o = ward.run(&b, &id);
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
    if o.success() {
        assert_eq!(o.stdout.trim(), "vol");
    } else {
        assert!(
            o.stderr.contains("/not-in-image") || o.stderr.contains("mounts["),
            "refusal does not name the mount:\n{o}"
        );
    }
}

/// Output sent to /dev/null stays writable: libcontainer re-opens /dev/null over such stdio
/// read-only, and every write failed with EBADF until Ward re-opened it for writing.
#[test]
fn stdout_to_dev_null_is_writable() {
    require_root!();
    let b = Bundle::sh("echo to-null; echo rc=$? >&2");
    let ward = Ward::new();
    let id = unique_id("devnull");
    let mut c = ward.cmd(&[
        "run".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_str().as_ref(),
    ]);
    c.stdout(std::process::Stdio::null());
    let o = Ward::output_of(c);
    assert!(o.success(), "{o}");
    assert!(
        o.stderr.contains("rc=0"),
        "write to /dev/null stdout failed:\n{o}"
    );
    assert_no_leftovers(&ward, &id);
}

/// The container's own network namespace has its loopback up, as under runc and crun, and
/// nothing else: a TCP round trip on 127.0.0.1 works, the host's interfaces are not there.
#[test]
fn own_network_namespace_has_loopback_up() {
    require_root!();
    let b = Bundle::sh(
        "ip -o link show | cut -d: -f2 | tr -d ' ' | tr '\\n' ' '; echo; \
         (echo pong | nc -l -p 9000 &); sleep 0.3; nc 127.0.0.1 9000 </dev/null",
    );
    let ward = Ward::new();
    let id = unique_id("lo");
    let o = ward.run(&b, &id);
    assert!(o.success(), "{o}");
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next().map(str::trim), Some("lo"), "interfaces:\n{o}");
    assert_eq!(lines.next(), Some("pong"), "loopback round trip:\n{o}");
    assert_no_leftovers(&ward, &id);
}

/// Two state roots (the CLI's and a shim namespace's, say) never give two live containers the
/// same host uids: range slots are claimed node-wide.
#[test]
fn two_roots_get_disjoint_ranges() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let (w1, w2) = (Ward::new(), Ward::new());
    let (id1, id2) = (unique_id("root1"), unique_id("root2"));
    w1.run_detached(&b, &id1);
    w2.run_detached(&b, &id2);
    let map = |w: &Ward, id: &str| {
        let m = std::fs::read_to_string(format!("/proc/{}/uid_map", w.pid(id))).unwrap();
        parse_id_map(&m)[0]
    };
    let ((_, h1, n1), (_, h2, _)) = (map(&w1, &id1), map(&w2, &id2));
    assert!(
        h2 >= h1 + n1 || h1 >= h2 + n1,
        "two roots share host ids: {h1}+{n1} and {h2}"
    );
    w1.ok(&["delete", "--force", &id1]);
    w2.ok(&["delete", "--force", &id2]);
    assert_no_leftovers(&w1, &id1);
    assert_no_leftovers(&w2, &id2);
}
