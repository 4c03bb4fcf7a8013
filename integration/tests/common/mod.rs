//! Shared helpers for the containerd end-to-end tests.
#![allow(dead_code)]

use std::process::Output;

#[allow(unused_imports)]
pub use ward_integration::containerd::{
    runtimes_under_test, skip_or_fail_ward, ward_shim_status, Containerd, K8S_NS, RUNC_RUNTIME,
    WARD_RUNTIME,
};
#[allow(unused_imports)]
pub use ward_integration::release::{releases_under_test, ContainerdRelease};

/// Whether this host can run containerd end to end; prints SKIP and why when not. Under CI
/// (`CI=true`) a skip is a failure: CI runs as root.
fn can_run(test: &str) -> bool {
    if let Some(why) = ward_integration::containerd::skip_reason() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: cannot run under CI: {why}");
        }
        eprintln!("SKIP: {test}: {why}");
        return false;
    }
    true
}

/// Run `body` once per containerd release under test (containerd 2 first, then 1.6), each
/// time on a fresh private containerd of that release. A missing containerd 2 fails the test
/// unless `WARD_E2E_SKIP_CONTAINERD2=1` (see `ward_integration::release`).
pub fn each_containerd(test: &str, body: impl FnMut(&mut Containerd)) {
    each_containerd_from(test, 1, body)
}

/// [`each_containerd`] on the releases from major version `major` on only (a feature older
/// ones lack); the others are named in a SKIP line, without starting them.
pub fn each_containerd_from(test: &str, major: u32, mut body: impl FnMut(&mut Containerd)) {
    if !can_run(test) {
        return;
    }
    for release in releases_under_test(test) {
        if release.major < major {
            eprintln!(
                "SKIP: {test}: {}: needs containerd {major}",
                release.label()
            );
            continue;
        }
        let label = release.label();
        eprintln!("== {test}: {label}");
        let mut c = Containerd::start_temp_release(release)
            .unwrap_or_else(|e| panic!("{test}: start {label}: {e}"));
        let started = std::time::Instant::now();
        body(&mut c);
        eprintln!("== {test}: {label}: passed in {:?}", started.elapsed());
    }
}

pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn errtext(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A short, runtime-tagged container id, unique to this test process: ctr's cgroupsPath is
/// `/<namespace>/<id>` on the host's cgroup tree, which other runs on the same machine share
/// (Ward refuses to take over a cgroup that exists).
pub fn cid(runtime: &str, name: &str) -> String {
    let tag = if runtime == WARD_RUNTIME {
        "ward"
    } else {
        "runc"
    };
    format!("{tag}-{name}-{}", std::process::id())
}

/// `ctr run --rm --runtime R IMAGE ID args...` with extra ctr flags before the image.
pub fn ctr_run(c: &Containerd, runtime: &str, flags: &[&str], id: &str, args: &[&str]) -> Output {
    let mut cmd = c.ctr_cmd(Some("default"));
    cmd.args(["run", "--rm", "--runtime", runtime]);
    if runtime == WARD_RUNTIME {
        cmd.arg("--runtime-config-path").arg(&c.ward_config);
    }
    cmd.args(flags)
        .arg(ward_integration::image::BUSYBOX)
        .arg(id)
        .args(args);
    cmd.output().expect("spawn ctr run")
}
