//! What a container may leave behind, checked from the host: its state dirs under `--root`,
//! its uid range in `<root>/.ward/ranges.json`, mounts under the root, a cgroup directory
//! named after it, and live processes in such a cgroup.

use std::path::Path;

use crate::Ward;

/// Deepest cgroup directory level searched below each hierarchy.
const CGROUP_DEPTH: usize = 12;

/// Holders in `<root>/.ward/ranges.json`: owners, containers sharing an owner's range (pod
/// containers in their sandbox's user namespace), and holders of caller-chosen ranges. Empty
/// if the table does not exist.
pub fn range_owners(root: &Path) -> Vec<String> {
    let path = root.join(".ward/ranges.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return vec![];
    };
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not JSON: {e}: {text}", path.display()));
    let owners = v["slots"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|o| o.as_str().map(str::to_string));
    let sharers = v["shared"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|a| a.as_array())
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_string));
    // Caller-chosen ranges (a spec's own mapping): `chosen: {start: {size, owner, shared}}`.
    let chosen = v["chosen"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|c| {
            let owner = c["owner"].as_str().map(str::to_string);
            let shared = c["shared"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str().map(str::to_string));
            owner.into_iter().chain(shared).collect::<Vec<_>>()
        });
    owners.chain(sharers).chain(chosen).collect()
}

/// Slot number of `id` in the range table.
pub fn range_slot(root: &Path, id: &str) -> Option<u32> {
    let text = std::fs::read_to_string(root.join(".ward/ranges.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["slots"]
        .as_object()?
        .iter()
        .find(|(_, o)| o.as_str() == Some(id))
        .and_then(|(k, _)| k.parse().ok())
}

/// Mount points (field 5 of mountinfo) whose line mentions `needle`.
pub fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// Mount points of the cgroup hierarchies (v1 controllers and/or cgroup2) in this process's
/// mountinfo.
pub fn cgroup_mounts() -> Vec<std::path::PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = pre.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| std::path::PathBuf::from(mp))
        })
        .collect()
}

/// cgroup directories named `id` anywhere below /sys/fs/cgroup (bounded depth, no symlinks).
pub fn cgroup_dirs_named(id: &str) -> Vec<String> {
    let mut found = vec![];
    let mut stack = vec![(std::path::PathBuf::from("/sys/fs/cgroup"), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy() == id {
                found.push(e.path().display().to_string());
            }
            if depth < CGROUP_DEPTH {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(true)
}

/// Live (non-zombie) host processes in a cgroup whose last component is `id`.
pub fn processes_in_cgroup_named(id: &str) -> Vec<String> {
    let suffix = format!("/{id}");
    let inner = format!("/{id}/");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let hit = cg.lines().any(|l| {
                let path = l.splitn(3, ':').nth(2).unwrap_or("");
                path.ends_with(&suffix) || path.contains(&inner)
            });
            (hit && !is_zombie(&pid)).then(|| format!("pid {pid}: {}", cg.replace('\n', " ")))
        })
        .collect()
}

/// Everything container `id` left behind under `ward`'s root and on the host.
pub fn leftovers(ward: &Ward, id: &str) -> Vec<String> {
    ward.reap();
    let root = ward.root();
    let mut out = vec![];
    for d in [root.join(id), root.join(".ward").join(id)] {
        if d.exists() {
            out.push(format!("state dir {} exists", d.display()));
        }
    }
    if range_owners(root).iter().any(|o| o == id) {
        out.push(format!("uid range still allocated to {id} in ranges.json"));
    }
    for needle in [
        root.join(id).display().to_string(),
        root.join(".ward").join(id).display().to_string(),
    ] {
        for m in mounts_mentioning(&needle) {
            out.push(format!("mount: {m}"));
        }
    }
    for c in cgroup_dirs_named(id) {
        out.push(format!("cgroup dir {c}"));
    }
    for p in processes_in_cgroup_named(id) {
        out.push(format!("process {p}"));
    }
    out
}

/// Panic with the list if container `id` left anything behind.
#[track_caller]
pub fn assert_no_leftovers(ward: &Ward, id: &str) {
    let l = leftovers(ward, id);
    assert!(
        l.is_empty(),
        "container {id} left behind:\n  {}",
        l.join("\n  ")
    );
}

/// Panic if anything at all remains under `ward`'s root: containers, ranges, mounts.
#[track_caller]
pub fn assert_root_clean(ward: &Ward) {
    let root = ward.root();
    let mut l = vec![];
    for id in ward.ids() {
        l.push(format!("container dir {id}"));
    }
    if let Ok(rd) = std::fs::read_dir(root.join(".ward")) {
        for e in rd.flatten() {
            // bpf-cache: compiled seccomp programs keyed by profile hash, shared by every
            // container of the node (not state of one container).
            if e.path().is_dir() && e.file_name() != "bpf-cache" {
                l.push(format!(".ward/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    for o in range_owners(root) {
        l.push(format!("ranges.json slot owned by {o}"));
    }
    for m in mounts_mentioning(&root.display().to_string()) {
        l.push(format!("mount: {m}"));
    }
    assert!(
        l.is_empty(),
        "root {} not clean:\n  {}",
        root.display(),
        l.join("\n  ")
    );
}
