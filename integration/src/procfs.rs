//! Small /proc readers shared by tests and the benchmark.

use std::fs;

/// Parsed sandbox facts from inside a container (`/proc/self/status`,
/// `/proc/self/uid_map`, `/proc/self/mountinfo` as printed by a probe).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SandboxFacts {
    pub cap_eff: Option<u64>,
    pub no_new_privs: Option<u32>,
    pub seccomp: Option<u32>,
    /// `(inside, outside, count)` lines of uid_map.
    pub uid_map: Vec<(u64, u64, u64)>,
}

impl SandboxFacts {
    /// Parse `/proc/self/status` text plus `uid_map` text.
    pub fn parse(status: &str, uid_map: &str) -> Self {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        Self {
            cap_eff: field("CapEff:").and_then(|v| u64::from_str_radix(v, 16).ok()),
            no_new_privs: field("NoNewPrivs:").and_then(|v| v.parse().ok()),
            seccomp: field("Seccomp:").and_then(|v| v.parse().ok()),
            uid_map: uid_map
                .lines()
                .filter_map(|l| {
                    let mut it = l.split_whitespace().map(|x| x.parse::<u64>().ok());
                    Some((it.next()??, it.next()??, it.next()??))
                })
                .collect(),
        }
    }

    /// The identity map `0 0 4294967295` (no user namespace).
    pub fn uid_map_is_identity(&self) -> bool {
        self.uid_map == [(0, 0, 4_294_967_295)]
    }

    /// Whether some inside uid maps to host uid 0.
    pub fn maps_host_root(&self) -> bool {
        self.uid_map
            .iter()
            .any(|&(_, outside, count)| outside == 0 && count > 0)
    }
}

/// `(Pss, Rss)` in KiB from `/proc/<pid>/smaps_rollup`.
pub fn pss_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((get("Pss:")?, get("Rss:")?))
}

/// One region of [`smaps_breakdown`], sizes in KiB.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub pss: u64,
    pub rss: u64,
    /// Pages only this process has written (relocated data, heap, stacks).
    pub private_dirty: u64,
}

/// Where a process's memory is, from `/proc/<pid>/smaps`, summed by region: `[heap]`,
/// `[stack]`, `anon` (unnamed: thread stacks, malloc arenas, mmaps), `exe` (the binary's
/// own pages), `libs` (shared libraries), other named mappings.
pub fn smaps_breakdown(pid: u32) -> Vec<Region> {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return vec![];
    };
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut sums: std::collections::BTreeMap<String, Region> = Default::default();
    let mut region = String::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or_default();
        if first.contains('-') && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            // Header: range perms offset dev inode [path]
            let path = f.nth(4).unwrap_or_default();
            region = if path.is_empty() {
                "anon".into()
            } else if path == exe.trim_end_matches(" (deleted)") {
                "exe".into()
            } else if path.contains(".so") {
                "libs".into()
            } else {
                path.to_string()
            };
            continue;
        }
        let kib = || {
            f.clone()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let r = sums.entry(region.clone()).or_insert_with(|| Region {
            name: region.clone(),
            ..Default::default()
        });
        match first {
            "Pss:" => r.pss += kib(),
            "Rss:" => r.rss += kib(),
            "Private_Dirty:" => r.private_dirty += kib(),
            _ => {}
        }
    }
    sums.into_values().filter(|r| r.rss > 0).collect()
}

/// Number of threads of `pid`.
pub fn threads(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Parent pid of `pid` from `/proc/<pid>/stat`.
pub fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 4, after the parenthesised comm which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Executable name (`comm`) of `pid`.
pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_uid_map() {
        let status = "Name:\tsh\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n";
        let f = SandboxFacts::parse(status, "         0     100000      65536\n");
        assert_eq!(f.cap_eff, Some(0));
        assert_eq!(f.no_new_privs, Some(1));
        assert_eq!(f.seccomp, Some(2));
        assert!(!f.uid_map_is_identity());
        assert!(!f.maps_host_root());
        let id = SandboxFacts::parse("", "0 0 4294967295\n");
        assert!(id.uid_map_is_identity());
        assert!(id.maps_host_root());
    }

    #[test]
    fn smaps_breakdown_of_self_has_exe_and_anon() {
        let b = smaps_breakdown(std::process::id());
        let names: Vec<&str> = b.iter().map(|r| r.name.as_str()).collect();
        assert!(names.contains(&"exe") && names.contains(&"anon"), "{b:?}");
        assert!(
            b.iter().all(|r| r.private_dirty <= r.rss && r.pss <= r.rss),
            "{b:?}"
        );
        let total: u64 = b.iter().map(|r| r.rss).sum();
        let (_, rss) = pss_rss_kib(std::process::id()).unwrap();
        // Same pages counted two ways (smaps vs smaps_rollup), read a moment apart.
        assert!(total.abs_diff(rss) < rss / 5 + 256, "{total} vs {rss}");
        assert!(threads(std::process::id()).unwrap() >= 1);
    }

    #[test]
    fn ppid_of_self_is_parent() {
        assert_eq!(
            ppid(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}
