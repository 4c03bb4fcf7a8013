//! Bad or forbidden input: each case must fail with a non-zero exit, one stderr line naming
//! the field (or flag, or id), and leave nothing behind: no state dir, no uid range, no
//! mount, no cgroup, no process.

use std::path::Path;

use serde_json::{json, Value};
use ward_tests::{
    assert_no_leftovers, assert_root_clean, require_root, unique_id, Bundle, Out, Ward,
};

/// Every capability of Linux 6.x (CAP_CHOWN .. CAP_CHECKPOINT_RESTORE).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One refusal case.
struct Case<'a> {
    /// Change the (valid) bundle.
    setup: &'a dyn Fn(&mut Bundle),
    /// Flags before the verb (`--profile x`).
    global: &'a [&'a str],
    /// Flags after `create`.
    create: &'a [&'a str],
    /// Container id; `None` = a fresh valid one.
    id: Option<&'a str>,
    /// Every fragment must appear in stderr.
    expect: &'a [&'a str],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Self {
            setup: &|_| {},
            global: &[],
            create: &[],
            id: None,
            expect: &[],
        }
    }
}

fn refused(case: Case) -> Out {
    let mut b = Bundle::new(&["sleep", "1000"]);
    (case.setup)(&mut b);
    let ward = Ward::new().with_global(case.global.iter().copied());
    let id = case
        .id
        .map(str::to_string)
        .unwrap_or_else(|| unique_id("bad"));
    let mut args: Vec<&std::ffi::OsStr> = vec!["create".as_ref()];
    args.extend(
        case.create
            .iter()
            .map(|s| -> &std::ffi::OsStr { s.as_ref() }),
    );
    args.extend([
        "--bundle".as_ref(),
        b.path().as_os_str(),
        id.as_ref() as &std::ffi::OsStr,
    ]);
    let mut c = ward.cmd(&args);
    c.stdout(std::process::Stdio::null());
    let o = Ward::output_of(c);
    assert!(!o.success(), "accepted (exit {:?}):\n{o}", o.code);
    assert_eq!(o.code, Some(1), "exit code:\n{o}");
    for frag in case.expect {
        assert!(o.stderr.contains(frag), "stderr lacks {frag:?}:\n{o}");
    }
    assert_eq!(
        o.stderr_lines().len(),
        1,
        "want exactly one error line:\n{o}"
    );
    eprintln!("refused as expected: {}", o.stderr.trim());
    if case.id.is_none() {
        assert_no_leftovers(&ward, &id);
    }
    assert_root_clean(&ward);
    o
}

fn expect(frags: &[&str]) -> Case<'static> {
    // Leaked on purpose: tiny, test-lifetime data.
    let v: Vec<&'static str> = frags
        .iter()
        .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
        .collect();
    Case {
        expect: Box::leak(v.into_boxed_slice()),
        ..Default::default()
    }
}

fn with(setup: &'static dyn Fn(&mut Bundle), frags: &[&str]) -> Out {
    refused(Case {
        setup,
        ..expect(frags)
    })
}

fn edit(b: &mut Bundle, f: impl FnOnce(&mut Value)) {
    b.edit(f);
}

fn add_caps(c: &mut Value, caps: &[&str]) {
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        let arr = c["process"]["capabilities"][set]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut arr: Vec<Value> = arr;
        for cap in caps {
            arr.push(json!(cap));
        }
        c["process"]["capabilities"][set] = Value::Array(arr);
    }
}

fn remove_ns(c: &mut Value, kind: &str) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != kind);
}

fn push_mount(c: &mut Value, m: Value) {
    c["mounts"].as_array_mut().unwrap().push(m);
}

fn bind_from(b: &mut Bundle, source: &str, dest: &str) {
    std::fs::create_dir_all(b.rootfs().join(dest.trim_start_matches('/'))).unwrap();
    edit(b, |c| {
        push_mount(
            c,
            json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "ro"]}),
        )
    });
}

// ---- malformed config.json ----

#[test]
fn invalid_json() {
    require_root!();
    with(
        &|b| b.write_raw("{ \"ociVersion\": \"1.0.2\", "),
        &["config.json"],
    );
}

#[test]
fn missing_process() {
    require_root!();
    with(
        &|b| edit(b, |c| drop(c.as_object_mut().unwrap().remove("process"))),
        &["process"],
    );
}

#[test]
fn empty_process_args() {
    require_root!();
    with(
        &|b| edit(b, |c| c["process"]["args"] = json!([])),
        &["process.args"],
    );
}

#[test]
fn relative_process_cwd() {
    require_root!();
    with(
        &|b| edit(b, |c| c["process"]["cwd"] = json!("relative/dir")),
        &["process.cwd"],
    );
}

#[test]
fn oci_version_0_9() {
    require_root!();
    with(
        &|b| edit(b, |c| c["ociVersion"] = json!("0.9")),
        &["ociVersion"],
    );
}

#[test]
fn missing_rootfs_dir() {
    require_root!();
    with(
        &|b| edit(b, |c| c["root"]["path"] = json!("no-such-rootfs")),
        &["root.path", "no-such-rootfs"],
    );
}

// ---- capabilities ----

#[test]
fn privileged_all_capabilities() {
    require_root!();
    with(&|b| edit(b, |c| add_caps(c, ALL_CAPS)), &["privileged"]);
}

#[test]
fn cap_sys_admin() {
    require_root!();
    with(
        &|b| edit(b, |c| add_caps(c, &["CAP_SYS_ADMIN"])),
        &["CAP_SYS_ADMIN"],
    );
}

#[test]
fn cap_sys_module() {
    require_root!();
    with(
        &|b| edit(b, |c| add_caps(c, &["CAP_SYS_MODULE"])),
        &["CAP_SYS_MODULE"],
    );
}

#[test]
fn unknown_cap_name() {
    require_root!();
    with(&|b| edit(b, |c| add_caps(c, &["CAP_FOO"])), &["CAP_FOO"]);
}

// ---- namespaces and id mappings ----

#[test]
fn host_pid_namespace() {
    require_root!();
    with(
        &|b| edit(b, |c| remove_ns(c, "pid")),
        &["linux.namespaces", "pid"],
    );
}

#[test]
fn host_network_namespace() {
    require_root!();
    with(
        &|b| edit(b, |c| remove_ns(c, "network")),
        &["linux.namespaces", "network"],
    );
}

#[test]
fn namespace_path_of_host_pid() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                remove_ns(c, "pid");
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "pid", "path": "/proc/1/ns/pid"}));
            })
        },
        &["/proc/1/ns/pid"],
    );
}

#[test]
fn user_namespace_path() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user", "path": "/proc/1/ns/user"}));
            })
        },
        &["linux.namespaces[user]"],
    );
}

#[test]
fn uid_map_to_host_root() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
            })
        },
        &["linux.uidMappings"],
    );
}

#[test]
fn gid_map_to_host_root() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
            })
        },
        &["linux.gidMappings"],
    );
}

#[test]
fn uid_map_outside_allocated_range() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 1000, "size": 65536}]);
            })
        },
        &["linux.uidMappings", "outside the range"],
    );
}

// ---- mounts and devices ----

#[test]
fn bind_var_run_containerd() {
    require_root!();
    with(
        &|b| bind_from(b, "/var/run/containerd", "/x"),
        &["mounts[", "/var/run/containerd"],
    );
}

#[test]
fn bind_host_root() {
    require_root!();
    with(
        &|b| bind_from(b, "/", "/host"),
        &["mounts[", "bind mount of /"],
    );
}

#[test]
fn bind_engine_socket() {
    require_root!();
    with(
        &|b| bind_from(b, "/tmp/ward-test-elsewhere/containerd.sock", "/x"),
        &["mounts[", "containerd.sock"],
    );
}

#[test]
fn bind_docker_socket() {
    require_root!();
    with(
        &|b| bind_from(b, "/var/run/docker.sock", "/x"),
        &["mounts[", "docker.sock"],
    );
}

#[test]
fn bind_etc_kubernetes() {
    require_root!();
    with(
        &|b| bind_from(b, "/etc/kubernetes", "/x"),
        &["mounts[", "/etc/kubernetes"],
    );
}

#[test]
fn dotdot_in_mount_destination() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                push_mount(
                    c,
                    json!({"destination": "/tmp/../../etc", "type": "tmpfs", "source": "tmpfs"}),
                )
            })
        },
        &["destination", ".."],
    );
}

#[test]
fn dotdot_in_bind_source() {
    require_root!();
    with(
        &|b| bind_from(b, "/srv/../etc", "/x"),
        &["mounts[", "source", ".."],
    );
}

#[test]
fn mount_type_ext4() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                push_mount(
                    c,
                    json!({"destination": "/mnt", "type": "ext4", "source": "/dev/vda"}),
                )
            })
        },
        &["mounts[", "ext4"],
    );
}

#[test]
fn device_vda() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["devices"] = json!([{
                    "path": "/dev/vda", "type": "b", "major": 254, "minor": 0,
                    "fileMode": 432, "uid": 0, "gid": 0
                }]);
            })
        },
        &["linux.devices", "/dev/vda"],
    );
}

/// Found by the harden fuzzer: a block device with a standard path and numbers
/// (b 1:3 is a RAM disk, not /dev/null) passed the standard-device check.
#[test]
fn block_device_named_dev_null() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["devices"] = json!([{
                    "path": "/dev/null", "type": "b", "major": 1, "minor": 3,
                    "fileMode": 438, "uid": 0, "gid": 0
                }]);
            })
        },
        &["linux.devices", "/dev/null (type b, 1:3)"],
    );
}

/// A second procfs (at /hostproc) would have none of the masked and read-only paths.
#[test]
fn proc_mounted_outside_proc() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                push_mount(
                    c,
                    json!({"destination": "/hostproc", "type": "proc", "source": "proc"}),
                )
            })
        },
        &["mounts[", ".destination", "procfs is allowed only at /proc"],
    );
}

/// A mount at / would replace the read-only rootfs (here with a writable tmpfs).
#[test]
fn mount_over_the_rootfs() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                push_mount(
                    c,
                    json!({"destination": "/", "type": "tmpfs", "source": "tmpfs"}),
                )
            })
        },
        &["mounts[", ".destination", "replace the read-only rootfs"],
    );
}

// ---- sysctl, cgroups ----

#[test]
fn sysctl_core_pattern() {
    require_root!();
    with(
        &|b| {
            edit(b, |c| {
                c["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/x"})
            })
        },
        &["linux.sysctl", "kernel.core_pattern"],
    );
}

#[test]
fn systemd_style_cgroups_path() {
    require_root!();
    with(
        &|b| edit(b, |c| c["linux"]["cgroupsPath"] = json!("a:b:c")),
        &["linux.cgroupsPath"],
    );
}

#[test]
fn cgroups_path_with_dotdot() {
    require_root!();
    with(
        &|b| edit(b, |c| c["linux"]["cgroupsPath"] = json!("/../../escape")),
        &["linux.cgroupsPath"],
    );
}

// ---- container ids ----

fn bad_id(id: &'static str) {
    refused(Case {
        id: Some(id),
        ..expect(&["container id"])
    });
    assert!(
        !Path::new("/tmp/x").join("config.json").exists(),
        "something was written outside --root for id {id:?}"
    );
}

#[test]
fn id_with_dotdot() {
    require_root!();
    bad_id("../x");
}

#[test]
fn id_with_slash() {
    require_root!();
    bad_id("a/b");
}

#[test]
fn id_hidden() {
    require_root!();
    bad_id(".hidden");
}

#[test]
fn id_empty() {
    require_root!();
    bad_id("");
}

// ---- flags and node config ----

#[test]
fn no_pivot() {
    require_root!();
    refused(Case {
        create: &["--no-pivot"],
        ..expect(&["--no-pivot"])
    });
}

/// `--systemd-cgroup` asks for slice:prefix:name; a cgroupfs path with it is refused.
#[test]
fn systemd_cgroup_with_a_cgroupfs_path() {
    require_root!();
    refused(Case {
        global: &["--systemd-cgroup"],
        setup: &|b| edit(b, |c| c["linux"]["cgroupsPath"] = json!("/wardtest/c1")),
        ..expect(&["--systemd-cgroup", "linux.cgroupsPath"])
    });
}

#[test]
fn unknown_profile() {
    require_root!();
    refused(Case {
        global: &["--profile", "nonexistent-ward-profile"],
        ..expect(&["nonexistent-ward-profile"])
    });
}

#[test]
fn annotation_profile_not_allowed() {
    require_root!();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "allowed_profiles = [\"default\"]\n").unwrap();
    let path = cfg.path().to_str().unwrap().to_string();
    let global: &[&str] = &["--config", &path];
    refused(Case {
        setup: &|b| {
            edit(b, |c| {
                c["annotations"] = json!({"ward.dev/profile": "strict"});
            })
        },
        global,
        ..expect(&["ward.dev/profile", "strict", "allowed_profiles"])
    });
}

#[test]
fn missing_node_config() {
    require_root!();
    let missing = format!("/nonexistent-ward-dir/{}.toml", unique_id("cfg"));
    let global: &[&str] = &["--config", &missing];
    refused(Case {
        global,
        ..expect(&[&missing])
    });
}

/// Creating an id twice: the second fails, the first is untouched and still works.
#[test]
fn existing_id() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("twice");
    let o = ward.create(&b, &id);
    assert!(o.success(), "{o}");
    let before = ward.state(&id);
    let ranges_before = std::fs::read_to_string(ward.root().join(".ward/ranges.json")).unwrap();

    let b2 = Bundle::new(&["true"]);
    let o = ward.create(&b2, &id);
    assert!(!o.success(), "second create accepted:\n{o}");
    assert!(o.stderr.contains("already exists"), "{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");

    let after = ward.state(&id);
    assert_eq!(before, after, "first container changed");
    assert_eq!(after["status"], "created");
    assert_eq!(
        std::fs::read_to_string(ward.root().join(".ward/ranges.json")).unwrap(),
        ranges_before
    );
    // It still starts and runs its own bundle.
    ward.ok(&["start", &id]);
    assert_eq!(ward.status(&id), "running");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

/// A namespace path to ward's caller's own network namespace (the host's, on a node) is
/// refused by policy, naming the field, even where /proc/1/ns cannot be read (then the runtime
/// cannot prove the namespace is not the host's).
#[test]
fn namespace_path_of_callers_network_ns() {
    require_root!();
    let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
    if let Ok(init) = std::fs::read_link("/proc/1/ns/net") {
        if init != mine {
            eprintln!("SKIP: this test process is not in the host network namespace");
            return;
        }
    }
    let path = format!("/proc/{}/ns/net", std::process::id());
    let setup = move |b: &mut Bundle| {
        let path = path.clone();
        edit(b, |c| {
            remove_ns(c, "network");
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "network", "path": path}));
        })
    };
    refused(Case {
        setup: &setup,
        ..expect(&["linux.namespaces", "network"])
    });
}

/// The error line goes to engines (podman shows it verbatim as "OCI runtime error: ..."), so
/// on a non-terminal stderr it carries no ANSI colour codes, even without NO_COLOR.
#[test]
fn error_line_has_no_colour_codes_when_not_a_terminal() {
    require_root!();
    let b = Bundle::new(&["true"]);
    b.write_raw("{");
    let ward = Ward::new();
    let mut c = ward.cmd(&[
        "create".as_ref(),
        "--bundle".as_ref(),
        b.path().as_os_str(),
        unique_id("ansi").as_ref() as &std::ffi::OsStr,
    ]);
    c.env_remove("NO_COLOR");
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let raw = String::from_utf8_lossy(&o.stderr);
    assert!(
        !raw.contains('\u{1b}'),
        "ANSI escape codes in stderr (not a terminal): {raw:?}"
    );
    assert_root_clean(&ward);
}
