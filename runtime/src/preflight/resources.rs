//! cgroup values and mount options the kernel (or libcontainer) would refuse only inside
//! the init, with a message naming neither the field nor the value; and values that mean
//! nothing (a memory limit of -5) and would otherwise be replaced without a word.

use oci_spec::runtime::{LinuxResources, Mount, Spec};

use super::{refused, Result};

/// Mount flags libcontainer understands (its `MountOption` and `MountRecursive` parsers, plus
/// `idmap`/`ridmap` and runc's `tmpcopyup`).
const FLAGS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "idmap",
    "ridmap",
    "tmpcopyup",
    "nosymfollow",
    "symfollow",
];

/// Filesystem options (`key` or `key=value`) per mount type.
fn data_keys(typ: &str) -> &'static [&'static str] {
    match typ {
        "tmpfs" | "shm" => &[
            "size",
            "nr_blocks",
            "nr_inodes",
            "mode",
            "uid",
            "gid",
            "huge",
            "mpol",
            "inode32",
            "inode64",
            "noswap",
            "quota",
            "usrquota",
            "grpquota",
        ],
        "proc" => &["hidepid", "gid", "subset"],
        "devpts" => &["newinstance", "ptmxmode", "mode", "gid", "uid", "max"],
        "cgroup" | "cgroup2" | "sysfs" | "mqueue" => &[],
        _ => &[],
    }
}

fn mount_options(i: usize, m: &Mount) -> Result<()> {
    let field = format!("mounts[{i}].options");
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = typ == "bind"
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
    for o in m.options().iter().flatten() {
        if o.contains('\0') || o.contains(',') {
            return Err(refused(
                field,
                format!("{o:?}: a NUL byte or a comma in one option"),
            ));
        }
        if FLAGS.contains(&o.as_str()) {
            continue;
        }
        let (key, value) = o.split_once('=').unwrap_or((o, ""));
        if bind || !data_keys(typ).contains(&key) {
            return Err(refused(
                field,
                format!(
                    "{o:?} is not a mount flag{}",
                    if bind {
                        ""
                    } else {
                        " or an option of this mount type"
                    }
                ),
            ));
        }
        let ok = match key {
            "mode" | "ptmxmode" => {
                !value.is_empty() && u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777)
            }
            "size" => size_value(value),
            "nr_blocks" | "nr_inodes" | "uid" | "gid" | "max" => {
                size_value(value) && !value.ends_with('%')
            }
            _ => true,
        };
        if !ok {
            return Err(refused(
                field,
                format!("{o:?}: {value:?} is not a valid value for {key}"),
            ));
        }
    }
    Ok(())
}

/// A number with an optional k/m/g/t/p/e suffix or a percentage (tmpfs sizes).
fn size_value(v: &str) -> bool {
    let digits = v.trim_end_matches([
        'k', 'K', 'm', 'M', 'g', 'G', 't', 'T', 'p', 'P', 'e', 'E', '%',
    ]);
    v.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A cpuset list ("0-3,8") whose members are all below `max`.
fn cpu_list(v: &str, max: u32) -> std::result::Result<(), String> {
    for part in v.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(format!("{v:?} is not a list like \"0-3,8\"")),
        };
        if b >= max {
            return Err(format!(
                "{v:?} names {b}, but this node has {}..{}",
                0,
                max.saturating_sub(1)
            ));
        }
        let _ = a;
    }
    Ok(())
}

fn possible(path: &str) -> u32 {
    // "0-7" → 8
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().rsplit(['-', ',']).next()?.parse::<u32>().ok())
        .map_or(u32::MAX, |n| n + 1)
}

fn signed(field: &str, v: Option<i64>, min_positive: i64) -> Result<()> {
    match v {
        // -1 is unlimited; 0 is "unset" to runc and to Ward's policy (which then applies its own).
        None | Some(-1) | Some(0) => Ok(()),
        Some(v) if v >= min_positive => Ok(()),
        Some(v) => Err(refused(
            field,
            format!("{v} is not -1 (unlimited), 0 (unset) or a limit of at least {min_positive}"),
        )),
    }
}

fn resources(r: &LinuxResources) -> Result<()> {
    let f = "linux.resources";
    if let Some(m) = r.memory() {
        signed(&format!("{f}.memory.limit"), m.limit(), 1)?;
        signed(&format!("{f}.memory.reservation"), m.reservation(), 1)?;
        signed(&format!("{f}.memory.swap"), m.swap(), 1)?;
        if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
            if l > 0 && s > 0 && s < l {
                return Err(refused(
                    format!("{f}.memory.swap"),
                    format!("{s} is below memory.limit {l} (swap is memory+swap)"),
                ));
            }
        }
        if let Some(s) = m.swappiness().filter(|s| *s > 100) {
            return Err(refused(
                format!("{f}.memory.swappiness"),
                format!("{s} is outside 0..=100"),
            ));
        }
    }
    if let Some(p) = r.pids() {
        // The init and libcontainer's intermediate process are both in the cgroup at create.
        signed(&format!("{f}.pids.limit"), Some(p.limit()), 2)?;
    }
    if let Some(c) = r.cpu() {
        signed(&format!("{f}.cpu.quota"), c.quota(), 1000)?;
        if let Some(p) = c.period().filter(|p| !(1000..=1_000_000).contains(p)) {
            return Err(refused(
                format!("{f}.cpu.period"),
                format!("{p} is outside 1000..=1000000 microseconds"),
            ));
        }
        if let Some(s) = c.shares().filter(|s| *s == 1 || *s > 262_144) {
            return Err(refused(
                format!("{f}.cpu.shares"),
                format!("{s} is outside 2..=262144"),
            ));
        }
        for (name, v, file) in [
            ("cpus", c.cpus(), "/sys/devices/system/cpu/possible"),
            ("mems", c.mems(), "/sys/devices/system/node/possible"),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                cpu_list(v, possible(file)).map_err(|e| refused(format!("{f}.cpu.{name}"), e))?;
            }
        }
    }
    if let Some(b) = r.block_io() {
        for (name, w) in [("weight", b.weight()), ("leafWeight", b.leaf_weight())] {
            if let Some(w) = w.filter(|w| !(10..=1000).contains(w)) {
                return Err(refused(
                    format!("{f}.blockIO.{name}"),
                    format!("{w} is outside 10..=1000"),
                ));
            }
        }
    }
    for k in r.unified().iter().flatten().map(|(k, _)| k) {
        if k.is_empty() || k.contains(['/', '\0']) || k.starts_with('.') {
            return Err(refused(
                format!("{f}.unified[{k}]"),
                "not a cgroup file name",
            ));
        }
    }
    Ok(())
}

/// cgroup values and mount options of `spec`.
pub fn check(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mount_options(i, m)?;
    }
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        resources(r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v = json!({"ociVersion": "1.0.2", "root": {"path": "r"}, "mounts": [], "linux": {"resources": {}}});
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn resources_and_options() {
        let ok = |e: serde_json::Value| check(&spec(|v| v["linux"]["resources"] = e)).is_ok();
        let bad = |e: serde_json::Value, field: &str| {
            let m = check(&spec(|v| v["linux"]["resources"] = e))
                .unwrap_err()
                .to_string();
            assert!(m.starts_with(&format!("{field}: ")), "{m}");
        };
        assert!(ok(
            json!({"memory": {"limit": -1}, "pids": {"limit": 10}, "cpu": {"quota": -1, "cpus": "0"}})
        ));
        bad(
            json!({"memory": {"limit": -5}}),
            "linux.resources.memory.limit",
        );
        bad(
            json!({"memory": {"limit": 1000000, "swap": 10}}),
            "linux.resources.memory.swap",
        );
        bad(
            json!({"memory": {"swappiness": 101}}),
            "linux.resources.memory.swappiness",
        );
        bad(json!({"pids": {"limit": -2}}), "linux.resources.pids.limit");
        assert!(ok(json!({"pids": {"limit": 0}, "memory": {"limit": 0}})));
        bad(json!({"cpu": {"quota": 5}}), "linux.resources.cpu.quota");
        bad(json!({"cpu": {"period": 0}}), "linux.resources.cpu.period");
        bad(json!({"cpu": {"shares": 1}}), "linux.resources.cpu.shares");
        bad(json!({"cpu": {"cpus": "abc"}}), "linux.resources.cpu.cpus");
        bad(
            json!({"cpu": {"cpus": "0-4294967294"}}),
            "linux.resources.cpu.cpus",
        );
        bad(
            json!({"blockIO": {"weight": 5000}}),
            "linux.resources.blockIO.weight",
        );
        bad(
            json!({"unified": {"../../cgroup.procs": "1"}}),
            "linux.resources.unified[../../cgroup.procs]",
        );

        let mount = |o: serde_json::Value, t: &str| {
            let t = t.to_string();
            check(&spec(
                move |v| {
                    v["mounts"] =
                        json!([{"destination": "/m", "type": t, "source": "x", "options": o}])
                },
            ))
        };
        assert!(mount(
            json!(["nosuid", "size=64m", "mode=1777", "nr_inodes=100"]),
            "tmpfs"
        )
        .is_ok());
        assert!(mount(json!(["rbind", "ro", "rprivate"]), "bind").is_ok());
        assert!(mount(json!(["newinstance", "ptmxmode=0666", "gid=5"]), "devpts").is_ok());
        for (o, t) in [
            ("frobnicate", "tmpfs"),
            ("size=abc", "tmpfs"),
            ("mode=999", "tmpfs"),
            ("size=1m", "bind"),
            ("a,b", "tmpfs"),
        ] {
            let e = mount(json!([o]), t).unwrap_err().to_string();
            assert!(e.starts_with("mounts[0].options: "), "{o}: {e}");
        }
        assert!(
            size_value("10%") && size_value("65536k") && !size_value("k") && !size_value("1kk")
        );
    }
}
