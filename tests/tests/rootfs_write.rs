//! Images that write to their rootfs (issue 11, item 11). A profile may allow a writable
//! rootfs (`[rootfs] writable = true, size = ...`) and the spec must ask for it
//! (`root.readonly: false`): writes land in a per-container upper layer on a size-limited
//! tmpfs that exists only in the container's mount namespace. `default` keeps the rootfs
//! read-only (EROFS) and says so. The `nginx` profile runs the official nginx image's layout
//! with a read-only rootfs, by tmpfs at the paths that layout writes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use ward_tests::leaks::mounts_mentioning;
use ward_tests::{assert_no_leftovers, require_root, unique_id, wait_until, Bundle, Ward};

/// A `ward` whose node config finds profile `rw` in `dir`: `default` plus a writable rootfs
/// of `size` (by name, so `exec` finds it again).
fn ward_with_writable_profile(dir: &Path, size: &str) -> Ward {
    std::fs::write(
        dir.join("rw.toml"),
        format!(
            "name = \"rw\"\nextends = \"default\"\n[rootfs]\nwritable = true\nsize = \"{size}\"\n"
        ),
    )
    .expect("write profile");
    let cfg = dir.join("ward.toml");
    std::fs::write(
        &cfg,
        format!("profile_dirs = [{:?}]\n", dir.display().to_string()),
    )
    .expect("write node config");
    Ward::new().with_global(["--config", cfg.to_str().expect("utf8"), "--profile", "rw"])
}

#[test]
fn writable_rootfs_writes_to_a_private_size_limited_layer() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let ward = ward_with_writable_profile(dir.path(), "8M");
    let mut b = Bundle::sh("echo init > /var/by-init && exec sleep 1000");
    b.edit(|c| c["root"]["readonly"] = json!(false));
    let id = unique_id("rootfs-rw");
    let o = ward.create(&b, &id);
    assert!(o.success(), "{o}");
    assert!(
        !o.stderr.contains("root.readonly"),
        "allowed and asked: no override to report:\n{}",
        o.stderr
    );
    ward.ok(&["start", &id]);

    // The init wrote (its own Landlock ruleset allows it) ...
    assert!(
        wait_until(Duration::from_secs(10), || ward
            .output(&["exec", &id, "cat", "/var/by-init"])
            .stdout
            .contains("init")),
        "the init's write to /var is not there"
    );
    // ... and a write to /etc from an exec succeeds, owned by the container's root.
    let o = ward.output(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo hello > /etc/written && cat /etc/written && stat -c owner=%u /etc/written",
    ]);
    assert!(o.success(), "{o}");
    assert!(
        o.stdout.contains("hello") && o.stdout.contains("owner=0"),
        "{o}"
    );
    // The layer's size limit is enforced: ENOSPC past 8M.
    let o = ward.output(&[
        "exec",
        &id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=32 2>&1; echo rc=$?",
    ]);
    assert!(o.stdout.contains("No space left on device"), "{o}");
    assert!(!o.stdout.contains("rc=0"), "{o}");

    // Nothing reached the host: not the bundle's rootfs, not the state dir on disk, and the
    // upper tmpfs is not in the host's mount table.
    for f in ["etc/written", "big", "var/by-init"] {
        assert!(
            !b.rootfs().join(f).exists(),
            "{f} written to the host's rootfs"
        );
    }
    let state = ward.root().join(".ward").join(&id);
    let rw: Vec<_> = std::fs::read_dir(state.join("rw"))
        .expect("state rw dir")
        .collect();
    assert!(rw.is_empty(), "upper layer on the host's disk: {rw:?}");
    let host_mounts = mounts_mentioning(state.to_str().expect("utf8"));
    assert!(host_mounts.is_empty(), "{host_mounts:?}");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(&format!("{id}/rw")), "{mi}");

    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}

#[test]
fn rootfs_stays_read_only_unless_profile_and_spec_agree() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "(echo x > /etc/w) 2>&1; echo rc=$?";
    // `default` with a spec asking for a writable rootfs: EROFS, and the override says why.
    let ward = Ward::new();
    let mut b = Bundle::sh(script);
    b.edit(|c| c["root"]["readonly"] = json!(false));
    let id = unique_id("rootfs-ro");
    let o = ward.run(&b, &id);
    assert!(o.stdout.contains("Read-only file system"), "{o}");
    assert!(
        o.stderr
            .lines()
            .any(|l| l.contains("root.readonly") && l.contains("[rootfs]")),
        "{o}"
    );
    assert_no_leftovers(&ward, &id);
    // A profile that allows it, a spec that asks for read-only: read-only.
    let ward = ward_with_writable_profile(dir.path(), "8M");
    let mut b = Bundle::sh(script);
    b.edit(|c| c["root"]["readonly"] = json!(true));
    let id = unique_id("rootfs-ro2");
    let o = ward.run(&b, &id);
    assert!(o.stdout.contains("Read-only file system"), "{o}");
    assert!(!b.rootfs().join("etc/w").exists());
    assert_no_leftovers(&ward, &id);
}

/// The official nginx image's nginx.conf and default.conf (docker-library/nginx, Debian
/// variant), with the temp paths that image's nginx has compiled in spelled out (Debian's
/// nginx, used here, has /var/lib/nginx compiled in).
const NGINX_CONF: &str = r#"user  nginx;
worker_processes  auto;
error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;
events {
    worker_connections  1024;
}
http {
    default_type  application/octet-stream;
    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';
    access_log  /var/log/nginx/access.log  main;
    client_body_temp_path /var/cache/nginx/client_temp;
    proxy_temp_path       /var/cache/nginx/proxy_temp;
    fastcgi_temp_path     /var/cache/nginx/fastcgi_temp;
    uwsgi_temp_path       /var/cache/nginx/uwsgi_temp;
    scgi_temp_path        /var/cache/nginx/scgi_temp;
    sendfile        on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
"#;

const NGINX_DEFAULT_CONF: &str = r#"server {
    listen       80;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
"#;

/// A rootfs laid out like the official nginx image: /var/run -> /run, /var/cache/nginx owned
/// by root, the logs symlinked to the container's stdout/stderr, user nginx (101).
fn official_nginx_bundle(nginx: &Path) -> Bundle {
    let mut b = Bundle::new(&["nginx", "-g", "daemon off;"]);
    b.add_host_binary(nginx, "/usr/sbin/nginx");
    let r = b.rootfs();
    std::fs::remove_dir_all(r.join("run")).ok();
    for d in [
        "run",
        "etc/nginx/conf.d",
        "var/cache/nginx",
        "var/log/nginx",
        "usr/share/nginx/html",
    ] {
        std::fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    std::os::unix::fs::symlink("/run", r.join("var/run")).expect("var/run");
    std::os::unix::fs::symlink("/dev/stdout", r.join("var/log/nginx/access.log")).unwrap();
    std::os::unix::fs::symlink("/dev/stderr", r.join("var/log/nginx/error.log")).unwrap();
    std::fs::write(r.join("etc/nginx/nginx.conf"), NGINX_CONF).unwrap();
    std::fs::write(r.join("etc/nginx/conf.d/default.conf"), NGINX_DEFAULT_CONF).unwrap();
    std::fs::write(r.join("usr/share/nginx/html/index.html"), "ward-nginx-ok\n").unwrap();
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx user:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\nnginx:x:101:\n").unwrap();
    // What the official image's process runs with: NET_BIND_SERVICE and the root start caps.
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!([
                "CAP_CHOWN",
                "CAP_NET_BIND_SERVICE",
                "CAP_SETGID",
                "CAP_SETUID"
            ]);
        }
    });
    b
}

/// GET http://127.0.0.1:80/ from the host, inside the container's network namespace only
/// (nsenter -n: the host's busybox, not the container's sandbox).
fn http_get_in_netns(pid: i32) -> Option<String> {
    let o = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "/bin/busybox",
            "wget",
            "-q",
            "-S",
        ])
        .args(["-O", "-", "http://127.0.0.1:80/"])
        .output()
        .ok()?;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.status.success().then_some(all)
}

#[test]
fn nginx_profile_runs_the_official_image_layout_read_only() {
    require_root!();
    let nginx = Path::new("/usr/sbin/nginx");
    if !nginx.exists() {
        eprintln!("SKIP nginx_profile_runs_the_official_image_layout_read_only: no /usr/sbin/nginx (apt-get install nginx-light)");
        return;
    }
    // Under `default` the layout fails where it writes (EROFS on /var/cache/nginx).
    let ward = Ward::new();
    let b = official_nginx_bundle(nginx);
    let id = unique_id("nginx-default");
    let o = ward.run(&b, &id);
    assert!(!o.success(), "{o}");
    assert!(o.stderr.contains("Read-only file system"), "{o}");
    assert_no_leftovers(&ward, &id);

    // Under `nginx`: serves, rootfs still read-only.
    let ward = Ward::new().with_global(["--profile", "nginx"]);
    let id = unique_id("nginx");
    ward.run_detached(&b, &id);
    let pid = ward.pid(&id);
    let mut got = None;
    wait_until(Duration::from_secs(10), || {
        got = http_get_in_netns(pid);
        got.is_some()
    });
    let got = got.unwrap_or_else(|| {
        let o = ward.output(&["exec", &id, "cat", "/run/nginx.pid"]);
        panic!("no HTTP answer from nginx; pid file: {o}")
    });
    assert!(
        got.contains("200 OK") && got.contains("ward-nginx-ok"),
        "{got}"
    );
    let st = ward.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    // The pid file and temp dirs are on the profile's tmpfs, the rootfs stays read-only.
    let o = ward.output(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /var/run/nginx.pid; ls /var/cache/nginx; (echo x > /etc/w) 2>&1; \
         echo log=$(readlink /var/log/nginx/access.log)",
    ]);
    assert!(o.stdout.contains("client_temp"), "{o}");
    // The image's log symlinks to the container's output are not hidden by a tmpfs.
    assert!(o.stdout.contains("log=/dev/stdout"), "{o}");
    assert!(o.stdout.contains("Read-only file system"), "{o}");
    assert!(!b.rootfs().join("run/nginx.pid").exists());
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}
