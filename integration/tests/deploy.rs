//! deploy/: install.sh then uninstall.sh into a temp root with a temp
//! containerd config; the example node configs parse with Ward's own parser;
//! the merged containerd config loads in containerd 2 and in 1.6 (each release's
//! `containerd config dump` shows Ward's handlers where that release reads them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ward_integration::release::{releases_under_test, ContainerdRelease};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bash(script: &str, root: &Path, bins: &Path, extra: &[(&str, &str)]) -> String {
    let out = Command::new("bash")
        .arg(repo().join("deploy").join(script))
        .env("DESTDIR", root)
        .env("PREFIX", "/usr/local")
        .env("BIN_SRC", bins)
        .env("NO_RESTART", "1")
        .env_remove("NODE_NAME")
        .envs(extra.iter().copied())
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

/// `containerd config dump` of `cfg` by `release`: the config as that release loads it
/// (containerd 2 migrates a `version = 2` file to its own schema first).
fn config_dump(release: &ContainerdRelease, cfg: &Path) -> toml::Value {
    let out = Command::new(release.containerd())
        .arg("--config")
        .arg(cfg)
        .args(["config", "dump"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", release.label()));
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: config dump {}: {}",
        release.label(),
        cfg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    toml::from_str(&dump).unwrap_or_else(|e| panic!("{}: {e}\n{dump}", release.label()))
}

/// The runtime handlers table of a dumped config, in the CRI plugin `release` reads.
fn dumped_runtimes<'a>(release: &ContainerdRelease, dump: &'a toml::Value) -> &'a toml::Value {
    let plugin = if release.major >= 2 {
        "io.containerd.cri.v1.runtime"
    } else {
        "io.containerd.grpc.v1.cri"
    };
    &dump["plugins"][plugin]["containerd"]["runtimes"]
}

/// Ward's two handlers, as every release under test loads `cfg`.
fn assert_loads_ward_handlers(cfg: &Path) -> Vec<(ContainerdRelease, toml::Value)> {
    releases_under_test("deploy")
        .into_iter()
        .map(|release| {
            let dump = assert_release_loads_ward_handlers(&release, cfg);
            (release, dump)
        })
        .collect()
}

/// Ward's two handlers, as `release` loads `cfg`; returns the dump.
fn assert_release_loads_ward_handlers(release: &ContainerdRelease, cfg: &Path) -> toml::Value {
    let dump = config_dump(release, cfg);
    let rts = dumped_runtimes(release, &dump);
    for (h, cfgp) in [
        ("ward", "/etc/ward/ward.toml"),
        ("ward-strict", "/etc/ward/ward-strict.toml"),
    ] {
        assert_eq!(
            rts[h]["runtime_type"].as_str(),
            Some("io.containerd.ward.v2"),
            "{}: {h}",
            release.label()
        );
        // `ward` has no options table (see ward-v3.toml): its shim reads the default path.
        let want = (h != "ward").then_some(cfgp);
        assert_eq!(
            rts[h]
                .get("options")
                .and_then(|o| o.get("ConfigPath"))
                .and_then(|p| p.as_str()),
            want,
            "{}: {h}",
            release.label()
        );
        assert_eq!(
            rts[h]["pod_annotations"][0].as_str(),
            Some("ward.dev/*"),
            "{}: {h}",
            release.label()
        );
    }
    dump
}

/// The sandbox (pause) image a dumped config names.
fn dumped_sandbox_image(release: &ContainerdRelease, dump: &toml::Value) -> Option<String> {
    let v = if release.major >= 2 {
        &dump["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
    } else {
        &dump["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"]
    };
    v.as_str().map(String::from)
}

fn fake_bins(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).unwrap();
    for b in ["ward", "containerd-shim-ward-v2"] {
        let p = dir.join(b);
        fs::write(&p, format!("#!/bin/sh\necho {b}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Every file under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

const ADMIN_CONFIG: &str = r#"version = 2
# an admin's own settings, which must survive install and uninstall
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.example/pause:3.9"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true"#; // no trailing newline on purpose

#[test]
fn install_then_uninstall_into_temp_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bins = tmp.path().join("bins");
    fake_bins(&bins);
    let cfg = root.join("etc/containerd/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(&cfg, ADMIN_CONFIG).unwrap();
    let before = tree(&root);

    bash("install.sh", &root, &bins, &[]);
    bash("install.sh", &root, &bins, &[]); // idempotent
    for b in ["ward", "containerd-shim-ward-v2"] {
        assert!(root.join("usr/local/bin").join(b).exists(), "{b}");
    }
    assert!(root.join("etc/ward/profiles/default.toml").exists());
    assert!(root.join("etc/ward/profiles/strict.toml").exists());
    assert!(root.join("etc/ward/ward.toml").exists());
    assert!(root.join("etc/ward/ward-strict.toml").exists());
    let merged = fs::read_to_string(&cfg).unwrap();
    assert_eq!(merged.matches("# BEGIN ward").count(), 1, "{merged}");
    assert_eq!(
        merged.matches("io.containerd.ward.v2").count(),
        2,
        "{merged}"
    );
    assert!(merged.contains("registry.example/pause:3.9"), "{merged}");
    // The merged file is valid TOML with both handlers and the admin's settings.
    let v: toml::Value = toml::from_str(&merged).unwrap_or_else(|e| panic!("{e}\n{merged}"));
    let rts = &v["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"];
    assert_eq!(
        rts["ward"]["runtime_type"].as_str(),
        Some("io.containerd.ward.v2")
    );
    assert_eq!(
        rts["ward-strict"]["options"]["ConfigPath"].as_str(),
        Some("/etc/ward/ward-strict.toml")
    );
    assert_eq!(
        rts["runc"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
    // containerd 2 (migrating this version 2 file) and 1.6 load it, with the admin's
    // settings kept.
    for (release, dump) in assert_loads_ward_handlers(&cfg) {
        assert_eq!(
            dumped_sandbox_image(&release, &dump).as_deref(),
            Some("registry.example/pause:3.9"),
            "{}",
            release.label()
        );
        assert_eq!(
            dumped_runtimes(&release, &dump)["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(true),
            "{}",
            release.label()
        );
    }

    bash("uninstall.sh", &root, &bins, &[]);
    assert_eq!(
        fs::read_to_string(&cfg).unwrap(),
        ADMIN_CONFIG,
        "config restored"
    );
    assert_eq!(tree(&root), before, "everything else removed");
}

/// With no containerd config yet, install.sh asks `containerd --version` which schema to
/// write: run once with each release's containerd first on PATH, and that release loads it.
#[test]
fn install_creates_the_config_schema_of_the_installed_containerd_and_removes_it() {
    for release in releases_under_test("install_creates_config") {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let bins = tmp.path().join("bins");
        fake_bins(&bins);
        fs::create_dir_all(&root).unwrap();
        let mut path = release.bin_dir.clone().into_iter().collect::<Vec<_>>();
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(path).unwrap();
        let out = bash(
            "install.sh",
            &root,
            &bins,
            &[("PATH", path.to_str().unwrap())],
        );
        let cfg_path = root.join("etc/containerd/config.toml");
        let cfg = fs::read_to_string(&cfg_path).unwrap();
        let v: toml::Value = toml::from_str(&cfg).unwrap();
        assert_eq!(
            v["version"].as_integer(),
            Some(i64::from(release.config_version())),
            "{}: {out}\n{cfg}",
            release.label()
        );
        assert_release_loads_ward_handlers(&release, &cfg_path);
        bash("uninstall.sh", &root, &bins, &[]);
        assert!(
            tree(&root)
                .iter()
                .all(|p| !p.contains("ward") && !p.ends_with("config.toml")),
            "{}: {:?}",
            release.label(),
            tree(&root)
        );
    }
}

const ADMIN_CONFIG_V3: &str = r#"version = 3
# an admin's own containerd 2 settings, which must survive install and uninstall
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = 'registry.example/pause:3.10'
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = true
"#;

/// An admin's containerd 2 (`version = 3`) config: install adds ward-v3.toml's block,
/// containerd 2 loads Ward's handlers next to the admin's settings, uninstall restores it.
#[test]
fn install_into_containerd_2_config_then_uninstall() {
    let Some(release) = releases_under_test("install_into_containerd_2_config")
        .into_iter()
        .find(|r| r.major >= 2)
    else {
        return; // WARD_E2E_SKIP_CONTAINERD2=1: releases_under_test printed SKIP
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bins = tmp.path().join("bins");
    fake_bins(&bins);
    let cfg = root.join("etc/containerd/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    fs::write(&cfg, ADMIN_CONFIG_V3).unwrap();
    let before = tree(&root);
    bash("install.sh", &root, &bins, &[]);
    bash("install.sh", &root, &bins, &[]); // idempotent
    let merged = fs::read_to_string(&cfg).unwrap();
    assert_eq!(merged.matches("# BEGIN ward").count(), 1, "{merged}");
    let dump = assert_release_loads_ward_handlers(&release, &cfg);
    assert_eq!(
        dumped_sandbox_image(&release, &dump).as_deref(),
        Some("registry.example/pause:3.10")
    );
    assert_eq!(
        dumped_runtimes(&release, &dump)["runc"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
    bash("uninstall.sh", &root, &bins, &[]);
    assert_eq!(fs::read_to_string(&cfg).unwrap(), ADMIN_CONFIG_V3);
    assert_eq!(tree(&root), before, "everything else removed");
}

#[test]
fn install_refuses_ward_tables_outside_its_block() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bins = tmp.path().join("bins");
    fake_bins(&bins);
    let cfg = root.join("etc/containerd/config.toml");
    fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let hand = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.ward]\n  runtime_type = \"io.containerd.ward.v2\"\n";
    fs::write(&cfg, hand).unwrap();
    let out = Command::new("bash")
        .arg(repo().join("deploy/install.sh"))
        .env("DESTDIR", &root)
        .env("BIN_SRC", &bins)
        .env("NO_RESTART", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the managed block"));
    assert_eq!(fs::read_to_string(&cfg).unwrap(), hand, "config untouched");
}

#[test]
fn example_node_configs_parse_with_wards_parser() {
    let mut shim_state = vec![];
    for f in ["ward.toml", "ward-strict.toml"] {
        let p = repo().join("deploy/etc").join(f);
        let text = fs::read_to_string(&p).unwrap();
        let cfg = ward_runtime::config::NodeConfig::parse(&p, &text)
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        shim_state.push((cfg.shim.state_dir.clone(), cfg.userns.clone()));
        for name in cfg.allowed_profiles.iter().chain([&cfg.default_profile]) {
            assert!(
                ward_profiles_exists(name),
                "{f}: profile {name} is not a built-in profile"
            );
        }
    }
    // Both handlers hand out the same uid ranges, so they must share one range table (the
    // shim's state dir): two tables would give two pods the same host uids.
    assert_eq!(
        shim_state[0], shim_state[1],
        "ward.toml and ward-strict.toml"
    );
    assert_eq!(
        shim_state[0].0,
        std::path::PathBuf::from(ward_runtime::config::DEFAULT_SHIM_STATE_DIR)
    );
}

fn ward_profiles_exists(name: &str) -> bool {
    repo()
        .join("profiles/builtin")
        .join(format!("{name}.toml"))
        .exists()
}

#[test]
fn containerd_drop_ins_are_valid_toml() {
    for (f, plugin) in [
        ("ward-v2.toml", "io.containerd.grpc.v1.cri"),
        ("ward-v3.toml", "io.containerd.cri.v1.runtime"),
    ] {
        let text = fs::read_to_string(repo().join("deploy/containerd").join(f)).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        let rts = &v["plugins"][plugin]["containerd"]["runtimes"];
        for (h, cfgp) in [
            ("ward", "/etc/ward/ward.toml"),
            ("ward-strict", "/etc/ward/ward-strict.toml"),
        ] {
            assert_eq!(
                rts[h]["runtime_type"].as_str(),
                Some("io.containerd.ward.v2"),
                "{f} {h}"
            );
            // `ward` has no options table (user-namespaced pods need that on containerd 2).
            let want = (h != "ward").then_some(cfgp);
            assert_eq!(
                rts[h]
                    .get("options")
                    .and_then(|o| o.get("ConfigPath"))
                    .and_then(|p| p.as_str()),
                want,
                "{f} {h}"
            );
        }
    }
}
