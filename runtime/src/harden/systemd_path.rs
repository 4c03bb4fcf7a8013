//! systemd-style `linux.cgroupsPath` (`slice:prefix:name`, what containerd sends under the
//! systemd cgroup driver, kubeadm's default) and the cgroupfs path it stands for.
//!
//! systemd places the transient scope `<prefix>-<name>.scope` under the slice, and a slice
//! `a-b-c.slice` under its parents `a.slice/a-b.slice/`: so
//! `kubepods-burstable-pod1.slice:cri-containerd:c1` is
//! `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-c1.scope`
//! in every hierarchy (each v1 controller, or the unified root). Every component is checked
//! with systemd's own rules for unit names, then escaped for the cgroup tree as systemd does
//! (`cg_escape`), so the directory Ward makes is the one systemd would make.
//!
//! Pure: no I/O. Whether the node runs systemd (and so whether the scope must be asked of
//! systemd over D-Bus instead) is decided by the caller.

use std::path::PathBuf;

/// systemd's `UNIT_NAME_MAX` less the terminating NUL.
const UNIT_NAME_MAX: usize = 255;

/// Longest expanded cgroup path accepted (kubelet's are ~200 bytes).
const MAX_CGROUP_PATH: usize = 2048;

/// The slice when the path has none (`:prefix:name` or `prefix:name`), as runc and crun do
/// for a system instance.
pub const DEFAULT_SLICE: &str = "system.slice";

/// A parsed, checked `slice:prefix:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

/// Whether a `cgroupsPath` is written in the systemd form (a cgroupfs path never has a colon
/// in Ward: it is refused or mapped).
pub fn is_systemd_form(cgroups_path: &str) -> bool {
    cgroups_path.contains(':')
}

impl SystemdPath {
    /// Parse and check `slice:prefix:name` (or `prefix:name`). The error is the reason, for a
    /// message that names `linux.cgroupsPath`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (slice, prefix, name) = match parts.as_slice() {
            [prefix, name] => ("", *prefix, *name),
            [slice, prefix, name] => (*slice, *prefix, *name),
            _ => return Err(format!("{s:?} is not of the form slice:prefix:name")),
        };
        let slice = if slice.is_empty() {
            DEFAULT_SLICE
        } else {
            slice
        };
        check_slice(slice)?;
        for (what, v) in [("prefix", prefix), ("name", name)] {
            if v.is_empty() {
                return Err(format!("{s:?}: empty {what}"));
            }
            check_chars(v).map_err(|e| format!("{s:?}: {what} {v:?}: {e}"))?;
        }
        if name.ends_with(".slice") {
            return Err(format!(
                "{s:?}: a name ending in .slice (a slice unit instead of a scope) is not supported"
            ));
        }
        let unit = format!("{prefix}-{name}.scope");
        if unit.len() > UNIT_NAME_MAX {
            return Err(format!(
                "{s:?}: the unit name {unit} is longer than systemd's {UNIT_NAME_MAX} bytes"
            ));
        }
        let p = Self {
            slice: slice.to_string(),
            prefix: prefix.to_string(),
            name: name.to_string(),
        };
        // A long slice nests deep (`a-a-a-...`: one directory per dash): keep the path well
        // inside PATH_MAX once a hierarchy's mount point is in front of it.
        let len = p.cgroup().as_os_str().len();
        if len > MAX_CGROUP_PATH {
            return Err(format!(
                "{s:?}: the cgroup path it expands to is {len} bytes, more than {MAX_CGROUP_PATH}"
            ));
        }
        Ok(p)
    }

    /// The transient scope's unit name.
    pub fn unit(&self) -> String {
        format!("{}-{}.scope", self.prefix, self.name)
    }

    /// The slices from the root down to `self.slice` (empty for the root slice `-.slice`).
    pub fn slices(&self) -> Vec<String> {
        let stem = self.slice.trim_end_matches(".slice");
        if stem == "-" {
            return vec![];
        }
        let mut out = vec![];
        let mut acc = String::new();
        for part in stem.split('-') {
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            out.push(format!("{acc}.slice"));
        }
        out
    }

    /// The cgroup (relative to every hierarchy's root) systemd would give the scope.
    pub fn cgroup(&self) -> PathBuf {
        let mut p = PathBuf::from("/");
        for s in self.slices() {
            p.push(cg_escape(&s));
        }
        p.push(cg_escape(&self.unit()));
        p
    }
}

/// systemd's `slice_name_is_valid`: `-.slice` (the root), or a name ending in `.slice` whose
/// stem has no empty dash-separated part (no leading, trailing or double dash).
fn check_slice(slice: &str) -> Result<(), String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} does not end in .slice"));
    };
    if stem == "-" {
        return Ok(());
    }
    if stem.is_empty() || stem.split('-').any(str::is_empty) {
        return Err(format!(
            "slice {slice:?}: empty part between dashes (systemd's slice naming)"
        ));
    }
    if slice.len() > UNIT_NAME_MAX {
        return Err(format!(
            "slice {slice:?} is longer than systemd's {UNIT_NAME_MAX} bytes"
        ));
    }
    check_chars(stem).map_err(|e| format!("slice {slice:?}: {e}"))
}

/// systemd's unit-name characters (letters, digits, `-_.`, and `\` only as the start of a
/// `\xNN` escape). So no `/`, no NUL, no `@` (templates), no `:` (the separator).
fn check_chars(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => i += 1,
            b'\\'
                if b.len() >= i + 4
                    && b[i + 1] == b'x'
                    && b[i + 2].is_ascii_hexdigit()
                    && b[i + 3].is_ascii_hexdigit() =>
            {
                i += 4
            }
            c => {
                return Err(format!(
                    "{:?} is not allowed in a systemd unit name",
                    char::from(c)
                ))
            }
        }
    }
    Ok(())
}

/// systemd's controllers, whose names a cgroup directory must not look like (`cg_escape`).
const SYSTEMD_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "io",
    "blkio",
    "memory",
    "devices",
    "pids",
    "bpf-firewall",
    "bpf-devices",
    "bpf-foreign",
    "bpf-socket-bind",
    "bpf-restrict-network-interfaces",
];

/// systemd's `cg_escape`: a name that could clash with a kernel file (`tasks`, `cgroup.*`,
/// `<controller>.<x>`) or starts with `_` or `.` gets a leading `_`.
pub fn cg_escape(name: &str) -> String {
    let clash = name.starts_with(['_', '.'])
        || ["notify_on_release", "release_agent", "tasks"].contains(&name)
        || name.starts_with("cgroup.")
        || name
            .rfind('.')
            .is_some_and(|dot| SYSTEMD_CONTROLLERS.contains(&&name[..dot]));
    if clash {
        format!("_{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> Result<PathBuf, String> {
        SystemdPath::parse(s).map(|p| p.cgroup())
    }

    #[test]
    fn kubelet_pod_slices_expand() {
        assert_eq!(
            map("kubepods-burstable-pod0a1b_2c.slice:cri-containerd:abc123").unwrap(),
            PathBuf::from(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b_2c.slice/cri-containerd-abc123.scope"
            )
        );
        assert_eq!(
            map("kubepods-pod1.slice:cri-containerd:x").unwrap(),
            PathBuf::from("/kubepods.slice/kubepods-pod1.slice/cri-containerd-x.scope")
        );
        assert_eq!(
            map("machine.slice:libpod:c").unwrap(),
            PathBuf::from("/machine.slice/libpod-c.scope")
        );
    }

    #[test]
    fn default_and_root_slices() {
        for s in [":ward:c1", "ward:c1"] {
            assert_eq!(
                map(s).unwrap(),
                PathBuf::from("/system.slice/ward-c1.scope"),
                "{s}"
            );
        }
        assert_eq!(map("-.slice:p:n").unwrap(), PathBuf::from("/p-n.scope"));
        assert_eq!(
            SystemdPath::parse("a-b.slice:p:n").unwrap().unit(),
            "p-n.scope"
        );
    }

    #[test]
    fn escaped_like_systemd() {
        assert_eq!(cg_escape("cpu.slice"), "_cpu.slice");
        assert_eq!(cg_escape("_x.slice"), "__x.slice");
        assert_eq!(cg_escape("cgroup.procs"), "_cgroup.procs");
        assert_eq!(cg_escape("cpu-x.scope"), "cpu-x.scope");
        assert_eq!(cg_escape("kubepods.slice"), "kubepods.slice");
        assert_eq!(
            map("cpu-a.slice:p:n").unwrap(),
            PathBuf::from("/_cpu.slice/cpu-a.slice/p-n.scope")
        );
        // An escape sequence is kept as systemd keeps it in unit and directory names.
        assert_eq!(
            map(r"a\x2db.slice:p:n").unwrap(),
            PathBuf::from(r"/a\x2db.slice/p-n.scope")
        );
    }

    #[test]
    fn bad_components_refused() {
        for bad in [
            "a:b:c:d",
            "kubepods:p:n",        // slice without .slice
            ".slice:p:n",          // empty slice stem
            "-a.slice:p:n",        // leading dash
            "a-.slice:p:n",        // trailing dash
            "a--b.slice:p:n",      // double dash
            "a/b.slice:p:n",       // slash in slice
            "../x.slice:p:n",      // parent dir
            "a.slice:p/q:n",       // slash in prefix
            "a.slice:p:../../n",   // slash and dots in name
            "a.slice:p:n/x",       // slash in name
            "a.slice::n",          // empty prefix
            "a.slice:p:",          // empty name
            "a.slice:p:n@x",       // template
            "a.slice:p:b-n.slice", // slice unit as the leaf
            "a.slice:p:n\0",       // NUL
            r"a.slice:p:n\y",      // backslash outside an escape
            "a.slice:p:n x",       // space
            "a.slice:p:n\u{e9}",   // non-ASCII
        ] {
            assert!(SystemdPath::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("a.slice:p:{}", "n".repeat(250));
        assert!(SystemdPath::parse(&long).unwrap_err().contains("255"));
        // 120 nested slices: each name is short enough, the whole path is not.
        let deep = format!("{}.slice:p:n", vec!["a"; 120].join("-"));
        assert!(
            SystemdPath::parse(&deep).unwrap_err().contains("2048"),
            "{deep}"
        );
        // Nothing the parser accepts climbs out of the root.
        for ok in ["..x.slice:..:..", "a.slice:.:."] {
            let p = map(ok).unwrap();
            assert!(
                p.components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir)),
                "{ok:?} → {}",
                p.display()
            );
        }
    }
}
