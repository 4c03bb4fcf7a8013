//! OCI hooks from config.json, which libcontainer runs with the runtime's privileges:
//!
//! | hook | run by | where |
//! |---|---|---|
//! | `prestart`, `createRuntime` | `ward create` (libcontainer's main process) | host namespaces, host root |
//! | `poststart` | `ward start` | host namespaces, host root |
//! | `poststop` | `ward delete` | host namespaces, host root |
//! | `createContainer` | the container init, before pivot_root | container namespaces, but the host's filesystem and no seccomp, Landlock or capability drop yet |
//! | `startContainer` | the container init, after pivot_root | inside the container, before Ward's seccomp filter and Landlock rules |
//!
//! So a bundle author could run any host program as host root. Ward lets through only hooks
//! whose program the node config lists (`[hooks] allow`), named by exactly that path, with no
//! symlink on the way (openat2 RESOLVE_NO_SYMLINKS), a regular file owned by root and writable
//! by nobody else. `startContainer` hooks are refused outright: the program comes from the
//! container's image and would run outside the sandbox it is meant to be in.
//!
//! The allowed program still gets its `args` and `env` from config.json: list only programs
//! that are safe whatever they are given (what the node's GPU or network hook expects).

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Hook, Spec};

use std::os::fd::AsFd;

use crate::sys::fs as sysfs;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    #[error("{field}: {} is not in the node's [hooks] allow list; host-side hooks run as host root", path.display())]
    NotAllowed { field: String, path: PathBuf },
    #[error("{field}: {}: {reason}; refused (host-side hooks run as host root)", path.display())]
    Unsafe {
        field: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{field}: startContainer hooks are refused: they run inside the container before Ward's seccomp filter and Landlock rules are installed")]
    ContainerSide { field: String },
}

/// The hooks of `spec` that run with the runtime's privileges, by their config.json name.
fn privileged(spec: &Spec) -> Vec<(&'static str, &[Hook])> {
    let Some(h) = spec.hooks().as_ref() else {
        return vec![];
    };
    #[allow(deprecated)]
    let prestart = h.prestart().as_deref();
    [
        ("prestart", prestart),
        ("createRuntime", h.create_runtime().as_deref()),
        ("createContainer", h.create_container().as_deref()),
        ("poststart", h.poststart().as_deref()),
        ("poststop", h.poststop().as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect()
}

/// Refuse every hook of `spec` that the node does not allow. No I/O unless the spec has
/// hooks.
pub fn check(spec: &Spec, allow: &[PathBuf]) -> Result<(), HookError> {
    let start = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref());
    if start.is_some_and(|v| !v.is_empty()) {
        return Err(HookError::ContainerSide {
            field: "hooks.startContainer[0].path".into(),
        });
    }
    for (kind, hooks) in privileged(spec) {
        for (i, hook) in hooks.iter().enumerate() {
            let field = format!("hooks.{kind}[{i}].path");
            check_one(&field, hook.path(), allow)?;
        }
    }
    Ok(())
}

/// Give every hook without a positive `timeout` the node's default (libcontainer waits
/// for a hook without one forever, and reads -1 as about 584 billion years), and say so.
pub fn bound_timeouts(spec: &mut Spec, default_secs: u32) {
    let Some(mut hooks) = spec.hooks().clone() else {
        return;
    };
    let fix = |list: &mut Option<Vec<Hook>>, kind: &str| {
        for (i, h) in list.iter_mut().flatten().enumerate() {
            if h.timeout().is_none_or(|t| t <= 0) {
                tracing::info!(
                    "hooks.{kind}[{i}].timeout: {:?} is not a positive number of seconds; using the node's default {default_secs}",
                    h.timeout()
                );
                h.set_timeout(Some(i64::from(default_secs)));
            }
        }
    };
    #[allow(deprecated)]
    {
        let mut l = hooks.prestart().clone();
        fix(&mut l, "prestart");
        hooks.set_prestart(l);
    }
    let mut l = hooks.create_runtime().clone();
    fix(&mut l, "createRuntime");
    hooks.set_create_runtime(l);
    let mut l = hooks.create_container().clone();
    fix(&mut l, "createContainer");
    hooks.set_create_container(l);
    let mut l = hooks.start_container().clone();
    fix(&mut l, "startContainer");
    hooks.set_start_container(l);
    let mut l = hooks.poststart().clone();
    fix(&mut l, "poststart");
    hooks.set_poststart(l);
    let mut l = hooks.poststop().clone();
    fix(&mut l, "poststop");
    hooks.set_poststop(l);
    spec.set_hooks(Some(hooks));
}

/// Only components that name something: no `.`, `..`, no relative start.
fn plain_absolute(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn check_one(field: &str, path: &Path, allow: &[PathBuf]) -> Result<(), HookError> {
    let unsafe_ = |reason: String| HookError::Unsafe {
        field: field.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    // Exactly a listed path: libcontainer runs the hook by path (poststop only at delete),
    // so a path elsewhere that reaches the same file today may reach another one then.
    if !plain_absolute(path) || !allow.iter().any(|a| a == path) {
        return Err(HookError::NotAllowed {
            field: field.to_string(),
            path: path.to_path_buf(),
        });
    }
    let id = sysfs::open_path(None, path, sysfs::Walk::NoSymlinks)
        .and_then(|fd| sysfs::object(fd.as_fd(), path).map_err(|_| nix::errno::Errno::last()))
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP => unsafe_("a symlink is on the way to it".into()),
            e => unsafe_(format!("open (no symlinks): {e}")),
        })?;
    if id.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(unsafe_("not a regular file".into()));
    }
    if id.uid != 0 || id.mode & 0o022 != 0 {
        return Err(unsafe_(format!(
            "owned by uid {} with mode {:o}: must be owned by root and writable by nobody else",
            id.uid,
            id.mode & 0o7777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{HookBuilder, HooksBuilder};

    fn spec_with(kind: &str, path: &Path) -> Spec {
        let hook = HookBuilder::default().path(path).build().unwrap();
        let mut b = HooksBuilder::default();
        b = match kind {
            "createRuntime" => b.create_runtime(vec![hook]),
            "poststop" => b.poststop(vec![hook]),
            "startContainer" => b.start_container(vec![hook]),
            _ => unreachable!(),
        };
        let mut s = Spec::default();
        s.set_hooks(Some(b.build().unwrap()));
        s
    }

    #[test]
    fn only_listed_plain_root_owned_programs() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("hook");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&prog, &link).unwrap();
        assert!(check(&Spec::default(), &[]).is_ok());

        let e = check(&spec_with("createRuntime", &prog), &[]).unwrap_err();
        let t = e.to_string();
        assert!(t.starts_with("hooks.createRuntime[0].path: "), "{t}");
        assert!(t.contains("not in the node's [hooks] allow list"), "{t}");

        // A symlink to an allowed program is not the program; an allowed path that is a
        // symlink is refused.
        let e = check(&spec_with("poststop", &link), std::slice::from_ref(&prog)).unwrap_err();
        assert!(matches!(e, HookError::NotAllowed { .. }), "{e}");
        let e = check(&spec_with("poststop", &link), std::slice::from_ref(&link)).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");

        let e = check(
            &spec_with("startContainer", &prog),
            std::slice::from_ref(&prog),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("hooks.startContainer[0].path"),
            "{e}"
        );
        let dotted = dir.path().join("x/../hook");
        let e = check(
            &spec_with("poststop", &dotted),
            std::slice::from_ref(&dotted),
        )
        .unwrap_err();
        assert!(matches!(e, HookError::NotAllowed { .. }), "{e}");
    }

    #[test]
    fn hooks_without_a_positive_timeout_get_the_default() {
        let mk = |t: Option<i64>| {
            let mut b = HookBuilder::default().path("/h");
            if let Some(t) = t {
                b = b.timeout(t);
            }
            b.build().unwrap()
        };
        let mut s = Spec::default();
        s.set_hooks(Some(
            HooksBuilder::default()
                .poststart(vec![mk(Some(-1)), mk(None), mk(Some(0)), mk(Some(7))])
                .poststop(vec![mk(None)])
                .build()
                .unwrap(),
        ));
        bound_timeouts(&mut s, 30);
        let h = s.hooks().as_ref().unwrap();
        let t: Vec<_> = h
            .poststart()
            .iter()
            .flatten()
            .map(|h| h.timeout())
            .collect();
        assert_eq!(t, vec![Some(30), Some(30), Some(30), Some(7)]);
        assert_eq!(h.poststop().as_ref().unwrap()[0].timeout(), Some(30));
        let mut none = Spec::default();
        none.set_hooks(None);
        bound_timeouts(&mut none, 30);
        assert!(none.hooks().is_none());
    }

    #[test]
    fn root_owned_listed_program_passes() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root (file owned by root)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("hook");
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check(
            &spec_with("createRuntime", &prog),
            std::slice::from_ref(&prog)
        )
        .is_ok());
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check(
            &spec_with("createRuntime", &prog),
            std::slice::from_ref(&prog),
        )
        .unwrap_err();
        assert!(e.to_string().contains("writable by nobody else"), "{e}");
    }
}
