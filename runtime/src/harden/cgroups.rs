//! cgroup limits by default (pids, memory, cpu shares, a CPU quota; a spec's own limit is kept
//! when tighter) and the cgroup path: a relative `cgroupsPath` goes under the caller's own
//! cgroup, as runc does; none at all means `<own cgroup>/ward/<id>`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxPidsBuilder, Spec};

use super::systemd_path::{is_systemd_form, SystemdPath};
use super::{HardenContext, Limits, PolicyError};

/// CPU quota when the profile names none: one CPU (quota = period).
pub const DEFAULT_CPU_QUOTA_US: i64 = 100_000;
/// CFS period when neither the profile nor the spec names one (the kernel's own default).
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

/// The CPU quota to apply, as (quota, period): the spec's when it grants a smaller share of a
/// CPU than the policy's, else the policy's (its own or the default of one CPU). A spec quota
/// of -1 or 0 (no limit) never wins.
fn cpu_quota(spec_quota: Option<i64>, spec_period: Option<u64>, limits: &Limits) -> (i64, u64) {
    let q = limits.cpu_quota_us.unwrap_or(DEFAULT_CPU_QUOTA_US);
    let p = limits.cpu_period_us.unwrap_or(DEFAULT_CPU_PERIOD_US);
    match spec_quota {
        Some(sq) if sq > 0 => {
            let sp = spec_period
                .filter(|p| *p > 0)
                .unwrap_or(DEFAULT_CPU_PERIOD_US);
            // sq/sp < q/p, in integers.
            if i128::from(sq) * i128::from(p) < i128::from(q) * i128::from(sp) {
                (sq, sp)
            } else {
                (q, p)
            }
        }
        _ => (q, p),
    }
}

fn tighter(spec: Option<i64>, default: i64) -> i64 {
    match spec {
        Some(v) if v > 0 && v < default => v,
        _ => default,
    }
}

/// The spec's `cgroupsPath` as a systemd `slice:prefix:name` (the text and its parse), when it
/// is one, or when `--systemd-cgroup` asks for one (`:ward:<id>` when the spec has none).
pub fn systemd_form(
    cgroups_path: Option<&Path>,
    ctx: &HardenContext,
) -> Result<Option<(String, SystemdPath)>, PolicyError> {
    let asked = cgroups_path.map(|p| p.to_string_lossy());
    let s = match asked.as_deref() {
        Some(s) if is_systemd_form(s) => s.to_string(),
        Some(s) if ctx.systemd_cgroup => {
            return Err(cgroup_error(format!(
                "{s} is not a systemd slice:prefix:name path, as --systemd-cgroup requires"
            )))
        }
        None if ctx.systemd_cgroup => format!(":ward:{}", ctx.id),
        _ => return Ok(None),
    };
    let p = SystemdPath::parse(&s).map_err(cgroup_error)?;
    Ok(Some((s, p)))
}

/// The container's cgroup (relative to every cgroup mount) for the spec's `cgroupsPath`.
/// A systemd-style `slice:prefix:name` (or any path under `--systemd-cgroup`) maps to the
/// cgroup systemd gives the scope (see [`super::systemd_path`]): where systemd runs it makes
/// that scope itself, over D-Bus (`crate::systemd`), elsewhere Ward makes the same path.
pub fn path(cgroups_path: Option<&Path>, ctx: &HardenContext) -> Result<PathBuf, PolicyError> {
    let cg = match (systemd_form(cgroups_path, ctx)?, cgroups_path) {
        (Some((_, p)), _) => p.cgroup(),
        (None, None) => ctx.own_cgroup.join("ward").join(&ctx.id),
        (None, Some(p)) if p.is_absolute() => p.to_path_buf(),
        (None, Some(p)) => ctx.own_cgroup.join(p),
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
    Ok(cg)
}

fn cgroup_error(detail: String) -> PolicyError {
    PolicyError::Cgroup {
        field: "linux.cgroupsPath".into(),
        detail,
    }
}

pub fn apply(spec: &mut Spec, limits: &Limits, ctx: &HardenContext) -> Result<(), PolicyError> {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let cg = path(linux.cgroups_path().as_deref(), ctx)?;
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
    let mut cpu = res.cpu().clone().unwrap_or_default();
    if let (Some(shares), None) = (limits.cpu_shares, cpu.shares()) {
        cpu.set_shares(Some(shares));
    }
    // Always a quota: without one a CPU spin takes every core of the node.
    let (quota, period) = cpu_quota(cpu.quota(), cpu.period(), limits);
    cpu.set_quota(Some(quota));
    cpu.set_period(Some(period));
    res.set_cpu(Some(cpu));
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

    fn cpu_of(s: &Spec) -> (Option<i64>, Option<u64>) {
        let c = s
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.cpu().as_ref())
            .expect("cpu resources set");
        (c.quota(), c.period())
    }

    fn with_cpu(quota: Option<i64>, period: Option<u64>) -> Spec {
        let mut s = Spec::default();
        let mut cpu = oci_spec::runtime::LinuxCpu::default();
        cpu.set_quota(quota);
        cpu.set_period(period);
        let res = LinuxResourcesBuilder::default().cpu(cpu).build().unwrap();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_resources(Some(res));
        s
    }

    #[test]
    fn cpu_quota_by_default_and_tighter_spec_kept() {
        let mut p = test_policy().limits;
        // No quota in the profile: one CPU.
        let mut s = Spec::default();
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(100_000), Some(100_000)));
        // A spec without a limit (-1), or a looser one, gets the policy's quota.
        for (q, per) in [
            (Some(-1), None),
            (Some(400_000), Some(100_000)),
            (Some(0), None),
        ] {
            let mut s = with_cpu(q, per);
            apply(&mut s, &p, &test_ctx()).unwrap();
            assert_eq!(cpu_of(&s), (Some(100_000), Some(100_000)), "{q:?}/{per:?}");
        }
        // A period alone does not lift the quota.
        let mut s = with_cpu(None, Some(50_000));
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(100_000), Some(100_000)));
        // A tighter spec quota is kept, with its own period (or the kernel's default).
        let mut s = with_cpu(Some(25_000), Some(50_000));
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(25_000), Some(50_000)));
        let mut s = with_cpu(Some(50_000), None);
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(50_000), Some(100_000)));
        // Equal share (2 CPUs as 200000/100000 vs 100000/50000): the policy's form.
        p.cpu_quota_us = Some(200_000);
        p.cpu_period_us = Some(100_000);
        let mut s = with_cpu(Some(100_000), Some(50_000));
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(200_000), Some(100_000)));
        // The profile's own quota applies; shares come from the policy when the spec has none.
        let mut s = with_cpu(Some(150_000), Some(100_000));
        apply(&mut s, &p, &test_ctx()).unwrap();
        assert_eq!(cpu_of(&s), (Some(150_000), Some(100_000)));
        assert_eq!(
            s.linux()
                .as_ref()
                .unwrap()
                .resources()
                .as_ref()
                .unwrap()
                .cpu()
                .as_ref()
                .unwrap()
                .shares(),
            Some(1024)
        );
    }

    fn cgroup_for(asked: Option<&str>, ctx: &HardenContext) -> Result<PathBuf, PolicyError> {
        let mut s = Spec::default();
        s.linux_mut()
            .get_or_insert_with(Default::default)
            .set_cgroups_path(asked.map(PathBuf::from));
        apply(&mut s, &test_policy().limits, ctx)?;
        Ok(s.linux().as_ref().unwrap().cgroups_path().clone().unwrap())
    }

    #[test]
    fn systemd_path_mapped_where_no_systemd_runs() {
        let ctx = test_ctx();
        // Absolute from every hierarchy's root, not under Ward's own cgroup.
        assert_eq!(
            cgroup_for(Some("kubepods-burstable-podu1.slice:cri-containerd:c1"), &ctx).unwrap(),
            Path::new("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice/cri-containerd-c1.scope")
        );
        for bad in ["a:b:c", "a.slice:p:../x", "a--b.slice:p:n", "x.slice:p/q:n"] {
            let e = cgroup_for(Some(bad), &ctx).unwrap_err().to_string();
            assert!(e.starts_with("linux.cgroupsPath: "), "{bad}: {e}");
        }
    }

    #[test]
    fn systemd_cgroup_flag() {
        let ctx = HardenContext {
            systemd_cgroup: true,
            ..test_ctx()
        };
        assert_eq!(
            cgroup_for(None, &ctx).unwrap(),
            Path::new("/system.slice/ward-c1.scope")
        );
        let e = cgroup_for(Some("/pod/c1"), &ctx).unwrap_err().to_string();
        assert!(
            e.contains("linux.cgroupsPath") && e.contains("--systemd-cgroup"),
            "{e}"
        );
        // Without the flag a cgroupfs path stays one.
        assert_eq!(
            cgroup_for(Some("/pod/c1"), &test_ctx()).unwrap(),
            Path::new("/pod/c1")
        );
    }

    #[test]
    fn systemd_path_same_where_systemd_runs() {
        // Where systemd runs it makes the scope (over D-Bus), at the path Ward computes.
        let ctx = HardenContext {
            systemd_running: true,
            ..test_ctx()
        };
        assert_eq!(
            cgroup_for(Some("kubepods.slice:cri-containerd:c1"), &ctx).unwrap(),
            Path::new("/kubepods.slice/cri-containerd-c1.scope")
        );
        let (text, p) = systemd_form(Some(Path::new("kubepods.slice:cri-containerd:c1")), &ctx)
            .unwrap()
            .unwrap();
        assert_eq!(text, "kubepods.slice:cri-containerd:c1");
        assert_eq!(
            (p.unit(), p.slice.as_str()),
            ("cri-containerd-c1.scope".to_string(), "kubepods.slice")
        );
        // cgroupfs paths are unaffected.
        assert_eq!(
            systemd_form(Some(Path::new("/pod/c1")), &ctx).unwrap(),
            None
        );
        assert_eq!(
            cgroup_for(Some("/pod/c1"), &ctx).unwrap(),
            Path::new("/pod/c1")
        );
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
