//! `ward exec`: a process started in a running container gets exactly the init's sandbox
//! (user namespace, capabilities, no_new_privs, seccomp, read-only rootfs, cgroup).

use std::process::Stdio;
use std::time::Duration;

use ward_tests::probe::{parse_id_map, status_fields};
use ward_tests::{
    assert_no_leftovers, assert_root_clean, probe_script, require_root, unique_id, Bundle, Probes,
    Ward,
};

fn ns_links(pid: i32) -> Vec<(String, String)> {
    ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"]
        .iter()
        .map(|k| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("error {e}"));
            (k.to_string(), l)
        })
        .collect()
}

#[test]
fn exec_gets_the_init_sandbox() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("exec");
    ward.run_detached(&b, &id);
    let init = ward.pid(&id);

    let script = probe_script(&[
        ("uid_map", "cat /proc/self/uid_map"),
        ("gid_map", "cat /proc/self/gid_map"),
        (
            "status",
            "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        ),
        ("unshare_user", "unshare -U true"),
        ("mount_tmpfs", "mount -t tmpfs x /mnt"),
        ("write_root", "echo x > /probe"),
        ("write_tmp", "echo ok > /tmp/e && cat /tmp/e"),
        ("cgroup_self", "cat /proc/self/cgroup"),
        ("cgroup_init", "cat /proc/1/cgroup"),
    ]);
    let o = ward.output(&["exec", &id, "sh", "-c", &script]);
    assert!(o.success(), "exec failed:\n{o}");
    let p = Probes::parse(&o.stdout);

    // Same user namespace mapping as the init (read from the host).
    let init_uid = std::fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    let init_gid = std::fs::read_to_string(format!("/proc/{init}/gid_map")).unwrap();
    assert_eq!(parse_id_map(p.ok("uid_map")), parse_id_map(&init_uid));
    assert_eq!(parse_id_map(p.ok("gid_map")), parse_id_map(&init_gid));
    let (_, host, _) = parse_id_map(&init_uid)[0];
    assert!(host >= 1, "init maps host 0: {init_uid}");
    let st = status_fields(p.ok("status"));
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let v = st
            .get(cap)
            .unwrap_or_else(|| panic!("{cap} missing: {st:?}"));
        assert_eq!(u64::from_str_radix(v, 16).unwrap(), 0, "{cap} = {v}");
    }
    assert_eq!(st.get("NoNewPrivs").map(String::as_str), Some("1"));
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"));
    p.fails_with("unshare_user", "Operation not permitted");
    p.fails_with("mount_tmpfs", "");
    p.fails_with("write_root", "Read-only file system");
    assert_eq!(p.ok("write_tmp"), "ok");
    assert_eq!(
        p.ok("cgroup_self"),
        p.ok("cgroup_init"),
        "exec'd process not in the init's cgroup"
    );

    // From the host: a detached exec'd process shares the init's namespaces and cgroup.
    let pidfile = tempfile::tempdir().unwrap().keep().join("exec.pid");
    let st = ward
        .cmd(&[
            "exec".as_ref(),
            "-d".as_ref(),
            "--pid-file".as_ref(),
            pidfile.as_os_str(),
            id.as_ref(),
            "sleep".as_ref(),
            "300".as_ref(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "exec -d failed");
    assert!(ward_tests::wait_until(Duration::from_secs(5), || {
        pidfile.exists()
    }));
    let epid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ward.track(epid);
    let _ = std::fs::remove_dir_all(pidfile.parent().unwrap());
    assert_ne!(epid, init);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{epid}/cgroup")).unwrap(),
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap(),
        "host view: exec'd process in another cgroup"
    );
    assert_eq!(ns_links(epid), ns_links(init), "namespaces differ");
    let est = status_fields(&std::fs::read_to_string(format!("/proc/{epid}/status")).unwrap());
    assert_eq!(est.get("Seccomp").map(String::as_str), Some("2"));
    assert_eq!(est.get("NoNewPrivs").map(String::as_str), Some("1"));
    assert_eq!(
        u64::from_str_radix(est.get("CapEff").unwrap(), 16).unwrap(),
        0
    );
    let pids: Vec<i32> = serde_json::from_str(&ward.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(
        pids.contains(&epid) && pids.contains(&init),
        "ps {pids:?} lacks {epid} or {init}"
    );

    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

#[test]
fn exec_refuses_caps_and_a_stopped_container() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("execr");
    ward.run_detached(&b, &id);
    let o = ward.output(&["exec", "--cap", "CAP_SYS_ADMIN", &id, "true"]);
    assert!(!o.success(), "exec --cap accepted:\n{o}");
    assert!(o.stderr.contains("--cap"), "{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");

    ward.ok(&["kill", &id, "KILL"]);
    assert!(ward.wait_status(&id, "stopped", Duration::from_secs(5)));
    let o = ward.output(&["exec", &id, "true"]);
    assert!(!o.success(), "exec into a stopped container:\n{o}");
    assert!(o.stderr.to_lowercase().contains("stopped"), "{o}");
    ward.ok(&["delete", &id]);
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}
