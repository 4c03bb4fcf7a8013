use super::*;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    SpecBuilder,
};

fn ctx(systemd: bool) -> HardenContext {
    HardenContext {
        id: "c1".into(),
        systemd_running: systemd,
        ..Default::default()
    }
}

fn spec(path: Option<&str>) -> Spec {
    let mut linux = LinuxBuilder::default().build().unwrap();
    linux.set_cgroups_path(path.map(PathBuf::from));
    SpecBuilder::default().linux(linux).build().unwrap()
}

fn names(p: &[Property]) -> Vec<&str> {
    p.iter().map(|(k, _)| *k).collect()
}

fn get<'a>(p: &'a [Property], k: &str) -> &'a Value<'static> {
    &p.iter()
        .find(|(n, _)| *n == k)
        .unwrap_or_else(|| panic!("{k}"))
        .1
}

#[test]
fn planned_only_for_systemd_paths_on_a_systemd_node() {
    let cfg = CgroupsConfig::default();
    let s = spec(Some("kubepods-burstable-pod1.slice:cri-containerd:c1"));
    assert!(plan(&s, &ctx(false), &cfg).unwrap().is_none());
    let p = plan(&s, &ctx(true), &cfg).unwrap().unwrap();
    assert_eq!(p.unit, "cri-containerd-c1.scope");
    assert_eq!(p.slice, "kubepods-burstable-pod1.slice");
    assert_eq!(
        p.endpoints,
        vec![
            Endpoint::Private(PRIVATE_SOCKET.into()),
            Endpoint::Bus(SYSTEM_BUS.into())
        ]
    );
    // A cgroupfs path stays Ward's, even where systemd runs.
    assert!(plan(&spec(Some("/pod/c1")), &ctx(true), &cfg)
        .unwrap()
        .is_none());
    assert!(plan(&spec(None), &ctx(true), &cfg).unwrap().is_none());
    // --systemd-cgroup without a path: system.slice, ward-<id>.scope.
    let c = HardenContext {
        systemd_cgroup: true,
        ..ctx(true)
    };
    let p = plan(&spec(None), &c, &cfg).unwrap().unwrap();
    assert_eq!(
        (p.unit.as_str(), p.slice.as_str()),
        ("ward-c1.scope", "system.slice")
    );
    // A bad path is refused naming the field.
    let e = plan(&spec(Some("a.slice:p:../x")), &ctx(true), &cfg).unwrap_err();
    assert!(e.to_string().starts_with("linux.cgroupsPath: "), "{e}");
    // The configured socket replaces both defaults.
    let cfg = CgroupsConfig {
        systemd_dbus: Some("unix:path=/run/t/sd".into()),
        ..Default::default()
    };
    let p = plan(&s, &ctx(true), &cfg).unwrap().unwrap();
    assert_eq!(p.endpoints, vec![Endpoint::Private("/run/t/sd".into())]);
}

#[test]
fn properties_as_runc_sets_them_with_the_limits() {
    let cfg = CgroupsConfig::default();
    let s = spec(Some("kubepods.slice:cri-containerd:c1"));
    let plan = plan(&s, &ctx(true), &cfg).unwrap().unwrap();
    let res = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(77).build().unwrap())
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .quota(50_000)
                .period(100_000u64)
                .shares(1024u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let v2 = properties(&plan, Some(&res), true);
    assert_eq!(
        names(&v2),
        [
            "Description",
            "Slice",
            "Delegate",
            "DefaultDependencies",
            "MemoryAccounting",
            "CPUAccounting",
            "TasksAccounting",
            "TasksMax",
            "MemoryMax",
            "CPUQuotaPerSecUSec",
            "CPUWeight"
        ]
    );
    assert_eq!(get(&v2, "Slice"), &Value::from("kubepods.slice"));
    assert_eq!(get(&v2, "Delegate"), &Value::from(true));
    assert_eq!(get(&v2, "DefaultDependencies"), &Value::from(false));
    assert_eq!(get(&v2, "TasksMax"), &Value::from(77u64));
    assert_eq!(get(&v2, "MemoryMax"), &Value::from(64u64 << 20));
    assert_eq!(get(&v2, "CPUQuotaPerSecUSec"), &Value::from(500_000u64));
    assert_eq!(get(&v2, "CPUWeight"), &Value::from(39u64));
    let v1 = properties(&plan, Some(&res), false);
    assert_eq!(get(&v1, "MemoryLimit"), &Value::from(64u64 << 20));
    assert_eq!(get(&v1, "CPUShares"), &Value::from(1024u64));
    assert!(!names(&v1).contains(&"MemoryMax"));
    // A quota that is not a whole percent is rounded up to one (systemd's granularity).
    let odd = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(12_345)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let p = properties(&plan, Some(&odd), true);
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), &Value::from(130_000u64));
}

#[test]
fn systemd_owns_the_unified_and_named_hierarchies() {
    let mi = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
              32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
              40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n\
              41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        systemd_hierarchies(mi),
        vec![
            PathBuf::from("/sys/fs/cgroup/systemd"),
            PathBuf::from("/sys/fs/cgroup/unified")
        ]
    );
    let v2 = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        systemd_hierarchies(v2),
        vec![PathBuf::from("/sys/fs/cgroup")]
    );
}

#[test]
fn scope_dir_must_hold_only_the_helper() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("x.scope");
    assert_eq!(check_dir(&d, 42, true), Ok(false));
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("cgroup.procs"), "42\n").unwrap();
    assert_eq!(check_dir(&d, 42, true), Ok(true));
    std::fs::write(d.join("cgroup.procs"), "42\n7\n").unwrap();
    assert!(check_dir(&d, 42, false)
        .unwrap_err()
        .contains("not only Ward's"));
    std::fs::write(d.join("cgroup.procs"), "7\n").unwrap();
    assert!(check_dir(&d, 42, false).is_err());
    // Empty: fine where systemd does not place units (v1 cpuset needs cpus before a pid),
    // not where it does (the helper must be there).
    std::fs::write(d.join("cgroup.procs"), "").unwrap();
    assert_eq!(check_dir(&d, 42, false), Ok(true));
    assert!(check_dir(&d, 42, true).is_err());
}

/// The scope as systemd lays it out on the v1-hybrid layout (this host's) and on pure cgroup
/// v2 (not available here: a tree in a temp dir stands for each hierarchy).
#[test]
fn placement_on_hybrid_and_v2_layouts() {
    let cg = Path::new("/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope");
    let t = tempfile::tempdir().unwrap();
    let make = |m: &Path, procs: &str| {
        let d = m.join(cg.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.procs"), procs).unwrap();
        d
    };
    // Hybrid: systemd made the scope in name=systemd, cgroup2 and the controllers it manages;
    // cpuset (and freezer, hugetlb...) are left to Ward.
    let h = |n: &str| t.path().join("hybrid").join(n);
    let mounts = vec![h("memory"), h("cpuset"), h("systemd"), h("unified")];
    let owned = vec![h("systemd"), h("unified")];
    let dirs: Vec<PathBuf> = [h("memory"), h("systemd"), h("unified")]
        .iter()
        .map(|m| make(m, "42\n"))
        .collect();
    assert_eq!(
        placement(cg, &mounts, &owned, 42),
        Ok((dirs.clone(), vec![h("cpuset")]))
    );
    // Another process in any of them: refused, naming that directory.
    std::fs::write(dirs[0].join("cgroup.procs"), "42\n7\n").unwrap();
    assert_eq!(placement(cg, &mounts, &owned, 42).unwrap_err().0, dirs[0]);
    // Pure v2: the one unified hierarchy, systemd's.
    let v2 = vec![t.path().join("v2")];
    assert!(placement(cg, &v2, &v2, 42)
        .unwrap_err()
        .1
        .contains("missing"));
    let d = make(&v2[0], "42\n");
    assert_eq!(placement(cg, &v2, &v2, 42), Ok((vec![d.clone()], vec![])));
    std::fs::write(d.join("cgroup.procs"), "").unwrap();
    assert!(
        placement(cg, &v2, &v2, 42).is_err(),
        "an empty scope is not the helper's"
    );
}
