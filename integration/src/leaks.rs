//! What a removed pod may leave behind on the host under Ward's shim: a shim or launcher
//! process, the shim's socket, containers in the shim's state dir, held uid ranges, mounts,
//! cgroups. Read from the host only.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::containerd::Containerd;

/// The shim socket containerd-shim 0.10 derives for (containerd address, namespace, id).
pub fn shim_socket(address: &Path, namespace: &str, id: &str) -> PathBuf {
    let key = address.join(namespace).join(id).display().to_string();
    let hash = Sha256::digest(key.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from("/run/containerd/s").join(hex)
}

/// Pids whose command line mentions every one of `needles`.
pub fn processes_mentioning(needles: &[&str]) -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            needles
                .iter()
                .all(|n| cmd.contains(n))
                .then_some((pid, cmd.trim().to_string()))
        })
        .collect()
}

/// Holders of uid ranges in a runtime root's range table (`.ward/ranges.json`).
pub fn range_holders(root: &Path) -> Vec<String> {
    let path = root.join(".ward/ranges.json");
    let Ok(text) = fs::read_to_string(&path) else {
        return vec![];
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out: Vec<String> = v["slots"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|o| o.as_str().map(String::from))
        .collect();
    out.extend(
        v["shared"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|a| a.as_array())
            .flatten()
            .filter_map(|o| o.as_str().map(String::from)),
    );
    // Caller-chosen ranges (a user-namespaced pod's kubelet mapping).
    for c in v["chosen"].as_object().into_iter().flat_map(|m| m.values()) {
        out.extend(c["owner"].as_str().map(String::from));
        out.extend(
            c["shared"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.as_str().map(String::from)),
        );
    }
    out
}

/// Everything a pod removed through CRI left behind under Ward's shim (empty when clean).
/// `pod` is the sandbox id (the shim's id), `containers` every container id of the pod.
pub fn ward_pod_leftovers(
    c: &Containerd,
    namespace: &str,
    pod: &str,
    containers: &[String],
) -> Vec<String> {
    let mut out = vec![];
    let addr = c.address.display().to_string();
    for (pid, cmd) in processes_mentioning(&["containerd-shim-ward-v2", &addr, pod]) {
        out.push(format!("process {pid}: {cmd}"));
    }
    let sock = shim_socket(&c.address, namespace, pod);
    if sock.exists() {
        out.push(format!("shim socket {}", sock.display()));
    }
    let root = c.ward_state.join(namespace);
    let mut ids: Vec<&str> = containers.iter().map(String::as_str).collect();
    ids.push(pod);
    for id in &ids {
        for d in [root.join(id), root.join(".ward").join(id)] {
            if d.exists() {
                out.push(format!("state dir {}", d.display()));
            }
        }
    }
    for h in range_holders(&root) {
        if ids.contains(&h.as_str()) {
            out.push(format!("uid range still held by {h}"));
        }
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        if ids.iter().any(|id| line.contains(id)) {
            out.push(format!("mount {line}"));
        }
    }
    for m in ward_runtime::cgroup_guard::cgroup_mounts() {
        for id in &ids {
            let d = m.join(namespace).join(id);
            if d.exists() {
                out.push(format!("cgroup {}", d.display()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_holders_reads_owners_and_sharers() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join(".ward")).unwrap();
        fs::write(
            d.path().join(".ward/ranges.json"),
            r#"{"slots":{"0":"pod","3":"x"},"shared":{"0":["c1","c2"]}}"#,
        )
        .unwrap();
        let mut h = range_holders(d.path());
        h.sort();
        assert_eq!(h, vec!["c1", "c2", "pod", "x"]);
    }
}
