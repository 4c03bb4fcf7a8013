//! A registry-free busybox image as an OCI image layout tarball (`oci-layout`, `index.json`,
//! `blobs/sha256/*`), which `podman load -i` accepts.

use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data)
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, format!("{path}/"), io::empty())
}

/// The rootfs layer: busybox, applet symlinks in /bin, /etc/passwd and group.
pub fn busybox_layer(busybox: &Path) -> io::Result<Vec<u8>> {
    let bin = std::fs::read(busybox)?;
    let out = std::process::Command::new(busybox).arg("--list").output()?;
    let mut b = tar::Builder::new(Vec::new());
    for d in [
        "bin", "etc", "root", "var", "run", "proc", "sys", "dev", "mnt",
    ] {
        add_dir(&mut b, d, 0o755)?;
    }
    add_dir(&mut b, "tmp", 0o1777)?;
    add_file(&mut b, "bin/busybox", 0o755, &bin)?;
    for a in String::from_utf8_lossy(&out.stdout).lines().map(str::trim) {
        if a.is_empty() || a == "busybox" || a.contains('/') {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")?;
    }
    add_file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    add_file(&mut b, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    b.into_inner()
}

/// An OCI image layout tarball of one layer, named `name` (`localhost/x:tag`).
pub fn oci_archive(name: &str, layer: &[u8]) -> io::Result<Vec<u8>> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let layer_hex = sha256_hex(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_hex}")] },
    }))?;
    let config_hex = sha256_hex(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_hex}"),
            "size": layer.len(),
        }],
    }))?;
    let manifest_hex = sha256_hex(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    }))?;
    let mut b = tar::Builder::new(Vec::new());
    add_file(
        &mut b,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    add_file(&mut b, "index.json", 0o644, &index)?;
    add_dir(&mut b, "blobs", 0o755)?;
    add_dir(&mut b, "blobs/sha256", 0o755)?;
    for (hex, data) in [
        (&layer_hex, layer),
        (&config_hex, &config[..]),
        (&manifest_hex, &manifest[..]),
    ] {
        add_file(&mut b, &format!("blobs/sha256/{hex}"), 0o644, data)?;
    }
    b.into_inner()
}
