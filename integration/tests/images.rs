//! The registry-free test images import into containerd and podman.

mod common;

use std::process::Command;

use ward_integration::image;

#[test]
fn images_import_into_containerd_and_run() {
    common::each_containerd("images_import_into_containerd_and_run", |c| {
        let list = c.ctr_ok("default", &["images", "ls", "-q"]).unwrap();
        assert!(list.contains(image::BUSYBOX), "{list}");
        assert!(list.contains(image::PAUSE), "{list}");
        let k8s = c.ctr_ok(common::K8S_NS, &["images", "ls", "-q"]).unwrap();
        assert!(k8s.contains(image::PAUSE), "{k8s}");
        // The harness check from the brief: a runc container runs from the image.
        let out = common::ctr_run(c, common::RUNC_RUNTIME, &[], "t1", &["/bin/true"]);
        assert!(out.status.success(), "{}", common::errtext(&out));
        let out = common::ctr_run(
            c,
            common::RUNC_RUNTIME,
            &[],
            "t2",
            &[
                "sh",
                "-c",
                "echo hi; ls /usr/bin/wget >/dev/null && cat /etc/passwd | head -1",
            ],
        );
        let text = common::text(&out);
        assert!(text.starts_with("hi\n"), "{text} {}", common::errtext(&out));
        assert!(text.contains("root:x:0:0"), "{text}");
    });
}

#[test]
fn images_load_into_podman() {
    if let Some(why) = ward_integration::containerd::skip_reason() {
        eprintln!("SKIP: images_load_into_podman: {why}");
        return;
    }
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("SKIP: images_load_into_podman: podman not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let imgs = image::build_test_images(tmp.path()).unwrap();
    // A private podman store so the host's images stay untouched.
    let store = tmp.path().join("store");
    let run = tmp.path().join("run");
    let podman = |args: &[&str]| {
        Command::new("podman")
            .arg("--root")
            .arg(&store)
            .arg("--runroot")
            .arg(&run)
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("spawn podman")
    };
    for (path, name) in [(&imgs.busybox, image::BUSYBOX), (&imgs.pause, image::PAUSE)] {
        let out = podman(&["load", "-i", &path.to_string_lossy()]);
        assert!(
            out.status.success(),
            "podman load: {}",
            common::errtext(&out)
        );
        let out = podman(&["image", "exists", name]);
        assert!(out.status.success(), "{name} not loaded under its name");
    }
    let out = podman(&["rmi", "-a", "-f"]);
    assert!(out.status.success(), "{}", common::errtext(&out));
}
