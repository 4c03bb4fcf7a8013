//! Shared helpers for the containerd end-to-end tests.
#![allow(dead_code)]

use std::process::Output;

#[allow(unused_imports)]
pub use ward_integration::containerd::{
    runtimes_under_test, skip_or_fail_ward, ward_shim_status, Containerd, K8S_NS, RUNC_RUNTIME,
    WARD_RUNTIME,
};

/// Start a private containerd, or print why this test cannot run here and
/// return `None`. Under CI (`CI=true`) a skip is a failure: CI runs as root.
pub fn containerd_or_skip(test: &str) -> Option<Containerd> {
    if let Some(why) = ward_integration::containerd::skip_reason() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: cannot run under CI: {why}");
        }
        eprintln!("SKIP: {test}: {why}");
        return None;
    }
    match Containerd::start_temp() {
        Ok(c) => Some(c),
        Err(e) => panic!("{test}: start containerd: {e}"),
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
