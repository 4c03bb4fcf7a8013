//! Spec mutations: each sets one field of config.json to a value picked by the fuzzer's
//! bytes, from lists that include what engines send and what an attacker would try.

use serde_json::{json, Map, Value};

use super::{Input, CAPS};

const NS_TYPES: &[&str] = &[
    "pid", "network", "ipc", "uts", "mount", "cgroup", "user", "time",
];
const NS_PATHS: &[&str] = &[
    "/proc/1/ns/pid",
    "/proc/1/ns/net",
    "/proc/1/ns/user",
    "/proc/1/ns/mnt",
    "/proc/77/ns/net",
    "/proc/77/ns/user",
    "/proc/77/ns/ipc",
    "/proc/77/ns/uts",
    "/proc/77/ns/cgroup",
    "/proc/88/ns/pid",
    "/proc/99/ns/net",
];
const DESTS: &[&str] = &[
    "/data",
    "/tmp",
    "/proc",
    "/sys",
    "/dev/shm",
    "/",
    "/a/../b",
    "relative",
    "/a/./b//c",
    "/sys/fs/cgroup",
    "",
];
const SOURCES: &[&str] = &[
    "/srv/data",
    "/",
    "/etc",
    "/etc/",
    "//etc",
    "/etc/passwd",
    "/proc/1/root",
    "/sys/fs/cgroup",
    "/run/containerd/containerd.sock",
    "/var/run/docker.sock",
    "/var/lib/kubelet/pods/x/volumes/v",
    "/var/lib/kubelet/pods/../../../etc",
    "/srv/../etc",
    "/var",
    "/var/lib",
    "relative/dir",
    "/dev/sda",
    "/boot/x",
    "/run",
    "/srv/x.sock",
    "tmpfs",
    "",
];
const MOUNT_TYPES: &[&str] = &[
    "bind", "none", "tmpfs", "proc", "sysfs", "cgroup", "cgroup2", "overlay", "devpts", "mqueue",
    "ext4", "",
];
const MOUNT_OPTS: &[&str] = &[
    "rbind",
    "bind",
    "ro",
    "rw",
    "rro",
    "suid",
    "dev",
    "rsuid",
    "rdev",
    "nosuid",
    "nodev",
    "exec",
    "noexec",
    "private",
    "rshared",
    "idmap",
    "size=1k",
    "mode=4777",
];
const DEVICES: &[(&str, i64, i64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/tty", 5, 0),
    ("/dev/ptmx", 5, 2),
    ("/dev/sda", 8, 0),
    ("/dev/mem", 1, 1),
    ("/dev/kmsg", 1, 11),
    ("/dev/null", 8, 0),
];
const CGROUP_PATHS: &[&str] = &[
    "",
    ".",
    "/",
    "//",
    "/.",
    "a/b",
    "/abs/c1",
    "../x",
    "/a/../../x",
    "pod.slice:cri:abc",
    "/sys/fs/cgroup",
    "kubepods/pod1/c1",
];
const SYSCTLS: &[&str] = &[
    "net.ipv4.ip_forward",
    "net.ipv4.ip_unprivileged_port_start",
    "kernel.core_pattern",
    "kernel.shmmax",
    "kernel.sem",
    "fs.mqueue.msg_max",
    "vm.overcommit_memory",
    "kernel.modprobe",
    "net",
    "",
];
const ANNOTATIONS: &[&str] = &[
    "org.ward.profile",
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri.container-type",
    "run.oci.keep_original_groups",
    "x",
];

fn set(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("object");
        if i + 1 == path.len() {
            obj.insert((*key).to_owned(), new);
            return;
        }
        cur = obj.entry(*key).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn some_of(u: &mut Input, items: &[&str], max: usize) -> Value {
    let n = u.below(max + 1);
    json!((0..n).map(|_| *u.pick(items)).collect::<Vec<_>>())
}

fn id_maps(u: &mut Input) -> Value {
    let maps: Vec<Value> = (0..u.below(4))
        .map(|_| {
            let host = match u.below(5) {
                0 => 0,
                1 => 100_000 + 65_536 * (u.below(64) as u64),
                2 => 100_000 + u64::from(u.u32() % (1 << 22)),
                3 => u64::from(u.u32()),
                _ => u.below(1000) as u64,
            };
            let size = *u.pick(&[1u64, 100, 65_536, 65_537, 0, u64::from(u32::MAX)]);
            json!({"containerID": u.below(70_000), "hostID": host, "size": size})
        })
        .collect();
    json!(maps)
}

fn mount(u: &mut Input) -> Value {
    let mut m = json!({ "destination": u.pick(DESTS) });
    if u.below(5) != 0 {
        m["type"] = json!(u.pick(MOUNT_TYPES));
    }
    if u.below(5) != 0 {
        m["source"] = json!(u.pick(SOURCES));
    }
    m["options"] = some_of(u, MOUNT_OPTS, 5);
    m
}

/// Apply one mutation to `v`.
pub fn mutate(v: &mut Value, u: &mut Input) {
    match u.below(22) {
        0 => {
            let set_name = *u.pick(&[
                "bounding",
                "effective",
                "permitted",
                "inheritable",
                "ambient",
            ]);
            set(
                v,
                &["process", "capabilities", set_name],
                some_of(u, CAPS, 6),
            );
        }
        1 => {
            let ns: Vec<Value> = (0..u.below(9))
                .map(|_| {
                    let mut n = json!({ "type": u.pick(NS_TYPES) });
                    if u.below(3) == 0 {
                        n["path"] = json!(u.pick(NS_PATHS));
                    }
                    n
                })
                .collect();
            set(v, &["linux", "namespaces"], json!(ns));
        }
        2 => {
            // Add one namespace entry (possibly a duplicate type) to the existing list.
            let mut n = json!({ "type": u.pick(NS_TYPES) });
            if u.bool() {
                n["path"] = json!(u.pick(NS_PATHS));
            }
            if let Some(list) = v["linux"]["namespaces"].as_array_mut() {
                let at = u.below(list.len() + 1);
                list.insert(at, n);
            }
        }
        3 | 4 => {
            if let Some(list) = v["mounts"].as_array_mut() {
                let at = u.below(list.len() + 1);
                list.insert(at, mount(u));
            }
        }
        5 => {
            if let Some(list) = v["mounts"].as_array_mut() {
                if !list.is_empty() {
                    let at = u.below(list.len());
                    list[at]["options"] = some_of(u, MOUNT_OPTS, 5);
                }
            }
        }
        6 => set(v, &["linux", "uidMappings"], id_maps(u)),
        7 => set(v, &["linux", "gidMappings"], id_maps(u)),
        8 => {
            let devs: Vec<Value> = (0..u.below(3))
                .map(|_| {
                    let (p, maj, min) = *u.pick(DEVICES);
                    json!({"path": p, "type": u.pick(&["c", "b", "u", "p"]), "major": maj, "minor": min,
                           "fileMode": *u.pick(&[0o666, 0o4777, 0o60666])})
                })
                .collect();
            set(v, &["linux", "devices"], json!(devs));
        }
        9 => set(v, &["linux", "cgroupsPath"], json!(u.pick(CGROUP_PATHS))),
        10 => {
            let r: Vec<Value> = (0..u.below(3))
                .map(|_| {
                    json!({"type": u.pick(&["RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_NOPE"]),
                           "hard": u.value(), "soft": u.value()})
                })
                .collect();
            set(v, &["process", "rlimits"], json!(r));
        }
        11 => {
            let mut m = Map::new();
            for _ in 0..u.below(3) {
                m.insert(u.pick(SYSCTLS).to_string(), json!("1"));
            }
            set(v, &["linux", "sysctl"], Value::Object(m));
        }
        12 => {
            let mut m = Map::new();
            for _ in 0..u.below(3) {
                m.insert(
                    u.pick(ANNOTATIONS).to_string(),
                    json!(*u.pick(&["default", "unconfined", "privileged", "x"])),
                );
            }
            set(v, &["annotations"], Value::Object(m));
        }
        13 => {
            let val = *u.pick(&[-1i64, 0, 1, 10, 1 << 40, i64::MAX, i64::MIN]);
            let field = *u.pick(&[
                &["linux", "resources", "pids", "limit"][..],
                &["linux", "resources", "memory", "limit"][..],
                &["linux", "resources", "memory", "swap"][..],
                &["linux", "resources", "cpu", "quota"][..],
            ]);
            set(v, field, json!(val));
        }
        14 => {
            let val = *u.pick(&[0u64, 1, 1000, 100_000, u64::MAX]);
            let field = *u.pick(&[
                &["linux", "resources", "cpu", "period"][..],
                &["linux", "resources", "cpu", "shares"][..],
            ]);
            set(v, field, json!(val));
        }
        15 => set(
            v,
            &["ociVersion"],
            json!(u.pick(&["1.0.2", "1.2.0", "0.9", "", "2.0", "1."])),
        ),
        16 => match u.below(4) {
            0 => set(v, &["process", "args"], json!([])),
            1 => set(
                v,
                &["process", "cwd"],
                json!(u.pick(&["relative", "", "/../.."])),
            ),
            2 => set(
                v,
                &["root", "path"],
                json!(u.pick(&["", "/", "rootfs", "../x"])),
            ),
            _ => set(v, &["root", "readonly"], json!(false)),
        },
        17 => set(v, &["process", "noNewPrivileges"], json!(false)),
        18 => {
            let list = some_of(u, &["/proc/kcore", "/proc/x", "/sys/firmware"], 2);
            let which = *u.pick(&["maskedPaths", "readonlyPaths"]);
            set(v, &["linux", which], list);
        }
        19 => set(
            v,
            &["linux", "seccomp"],
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
        ),
        20 => {
            // Drop a whole section.
            let key = *u.pick(&["process", "root", "linux", "mounts"]);
            if let Some(o) = v.as_object_mut() {
                o.remove(key);
            }
        }
        _ => set(
            v,
            &["process", "user"],
            json!({"uid": u.below(3), "gid": u.below(3), "additionalGids": [0, 65534, u.u32()]}),
        ),
    }
}
