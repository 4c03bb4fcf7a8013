//! Bad input in `linux` (sysctls, cgroup values, mounts) and annotations: one line naming the
//! field, and nothing left behind.

use super::*;

fn resources(r: Value) -> impl Fn(&mut Value) + 'static {
    move |c| c["linux"]["resources"] = r.clone()
}

fn tmpfs_with(opts: Value) -> impl Fn(&mut Value) + 'static {
    move |c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": opts.clone()}))
    }
}

#[test]
fn linux_fields() {
    require_root!();
    table(vec![
        spec("sysctl the kernel lacks", |c| c["linux"]["sysctl"] = json!({"net.ipv4.bogus": "1"}), &["linux.sysctl", "net.ipv4.bogus"]),
        spec("sysctl with ..", |c| c["linux"]["sysctl"] = json!({"net.ipv4/../../../x": "1"}), &["linux.sysctl"]),
        spec("sysctl value with a newline", |c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1\n0"}), &["linux.sysctl", "net.ipv4.ip_forward"]),
        spec("sysctl not namespaced", |c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}), &["linux.sysctl", "vm.swappiness"]),
        spec("memory limit -5", resources(json!({"memory": {"limit": -5}})), &["linux.resources.memory.limit", "-5"]),
        spec("memory swap below limit", resources(json!({"memory": {"limit": 100000000, "swap": 1000}})), &["linux.resources.memory.swap"]),
        spec("memory swappiness 500", resources(json!({"memory": {"swappiness": 500}})), &["linux.resources.memory.swappiness", "500"]),
        spec("pids limit -5", resources(json!({"pids": {"limit": -5}})), &["linux.resources.pids.limit", "-5"]),
        // The init and libcontainer's intermediate process: 1 used to fail as "intermediate
        // process error failed to launch init process".
        spec("pids limit 1", resources(json!({"pids": {"limit": 1}})), &["linux.resources.pids.limit", "at least 2"]),
        spec("cpu quota 5", resources(json!({"cpu": {"quota": 5, "period": 100000}})), &["linux.resources.cpu.quota"]),
        spec("cpu quota -5", resources(json!({"cpu": {"quota": -5}})), &["linux.resources.cpu.quota"]),
        spec("cpu period 0", resources(json!({"cpu": {"quota": 1000, "period": 0}})), &["linux.resources.cpu.period"]),
        spec("cpu shares 1", resources(json!({"cpu": {"shares": 1}})), &["linux.resources.cpu.shares"]),
        spec("cpu shares 10^9", resources(json!({"cpu": {"shares": 1000000000u64}})), &["linux.resources.cpu.shares"]),
        spec("cpuset cpus abc", resources(json!({"cpu": {"cpus": "abc"}})), &["linux.resources.cpu.cpus", "abc"]),
        spec("cpuset cpus beyond the node", resources(json!({"cpu": {"cpus": "0-99999"}})), &["linux.resources.cpu.cpus", "99999"]),
        spec("cpuset mems beyond the node", resources(json!({"cpu": {"mems": "4096"}})), &["linux.resources.cpu.mems"]),
        spec("blkio weight 5000", resources(json!({"blockIO": {"weight": 5000}})), &["linux.resources.blockIO.weight", "5000"]),
        spec("unified key with ..", resources(json!({"unified": {"../../cgroup.procs": "1"}})), &["linux.resources.unified[../../cgroup.procs]"]),
        spec("tmpfs option frobnicate", tmpfs_with(json!(["frobnicate"])), &["mounts[", ".options", "frobnicate"]),
        spec("tmpfs size=abc", tmpfs_with(json!(["size=abc"])), &["mounts[", ".options", "size=abc"]),
        spec("tmpfs mode=999", tmpfs_with(json!(["mode=999"])), &["mounts[", ".options", "mode=999"]),
        spec("two options in one", tmpfs_with(json!(["size=1m,mode=777"])), &["mounts[", ".options"]),
        spec("relative mount destination", |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({"destination": "tmpx", "type": "tmpfs", "source": "tmpfs"}))
        }, &["mounts[", ".destination", "absolute"]),
        spec("empty mount destination", |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({"destination": "", "type": "tmpfs", "source": "tmpfs"}))
        }, &["mounts[", ".destination"]),
        case("bind source missing", |_, _| Flags::default(), &[]).with_setup(|b, aux| {
            let missing = aux.join("missing");
            std::fs::create_dir_all(b.rootfs().join("mnt")).unwrap();
            b.edit(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "bind", "source": missing, "options": ["rbind", "ro"]}))
            });
            Flags::default()
        }).expecting(&["mounts[", ".source", "missing"]),
        // An idmapped volume whose mapping is not the container's own (here: host root's ids).
        case("idmapped volume onto host root", |_, _| Flags::default(), &[]).with_setup(|b, aux| {
            let vol = aux.join("vol");
            std::fs::create_dir_all(&vol).unwrap();
            b.edit(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "bind", "source": vol, "options": ["rbind", "idmap"],
                    "uidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}], "gidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}]}))
            });
            Flags::default()
        }).expecting(&["mounts[", ".uidMappings", "not the container's own mapping"]),
        case("idmapped tmpfs", |_, _| Flags::default(), &[]).with_setup(|b, _| {
            b.edit(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}))
            });
            Flags::default()
        }).expecting(&["mounts[", ".uidMappings", "only bind mounts"]),
        spec("profile annotation with a path", |c| c["annotations"] = json!({"ward.dev/profile": "../../etc/passwd"}), &["annotations[ward.dev/profile]", "../../etc/passwd"]),
        spec("profile annotation naming a file", |c| c["annotations"] = json!({"ward.dev/profile": "/etc/ward/x.toml"}), &["annotations[ward.dev/profile]"]),
    ]);
}
