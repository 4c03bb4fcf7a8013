//! systemd-style `linux.cgroupsPath` (`slice:prefix:name`, what containerd sends under the
//! systemd cgroup driver) on a node where no systemd runs: the container lands in the cgroup
//! systemd would have given its scope, in every hierarchy, with its limits, and `delete`
//! removes what Ward made. Judged from the host (/proc/<pid>/cgroup, the cgroup files).
//! Where systemd runs, Ward asks systemd for the scope over D-Bus instead: that path is
//! covered by systemd_dbus.rs against a test double, since this machine has no systemd.

use std::path::{Path, PathBuf};

use serde_json::json;
use ward_tests::leaks::cgroup_mounts;
use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Ward};

fn systemd_absent() -> bool {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("SKIP: this node runs systemd: slice:prefix:name goes over D-Bus here (systemd_dbus.rs)");
        return false;
    }
    true
}

/// The cgroup of `pid` in each hierarchy, as the host sees it (hierarchy line → path).
fn cgroups_of(pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            Some((ctrl.to_string(), path.to_string()))
        })
        .collect()
}

/// The hierarchies of `cgroups_of` that hold controllers: every line on pure v2 (the one
/// unified line), the v1 controllers on v1 and hybrid hosts. On those, libcontainer's v1
/// manager joins no named hierarchy (`name=systemd`) nor the controller-less unified one, for
/// any cgroupsPath (Ward still makes the leaf there, and removes it).
fn controller_hierarchies(cgs: &[(String, String)]) -> Vec<&(String, String)> {
    let v1 = cgs
        .iter()
        .any(|(c, _)| !c.is_empty() && !c.starts_with("name="));
    cgs.iter()
        .filter(|(c, _)| {
            if v1 {
                !c.is_empty() && !c.starts_with("name=")
            } else {
                true
            }
        })
        .collect()
}

/// The directory of a controller's hierarchy holding file `file` for cgroup `rel`.
fn file_in(rel: &str, file: &str) -> Option<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(rel.trim_start_matches('/')).join(file))
        .find(|p| p.exists())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn kubelet_style_path_lands_in_every_hierarchy_with_limits() {
    require_root!();
    if !systemd_absent() {
        return;
    }
    let ward = Ward::new();
    let id = unique_id("sdcg");
    let uid = unique_id("pod").replace('-', "_");
    let pod_slice = format!("kubepods-burstable-{uid}.slice");
    let want =
        format!("/kubepods.slice/kubepods-burstable.slice/{pod_slice}/cri-containerd-{id}.scope");
    let mounts = cgroup_mounts();
    // What exists before (another user of kubepods.slice): Ward must not remove it.
    let kubepods_existed: Vec<bool> = mounts
        .iter()
        .map(|m| m.join("kubepods.slice").exists())
        .collect();

    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = format!("{pod_slice}:cri-containerd:{id}");
    b.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 77},
            "cpu": {"quota": 50000, "period": 100000}
        });
    });
    ward.run_detached(&b, &id);
    let pid = ward.pid(&id);

    // In every hierarchy the host lists for the init, the scope systemd would have made.
    let cgs = cgroups_of(pid);
    let ctrls = controller_hierarchies(&cgs);
    assert!(!ctrls.is_empty(), "{cgs:?}");
    for (ctrl, p) in ctrls {
        assert_eq!(p, &want, "hierarchy {ctrl:?} of pid {pid}: {cgs:?}");
    }
    // And the leaf exists in every mounted hierarchy (Ward made it in each).
    for m in &mounts {
        let d = m.join(want.trim_start_matches('/'));
        assert!(d.is_dir(), "{} missing", d.display());
    }

    // The limits, from the host.
    let mem = file_in(&want, "memory.limit_in_bytes").or_else(|| file_in(&want, "memory.max"));
    assert_eq!(read(&mem.expect("memory limit file")), "67108864");
    assert_eq!(read(&file_in(&want, "pids.max").expect("pids.max")), "77");
    match file_in(&want, "cpu.cfs_quota_us") {
        Some(q) => assert_eq!(read(&q), "50000"),
        None => assert_eq!(
            read(&file_in(&want, "cpu.max").expect("cpu.max")),
            "50000 100000"
        ),
    }

    // ps, update and pause reach the same cgroup.
    let ps = ward.ok(&["ps", "--format", "json", &id]);
    assert!(ps.contains(&pid.to_string()), "ps: {ps}");
    ward.ok(&["update", "--memory", "33554432", &id]);
    let mem = file_in(&want, "memory.limit_in_bytes").or_else(|| file_in(&want, "memory.max"));
    assert_eq!(read(&mem.expect("memory limit file")), "33554432");
    ward.ok(&["pause", &id]);
    assert_eq!(ward.status(&id), "paused");
    ward.ok(&["resume", &id]);

    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    // The scope and the pod slice (made for this container) are gone in every hierarchy;
    // kubepods.slice is gone unless it was there before.
    for (m, existed) in mounts.iter().zip(kubepods_existed) {
        let scope = m.join(want.trim_start_matches('/'));
        assert!(!scope.exists(), "{} left behind", scope.display());
        let pod = scope.parent().unwrap();
        assert!(!pod.exists(), "{} left behind", pod.display());
        if !existed {
            let top = m.join("kubepods.slice");
            assert!(!top.exists(), "{} left behind", top.display());
        }
    }
}

#[test]
fn systemd_cgroup_flag_defaults_to_a_ward_scope() {
    require_root!();
    if !systemd_absent() {
        return;
    }
    let ward = Ward::new().with_global(["--systemd-cgroup"]);
    let id = unique_id("sdflag");
    let b = Bundle::new(&["sleep", "1000"]);
    ward.run_detached(&b, &id);
    let want = format!("/system.slice/ward-{id}.scope");
    let cgs = cgroups_of(ward.pid(&id));
    for (ctrl, p) in controller_hierarchies(&cgs) {
        assert_eq!(p, &want, "hierarchy {ctrl:?}");
    }
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    for m in cgroup_mounts() {
        let scope = m.join(want.trim_start_matches('/'));
        assert!(!scope.exists(), "{} left behind", scope.display());
    }
}

/// The guard holds for the mapped path: an existing scope is never adopted.
#[test]
fn existing_scope_refused_and_kept() {
    require_root!();
    if !systemd_absent() {
        return;
    }
    let ward = Ward::new();
    let id = unique_id("sdtaken");
    let slice = format!("wardtest-{}.slice", unique_id("s").replace('-', "_"));
    let mounts = cgroup_mounts();
    let m = mounts
        .iter()
        .find(|m| m.ends_with("memory") || m.ends_with("unified"))
        .or(mounts.first())
        .expect("a cgroup hierarchy")
        .clone();
    let top = m.join(slice.split('-').next().unwrap().to_string() + ".slice");
    let scope = top.join(&slice).join(format!("victim-{id}.scope"));
    std::fs::create_dir_all(&scope).unwrap();

    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = format!("{slice}:victim:{id}");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let o = ward.create(&b, &id);
    let kept = scope.is_dir();
    let _ = std::fs::remove_dir(&scope);
    let _ = std::fs::remove_dir(scope.parent().unwrap());
    let _ = std::fs::remove_dir(&top);
    assert!(!o.success(), "adopted an existing scope:\n{o}");
    assert!(o.stderr.contains("linux.cgroupsPath"), "{o}");
    assert!(o.stderr.contains("already exists"), "{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    assert!(kept, "the existing scope was removed");
    assert_no_leftovers(&ward, &id);
}

#[test]
fn bad_components_refused() {
    require_root!();
    let ward = Ward::new();
    let deep = format!("{}.slice:p:n", vec!["w"; 120].join("-"));
    for bad in [
        "kubepods.slice:p:../../x",
        "kube--pods.slice:p:n",
        "kubepods:p:n",
        "a/b.slice:p:n",
        "kubepods.slice:p@x:n",
        &deep,
    ] {
        let id = unique_id("sdbad");
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| c["linux"]["cgroupsPath"] = json!(bad));
        let o = ward.create(&b, &id);
        assert!(!o.success(), "{bad}: accepted\n{o}");
        assert!(o.stderr.contains("linux.cgroupsPath"), "{bad}: {o}");
        assert_eq!(o.stderr_lines().len(), 1, "{bad}: {o}");
        assert_no_leftovers(&ward, &id);
    }
}
