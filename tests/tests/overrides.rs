//! No silent overrides (issue 11, item 10): what Ward applies instead of what the spec asked
//! is said once per field, in the log, in `ward events` and in `ward state`; refusals name
//! the Kubernetes field where one exists.

use serde_json::{json, Value};
use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Ward};

#[test]
fn overrides_are_logged_evented_and_annotated() {
    require_root!();
    let ward = Ward::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["noNewPrivileges"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_NET_RAW", "CAP_CHOWN"]);
        }
    });
    let id = unique_id("override");
    let o = ward.create(&b, &id);
    assert!(o.success(), "{o}");
    // The log: one warning per field.
    // (Fields the spec left out and Ward's defaults filled, e.g. no linux.seccomp, are info
    // lines: in `--log`, not on a terminal; they are in `ward events` below.)
    for field in [
        "root.readonly",
        "process.noNewPrivileges",
        "process.capabilities",
    ] {
        let n = o
            .stderr
            .lines()
            .filter(|l| l.contains("spec overridden") && l.contains(field))
            .count();
        assert_eq!(n, 1, "{field} should be logged once:\n{}", o.stderr);
    }
    assert!(
        !o.stderr.contains("field=linux.seccomp"),
        "a field the spec left out is info, not a warning:\n{}",
        o.stderr
    );
    // ward events.
    let ev = ward.ok(&["events", "--once", &id]);
    let lines: Vec<Value> = ev
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let msgs: Vec<&str> = lines
        .iter()
        .filter(|e| e["type"] == "spec-override")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("root.readonly") && m.contains("readOnlyRootFilesystem")),
        "{ev}"
    );
    assert!(msgs.iter().any(|m| m.contains("CAP_NET_RAW")), "{ev}");
    assert!(msgs.iter().any(|m| m.starts_with("linux.seccomp")), "{ev}");
    // ward state annotations (what crictl inspect shows of the runtime state).
    let st = ward.state(&id);
    let ann = &st["annotations"];
    assert!(
        ann["ward.dev/override.root.readonly"]
            .as_str()
            .is_some_and(|v| v.contains("asked false")),
        "{st}"
    );
    assert!(
        ann["ward.dev/override.process.noNewPrivileges"].is_string(),
        "{st}"
    );
    // And what was applied is what was said: read-only, nnp, no NET_RAW.
    let status = std::fs::read_to_string(format!("/proc/{}/status", ward.pid(&id))).unwrap();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

#[test]
fn host_namespace_refusals_name_the_kubernetes_field() {
    require_root!();
    let ward = Ward::new();
    for (kind, k8s) in [
        ("pid", "spec.hostPID"),
        ("network", "spec.hostNetwork"),
        ("ipc", "spec.hostIPC"),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != kind);
        });
        let id = unique_id("hostns");
        let o = ward.run(&b, &id);
        assert!(!o.success(), "{kind}: {o}");
        assert!(
            o.stderr.contains(k8s) && o.stderr.contains("linux.namespaces"),
            "{kind}: {o}"
        );
        assert_no_leftovers(&ward, &id);
    }
}
