//! podman driving ward: `podman --runtime <ward> run --rm ... cat /proc/self/uid_map` prints a
//! real user namespace map, and ward keeps nothing afterwards.
//!
//! podman gets private storage (`--root`, `--runroot`, `--tmpdir` in a temp dir, overlay
//! driver, cgroupfs). podman 4.3 does not pass `--runtime-flag root=...` to its later
//! `delete --force` call (it comes from `podman container cleanup`), so a private ward root
//! is given through a small wrapper script that adds `--root` to every call; the wrapper also
//! logs each call for the failure message.

use std::path::{Path, PathBuf};
use std::process::Command;

use ward_tests::probe::parse_id_map;
use ward_tests::{image, require_root, ward::ward_bin};

const IMAGE: &str = "localhost/ward-tests-busybox:latest";

struct Podman {
    dir: Option<tempfile::TempDir>,
    ward_root: PathBuf,
    log: PathBuf,
    runtime: PathBuf,
}

impl Podman {
    fn new() -> Option<Self> {
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("SKIP: podman is not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("ward-podman-")
            .tempdir()
            .unwrap();
        let ward_root = dir.path().join("ward-root");
        let log = dir.path().join("runtime-calls.log");
        let runtime = dir.path().join("ward-runtime");
        std::fs::create_dir_all(&ward_root).unwrap();
        std::fs::write(
            &runtime,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{log}'\nexec '{bin}' --root '{root}' \"$@\"\n",
                log = log.display(),
                bin = ward_bin().display(),
                root = ward_root.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = Self {
            dir: Some(dir),
            ward_root,
            log,
            runtime,
        };
        let layer = image::busybox_layer(Path::new("/bin/busybox")).unwrap();
        let tar = p.path().join("image.tar");
        std::fs::write(&tar, image::oci_archive(IMAGE, &layer).unwrap()).unwrap();
        let o = p
            .cmd(&["load", "-i", tar.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "podman load: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Some(p)
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "overlay"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args);
        c
    }

    /// `podman run --rm` with this machine's rlimit caps; returns (exit, stdout, stderr).
    fn run(&self, extra: &[&str], command: &[&str]) -> (Option<i32>, String, String) {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        let mut c = self.cmd(&args);
        c.stdin(std::process::Stdio::null());
        let o = c.output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            ward_tests::strip_ansi(&String::from_utf8_lossy(&o.stderr)),
        )
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What ward still holds under its root after podman is done.
    fn ward_leftovers(&self) -> Vec<String> {
        let mut l = vec![];
        for e in std::fs::read_dir(&self.ward_root)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().is_dir() && e.file_name() != ".ward" {
                l.push(format!("container dir {}", e.path().display()));
            }
        }
        for o in ward_tests::leaks::range_owners(&self.ward_root) {
            l.push(format!("range owned by {o}"));
        }
        for m in ward_tests::leaks::mounts_mentioning(&self.ward_root.display().to_string()) {
            l.push(format!("mount {m}"));
        }
        l
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-a", "-f"]).output();
        let _ = self.cmd(&["rmi", "-a", "-f"]).output();
        let dir = self.path().display().to_string();
        if !ward_tests::leaks::mounts_mentioning(&dir).is_empty() {
            eprintln!("podman test: mounts under {dir} remain; leaving it in place");
            if let Some(d) = self.dir.take() {
                let _ = d.keep();
            }
        }
    }
}

fn check_uid_map(p: &Podman, extra: &[&str]) {
    let (code, out, err) = p.run(extra, &["cat", "/proc/self/uid_map"]);
    assert_eq!(
        code,
        Some(0),
        "podman run {extra:?} failed\nstdout: {out}\nstderr: {err}\nruntime calls:\n{}",
        p.calls()
    );
    let map = parse_id_map(&out);
    assert!(!map.is_empty(), "no uid_map printed: {out:?}");
    assert_ne!(map, vec![(0, 0, 4294967295)], "identity map: {out}");
    for (_, host, _) in &map {
        assert!(*host >= 1, "host 0 mapped: {out}");
    }
    let l = p.ward_leftovers();
    assert!(
        l.is_empty(),
        "ward state left after podman run --rm:\n  {}\nruntime calls:\n{}",
        l.join("\n  "),
        p.calls()
    );
}

/// With podman's default seccomp profile in the spec (the normal case).
#[test]
fn podman_run_prints_non_identity_uid_map() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    check_uid_map(&p, &[]);
}

/// With `seccomp=unconfined` podman sends no `linux.seccomp`; ward still applies its own
/// profile (Seccomp: 2 inside).
#[test]
fn podman_run_without_spec_seccomp_is_still_sandboxed() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    check_uid_map(&p, &["--security-opt", "seccomp=unconfined"]);
    let (code, out, err) = p.run(
        &["--security-opt", "seccomp=unconfined"],
        &[
            "grep",
            "-E",
            "^(Seccomp|NoNewPrivs|CapEff):",
            "/proc/self/status",
        ],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
}
