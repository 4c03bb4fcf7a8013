//! The real-application matrix (issue 11, "How to show it"): Debian's own nginx, redis,
//! postgresql and python3 from one debootstrap rootfs (`integration/apps/build-images.sh`),
//! each started under the `ward` CLI, through containerd with Ward's shim, and under runc,
//! with the `default` profile and the app's workload profile where one exists, and checked
//! from outside the container (HTTP 200, `PING`, a SQL query).
//!
//! Every run gets the same config.json (runc's `runc spec` with an engine's default
//! capabilities, `root.readonly: false` as engines send it, the app's user and volume) on a
//! rootfs of its own: an overlay of the shared image with a fresh upper layer, as a
//! snapshotter hands it over. The container joins a network namespace the test made
//! (loopback only, [`netns::NetNs`]); the checks connect from inside that namespace on the
//! host side, never over the host's network.
//!
//! - [`App`]: what runs, how it is checked, what each profile is expected to do.
//! - [`bundle`]: the per-run rootfs overlay, volume and config.json.
//! - [`runners`]: `ward`, runc and `ctr` + shim as the front doors.
//! - [`matrix`]: the table.

pub mod bundle;
pub mod checks;
pub mod matrix;
pub mod netns;
pub mod runners;

use std::path::{Path, PathBuf};

/// How an app is checked from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// GET / on 127.0.0.1:port answers 200 with a body containing the text (what this
    /// image serves there, so the answer is the app's).
    Http(u16, &'static str),
    /// `PING` in RESP on 127.0.0.1:port answers `+PONG`.
    RedisPing(u16),
    /// psql (the host's client) runs CREATE/INSERT/SELECT on 127.0.0.1:port.
    Sql(u16),
    /// The app connects out to 127.0.0.1:port, where the test listens, and reports a
    /// result containing the text (a worker's output).
    Report(u16, &'static str),
}

/// What a cell is expected to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The app serves and the check passes.
    Works,
    /// Refused by design: the container's output must have a line containing `line`, and
    /// Ward's own log (the CLI's output, the shim's log) one containing `ward` when set;
    /// the notes under the table say `why`.
    Refused {
        line: &'static str,
        ward: Option<&'static str>,
        why: &'static str,
    },
}

/// One application of the matrix.
#[derive(Debug, Clone)]
pub struct App {
    pub name: &'static str,
    /// process.args
    pub args: Vec<String>,
    /// process.user as a user name of the image's /etc/passwd.
    pub user: &'static str,
    /// A fresh host directory, owned by `user`, mounted read-write here.
    pub volume: Option<&'static str>,
    pub check: Check,
    /// The builtin workload profile for this app, with what it is expected to do.
    pub workload: Option<(&'static str, Expect)>,
    /// Under `default`.
    pub default: Expect,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The four apps, as Debian packages them, started as a container engine would.
pub fn apps() -> Vec<App> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        App {
            name: "nginx",
            // Debian's packaged nginx.conf: master as root, workers as www-data, temp files
            // in /var/lib/nginx, pid file /run/nginx.pid.
            args: s(&["nginx", "-g", "daemon off;"]),
            user: "root",
            volume: None,
            check: Check::Http(80, "ward-apps-nginx-ok"),
            workload: Some(("nginx", Expect::Works)),
            default: Expect::Refused {
                line: "Read-only file system",
                ward: Some("root.readonly asked=false applied=true"),
                why: "`default` keeps the rootfs read-only; Debian's nginx writes /var/lib/nginx (the `nginx` profile gives it tmpfs there)",
            },
        },
        App {
            name: "redis",
            args: s(&[
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            user: "redis",
            volume: None,
            check: Check::RedisPing(6379),
            workload: None,
            default: Expect::Works,
        },
        App {
            name: "postgresql",
            args: vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "{PG_BIN}/initdb -D /var/lib/postgresql/data/pg --auth=trust -U postgres >/dev/null \
                     && exec {PG_BIN}/postgres -D /var/lib/postgresql/data/pg \
                     -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp"
                ),
            ],
            user: "postgres",
            volume: Some("/var/lib/postgresql/data"),
            check: Check::Sql(5432),
            workload: None,
            default: Expect::Works,
        },
        App {
            name: "python3",
            args: s(&[
                "python3",
                "-m",
                "http.server",
                "8000",
                "--bind",
                "127.0.0.1",
                "--directory",
                "/usr/lib/python3.11",
            ]),
            user: "nobody",
            volume: None,
            check: Check::Http(8000, "Directory listing for /"),
            workload: Some((
                "python-worker",
                Expect::Refused {
                    line: "PermissionError: [Errno 13] Permission denied",
                    ward: None,
                    why: "`python-worker` is for workers: outbound connections only, no port may be bound",
                },
            )),
            default: Expect::Works,
        },
        App {
            // What `python-worker` is for: a job that reports out over TCP (retrying until
            // the listener is there, as workers reconnect to their queue).
            name: "python3-worker",
            args: s(&["python3", "-c", PY_WORKER]),
            user: "nobody",
            volume: None,
            check: Check::Report(9000, WORKER_RESULT),
            workload: Some(("python-worker", Expect::Works)),
            default: Expect::Works,
        },
    ]
}

/// A worker: computes a job (sha256 of "ward", in a thread pool) and reports it to
/// 127.0.0.1:9000 as a JSON line, again and again.
const PY_WORKER: &str = r#"
import concurrent.futures, hashlib, json, socket, time
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    digest = pool.submit(lambda: hashlib.sha256(b"ward").hexdigest()).result()
while True:
    try:
        with socket.create_connection(("127.0.0.1", 9000), timeout=2) as s:
            s.sendall((json.dumps({"job": 1, "sha256": digest}) + "\n").encode())
    except OSError:
        pass
    time.sleep(0.2)
"#;

/// sha256("ward"), what the worker must report.
const WORKER_RESULT: &str = "96b8f576c788b75e59186bb3948b3755ec8a75670b7a168820ffb4ab8e95347a";

/// Where the matrix's image lives: `$WARD_APPS_DIR`, else `apps` in the cargo target dir
/// this test binary was built into.
pub fn apps_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARD_APPS_DIR") {
        return PathBuf::from(d);
    }
    target_dir().join("apps")
}

/// The cargo target dir of this binary (the directory holding `CACHEDIR.TAG`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The image: what `build-images.sh` printed (it builds, or reuses its cache). `Ok(None)`
/// when the build was skipped on purpose (`WARD_APPS_SKIP=1`; SKIP printed).
pub fn image_rootfs() -> Result<Option<PathBuf>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("apps/build-images.sh");
    let dir = apps_dir();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("spawn bash {}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {text}",
            script.display(),
            dir.display(),
            out.status
        ));
    }
    let last = text.lines().last().unwrap_or_default().trim();
    if last.starts_with("SKIP") {
        eprintln!("{last}");
        return Ok(None);
    }
    eprintln!(
        "apps: image {last} ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Some(PathBuf::from(last)))
}
