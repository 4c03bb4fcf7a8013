//! Ward's own machinery under attack (issue 10, items 1-5): each test mounts the attack for
//! real and judges it from the host's side: a host file written or not, what another host
//! user can reach, the uid maps of parallel containers.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use ward_tests::probe::parse_id_map;
use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Out, Ward};

/// A refusal: non-zero, one line naming `field`, with `fragment`, and nothing left behind.
#[track_caller]
fn assert_refused(ward: &Ward, id: &str, out: &Out, field: &str, fragment: &str) {
    assert!(!out.success(), "{id}: should have been refused:\n{out}");
    assert!(
        out.stderr.contains(field) && out.stderr.contains(fragment),
        "{id}: message should name {field:?} and say {fragment:?}:\n{out}"
    );
    assert_no_leftovers(ward, id);
}

#[test]
fn volume_symlink_planted_by_a_container_is_not_followed() {
    require_root!();
    let ward = Ward::new();
    let data = tempfile::tempdir().unwrap();
    let app = data.path().join("app");
    std::fs::create_dir_all(app.join("cache")).unwrap();
    // Run 1: the container replaces its volume's `cache` dir with a symlink to `/`.
    let mut b1 = Bundle::sh("rm -rf /app/cache && ln -s / /app/cache && echo planted");
    b1.bind(&app, "/app", false);
    let id1 = unique_id("plant");
    let o = ward.run(&b1, &id1);
    assert!(o.success() && o.stdout.contains("planted"), "{o}");
    ward.ok(&["delete", "--force", &id1]);
    assert!(std::fs::symlink_metadata(app.join("cache"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Run 2: the common layout `-v ./app:/app -v ./app/cache:/cache` would hand it host `/`.
    let marker = format!("ward-pwned-{}", std::process::id());
    let mut b2 = Bundle::sh(&format!("echo x > /cache/{marker}; echo wrote"));
    b2.bind(&app, "/app", false);
    b2.bind(&app.join("cache"), "/cache", false);
    let id2 = unique_id("follow");
    let o = ward.run(&b2, &id2);
    assert_refused(&ward, &id2, &o, "mounts[", "symlink");
    assert!(
        !Path::new("/").join(&marker).exists(),
        "host / was written through the planted symlink"
    );
}

#[test]
fn bundle_symlink_to_etc_as_bind_source_is_refused() {
    require_root!();
    let ward = Ward::new();
    let mut b = Bundle::sh("ls /e >/dev/null && echo reached");
    let link = b.path().join("L");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    b.bind(&link, "/e", false);
    let id = unique_id("etclink");
    let o = ward.run(&b, &id);
    assert_refused(&ward, &id, &o, "mounts[", "symlink /");
    assert!(!o.stdout.contains("reached"));
}

#[test]
fn rootfs_that_is_the_host_root_is_refused() {
    require_root!();
    let ward = Ward::new();
    let mut b = Bundle::sh("cat /etc/shadow && echo read-host-shadow");
    std::os::unix::fs::symlink("/", b.path().join("hostroot")).unwrap();
    for (root, fragment) in [
        ("/", "is the host's /"),
        ("hostroot", "symlink"),
        ("../../../../../../../..", "outside the bundle"),
        ("/etc", "is the host's /etc"),
    ] {
        b.edit(|c| c["root"]["path"] = json!(root));
        let id = unique_id("hostroot");
        let o = ward.run(&b, &id);
        assert_refused(&ward, &id, &o, "root.path", fragment);
        assert!(!o.stdout.contains("read-host-shadow"), "{root}: {o}");
    }
}

/// `setpriv` as an unprivileged host user (nobody), the attacker next to a running container.
fn as_nobody(script: &str) -> Out {
    Ward::output_of({
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ]);
        c.stdin(Stdio::null());
        c
    })
}

#[test]
fn host_users_cannot_reach_a_containers_mounts_or_state() {
    require_root!();
    let ward = Ward::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    // A set-uid root file in the image: through a host path it would run as the container
    // root's host uid for anyone.
    let suid = b.rootfs().join("bin/suid-sh");
    std::fs::copy("/bin/busybox", &suid).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let vol = tempfile::tempdir().unwrap();
    b.bind(vol.path(), "/data", false);
    let id = unique_id("hostuser");
    ward.run_detached(&b, &id);
    let wdir = ward.root().join(".ward").join(&id);
    // 1. No mount of the container exists in the host's mount namespace.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let wd = wdir.display().to_string();
    assert!(
        !mi.lines().any(|l| l.contains(&wd)),
        "container mounts visible on the host:\n{}",
        mi.lines()
            .filter(|l| l.contains(&wd))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // 2. Even as root, the host path shows empty mount points, not the image.
    assert!(!wdir.join("rootfs/bin/suid-sh").exists());
    assert!(!wdir.join("layers/0/bin/busybox").exists());
    // 3. Another host user reaches nothing: no image, no layer, no state file.
    let o = as_nobody(&format!(
        "for p in {w}/rootfs/bin/suid-sh {w}/layers/0/bin/suid-sh {w}/config.json {w}/ward.json \
           {w}/supervisor.json {w}/events.jsonl; do \
           if cat \"$p\" >/dev/null 2>&1; then echo READ $p; fi; done; \
         ls {w}/layers {w}/rw 2>/dev/null && echo LISTED; \
         {w}/rootfs/bin/suid-sh id -u 2>/dev/null && echo RAN; echo done",
        w = wd
    ));
    assert!(o.stdout.contains("done"), "{o}");
    for bad in ["READ", "LISTED", "RAN"] {
        assert!(
            !o.stdout.contains(bad),
            "host user got at the container: {o}"
        );
    }
    // 4. The container itself still sees its rootfs and volume, set-id bits ignored there.
    let pid = ward.pid(&id);
    let cmi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let data = cmi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/data"))
        .unwrap_or_else(|| panic!("no /data mount in the container:\n{cmi}"));
    assert!(data.contains("nosuid") && data.contains("nodev"), "{data}");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

#[test]
fn parallel_creates_never_share_a_uid_range() {
    require_root!();
    let ward = Ward::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let ids: Vec<String> = (0..6).map(|_| unique_id("par")).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut c = ward.cmd(&[
                "run".as_ref(),
                "-d".as_ref(),
                "--bundle".as_ref(),
                b.path().as_os_str(),
                id.as_ref(),
            ]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c.spawn().unwrap()
        })
        .collect();
    for mut ch in children {
        assert!(ch.wait().unwrap().success());
    }
    let mut starts = vec![];
    for id in &ids {
        let pid = ward.pid(id);
        ward.track(pid);
        let m = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        starts.push(parse_id_map(&m)[0].1);
    }
    let mut uniq = starts.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), ids.len(), "host ranges shared: {starts:?}");
    assert!(!starts.contains(&0));
    for id in &ids {
        ward.ok(&["delete", "--force", id]);
        assert_no_leftovers(&ward, id);
    }
}

#[test]
fn same_id_race_leaves_one_intact_container() {
    require_root!();
    let ward = Ward::new();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("race");
    // stderr to files: the winner's container inherits it, a pipe would never close.
    let children: Vec<_> = (0..4)
        .map(|_| {
            let f = tempfile::NamedTempFile::new().unwrap();
            let mut c = ward.cmd(&[
                "run".as_ref(),
                "-d".as_ref(),
                "--bundle".as_ref(),
                b.path().as_os_str(),
                id.as_ref(),
            ]);
            c.stdout(Stdio::null())
                .stderr(Stdio::from(f.reopen().unwrap()));
            (c.spawn().unwrap(), f)
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|(mut c, f)| {
            (
                c.wait().unwrap(),
                std::fs::read_to_string(f.path()).unwrap(),
            )
        })
        .collect();
    let won = outs.iter().filter(|(st, _)| st.success()).count();
    assert_eq!(won, 1, "exactly one create of {id} must win: {outs:?}");
    for (_, e) in outs.iter().filter(|(st, _)| !st.success()) {
        assert!(e.contains("already exists"), "loser: {e}");
    }
    // The winner is whole: running, its state and range intact, its range its own.
    let pid = ward.pid(&id);
    ward.track(pid);
    assert_eq!(ward.status(&id), "running");
    let m = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let host = parse_id_map(&m)[0].1;
    let slot = ward_tests::leaks::range_slot(ward.root(), &id).expect("winner's range held");
    let other = unique_id("after");
    ward.run_detached(&b, &other);
    let m2 = std::fs::read_to_string(format!("/proc/{}/uid_map", ward.pid(&other))).unwrap();
    assert_ne!(
        parse_id_map(&m2)[0].1,
        host,
        "winner's range was handed out again (slot {slot})"
    );
    for i in [&id, &other] {
        ward.ok(&["delete", "--force", i]);
        assert_no_leftovers(&ward, i);
    }
}
