//! The RuntimeClass path end to end: a CRI client acting as kubelet picks a
//! runtime handler (`runc`, `ward`, `ward-strict`) as a RuntimeClass would,
//! and drives a pod through its life. Pods get their IP from the test's own
//! CNI bridge; the only traffic is host ⇄ pod on that bridge.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Containerd;
use ward_integration::cri::{container_config, pod_config, CriClient, ExecResult};
use ward_integration::image::BUSYBOX;
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

fn pod_lifecycle(c: &Containerd, cri: &mut CriClient, handler: &str) {
    let logs = c.dir.join(format!("logs-{handler}"));
    std::fs::create_dir_all(&logs).unwrap();
    let pod_cfg = pod_config(&format!("pod-{handler}"), &logs, &[]);
    let pod = cri
        .run_pod(&pod_cfg, handler)
        .unwrap_or_else(|e| panic!("{handler}: RunPodSandbox: {e}\n{}", c.log_text()));
    let status = cri.pod_status(&pod).unwrap();
    assert_eq!(status.runtime_handler, handler);
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let prefix = c.subnet.trim_end_matches("0/24");
    assert!(
        ip.starts_with(prefix),
        "{handler}: pod ip {ip} not in {}",
        c.subnet
    );

    // The main container: answers on :8080 (unless sockets are denied) and sleeps.
    let cfg = container_config(
        "main",
        BUSYBOX,
        &[
            "sh",
            "-c",
            "(while true; do echo pong | nc -l -p 8080; done) & exec sleep 3600",
        ],
    );
    let id = cri
        .create_container(&pod, &pod_cfg, &cfg)
        .unwrap_or_else(|e| panic!("{handler}: CreateContainer: {e}"));
    cri.start_container(&id)
        .unwrap_or_else(|e| panic!("{handler}: StartContainer: {e}\n{}", c.log_text()));

    // ExecSync: the sandbox seen from inside.
    let st = exec(cri, &id, &["cat", "/proc/self/status"]);
    let map = exec(cri, &id, &["cat", "/proc/self/uid_map"]);
    assert_eq!(st.exit_code, 0, "{handler}: {}", st.stderr);
    let facts = SandboxFacts::parse(&st.stdout, &map.stdout);
    eprintln!("{handler}: {facts:?}");
    if handler.starts_with("ward") {
        // WARD-ONLY
        assert!(!facts.uid_map_is_identity(), "{handler}: identity uid_map");
        assert!(!facts.maps_host_root(), "{handler}: host root mapped");
        assert_eq!(facts.cap_eff, Some(0), "{handler}: CapEff");
        assert_eq!(facts.no_new_privs, Some(1), "{handler}: NoNewPrivs");
        assert_eq!(facts.seccomp, Some(2), "{handler}: Seccomp");
    }
    let ipaddr = exec(cri, &id, &["ip", "-4", "addr", "show", "eth0"]);
    assert!(ipaddr.stdout.contains(&ip), "{handler}: eth0: {ipaddr:?}");

    // socket(AF_INET) probe: refused connection (socket works) vs denied socket.
    let probe = exec(cri, &id, &["nc", "127.0.0.1", "1"]);
    let denied = probe.stderr.contains("Operation not permitted")
        || probe.stderr.contains("Permission denied")
        || probe.stderr.contains("Function not implemented");
    eprintln!("{handler}: nc probe: {probe:?}");
    assert_ne!(probe.exit_code, 0, "{handler}: nothing listens on port 1");
    if handler == "ward-strict" {
        // WARD-ONLY: the strict profile denies AF_INET sockets.
        assert!(denied, "{handler}: socket(AF_INET) not denied: {probe:?}");
    } else {
        assert!(!denied, "{handler}: socket(AF_INET) denied: {probe:?}");
        // Pod networking through the CNI bridge: host → pod.
        let got = host_reads(&ip, 8080);
        assert_eq!(
            got.as_deref(),
            Some("pong\n"),
            "{handler}: host → {ip}:8080"
        );
    }

    // ContainerStats, then UpdateContainerResources shows in the cgroup.
    let stats = cri.container_stats(&id).unwrap();
    let ws = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(ws > 0, "{handler}: working set {stats:?}");
    cri.update_memory(&id, 100 * 1024 * 1024)
        .unwrap_or_else(|e| panic!("{handler}: UpdateContainerResources: {e}"));
    let lim = exec(
        cri,
        &id,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
        ],
    );
    eprintln!("{handler}: memory limit after update: {lim:?}");
    if lim.exit_code == 0 {
        assert_eq!(
            lim.stdout.trim(),
            "104857600",
            "{handler}: limit after update"
        );
    }

    cri.stop_container(&id, 2).unwrap();
    let cs = cri.container_status(&id).unwrap();
    assert_eq!(
        cs.state,
        k8s_cri::v1::ContainerState::ContainerExited as i32
    );
    cri.remove_container(&id).unwrap();
    cri.stop_pod(&pod).unwrap();
    cri.remove_pod(&pod).unwrap();
}

#[test]
fn runtime_class_handlers_end_to_end() {
    let Some(c) = common::containerd_or_skip("runtime_class_handlers_end_to_end") else {
        return;
    };
    let mut cri = CriClient::connect(&c.address).unwrap();
    eprintln!("CRI: {}", cri.version().unwrap());
    for h in handlers() {
        pod_lifecycle(&c, &mut cri, h);
    }
}
