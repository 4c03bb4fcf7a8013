//! Pods through the CLI (runtime `pod.rs`): what containerd's CRI asks of a runtime, without
//! containerd. A network namespace created in the host user namespace (as containerd makes a
//! pod's CNI namespace) is entered by Ward for the container; a pod container (annotation
//! `io.kubernetes.cri.sandbox-id`) joins its sandbox's namespaces, user namespace and uid
//! range. Namespaces of anything else are refused, naming the field, leaving nothing behind.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use ward_tests::probe::{parse_id_map, status_fields};
use ward_tests::{
    assert_no_leftovers, assert_root_clean, leaks, require_root, unique_id, wait_until, Bundle,
    Ward,
};

const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";

/// A process this test started in fresh namespaces (`unshare --net|--ipc sleep`), owned by
/// the host user namespace: a stand-in for the namespaces an engine prepares.
struct NsHolder {
    child: Child,
}

impl NsHolder {
    fn new(flag: &str, kind: &str) -> Self {
        let child = Command::new("unshare")
            .args([flag, "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare (util-linux)");
        let me = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        let pid = child.id();
        let ready = wait_until(Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).is_ok_and(|l| l != me)
        });
        assert!(ready, "unshare {flag} did not enter a new {kind} namespace");
        Self { child }
    }

    fn path(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.child.id())
    }

    /// Run a command in the holder's network namespace (from the host, as CNI would).
    fn net_exec(&self, args: &[&str]) {
        let st = Command::new("nsenter")
            .arg("-t")
            .arg(self.child.id().to_string())
            .arg("-n")
            .args(args)
            .status()
            .expect("spawn nsenter");
        assert!(st.success(), "nsenter {args:?}: {st}");
    }
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ns(pid: i32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("error {e}"))
}

/// Point namespace `typ` of the bundle at `path`.
fn join_ns(c: &mut Value, typ: &str, path: &str) {
    let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != typ);
    nss.push(json!({"type": typ, "path": path}));
}

fn annotate_pod(c: &mut Value, sandbox: &str) {
    c["annotations"] = json!({ SANDBOX_ID: sandbox });
}

/// The pod sandbox container itself, as containerd's CRI annotates it: only a container
/// created so is ever joined (`pod_trust.rs`).
fn annotate_sandbox(c: &mut Value, id: &str) {
    c["annotations"] = json!({ SANDBOX_ID: id, CONTAINER_TYPE: "sandbox" });
}

/// `ward` on a node whose config enables pods for the CLI (`[pods] enabled = true`).
fn pod_ward() -> (Ward, tempfile::NamedTempFile) {
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "[pods]\nenabled = true\n").unwrap();
    let ward = Ward::new().with_global(["--config".into(), cfg.path().as_os_str().to_owned()]);
    (ward, cfg)
}

fn exec(ward: &Ward, id: &str, script: &str) -> ward_tests::Out {
    ward.output(&["exec", id, "sh", "-c", script])
}

#[test]
fn ward_enters_a_host_owned_network_namespace() {
    require_root!();
    let net = NsHolder::new("--net", "net");
    net.net_exec(&["ip", "addr", "add", "192.0.2.7/32", "dev", "lo"]);
    net.net_exec(&["ip", "link", "set", "lo", "up"]);
    let mut b = Bundle::new(&["sleep", "1000"]);
    let path = net.path("net");
    let host_port_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    b.edit(|c| {
        join_ns(c, "network", &path);
        // A pod sysctl (securityContext.sysctls): Ward writes it in the pod namespace.
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "80"});
    });
    let ward = Ward::new();
    let id = unique_id("netns");
    ward.run_detached(&b, &id);
    let init = ward.pid(&id);

    // From the host: the init is in that network namespace, in its own user namespace.
    assert_eq!(ns(init, "net"), ns(net.child.id() as i32, "net"));
    assert_ne!(ns(init, "user"), ns(1, "user"));

    // From inside (exec joins the same network namespace): the address CNI would have set,
    // /sys of that namespace, and no capability to change it.
    let o = exec(
        &ward,
        &id,
        "ip -4 addr show lo; ls /sys/class/net; cat /proc/self/uid_map",
    );
    assert!(o.success(), "{o}");
    assert!(o.stdout.contains("192.0.2.7"), "{o}");
    let ifaces: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.contains(':'))
        .collect();
    assert_eq!(
        ifaces,
        ["lo"],
        "/sys/class/net is not the pod namespace's:\n{o}"
    );
    let map = parse_id_map(o.stdout.lines().last().unwrap());
    assert!(map.iter().all(|&(_, host, _)| host != 0), "{o}");
    let o = exec(
        &ward,
        &id,
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    assert_eq!(o.stdout.trim(), "80", "{o}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port_start,
        "the host's sysctl changed"
    );
    let o = exec(&ward, &id, "ip addr add 192.0.2.8/32 dev lo");
    assert!(!o.success(), "container root changed the pod network:\n{o}");
    assert!(o.stderr.contains("not permitted"), "{o}");
    let o = exec(
        &ward,
        &id,
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    let st = status_fields(&o.stdout);
    assert_eq!(
        st.get("CapEff").map(String::as_str),
        Some("0000000000000000")
    );
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"));

    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
}

#[test]
fn pod_container_joins_its_sandbox() {
    require_root!();
    let net = NsHolder::new("--net", "net");
    let (ward, _cfg) = pod_ward();
    let sandbox = unique_id("pod");
    let mut sb = Bundle::new(&["sleep", "1000"]);
    let path = net.path("net");
    sb.edit(|c| {
        join_ns(c, "network", &path);
        annotate_sandbox(c, &sandbox);
        c["hostname"] = json!("podhost");
    });
    ward.run_detached(&sb, &sandbox);
    let s = ward.pid(&sandbox);

    let member = unique_id("member");
    let mut cb = Bundle::new(&["sleep", "1000"]);
    cb.edit(|c| {
        for (typ, kind) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
            join_ns(c, typ, &format!("/proc/{s}/ns/{kind}"));
        }
        annotate_pod(c, &sandbox);
    });
    ward.run_detached(&cb, &member);
    let m = ward.pid(&member);
    for kind in ["user", "net", "ipc", "uts"] {
        assert_eq!(
            ns(m, kind),
            ns(s, kind),
            "{kind} namespace not the sandbox's"
        );
    }
    assert_ne!(
        ns(m, "pid"),
        ns(s, "pid"),
        "pid namespace was not asked to be shared"
    );
    // The pod's user namespace is owned by the sandbox's range base uid, not by host root.
    assert_eq!(ward_tests::userns_owner_uid(m), ward_tests::range_base(s));
    assert_ne!(ward_tests::userns_owner_uid(m), 0);
    // One uid range for the pod: the member shares the sandbox's slot.
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(ward.root().join(".ward/ranges.json")).unwrap(),
    )
    .unwrap();
    let slot = leaks::range_slot(ward.root(), &sandbox).expect("sandbox slot");
    assert_eq!(
        table["shared"][slot.to_string()],
        json!([member]),
        "{table}"
    );

    // exec in the member: the sandbox's hostname and mapping, the full sandbox.
    let o = exec(
        &ward,
        &member,
        "hostname; cat /proc/self/uid_map; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert!(o.success(), "{o}");
    assert_eq!(o.stdout.lines().next(), Some("podhost"), "{o}");
    let sandbox_map = std::fs::read_to_string(format!("/proc/{s}/uid_map")).unwrap();
    assert!(
        o.stdout.contains(sandbox_map.trim()),
        "{o}\nsandbox: {sandbox_map}"
    );
    let st = status_fields(&o.stdout);
    assert_eq!(
        st.get("CapEff").map(String::as_str),
        Some("0000000000000000")
    );
    assert_eq!(st.get("NoNewPrivs").map(String::as_str), Some("1"));
    assert_eq!(st.get("Seccomp").map(String::as_str), Some("2"));

    // The sandbox goes first (it died): the member keeps running and keeps the range.
    ward.ok(&["delete", "--force", &sandbox]);
    assert_no_leftovers(&ward, &sandbox);
    assert_eq!(ward.status(&member), "running");
    assert!(leaks::range_owners(ward.root()).contains(&member));
    let o = exec(&ward, &member, "cat /proc/self/uid_map");
    assert!(o.success() && o.stdout.contains(sandbox_map.trim()), "{o}");
    ward.ok(&["delete", "--force", &member]);
    assert_no_leftovers(&ward, &member);
    assert_root_clean(&ward);
}

/// `create` must fail with exit 1 and one error line containing every fragment, leaving
/// nothing behind.
fn refused(ward: &Ward, b: &Bundle, expect: &[&str]) {
    let id = unique_id("bad");
    let o = ward.create(b, &id);
    assert!(!o.success(), "accepted:\n{o}");
    assert_eq!(o.code, Some(1), "{o}");
    for f in expect {
        assert!(o.stderr.contains(f), "stderr lacks {f:?}:\n{o}");
    }
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    eprintln!("refused as expected: {}", o.stderr.trim());
    assert_no_leftovers(ward, &id);
}

#[test]
fn namespaces_of_anything_but_the_pod_sandbox_are_refused() {
    require_root!();
    let (ward, _cfg) = pod_ward();
    let other = unique_id("other");
    let mut ob = Bundle::new(&["sleep", "1000"]);
    ob.edit(|c| annotate_sandbox(c, &other));
    ward.run_detached(&ob, &other);
    let x = ward.pid(&other);
    let ipc = format!("/proc/{x}/ns/ipc");

    // Another Ward container's namespace, without being in its pod.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| join_ns(c, "ipc", &ipc));
    refused(
        &ward,
        &b,
        &["linux.namespaces[ipc].path", "another container"],
    );

    // A pod container whose sandbox is not a Ward container of this root.
    b.edit(|c| annotate_pod(c, "no-such-sandbox"));
    refused(&ward, &b, &["no-such-sandbox", "not a Ward container"]);

    // A "pod" whose network is not its sandbox's (a host-owned one elsewhere).
    let net = NsHolder::new("--net", "net");
    let mut b = Bundle::new(&["true"]);
    let path = net.path("net");
    b.edit(|c| {
        join_ns(c, "network", &path);
        annotate_pod(c, &other);
    });
    refused(
        &ward,
        &b,
        &[
            "linux.namespaces[network].path",
            "not the network namespace of pod sandbox",
        ],
    );

    // An ipc namespace of the host user namespace that is not the host's own.
    let host_ipc = NsHolder::new("--ipc", "ipc");
    let mut b = Bundle::new(&["true"]);
    let path = host_ipc.path("ipc");
    b.edit(|c| join_ns(c, "ipc", &path));
    refused(
        &ward,
        &b,
        &[
            "linux.namespaces[ipc].path",
            "owned by the host user namespace",
        ],
    );

    // A path that is not a namespace of the kind named.
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| join_ns(c, "network", &format!("/proc/{x}/ns/uts")));
    refused(
        &ward,
        &b,
        &["linux.namespaces[network].path", "not a network namespace"],
    );

    // The other container was untouched throughout.
    assert_eq!(ward.status(&other), "running");
    ward.ok(&["delete", "--force", &other]);
    assert_root_clean(&ward);
}

/// A node that allows the host's network (`hostNetwork` pods): the container stays in it,
/// `/sys` is Ward's sysfs of that namespace (the container cannot mount one for a namespace
/// it does not own), and a network sysctl, which would change the host's, is refused.
#[test]
fn host_network_when_the_node_allows_it() {
    require_root!();
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "[namespaces]\nallow_host = [\"network\"]\n").unwrap();
    let ward = Ward::new().with_global(["--config".into(), cfg.path().as_os_str().to_owned()]);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network")
    });
    let id = unique_id("hostnet");
    ward.run_detached(&b, &id);
    let init = ward.pid(&id);
    assert_eq!(ns(init, "net"), ns(std::process::id() as i32, "net"));
    let o = exec(&ward, &id, "ls /sys/class/net");
    assert!(o.success(), "{o}");
    let mut inside: Vec<String> = o.stdout.lines().map(String::from).collect();
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    host.sort();
    assert_eq!(inside, host, "/sys/class/net is not the host network's");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);

    b.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    refused(&ward, &b, &["linux.sysctl", "host's network settings"]);
    assert_root_clean(&ward);
}

/// `io.kubernetes.cri.sandbox-id` is a name any bundle can write. Naming a plain container
/// (not created as a pod sandbox) does not let a bundle join its namespaces, even on a node
/// with pods enabled; without `[pods] enabled` no join happens at all. Judged from the host:
/// the refused container never ran, the named container is untouched.
#[test]
fn a_sandbox_id_annotation_does_not_make_a_sandbox() {
    require_root!();
    let (ward, _cfg) = pod_ward();
    let victim = unique_id("plain");
    ward.run_detached(&Bundle::new(&["sleep", "1000"]), &victim);
    let v = ward.pid(&victim);
    let before: Vec<String> = ["user", "net", "ipc", "uts", "pid"]
        .iter()
        .map(|k| ns(v, k))
        .collect();
    let ranges_before = leaks::range_owners(ward.root());

    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        for (typ, kind) in [
            ("network", "net"),
            ("ipc", "ipc"),
            ("uts", "uts"),
            ("pid", "pid"),
        ] {
            join_ns(c, typ, &format!("/proc/{v}/ns/{kind}"));
        }
        annotate_pod(c, &victim);
    });
    refused(
        &ward,
        &b,
        &[SANDBOX_ID, &victim, "was not created as a pod sandbox"],
    );
    // A bundle calling itself a sandbox does not make the victim one either.
    b.edit(|c| c["annotations"][CONTAINER_TYPE] = json!("sandbox"));
    refused(&ward, &b, &[SANDBOX_ID, "was not created as a pod sandbox"]);

    // Without [pods] enabled, not even a real sandbox is joined.
    let plain_ward = Ward::new();
    let sandbox = unique_id("sb");
    let mut sb = Bundle::new(&["sleep", "1000"]);
    sb.edit(|c| annotate_sandbox(c, &sandbox));
    plain_ward.run_detached(&sb, &sandbox);
    let s = plain_ward.pid(&sandbox);
    let mut mb = Bundle::new(&["true"]);
    mb.edit(|c| {
        join_ns(c, "ipc", &format!("/proc/{s}/ns/ipc"));
        annotate_pod(c, &sandbox);
    });
    refused(&plain_ward, &mb, &[SANDBOX_ID, "[pods] enabled"]);
    plain_ward.ok(&["delete", "--force", &sandbox]);
    assert_root_clean(&plain_ward);

    // The victim: still running, in the same namespaces, alone in its uid range.
    assert_eq!(ward.status(&victim), "running");
    let after: Vec<String> = ["user", "net", "ipc", "uts", "pid"]
        .iter()
        .map(|k| ns(v, k))
        .collect();
    assert_eq!(before, after);
    assert_eq!(leaks::range_owners(ward.root()), ranges_before);
    // No other process ever entered the victim's pid namespace.
    let in_victim_pidns: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| ns(p.parse().unwrap(), "pid") == before[4])
        .collect();
    assert_eq!(in_victim_pidns, vec![v.to_string()]);
    ward.ok(&["delete", "--force", &victim]);
    assert_root_clean(&ward);
}

/// A second entry of a namespace type (found by the harden fuzzer): libcontainer keeps the
/// last entry of each type while Ward's checks read the first, so `[user, user{path}]` would
/// join another container's user namespace (and uid range) unchecked. Refused, one line.
#[test]
fn a_namespace_type_listed_twice_is_refused() {
    require_root!();
    let ward = Ward::new();
    let other = unique_id("other");
    let ob = Bundle::new(&["sleep", "1000"]);
    ward.run_detached(&ob, &other);
    let x = ward.pid(&other);
    // A second entry with another container's user namespace; and a plain duplicate. (A
    // second ipc/net/... entry with another container's path is refused earlier, by the pod
    // checks, which read every entry.)
    let user = format!("/proc/{x}/ns/user");
    for (typ, path) in [("user", Some(user)), ("ipc", None)] {
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| {
            let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
            nss.retain(|n| n["type"] != typ);
            nss.push(json!({ "type": typ }));
            match path {
                Some(p) => nss.push(json!({ "type": typ, "path": p })),
                None => nss.push(json!({ "type": typ })),
            }
        });
        refused(&ward, &b, &["linux.namespaces[", "listed twice"]);
    }
    assert_eq!(ward.status(&other), "running");
    ward.ok(&["delete", "--force", &other]);
    assert_root_clean(&ward);
}
