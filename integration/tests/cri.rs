//! The RuntimeClass path end to end: a CRI client acting as kubelet picks a
//! runtime handler (`runc`, `ward`, `ward-strict`) as a RuntimeClass would,
//! and drives pods through their life. Pods get their IP from the test's own
//! CNI bridge; the only traffic is host ⇄ pod and pod ⇄ pod on that bridge.
//!
//! On `ward` handlers this is the pod path Ward itself implements (runtime
//! `pod.rs`): the sandbox runs in containerd's host-owned CNI network
//! namespace, which Ward enters for it, and every other container of the pod
//! joins the sandbox's namespaces and user namespace.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Containerd, K8S_NS};
use ward_integration::cri::{
    container_config, pod_config, with_container_userns, with_pod_userns, CriClient, ExecResult,
};
use ward_integration::image::BUSYBOX;
use ward_integration::leaks;
use ward_integration::procfs::SandboxFacts;

/// Handlers to run: runc always; ward and ward-strict once Ward's shim answers.
fn handlers() -> Vec<&'static str> {
    let mut v = vec!["runc"];
    match common::ward_shim_status() {
        Ok(()) => v.extend(["ward", "ward-strict"]),
        Err(why) => common::skip_or_fail_ward(&why),
    }
    if let Ok(only) = std::env::var("WARD_E2E_HANDLER") {
        v.retain(|h| *h == only);
    }
    v
}

fn exec(cri: &mut CriClient, id: &str, cmd: &[&str]) -> ExecResult {
    cri.exec_sync(id, cmd, 20)
        .unwrap_or_else(|e| panic!("exec {cmd:?}: {e}"))
}

/// Connect from the host to `ip:port` on the test bridge and read a line.
fn host_reads(ip: &str, port: u16) -> Option<String> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = String::new();
            if s.read_to_string(&mut buf).is_ok() && !buf.is_empty() {
                return Some(buf);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Run `cmd` in `id` until it prints `want` (the listener may still be starting).
fn exec_until(cri: &mut CriClient, id: &str, cmd: &[&str], want: &str) -> ExecResult {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = exec(cri, id, cmd);
        if r.stdout.contains(want) || Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Pod {
    id: String,
    config: k8s_cri::v1::PodSandboxConfig,
    ip: String,
    containers: Vec<String>,
}

fn run_pod(c: &Containerd, cri: &mut CriClient, handler: &str, name: &str) -> Pod {
    let logs = c.dir.join(format!("logs-{handler}-{name}"));
    std::fs::create_dir_all(&logs).unwrap();
    let config = pod_config(&format!("{name}-{handler}"), &logs, &[]);
    let id = cri
        .run_pod(&config, handler)
        .unwrap_or_else(|e| panic!("{handler}: RunPodSandbox: {e}\n{}", c.log_text()));
    let status = cri.pod_status(&id).unwrap();
    assert_eq!(status.runtime_handler, handler);
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let prefix = c.subnet.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix),
        "{handler}: pod ip {ip} not in {}",
        c.subnet
    );
    Pod {
        id,
        config,
        ip,
        containers: vec![],
    }
}

fn start(
    c: &Containerd,
    cri: &mut CriClient,
    handler: &str,
    pod: &mut Pod,
    name: &str,
    cmd: &[&str],
) -> String {
    let cfg = container_config(name, BUSYBOX, cmd);
    let id = cri
        .create_container(&pod.id, &pod.config, &cfg)
        .unwrap_or_else(|e| panic!("{handler}: CreateContainer {name}: {e}\n{}", c.log_text()));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("{handler}: StartContainer {name}: {e}\n{}", c.log_text()));
    pod.containers.push(id.clone());
    id
}

/// Stop and remove a pod through CRI; on Ward handlers, nothing may be left behind.
fn remove_pod(c: &Containerd, cri: &mut CriClient, handler: &str, pod: &Pod) {
    for id in &pod.containers {
        cri.stop_container(id, 2).unwrap();
        let cs = cri.container_status(id).unwrap();
        assert_eq!(
            cs.state,
            k8s_cri::v1::ContainerState::ContainerExited as i32
        );
        cri.remove_container(id).unwrap();
    }
    cri.stop_pod(&pod.id).unwrap();
    cri.remove_pod(&pod.id).unwrap();
    if handler.starts_with("ward") {
        // WARD-ONLY
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = leaks::ward_pod_leftovers(c, K8S_NS, &pod.id, &pod.containers);
            left.is_empty()
        });
        assert!(
            clean,
            "{handler}: left behind after RemovePodSandbox:\n{}",
            left.join("\n")
        );
    }
}

const LISTENER: &str = "(while true; do echo pong | nc -l -p 8080; done) & exec sleep 3600";

fn pod_lifecycle(c: &Containerd, cri: &mut CriClient, handler: &str) {
    let ward = handler.starts_with("ward");
    let strict = handler == "ward-strict";
    let mut pod = run_pod(c, cri, handler, "pod");
    let ip = pod.ip.clone();
    if ward {
        // Positive controls for the leak check: while the pod runs, its shim and socket are seen.
        let addr = c.address.display().to_string();
        let shims = leaks::processes_mentioning(&["containerd-shim-ward-v2", &addr, &pod.id]);
        assert!(
            !shims.is_empty(),
            "{handler}: no shim process found for {}",
            pod.id
        );
        let sock = leaks::shim_socket(&c.address, K8S_NS, &pod.id);
        assert!(
            sock.exists(),
            "{handler}: no shim socket {}",
            sock.display()
        );
    }

    // The main container: answers on :8080 (unless sockets are denied) and sleeps.
    let main = start(c, cri, handler, &mut pod, "main", &["sh", "-c", LISTENER]);

    // ExecSync: the sandbox seen from inside.
    let st = exec(cri, &main, &["cat", "/proc/self/status"]);
    let map = exec(cri, &main, &["cat", "/proc/self/uid_map"]);
    assert_eq!(st.exit_code, 0, "{handler}: {}", st.stderr);
    let facts = SandboxFacts::parse(&st.stdout, &map.stdout);
    eprintln!("{handler}: {facts:?}");
    if ward {
        // WARD-ONLY
        assert!(!facts.uid_map_is_identity(), "{handler}: identity uid_map");
        assert!(!facts.maps_host_root(), "{handler}: host root mapped");
        assert_eq!(facts.cap_eff, Some(0), "{handler}: CapEff");
        assert_eq!(facts.no_new_privs, Some(1), "{handler}: NoNewPrivs");
        assert_eq!(facts.seccomp, Some(2), "{handler}: Seccomp");
    }

    // Pod networking: the container is in the pod's network namespace (its address on eth0,
    // from the kernel's routing table, readable without a socket; /sys is that namespace's).
    let trie = exec(cri, &main, &["cat", "/proc/net/fib_trie"]);
    assert!(
        trie.stdout.contains(&ip),
        "{handler}: {ip} not local: {trie:?}"
    );
    let sys = exec(cri, &main, &["ls", "/sys/class/net"]);
    assert!(
        sys.stdout.contains("eth0"),
        "{handler}: /sys/class/net: {sys:?}"
    );
    if !strict {
        let ipaddr = exec(cri, &main, &["ip", "-4", "addr", "show", "eth0"]);
        assert!(ipaddr.stdout.contains(&ip), "{handler}: eth0: {ipaddr:?}");
    }
    if ward && !strict {
        // WARD-ONLY: the pod's root has no capability over the pod network namespace.
        let down = exec(cri, &main, &["ip", "link", "set", "eth0", "down"]);
        assert_ne!(
            down.exit_code, 0,
            "{handler}: pod root reconfigured eth0: {down:?}"
        );
        assert!(down.stderr.contains("not permitted"), "{handler}: {down:?}");
    }

    // socket(AF_INET) probe: refused connection (socket works) vs denied socket.
    let probe = exec(cri, &main, &["nc", "127.0.0.1", "1"]);
    let denied = probe.stderr.contains("Operation not permitted")
        || probe.stderr.contains("Permission denied")
        || probe.stderr.contains("Function not implemented");
    eprintln!("{handler}: nc probe: {probe:?}");
    assert_ne!(probe.exit_code, 0, "{handler}: nothing listens on port 1");
    if strict {
        // WARD-ONLY: the strict profile denies AF_INET sockets.
        assert!(denied, "{handler}: socket(AF_INET) not denied: {probe:?}");
    } else {
        assert!(!denied, "{handler}: socket(AF_INET) denied: {probe:?}");
        // Host → pod through the CNI bridge.
        let got = host_reads(&ip, 8080);
        assert_eq!(
            got.as_deref(),
            Some("pong\n"),
            "{handler}: host → {ip}:8080"
        );
    }

    // A second container of the same pod: the pod's network, hostname and (on Ward) user
    // namespace, hence the same uid range; exec into it works like into the first.
    let side = start(c, cri, handler, &mut pod, "side", &["sleep", "3600"]);
    let side_map = exec(cri, &side, &["cat", "/proc/self/uid_map"]);
    assert_eq!(side_map.exit_code, 0, "{handler}: {side_map:?}");
    assert_eq!(
        SandboxFacts::parse("", &side_map.stdout).uid_map,
        facts.uid_map,
        "{handler}: pod containers in different user namespaces"
    );
    let names = [&main, &side].map(|id| exec(cri, id, &["hostname"]).stdout);
    assert_eq!(names[0], names[1], "{handler}: hostnames differ");
    let side_trie = exec(cri, &side, &["cat", "/proc/net/fib_trie"]);
    assert!(
        side_trie.stdout.contains(&ip),
        "{handler}: side not in the pod network"
    );
    if ward {
        // WARD-ONLY
        let st = exec(cri, &side, &["cat", "/proc/self/status"]);
        let f = SandboxFacts::parse(&st.stdout, &side_map.stdout);
        assert_eq!(
            (f.cap_eff, f.no_new_privs, f.seccomp),
            (Some(0), Some(1), Some(2)),
            "{handler}: side {f:?}"
        );
    }
    if !strict {
        let local = exec_until(cri, &side, &["nc", "-w", "3", "127.0.0.1", "8080"], "pong");
        assert_eq!(
            local.stdout, "pong\n",
            "{handler}: side → localhost:8080: {local:?}"
        );
    }

    // Pod → pod across the test bridge.
    if !strict {
        let mut peer = run_pod(c, cri, handler, "peer");
        let client = start(c, cri, handler, &mut peer, "client", &["sleep", "3600"]);
        let got = exec_until(cri, &client, &["nc", "-w", "3", &ip, "8080"], "pong");
        assert_eq!(
            got.stdout, "pong\n",
            "{handler}: {} → {ip}:8080: {got:?}",
            peer.ip
        );
        remove_pod(c, cri, handler, &peer);
    }

    // ContainerStats, then UpdateContainerResources shows in the cgroup.
    let stats = cri.container_stats(&main).unwrap();
    let ws = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(ws > 0, "{handler}: working set {stats:?}");
    cri.update_memory(&main, 100 * 1024 * 1024)
        .unwrap_or_else(|e| panic!("{handler}: UpdateContainerResources: {e}"));
    let lim = exec(
        cri,
        &main,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
        ],
    );
    eprintln!("{handler}: memory limit after update: {lim:?}");
    assert_eq!(lim.exit_code, 0, "{handler}: {lim:?}");
    assert_eq!(
        lim.stdout.trim(),
        "104857600",
        "{handler}: limit after update"
    );

    stopped_container_leaves_no_process(cri, handler, &main, &side);
    remove_pod(c, cri, handler, &pod);
}

/// Stopping a container ends every process it started, not only its init. On Ward the pod's
/// containers share the sandbox's pid namespace, so the listener loop `main` forked outlives
/// its init unless the runtime's `kill --all` reaches it (containerd 2's CRI then also waits
/// forever for its stdio). Seen from `side`, which on Ward shares that pid namespace.
fn stopped_container_leaves_no_process(cri: &mut CriClient, handler: &str, main: &str, side: &str) {
    // The forked subshell keeps the shell's command line; `main`'s init became `sleep 3600`.
    const LOOP: &str = "echo pong";
    let ps = |cri: &mut CriClient| exec(cri, side, &["ps", "-o", "pid,args"]).stdout;
    // The strict profile shows a container no other process in /proc: there only the stop
    // itself is checked (on containerd 2 it never returned while the loop lived).
    let visible = handler == "ward";
    if visible {
        // Positive control: the loop is visible from `side` while `main` runs.
        let before = ps(cri);
        assert!(before.contains(LOOP), "{handler}: loop not seen:\n{before}");
    }
    cri.stop_container(main, 2)
        .unwrap_or_else(|e| panic!("{handler}: StopContainer main: {e}"));
    if !visible {
        return;
    }
    let mut seen = String::new();
    let gone = wait_for(Duration::from_secs(10), || {
        seen = ps(cri);
        !seen.contains(LOOP)
    });
    assert!(
        gone,
        "{handler}: processes of the stopped container live on:\n{seen}"
    );
}

#[test]
fn runtime_class_handlers_end_to_end() {
    common::each_containerd("runtime_class_handlers_end_to_end", |c| {
        let mut cri = CriClient::connect(&c.address).unwrap();
        eprintln!("CRI: {}", cri.version().unwrap());
        for h in handlers() {
            pod_lifecycle(c, &mut cri, h);
        }
    });
}

/// Kubernetes user-namespaced pods (`hostUsers: false`) on containerd 2 (1.6 ignores the
/// option): the CRI client, as kubelet, chooses the pod's range and sends it in the pod's
/// namespace options. Ward runs the pod sandbox on exactly that range (with the rest of its
/// sandbox), in containerd's pod network, holds the range node-wide while the pod lives (an
/// overlapping second pod is refused, naming the holder), and frees it with the pod.
///
/// Its containers run on the same mapping with the same sandbox. containerd 2 sends their IO
/// owner in runc's runtime options (the `ward` handler has no options table, see
/// deploy/containerd/ward-v3.toml): the container reopens `/dev/stdout` (the official nginx
/// image's logs are symlinks to it) and its output reaches the CRI log; an exec runs as the
/// container's root. A handler naming its config with `ConfigPath` (`ward-strict`) refuses
/// such a pod at RunPodSandbox, saying why, instead of failing every container later.
#[test]
fn user_namespaced_pod_runs_on_the_kubelet_range() {
    if let Err(why) = common::ward_shim_status() {
        common::skip_or_fail_ward(&format!("user_namespaced_pod: {why}"));
        return;
    }
    // containerd 1.6 ignores hostUsers: false.
    common::each_containerd_from("user_namespaced_pod_runs_on_the_kubelet_range", 2, |c| {
        let mut cri = CriClient::connect(&c.address).unwrap();
        // Above Ward's own slots (1 MiB + 4096 x 64 Ki), a multiple of 64 Ki as kubelet's are.
        let start = 65536 * (5000 + std::process::id() % 20000);
        let logs = c.dir.join("logs-userns");
        std::fs::create_dir_all(&logs).unwrap();
        let mut config = pod_config("userns-ward", &logs, &[]);
        with_pod_userns(&mut config, start, 65536);
        let pod = cri
            .run_pod(&config, "ward")
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", c.log_text()));

        // The sandbox's init, seen from the host (libcontainer's state under the shim's root).
        // Started means the init was let go: its filter is in place once it has exec'd.
        assert_sandboxed_on_mapping(c, &pod, start, &["uid_map", "gid_map"]);
        let ip = cri.pod_status(&pod).unwrap().network.map(|n| n.ip);
        let prefix = c.subnet.trim_end_matches("0/24");
        assert!(
            ip.as_deref().is_some_and(|ip| ip.starts_with(prefix)),
            "pod ip {ip:?}"
        );
        let claim = std::path::Path::new(ward_runtime::config::DEFAULT_CLAIMS_DIR)
            .join(format!("r{start}-65536"));
        assert!(claim.exists(), "no node-wide claim {}", claim.display());

        let ctr = userns_container_runs(c, &mut cri, &pod, &config, start);

        // A handler that names its config (ConfigPath) refuses the pod up front.
        let mut strict = pod_config("userns-strict", &logs, &[]);
        with_pod_userns(&mut strict, start + 65536 * 2, 65536);
        let e = cri
            .run_pod(&strict, "ward-strict")
            .expect_err("a user-namespaced pod ran on a ConfigPath handler")
            .to_string();
        assert!(e.contains("hostUsers") && e.contains("ConfigPath"), "{e}");

        // A second pod asking for an overlapping range is refused, naming the holder.
        let mut other = pod_config("userns-overlap", &logs, &[]);
        with_pod_userns(&mut other, start + 4096, 65536);
        let e = cri
            .run_pod(&other, "ward")
            .expect_err("overlapping range ran")
            .to_string();
        assert!(e.contains("overlaps") && e.contains(&pod), "{e}");

        cri.stop_container(&ctr, 2).unwrap();
        cri.remove_container(&ctr).unwrap();
        cri.stop_pod(&pod).unwrap();
        cri.remove_pod(&pod).unwrap();
        let mut left = vec![];
        let clean = wait_for(Duration::from_secs(10), || {
            left = leaks::ward_pod_leftovers(c, K8S_NS, &pod, std::slice::from_ref(&ctr));
            left.is_empty() && !claim.exists()
        });
        assert!(
            clean,
            "left behind: {left:?}, claim {} exists: {}",
            claim.display(),
            claim.exists()
        );
        // The range is free again: the refused pod may have it now.
        let again = cri
            .run_pod(&other, "ward")
            .unwrap_or_else(|e| panic!("after removal: {e}"));
        cri.stop_pod(&again).unwrap();
        cri.remove_pod(&again).unwrap();
    });
}

/// A container of the user-namespaced pod `pod`: it starts, runs on the pod's mapping with
/// Ward's sandbox, reopens its stdout, and an exec in it runs as its root. Returns its id.
fn userns_container_runs(
    c: &Containerd,
    cri: &mut CriClient,
    pod: &str,
    pod_config: &k8s_cri::v1::PodSandboxConfig,
    start: u32,
) -> String {
    let mut cfg = container_config(
        "userns-app",
        BUSYBOX,
        &[
            "sh",
            "-c",
            "echo direct; echo reopened-stdout > /dev/stdout && echo reopened-stderr > /dev/stderr; exec sleep 1000",
        ],
    );
    with_container_userns(&mut cfg, start, 65536);
    // A volume as kubelet sends it for such a pod: idmapped with the pod's mapping, so the
    // container's root owns what the host's root owns there, and its files land as uid 0.
    let vol = c.dir.join(format!("userns-vol-{}", std::process::id()));
    std::fs::create_dir_all(&vol).unwrap();
    let map = vec![k8s_cri::v1::IdMapping {
        host_id: start,
        container_id: 0,
        length: 65536,
    }];
    cfg.mounts.push(k8s_cri::v1::Mount {
        container_path: "/data".into(),
        host_path: vol.display().to_string(),
        uid_mappings: map.clone(),
        gid_mappings: map,
        ..Default::default()
    });
    let id = cri
        .create_container(pod, pod_config, &cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", c.log_text()));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", c.log_text()));
    assert_sandboxed_on_mapping(c, &id, start, &["uid_map"]);
    // Its output, including what it wrote through reopened /dev/stdout and /dev/stderr.
    let log = std::path::Path::new(&pod_config.log_directory).join("userns-app.log");
    let mut text = String::new();
    let all = wait_for(Duration::from_secs(10), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        ["direct", "reopened-stdout", "reopened-stderr"]
            .iter()
            .all(|w| text.contains(w))
    });
    assert!(all, "container log {}:\n{text}", log.display());
    let r = cri.exec_sync(&id, &["id", "-u"], 10).unwrap();
    assert_eq!((r.exit_code, r.stdout.trim()), (0, "0"), "{r:?}");
    let r = cri
        .exec_sync(
            &id,
            &[
                "sh",
                "-c",
                "stat -c %u / && echo hi > /data/by-root && stat -c %u /data/by-root",
            ],
            10,
        )
        .unwrap();
    // `/` is the container root's too (containerd 2 chowns the writable snapshot's root to
    // the pod's range; Ward must not map that owner a second time).
    assert_eq!(
        (r.exit_code, r.stdout.split_whitespace().collect::<Vec<_>>()),
        (0, vec!["0", "0"]),
        "{r:?}"
    );
    let meta = std::fs::metadata(vol.join("by-root")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        0,
        "through the idmapped volume the container's root writes as the host's uid 0"
    );
    id
}

/// What workloads expect of a pod (issue 11, through CRI, beside runc): root serves on port 80
/// (Ward has no NET_BIND_SERVICE; the pod network lets ports from 0), a volume mounted below
/// the profile's /tmp tmpfs stays visible, and `supplementalGroups` reach the init and an
/// exec. Judged from the host: an HTTP-less TCP read from the pod's IP on :80 returns the
/// volume's file.
#[test]
fn port_80_volume_under_tmp_and_supplemental_groups() {
    common::each_containerd("port_80_volume_under_tmp_and_supplemental_groups", |c| {
        let mut cri = CriClient::connect(&c.address).unwrap();
        for handler in ["runc", "ward"] {
            if handler == "ward" && common::ward_shim_status().is_err() {
                common::skip_or_fail_ward("port_80_volume_under_tmp: no shim");
                continue;
            }
            let mut pod = run_pod(c, &mut cri, handler, "p80");
            let vol = c.dir.join(format!("p80-vol-{handler}"));
            std::fs::create_dir_all(&vol).unwrap();
            std::fs::write(vol.join("index.txt"), "from-volume\n").unwrap();
            let mut cfg = container_config(
                "web",
                BUSYBOX,
                &[
                    "sh",
                    "-c",
                    "(while true; do nc -l -p 80 < /tmp/vol/index.txt; done) & exec sleep 3600",
                ],
            );
            cfg.mounts.push(k8s_cri::v1::Mount {
                container_path: "/tmp/vol".into(),
                host_path: vol.display().to_string(),
                readonly: true,
                ..Default::default()
            });
            let linux = cfg.linux.get_or_insert_with(Default::default);
            let sc = linux.security_context.get_or_insert_with(Default::default);
            sc.supplemental_groups = vec![4242];
            let id = cri
                .create_container(&pod.id, &pod.config, &cfg)
                .unwrap_or_else(|e| panic!("{handler}: CreateContainer: {e}\n{}", c.log_text()));
            cri.start_container(&id)
                .unwrap_or_else(|e| panic!("{handler}: StartContainer: {e}\n{}", c.log_text()));
            pod.containers.push(id.clone());

            let got = host_reads(&pod.ip, 80);
            assert_eq!(
                got.as_deref(),
                Some("from-volume\n"),
                "{handler}: host → {}:80",
                pod.ip
            );
            let groups = exec(&mut cri, &id, &["id", "-G"]);
            assert!(
                groups.stdout.split_whitespace().any(|g| g == "4242"),
                "{handler}: exec's groups: {groups:?}"
            );
            // The init, seen from the host (containerd's task pid): its groups are host gids,
            // so under Ward 4242 as the container's gid map gives it.
            let tasks = c.ctr_ok(K8S_NS, &["tasks", "ls"]).unwrap();
            let pid: u32 = tasks
                .lines()
                .find_map(|l| {
                    let mut f = l.split_whitespace();
                    (f.next() == Some(id.as_str())).then(|| f.next()?.parse().ok())?
                })
                .unwrap_or_else(|| panic!("{handler}: no task {id} in {tasks}"));
            let proc = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap();
            let want = proc("gid_map")
                .lines()
                .find_map(|l| {
                    let v: Vec<u64> = l
                        .split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    (v.len() == 3 && v[0] <= 4242 && 4242 < v[0] + v[2]).then(|| v[1] + 4242 - v[0])
                })
                .expect("4242 mapped")
                .to_string();
            let status = proc("status");
            let line = status
                .lines()
                .find(|l| l.starts_with("Groups:"))
                .unwrap_or_default();
            assert!(
                line.split_whitespace().any(|g| g == want),
                "{handler}: the init's {line:?}, want host gid {want}"
            );
            remove_pod(c, &mut cri, handler, &pod);
        }
    });
}

/// Ward task `task` (its init, from libcontainer's state under the shim's root, seen from the
/// host) runs on kubelet's mapping (`0 start 65536` in each of `maps`) with Ward's sandbox:
/// no capability, no_new_privs, a seccomp filter (once the init has exec'd).
fn assert_sandboxed_on_mapping(c: &Containerd, task: &str, start: u32, maps: &[&str]) {
    let state = c.ward_state.join(K8S_NS).join(task).join("state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let pid = state["pid"].as_u64().expect("init pid");
    let proc = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
    let want = ["0".to_string(), start.to_string(), "65536".to_string()];
    for f in maps {
        assert_eq!(
            proc(f).split_whitespace().collect::<Vec<_>>(),
            want,
            "{task}: {f} is not the pod's mapping"
        );
    }
    let mut facts = SandboxFacts::parse("", "");
    wait_for(Duration::from_secs(10), || {
        facts = SandboxFacts::parse(&proc("status"), &proc("uid_map"));
        facts.seccomp == Some(2)
    });
    assert_eq!(
        (facts.cap_eff, facts.no_new_privs, facts.seccomp),
        (Some(0), Some(1), Some(2)),
        "{task}: {facts:?}"
    );
}
