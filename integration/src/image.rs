//! Test images without a registry.
//!
//! Builds a busybox rootfs from the host's `busybox-static` and packs it as an
//! OCI image layout tarball (`oci-layout`, `index.json`, `blobs/sha256/*`) that
//! both `ctr images import` and `podman load -i` accept.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Image name of the busybox test image.
pub const BUSYBOX: &str = "localhost/ward-busybox:latest";
/// Image name of the pause (sandbox) image used by the CRI plugin.
pub const PAUSE: &str = "localhost/ward-pause:latest";

/// Where the host's static busybox lives (Debian's `busybox-static`).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building an image, each naming the file it was about.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("list busybox applets with {path}: {source}")]
    Applets { path: PathBuf, source: io::Error },
    #[error("build tar entry {entry}: {source}")]
    Tar { entry: String, source: io::Error },
}

/// What an image runs and what it is called.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Full reference, e.g. `localhost/ward-busybox:latest`.
    pub name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// The image config's `User` (uid[:gid]); root when `None`.
    pub user: Option<String>,
}

impl ImageSpec {
    /// The busybox image: `sh` by default.
    pub fn busybox() -> Self {
        Self {
            name: BUSYBOX.to_string(),
            entrypoint: vec![],
            cmd: vec!["/bin/sh".into()],
            user: None,
        }
    }

    /// The pause image: a shell that sleeps forever and exits 0 on SIGTERM/SIGINT
    /// (PID 1 has no default signal handlers, so the trap is needed).
    pub fn pause() -> Self {
        Self {
            name: PAUSE.to_string(),
            entrypoint: vec![
                "/bin/sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM INT; while :; do sleep 2147483647 & wait $!; done".into(),
            ],
            cmd: vec![],
            user: None,
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn tar_err(entry: &str) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Tar {
        entry: entry.to_string(),
        source,
    }
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

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    b.append_data(&mut h, format!("{path}/"), io::empty())
        .map_err(tar_err(path))
}

fn add_file(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, path, data).map_err(tar_err(path))
}

fn add_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) -> Result<(), ImageError> {
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    b.append_link(&mut h, path, target).map_err(tar_err(path))
}

/// Applet paths relative to `/` (`bin/ls`, `usr/bin/wget`, ...) as busybox's
/// own `--list-full` prints them, the same set `busybox --install -s` creates.
fn applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let out = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|source| ImageError::Applets {
            path: busybox.to_path_buf(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The root filesystem layer as an uncompressed tar.
pub fn rootfs_layer(busybox: &Path) -> Result<Vec<u8>, ImageError> {
    let bin = std::fs::read(busybox).map_err(|source| ImageError::Read {
        path: busybox.to_path_buf(),
        source,
    })?;
    let mut b = tar::Builder::new(Vec::new());
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "run", "proc",
        "sys", "dev", "mnt",
    ] {
        add_dir(&mut b, d, 0o755)?;
    }
    add_dir(&mut b, "tmp", 0o1777)?;
    add_dir(&mut b, "var/tmp", 0o1777)?;
    add_file(&mut b, "bin/busybox", 0o755, &bin)?;
    for applet in applets(busybox)? {
        add_symlink(&mut b, &applet, "/bin/busybox")?;
    }
    add_file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    add_file(&mut b, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    add_file(&mut b, "etc/hosts", 0o644, b"127.0.0.1 localhost\n")?;
    b.into_inner().map_err(tar_err("finish"))
}

/// A layer holding the directory tree `dir` as it is: directories, regular
/// files and symlinks with their permission bits (set-id bits included),
/// owned by root, and a file's `security.capability` xattr as a PAX
/// `SCHILY.xattr` record (which containerd's applier restores).
pub fn layer_from_dir(dir: &Path) -> Result<Vec<u8>, ImageError> {
    let mut b = tar::Builder::new(Vec::new());
    add_tree(&mut b, dir, "")?;
    b.into_inner().map_err(tar_err("finish"))
}

fn add_tree(b: &mut tar::Builder<Vec<u8>>, dir: &Path, rel: &str) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImageError::Read { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let m = std::fs::symlink_metadata(&p).map_err(read_err(&p))?;
        let mode = m.permissions().mode() & 0o7777;
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p).map_err(read_err(&p))?;
            add_symlink(b, &name, &t.to_string_lossy())?;
        } else if m.is_dir() {
            add_dir(b, &name, mode)?;
            add_tree(b, &p, &format!("{name}/"))?;
        } else if m.is_file() {
            if let Some(cap) = file_capability(&p) {
                add_pax_xattr(b, &name, "security.capability", &cap)?;
            }
            let data = std::fs::read(&p).map_err(read_err(&p))?;
            add_file(b, &name, mode, &data)?;
        }
    }
    Ok(())
}

fn file_capability(p: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated path and attribute name; `buf` is writable for its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0).then(|| buf[..n as usize].to_vec())
}

/// A PAX extended header (`x`) carrying one `SCHILY.xattr.<name>` record for
/// the entry that follows.
fn add_pax_xattr(
    b: &mut tar::Builder<Vec<u8>>,
    entry: &str,
    name: &str,
    value: &[u8],
) -> Result<(), ImageError> {
    let key = format!("SCHILY.xattr.{name}");
    // "<len> <key>=<value>\n", where <len> counts the whole record, itself included.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    let mut h = header(tar::EntryType::XHeader, 0o644, rec.len() as u64);
    b.append_data(&mut h, format!("PaxHeaders/{entry}"), &rec[..])
        .map_err(tar_err(entry))
}

/// A content-addressed blob: digest `sha256:<hex>` and bytes.
struct Blob {
    hex: String,
    data: Vec<u8>,
}

impl Blob {
    fn new(data: Vec<u8>) -> Self {
        Self {
            hex: sha256_hex(&data),
            data,
        }
    }
    fn digest(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

/// Pack `layer` with `spec` as an OCI image layout tarball in memory.
pub fn oci_archive(spec: &ImageSpec, layer: &[u8]) -> Result<Vec<u8>, ImageError> {
    let layer = Blob::new(layer.to_vec());
    let mut cfg = serde_json::json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": { "Env": [PATH_ENV], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [layer.digest()] },
        "history": [{ "created_by": "ward-integration image builder" }],
    });
    if !spec.entrypoint.is_empty() {
        cfg["config"]["Entrypoint"] = serde_json::json!(spec.entrypoint);
    }
    if !spec.cmd.is_empty() {
        cfg["config"]["Cmd"] = serde_json::json!(spec.cmd);
    }
    if let Some(u) = &spec.user {
        cfg["config"]["User"] = serde_json::json!(u);
    }
    let config = Blob::new(serde_json::to_vec(&cfg).expect("serialize json"));
    let manifest = Blob::new(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.digest(),
                "size": config.data.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer.digest(),
                "size": layer.data.len(),
            }],
        }))
        .expect("serialize json"),
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest.digest(),
            "size": manifest.data.len(),
            "platform": { "architecture": go_arch(), "os": "linux" },
            "annotations": {
                "io.containerd.image.name": spec.name,
                "org.opencontainers.image.ref.name": spec.name,
            },
        }],
    });

    let mut b = tar::Builder::new(Vec::new());
    add_file(
        &mut b,
        "oci-layout",
        0o644,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    add_file(
        &mut b,
        "index.json",
        0o644,
        &serde_json::to_vec(&index).expect("serialize json"),
    )?;
    add_dir(&mut b, "blobs", 0o755)?;
    add_dir(&mut b, "blobs/sha256", 0o755)?;
    for blob in [&layer, &config, &manifest] {
        add_file(
            &mut b,
            &format!("blobs/sha256/{}", blob.hex),
            0o644,
            &blob.data,
        )?;
    }
    b.into_inner().map_err(tar_err("finish"))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Paths of the two image tarballs written by [`build_test_images`].
#[derive(Debug, Clone)]
pub struct TestImages {
    pub busybox: PathBuf,
    pub pause: PathBuf,
}

/// Write `ward-busybox.tar` and `ward-pause.tar` into `dir`.
pub fn build_test_images(dir: &Path) -> Result<TestImages, ImageError> {
    let layer = rootfs_layer(Path::new(HOST_BUSYBOX))?;
    let write = |file: &str, spec: ImageSpec| -> Result<PathBuf, ImageError> {
        let path = dir.join(file);
        let data = oci_archive(&spec, &layer)?;
        let werr = |source| ImageError::Write {
            path: path.clone(),
            source,
        };
        let mut f = File::create(&path).map_err(werr)?;
        f.write_all(&data).map_err(werr)?;
        Ok(path)
    };
    Ok(TestImages {
        busybox: write("ward-busybox.tar", ImageSpec::busybox())?,
        pause: write("ward-pause.tar", ImageSpec::pause())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut b = tar::Builder::new(Vec::new());
        add_pax_xattr(&mut b, "bin/x", "security.capability", &[1u8; 20]).unwrap();
        let data = b.into_inner().unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let mut e = ar.entries().unwrap().raw(true).next().unwrap().unwrap();
        let mut rec = Vec::new();
        io::Read::read_to_end(&mut e, &mut rec).unwrap();
        let sp = rec.iter().position(|c| *c == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rec[..sp]).unwrap().parse().unwrap();
        assert_eq!(len, rec.len());
        assert!(rec.ends_with(b"\n"));
    }

    #[test]
    fn archive_has_layout_and_matching_digests() {
        let layer = b"not really a tar".to_vec();
        let data = oci_archive(&ImageSpec::busybox(), &layer).unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let mut names = Vec::new();
        let mut index = None;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut buf = Vec::new();
            io::Read::read_to_end(&mut e, &mut buf).unwrap();
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                if !hex.is_empty() {
                    assert_eq!(sha256_hex(&buf), hex, "blob {name} digest");
                }
            }
            if name == "index.json" {
                index = Some(serde_json::from_slice::<serde_json::Value>(&buf).unwrap());
            }
            names.push(name);
        }
        assert!(names.contains(&"oci-layout".to_string()));
        let index = index.expect("index.json");
        let ann = &index["manifests"][0]["annotations"];
        assert_eq!(ann["io.containerd.image.name"], BUSYBOX);
        assert_eq!(ann["org.opencontainers.image.ref.name"], BUSYBOX);
        assert!(names.contains(&format!("blobs/sha256/{}", sha256_hex(&layer))));
    }
}
