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
    fn ppid_of_self_is_parent() {
        assert_eq!(
            ppid(std::process::id()),
            Some(std::os::unix::process::parent_id())
        );
    }
}
