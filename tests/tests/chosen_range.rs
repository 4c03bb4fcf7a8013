//! A spec that brings its own uid/gid mapping (what containerd 2 sends for a Kubernetes pod
//! with `hostUsers: false`: the kubelet chose the range) runs on exactly that range when it
//! overlaps nothing held on the node; Ward holds it node-wide while the container lives, refuses
//! an overlapping second container naming the holder, and frees it on delete. Judged from the
//! host: the container init's maps, the range table, the node-wide claim file.

use std::path::Path;

use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Ward};

/// Node-wide claims dir of the default node config (runtime/src/config.rs).
const CLAIMS: &str = "/run/ward-uid-claims";

fn with_mapping(b: &mut Bundle, start: u32) {
    b.edit(|c| {
        let m = serde_json::json!([{"containerID": 0, "hostID": start, "size": 65536}]);
        c["linux"]["uidMappings"] = m.clone();
        c["linux"]["gidMappings"] = m;
    });
}

fn map_of(pid: i32, f: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{f}"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn caller_mapping_runs_as_asked_and_is_held_node_wide() {
    require_root!();
    let ward = Ward::new();
    // Above Ward's own slots (1 MiB + 4096 x 64 Ki) and apart from the CRI test's ranges.
    let start = 65536 * (30000 + std::process::id() % 20000);
    let (a, b) = (unique_id("chosen-a"), unique_id("chosen-b"));
    let mut first = Bundle::new(&["sleep", "60"]);
    with_mapping(&mut first, start);
    ward.run_detached(&first, &a);
    let pid = ward.pid(&a);
    let want = ["0".to_string(), start.to_string(), "65536".to_string()];
    assert_eq!(map_of(pid, "uid_map"), want);
    assert_eq!(map_of(pid, "gid_map"), want);
    let claim = Path::new(CLAIMS).join(format!("r{start}-65536"));
    assert!(claim.exists(), "no node-wide claim {}", claim.display());

    // Overlapping by one 4 Ki block: refused, naming both holders, nothing left behind.
    let mut second = Bundle::new(&["true"]);
    with_mapping(&mut second, start + 4096);
    let out = ward.run(&second, &b);
    assert!(!out.success(), "overlapping mapping ran");
    assert!(
        out.stderr.contains("overlaps") && out.stderr.contains(&a) && out.stderr.contains(&b),
        "{}",
        out.stderr
    );
    assert_no_leftovers(&ward, &b);

    // Deleting the holder frees the range: the second container runs on its own mapping.
    ward.ok(&["delete", "--force", &a]);
    assert_no_leftovers(&ward, &a);
    assert!(!claim.exists(), "claim {} left", claim.display());
    let out = ward.run(&second, &b);
    assert!(out.success(), "{}", out.stderr);
    ward.ok(&["delete", "--force", &b]);
    assert_no_leftovers(&ward, &b);
}
