//! cgroup limits by default (pids, memory, cpu shares; a spec's own limit is kept when
//! tighter) and the cgroup path: a relative `cgroupsPath` goes under the caller's own cgroup,
//! as runc does; none at all means `<own cgroup>/ward/<id>`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxPidsBuilder, Spec};

use super::{HardenContext, Limits, PolicyError};

fn tighter(spec: Option<i64>, default: i64) -> i64 {
    match spec {
        Some(v) if v > 0 && v < default => v,
        _ => default,
    }
}

pub fn apply(spec: &mut Spec, limits: &Limits, ctx: &HardenContext) -> Result<(), PolicyError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let cg = match linux.cgroups_path() {
        None => ctx.own_cgroup.join("ward").join(&ctx.id),
        Some(p) if p.to_string_lossy().contains(':') => {
            return Err(PolicyError::Cgroup {
                field: "linux.cgroupsPath".into(),
                detail: format!(
                    "{} looks like a systemd slice:prefix:name path; this node has no systemd cgroup driver (use a cgroupfs path)",
                    p.display()
                ),
            })
        }
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => ctx.own_cgroup.join(p),
    };
    if cg
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        || cg == Path::new("/")
    {
        return Err(PolicyError::Cgroup {
            field: "linux.cgroupsPath".into(),
            detail: format!(
                "{} must name a cgroup below the root, without \"..\"",
                cg.display()
            ),
        });
    }
    linux.set_cgroups_path(Some(cg));

    let res = linux.resources_mut().get_or_insert_with(Default::default);
    if let Some(max) = limits.pids {
        let cur = res.pids().as_ref().map(|p| p.limit());
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(tighter(cur, max))
                .build()
                .expect("valid"),
        ));
    }
    if let Some(max) = limits.memory_bytes {
        let mut mem = (*res.memory()).unwrap_or_default();
        let limit = tighter(mem.limit(), max);
        mem.set_limit(Some(limit));
        // swap no larger than the memory limit itself (memory+swap on v1)
        mem.set_swap(Some(tighter(mem.swap(), limit)));
        res.set_memory(Some(mem));
    }
    if let Some(shares) = limits.cpu_shares {
        let mut cpu = res.cpu().clone().unwrap_or_default();
        if cpu.shares().is_none() {
            cpu.set_shares(Some(shares));
        }
        if let (Some(q), None) = (limits.cpu_quota_us, cpu.quota()) {
            cpu.set_quota(Some(q));
            cpu.set_period(limits.cpu_period_us.or(Some(100_000)));
        }
        res.set_cpu(Some(cpu));
    }
    Ok(())
}

/// The caller's own cgroup, from `/proc/self/cgroup` text: the unified (`0::`) entry on pure
/// cgroup v2, else the `memory` controller's entry (the controller whose accounting matters),
/// else `/`.
pub fn own_cgroup_from(proc_self_cgroup: &str, pure_v2: bool) -> PathBuf {
    let mut memory = None;
    let mut unified = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if ctrls.is_empty() {
            unified = Some(path);
        } else if ctrls.split(',').any(|c| c == "memory") {
            memory = Some(path);
        }
    }
    let chosen = if pure_v2 { unified } else { memory.or(unified) };
    PathBuf::from(chosen.unwrap_or("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::{test_ctx, test_policy};
    use oci_spec::runtime::LinuxResourcesBuilder;

    #[test]
    fn defaults_and_tighter_kept() {
        let p = test_policy();
        let mut s = Spec::default();
        apply(&mut s, &p.limits, &test_ctx()).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert_eq!(
            l.cgroups_path().as_ref().unwrap(),
            Path::new("/own/ward/c1")
        );
        let r = l.resources().as_ref().unwrap();
        assert_eq!(r.pids().as_ref().unwrap().limit(), 1024);
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(512 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(1024));

        let mut s = Spec::default();
        let res = LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .memory({
                let mut m = oci_spec::runtime::LinuxMemory::default();
                m.set_limit(Some(8 << 30));
                m
            })
            .build()
            .unwrap();
        let l = s.linux_mut().get_or_insert_with(Default::default);
        l.set_resources(Some(res));
        l.set_cgroups_path(Some("pod/c1".into()));
        apply(&mut s, &p.limits, &test_ctx()).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert_eq!(l.cgroups_path().as_ref().unwrap(), Path::new("/own/pod/c1"));
        let r = l.resources().as_ref().unwrap();
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(512 << 20));
    }

    #[test]
    fn systemd_path_refused() {
        let mut s = Spec::default();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_cgroups_path(Some("system.slice:ward:c1".into()));
        let e = apply(&mut s, &test_policy().limits, &test_ctx()).unwrap_err();
        assert!(e.to_string().contains("linux.cgroupsPath"), "{e}");
    }

    #[test]
    fn own_cgroup() {
        let t = "9:name=systemd:/\n4:memory:/process_api/x\n1:cpu:/\n0::/\n";
        assert_eq!(own_cgroup_from(t, false), PathBuf::from("/process_api/x"));
        assert_eq!(
            own_cgroup_from("0::/user.slice/a\n", true),
            PathBuf::from("/user.slice/a")
        );
    }
}
