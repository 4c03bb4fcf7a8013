//! The config file a private test containerd runs with, in the schema its release reads:
//! `version = 3` for containerd 2 (CRI split into `io.containerd.cri.v1.images` and
//! `io.containerd.cri.v1.runtime`, the CRI server part left in `io.containerd.grpc.v1.cri`),
//! `version = 2` for containerd 1.6. Both declare the same runtimes: `runc`, and Ward's
//! `ward` / `ward-strict` handlers. `ward-strict` names its node config as `ConfigPath`;
//! `ward` has no options table, as in deploy/containerd/ (containerd 2 sets a
//! user-namespaced pod's IO owner through runc's options type, which an options table of
//! another type breaks), and its shim finds its config through containerd's `WARD_CONFIG`.

use std::fmt::Write as _;
use std::path::Path;

use crate::containerd::{RUNC_RUNTIME, WARD_RUNTIME};
use crate::image;

/// Paths a test containerd's config names.
pub struct ConfigPaths<'a> {
    /// Top dir of the instance (root, state, sockets, opt, CNI dirs below it).
    pub dir: &'a Path,
    pub ward_config: &'a Path,
    pub ward_strict_config: &'a Path,
}

/// The whole config for schema `version` (2 or 3).
pub fn containerd_config(version: u32, p: &ConfigPaths) -> String {
    let d = p.dir.display();
    let mut c = format!(
        r#"version = {version}
root = "{d}/root"
state = "{d}/state"
oom_score = 0

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    );
    if version >= 3 {
        c.push_str(&cri_v3(p));
    } else {
        c.push_str(&cri_v2(p));
    }
    c
}

/// Settings both schemas share, under the table that holds them in each.
const RESTRICT_OOM: &str = r#"  enable_selinux = false
  disable_apparmor = true
  # This host (and some CI sandboxes) lack CAP_SYS_RESOURCE: lowering
  # oom_score_adj (CRI gives sandboxes -998) would fail in runc init.
  restrict_oom_score_adj = true
"#;

fn cri_v2(p: &ConfigPaths) -> String {
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    let d = p.dir.display();
    let mut c = format!(
        r#"
[{cri}]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
{RESTRICT_OOM}  max_concurrent_downloads = 1

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
"#,
        pause = image::PAUSE,
    );
    runtimes(&mut c, &format!("{cri}.containerd"), p);
    let _ = write!(
        c,
        r#"
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d}/cni/net.d"
  max_conf_num = 1
"#
    );
    c
}

fn cri_v3(p: &ConfigPaths) -> String {
    let images = r#"plugins."io.containerd.cri.v1.images""#;
    let rt = r#"plugins."io.containerd.cri.v1.runtime""#;
    let d = p.dir.display();
    let mut c = format!(
        r#"
# NRI's default socket (/var/run/nri/nri.sock) is node-wide: a private instance leaves it alone.
[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{images}]
  snapshotter = "overlayfs"
  max_concurrent_downloads = 1

[{images}.pinned_images]
  sandbox = "{pause}"

[{rt}]
{RESTRICT_OOM}
[{rt}.containerd]
  default_runtime_name = "runc"
"#,
        pause = image::PAUSE,
    );
    runtimes(&mut c, &format!("{rt}.containerd"), p);
    let _ = write!(
        c,
        r#"
[{rt}.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "{d}/cni/net.d"
  max_conf_num = 1
"#
    );
    c
}

/// The runtime handlers, under `parent` (`<cri plugin>.containerd`).
fn runtimes(c: &mut String, parent: &str, p: &ConfigPaths) {
    let _ = write!(
        c,
        r#"
[{parent}.runtimes.runc]
  runtime_type = "{RUNC_RUNTIME}"
"#
    );
    for (name, cfg, options) in [
        ("ward", p.ward_config, false),
        ("ward-strict", p.ward_strict_config, true),
    ] {
        let _ = write!(
            c,
            r#"
[{parent}.runtimes.{name}]
  runtime_type = "{WARD_RUNTIME}"
  pod_annotations = ["ward.dev/*"]
"#
        );
        if options {
            let _ = write!(
                c,
                r#"
[{parent}.runtimes.{name}.options]
  ConfigPath = "{}"
"#,
                cfg.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        (
            "/tmp/x".into(),
            "/tmp/x/ward.toml".into(),
            "/tmp/x/ward-strict.toml".into(),
        )
    }

    #[test]
    fn both_schemas_declare_the_same_handlers_where_their_release_reads_them() {
        let (dir, w, ws) = paths();
        let p = ConfigPaths {
            dir: &dir,
            ward_config: &w,
            ward_strict_config: &ws,
        };
        for (version, plugin) in [
            (2, "io.containerd.grpc.v1.cri"),
            (3, "io.containerd.cri.v1.runtime"),
        ] {
            let text = containerd_config(version, &p);
            let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(v["version"].as_integer(), Some(i64::from(version)));
            let rts = &v["plugins"][plugin]["containerd"]["runtimes"];
            assert_eq!(rts["runc"]["runtime_type"].as_str(), Some(RUNC_RUNTIME));
            assert_eq!(
                rts["ward-strict"]["options"]["ConfigPath"].as_str(),
                Some("/tmp/x/ward-strict.toml")
            );
            // No options table for `ward` (the shim reads WARD_CONFIG).
            assert!(rts["ward"].get("options").is_none(), "version {version}");
        }
        let v3: toml::Value = toml::from_str(&containerd_config(3, &p)).unwrap();
        assert_eq!(
            v3["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].as_str(),
            Some(image::PAUSE)
        );
    }
}
