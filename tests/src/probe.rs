//! Shell probes run inside a container. Each probe is a shell snippet; the script prints one
//! line per probe, `@@<name> rc=<exit code> <output joined on one line>`, which [`Probes`]
//! parses back.

use std::collections::BTreeMap;

/// Quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A script running each `(name, snippet)` and printing its result line.
pub fn probe_script(probes: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "p() { o=$(eval \"$2\" 2>&1); r=$?; printf '@@%s rc=%s %s\\n' \"$1\" \"$r\" \"$(printf %s \"$o\" | tr '\\n' ' ')\"; }\n",
    );
    for (name, snippet) in probes {
        assert!(
            !name.contains(char::is_whitespace),
            "probe name {name:?} has spaces"
        );
        s.push_str(&format!("p {name} {}\n", sh_quote(snippet)));
    }
    s
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub rc: i32,
    pub out: String,
}

/// Probe results by name.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    map: BTreeMap<String, Probe>,
    raw: String,
}

impl Probes {
    pub fn parse(stdout: &str) -> Self {
        let mut map = BTreeMap::new();
        for line in stdout.lines() {
            let Some(rest) = line.strip_prefix("@@") else {
                continue;
            };
            let mut it = rest.splitn(3, ' ');
            let (Some(name), Some(rc)) = (it.next(), it.next()) else {
                continue;
            };
            let Some(rc) = rc.strip_prefix("rc=").and_then(|r| r.parse().ok()) else {
                continue;
            };
            map.insert(
                name.to_string(),
                Probe {
                    rc,
                    out: it.next().unwrap_or("").trim().to_string(),
                },
            );
        }
        Self {
            map,
            raw: stdout.to_string(),
        }
    }

    /// The probe `name`; panics (showing all output) if it did not report.
    #[track_caller]
    pub fn get(&self, name: &str) -> &Probe {
        self.map
            .get(name)
            .unwrap_or_else(|| panic!("probe {name} did not report; output:\n{}", self.raw))
    }

    /// Assert the probe succeeded; returns its output.
    #[track_caller]
    pub fn ok(&self, name: &str) -> &str {
        let p = self.get(name);
        assert_eq!(p.rc, 0, "probe {name} failed: {}", p.out);
        &p.out
    }

    /// Assert the probe failed and its output contains `fragment`.
    #[track_caller]
    pub fn fails_with(&self, name: &str, fragment: &str) {
        let p = self.get(name);
        assert_ne!(p.rc, 0, "probe {name} unexpectedly succeeded: {}", p.out);
        assert!(
            p.out.contains(fragment),
            "probe {name} failed (rc {}) but without {fragment:?}: {}",
            p.rc,
            p.out
        );
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// `/proc/<pid>/status` capability and security lines, parsed: (name → value text).
pub fn status_fields(text: &str) -> BTreeMap<String, String> {
    text.split(['\n', ' '])
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// One line of a uid/gid map: (inside start, host start, length).
pub fn parse_id_map(text: &str) -> Vec<(u64, u64, u64)> {
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    nums.chunks(3)
        .filter(|c| c.len() == 3)
        .map(|c| (c[0], c[1], c[2]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_lines() {
        let p = Probes::parse("noise\n@@a rc=0 hello world\n@@b rc=1 sh: x: Read-only\n");
        assert_eq!(p.ok("a"), "hello world");
        p.fails_with("b", "Read-only");
    }

    #[test]
    fn parses_maps_and_status() {
        assert_eq!(
            parse_id_map("         0    1048576      65536 "),
            vec![(0, 1048576, 65536)]
        );
        let f = status_fields("CapEff:\t0000000000000000 NoNewPrivs:\t1");
        assert_eq!(f["CapEff"], "0000000000000000");
        assert_eq!(f["NoNewPrivs"], "1");
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }
}
