//! The process's cwd and program, looked up in the rootfs as the container will see it
//! (openat2 RESOLVE_IN_ROOT from the rootfs handle). A path at or below a mount
//! destination is only known once mounted: it is left to the init, whose exec errors
//! `start` reports (see `exec_status`).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::Spec;

use super::{lexical, refused, under_mount, Result};
use crate::sys::fs as sysfs;

/// glibc's execvp search path when PATH is unset.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

enum Kind {
    /// At or below a mount: not knowable now.
    Mounted,
    Missing(Errno),
    /// File type and permission bits.
    Mode(u32),
}

struct View<'a> {
    root: BorrowedFd<'a>,
    root_real: PathBuf,
    spec: &'a Spec,
}

impl View<'_> {
    /// The container path of an opened object, when it is inside the rootfs.
    fn container_path(&self, fd: BorrowedFd<'_>, spelled: &Path) -> Option<PathBuf> {
        let real = sysfs::real_path(fd, spelled).ok()?;
        let rel = real.strip_prefix(&self.root_real).ok()?;
        Some(Path::new("/").join(rel))
    }

    fn kind(&self, path: &Path) -> Kind {
        let path = lexical(path);
        if under_mount(self.spec, &path) {
            return Kind::Mounted;
        }
        match sysfs::open_in_root(self.root, &path) {
            Ok(fd) => match sysfs::object(fd.as_fd(), &path) {
                Ok(o) => {
                    // A symlink may have led onto a mount point's directory in the rootfs.
                    match self.container_path(fd.as_fd(), &path) {
                        Some(p) if under_mount(self.spec, &p) => Kind::Mounted,
                        _ => Kind::Mode(o.mode),
                    }
                }
                Err(_) => Kind::Missing(Errno::EIO),
            },
            Err(e) => {
                // A prefix that resolves (through symlinks) below a mount destination: the
                // rest is on the mount.
                let mut prefix = PathBuf::from("/");
                let comps: Vec<_> = path.components().skip(1).collect();
                for (i, c) in comps.iter().enumerate() {
                    prefix.push(c);
                    let Ok(fd) = sysfs::open_in_root(self.root, &prefix) else {
                        break;
                    };
                    if let Some(p) = self.container_path(fd.as_fd(), &prefix) {
                        let rest: PathBuf = comps[i + 1..].iter().collect();
                        if under_mount(self.spec, &p.join(rest)) {
                            return Kind::Mounted;
                        }
                    }
                }
                Kind::Missing(e)
            }
        }
    }
}

/// `process.cwd` must be a directory and `process.args[0]` an executable file in the rootfs
/// (searched in the process's PATH as execvp does).
pub fn rootfs_view(spec: &Spec, root: BorrowedFd<'_>) -> Result<()> {
    let Some(p) = spec.process().as_ref() else {
        return Ok(());
    };
    let root_real = sysfs::real_path(root, Path::new("root.path"))
        .map_err(|e| refused("root.path", e.to_string()))?;
    let view = View {
        root,
        root_real,
        spec,
    };
    let cwd = p.cwd().clone();
    match view.kind(&cwd) {
        Kind::Mounted => {}
        Kind::Missing(e) => {
            return Err(refused(
                "process.cwd",
                format!("{}: not in the rootfs ({e})", cwd.display()),
            ))
        }
        Kind::Mode(m) if m & libc::S_IFMT != libc::S_IFDIR => {
            return Err(refused(
                "process.cwd",
                format!("{}: not a directory", cwd.display()),
            ))
        }
        Kind::Mode(_) => {}
    }
    let Some(prog) = p.args().as_ref().and_then(|a| a.first()) else {
        return Ok(());
    };
    program(&view, &cwd, prog, &search_path(p.env().as_deref()))
}

fn search_path(env: Option<&[String]>) -> String {
    env.into_iter()
        .flatten()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string()
}

fn executable(mode: u32) -> std::result::Result<(), String> {
    match mode & libc::S_IFMT {
        libc::S_IFREG if mode & 0o111 != 0 => Ok(()),
        libc::S_IFREG => Err(format!(
            "not executable (mode {:o}): exec would fail (EACCES)",
            mode & 0o7777
        )),
        libc::S_IFDIR => Err("a directory: exec would fail (EACCES)".into()),
        _ => Err("not a regular file: exec would fail (EACCES)".into()),
    }
}

fn program(view: &View<'_>, cwd: &Path, prog: &str, path_var: &str) -> Result<()> {
    let field = "process.args[0]";
    if prog.is_empty() {
        return Err(refused(field, "empty program name"));
    }
    if prog.contains('/') {
        let full = cwd.join(prog);
        return match view.kind(&full) {
            Kind::Mounted => Ok(()),
            Kind::Missing(e) => Err(refused(
                field,
                format!("{prog:?}: not in the rootfs ({e}): exec would fail"),
            )),
            Kind::Mode(m) => executable(m).map_err(|r| refused(field, format!("{prog:?}: {r}"))),
        };
    }
    let mut not_exec = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(dir)
        };
        let candidate = cwd.join(dir).join(prog);
        match view.kind(&candidate) {
            Kind::Mounted => return Ok(()),
            Kind::Missing(_) => {}
            Kind::Mode(m) => match executable(m) {
                Ok(()) => return Ok(()),
                Err(r) => {
                    not_exec.get_or_insert(format!("{}: {r}", lexical(&candidate).display()));
                }
            },
        }
    }
    Err(refused(
        field,
        match not_exec {
            Some(r) => format!("{prog:?}: found in PATH only as {r}"),
            None => format!(
                "{prog:?}: not found in the rootfs in PATH {path_var} (exec would fail: ENOENT)"
            ),
        },
    ))
}
