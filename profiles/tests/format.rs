//! Parsing, located errors, inheritance, cycles, groups and argument rules.

use std::path::PathBuf;

use ward_profiles::*;

fn err(text: &str) -> String {
    parse("t.toml", text, &[]).unwrap_err().to_string()
}

#[test]
fn errors_name_file_line_and_key() {
    let e = err("name = \"t\"\n[seccomp]\ndefault_action = \"allow\"\nallow = [\n  \"read\",\n  \"fooo\",\n]\n");
    assert_eq!(e, "t.toml:6: seccomp.allow: unknown syscall \"fooo\"");
    let e = err("name = \"t\"\n[seccomp]\ndefault_action = \"deny-all\"\n");
    assert!(
        e.starts_with("t.toml:3: seccomp.default_action: unknown action"),
        "{e}"
    );
    let e = err("name = \"t\"\n[seccomp]\ndefault_action = \"allow\"\nbogus = 1\n");
    assert!(
        e.starts_with("t.toml:4: seccomp.(unknown key):") && e.contains("unknown field"),
        "{e}"
    );
    let e = err("name = \"t\"\n[seccomp]\ndefault_action = \"allow\"\n\n[[seccomp.rule]]\nsyscall = \"socket\"\naction = \"errno\"\nargs = [{ index = 0, op = \"eq\", value = \"AF_NOPE\" }]\n");
    assert!(
        e.starts_with("t.toml:8: seccomp.rule[0].args[0]: unknown constant \"AF_NOPE\""),
        "{e}"
    );
    let e = err("[seccomp]\ndefault_action = \"allow\"\ndeny = [\"@nope\"]\n");
    assert!(
        e.contains("t.toml:3: seccomp.deny: unknown syscall group \"@nope\""),
        "{e}"
    );
    let e = err("[seccomp]\n");
    assert!(e.contains("seccomp.default_action: required"), "{e}");
    let e = err("capabilities = [\"CAP_SYS_FOO\"]\n[seccomp]\ndefault_action = \"allow\"\n");
    assert_eq!(
        e,
        "t.toml:1: capabilities: unknown capability \"CAP_SYS_FOO\""
    );
    let e =
        err("[seccomp]\ndefault_action = \"allow\"\n[[tmpfs]]\npath = \"tmp\"\nsize = \"1M\"\n");
    assert!(
        e.starts_with("t.toml:4: tmpfs[0].path: path \"tmp\" must be absolute"),
        "{e}"
    );
    let e = err("[seccomp]\ndefault_action = \"allow\"\n[limits]\nmemory = \"12X\"\n");
    assert!(e.starts_with("t.toml:4: limits.memory:"), "{e}");
    let e = err("[seccomp]\ndefault_action = \"allow\"\nallow = [\"read:ENOSYS\"]\n");
    assert!(e.contains("only `deny` entries"), "{e}");
}

#[test]
fn inheritance_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.toml"),
        "description = \"base\"\ncapabilities = [\"CAP_CHOWN\"]\n[seccomp]\ndefault_action = \"errno\"\nallow = [\"@basic-io\", \"getpid\"]\ndeny = [\"ptrace\"]\n[limits]\npids = 10\nmemory = \"1M\"\n",
    )
    .unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    let child = "extends = \"base\"\n[seccomp]\nremove = [\"ptrace\", \"getpid\"]\nallow = [\"ptrace\"]\n[limits]\npids = 20\n";
    let p = parse("child.toml", child, &dirs).unwrap();
    assert_eq!(p.name(), "child");
    assert_eq!(p.description(), "base");
    assert_eq!(p.capabilities(), ["CAP_CHOWN"]);
    assert_eq!(p.limits().pids, Some(20));
    assert_eq!(p.limits().memory_bytes, Some(1 << 20));
    let pol = p.seccomp();
    assert_eq!(pol.default_action, Action::Errno(1));
    assert_eq!(unconditional(pol, "ptrace"), Some(Action::Allow));
    assert_eq!(
        unconditional(pol, "getpid"),
        Some(Action::Errno(1)),
        "removed"
    );
    assert_eq!(
        unconditional(pol, "pread64"),
        Some(Action::Allow),
        "inherited group"
    );
    // Without `remove`, deny wins over the child's allow.
    let p = parse(
        "c2.toml",
        "extends = \"base\"\n[seccomp]\nallow = [\"ptrace\"]\n",
        &dirs,
    )
    .unwrap();
    assert_eq!(unconditional(p.seccomp(), "ptrace"), Some(Action::Errno(1)));
    // Load by name from a directory, and by path.
    std::fs::write(dir.path().join("child.toml"), child).unwrap();
    assert_eq!(
        load("child", &dirs).unwrap(),
        parse("child.toml", child, &dirs).unwrap()
    );
    let path = dir.path().join("child.toml");
    let by_path = load(path.to_str().unwrap(), &dirs).unwrap();
    assert_eq!(by_path.name(), "child");
    assert!(matches!(
        load("nope", &dirs),
        Err(ProfileError::NotFound { .. })
    ));
    let e = parse("c3.toml", "extends = \"missing\"\n", &dirs)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "c3.toml:1: extends: no profile named \"missing\"");
}

#[test]
fn cycles_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "extends = \"b\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "extends = \"c\"\n").unwrap();
    std::fs::write(dir.path().join("c.toml"), "extends = \"a\"\n").unwrap();
    std::fs::write(dir.path().join("self.toml"), "extends = \"self\"\n").unwrap();
    let dirs: Vec<PathBuf> = vec![dir.path().into()];
    match load("a", &dirs) {
        Err(ProfileError::Cycle { chain }) => assert_eq!(chain, ["a", "b", "c", "a"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load("self", &dirs),
        Err(ProfileError::Cycle { .. })
    ));
}

#[test]
fn groups_expand_and_named_entries_override() {
    let p = load("default", &[]).unwrap();
    for s in group("@mount").unwrap().syscalls {
        assert!(
            matches!(unconditional(p.seccomp(), s), Some(Action::Errno(_))),
            "{s}"
        );
    }
    // clone3 is in @ward-dangerous (EPERM) and named with ENOSYS: the named entry wins.
    assert_eq!(
        unconditional(p.seccomp(), "clone3"),
        Some(Action::Errno(38))
    );
    let shown = p.to_toml();
    assert!(shown.contains("\"clone3:ENOSYS\""), "{shown}");
    assert!(
        shown.contains("\"fsconfig\",  # errno:EPERM via @"),
        "{shown}"
    );
    assert!(!shown.contains("extends"));
}

#[test]
fn arg_rules_validate_and_expand() {
    let base = "[seccomp]\ndefault_action = \"errno\"\n[[seccomp.rule]]\nsyscall = \"socket\"\naction = \"allow\"\n";
    let ok = format!("{base}args = [{{ index = 0, op = \"in\", values = [\"AF_UNIX\", 2] }}, {{ index = 1, op = \"none_set\", mask = \"SOCK_NONBLOCK\" }}]\n");
    let p = parse("t.toml", &ok, &[]).unwrap();
    let arch = Arch::native();
    let nr = arch.syscall_number("socket").unwrap();
    assert_eq!(
        evaluate(p.seccomp(), arch, nr, &[1, 1, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, nr, &[2, 1, 0, 0, 0, 0]),
        Action::Allow
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, nr, &[2, 0o4001, 0, 0, 0, 0]),
        Action::Errno(1)
    );
    assert_eq!(
        evaluate(p.seccomp(), arch, nr, &[10, 1, 0, 0, 0, 0]),
        Action::Errno(1)
    );
    for (args, msg) in [
        ("[{ index = 6, op = \"eq\", value = 1 }]", "out of range"),
        ("[{ index = 0, op = \"like\", value = 1 }]", "unknown op"),
        ("[{ index = 0, op = \"masked_eq\", value = 1 }]", "needs `mask`"),
        ("[{ index = 0, op = \"any_set\", mask = 0 }]", "must not be 0"),
        ("[{ index = 0, op = \"eq\", value = 1, values = [2] }]", "does not use"),
        ("[]", "at least one arg"),
        ("[{ index = 0, op = \"any_set\", mask = \"0xffffffff\" }, { index = 1, op = \"in\", values = [1,2,3] }]", "max 64"),
    ] {
        let e = parse("t.toml", &format!("{base}args = {args}\n"), &[]).unwrap_err().to_string();
        assert!(e.contains(msg), "{args}: {e}");
    }
}

#[test]
fn hash_is_stable_and_sensitive() {
    let a = load("restricted", &[]).unwrap();
    assert_eq!(a.hash(), load("restricted", &[]).unwrap().hash());
    assert_eq!(a.hash().len(), 64);
    assert_ne!(a.hash(), load("python-worker", &[]).unwrap().hash());
}

#[test]
fn typed_accessors() {
    let p = load("nginx", &[]).unwrap();
    assert!(p
        .capabilities()
        .contains(&"CAP_NET_BIND_SERVICE".to_string()));
    assert_eq!(p.shareable_namespaces(), ["network"]);
    assert_eq!(p.landlock().tcp_bind, Some(vec![80, 443, 8080]));
    assert_eq!(p.landlock().tcp_connect, None);
    let d = load("default", &[]).unwrap();
    assert_eq!(
        d.tmpfs(),
        [Tmpfs {
            path: "/tmp".into(),
            size_bytes: 64 << 20,
            mode: 0o1777,
            noexec: false
        }]
    );
    assert_eq!(d.limits().pids, Some(1024));
    assert_eq!(d.limits().memory_bytes, Some(512 << 20));
    assert_eq!(d.limits().cpu_shares, Some(1024));
    let w = load("python-worker", &[]).unwrap();
    assert_eq!(w.tmpfs().len(), 2);
    assert_eq!(w.landlock().tcp_bind, Some(vec![]));
}

#[test]
fn landlock_plans() {
    let mounts = [
        MountAccess {
            path: "/data".into(),
            writable: true,
        },
        MountAccess {
            path: "/etc/config/".into(),
            writable: false,
        },
        MountAccess {
            path: "/dev/shm".into(),
            writable: true,
        },
    ];
    let get =
        |plan: &LandlockPlan, p: &str| plan.rules.iter().find(|r| r.path == p).map(|r| r.access);
    let d = landlock_plan(&load("default", &[]).unwrap(), &mounts);
    assert_eq!(get(&d, "/"), Some(FsAccess::ReadExec));
    assert_eq!(get(&d, "/data"), Some(FsAccess::ReadWrite));
    assert_eq!(get(&d, "/etc/config"), Some(FsAccess::ReadExec));
    assert_eq!(get(&d, "/dev/null"), Some(FsAccess::ReadWrite));
    assert_eq!(get(&d, "/dev/shm"), Some(FsAccess::ReadWrite));
    assert_eq!(get(&d, "/tmp"), Some(FsAccess::ReadWriteExec));
    assert_eq!(get(&d, "/usr/bin"), None);
    let s = landlock_plan(&load("strict", &[]).unwrap(), &mounts);
    assert_eq!(get(&s, "/"), Some(FsAccess::Read));
    assert_eq!(get(&s, "/usr/bin"), Some(FsAccess::ReadExec));
    assert_eq!(get(&s, "/lib64"), Some(FsAccess::ReadExec));
    assert_eq!(get(&s, "/etc/config"), Some(FsAccess::Read));
    assert_eq!(get(&s, "/tmp"), Some(FsAccess::ReadWrite));
    assert_eq!(s.tcp_bind, Some(vec![]));
    assert_eq!(d.tcp_bind, None);
}

/// `extends` may name any readable file (`/etc/shadow`): an error about it must not print
/// any of its text, whether it is not TOML at all or TOML of another shape.
#[test]
fn errors_never_print_the_contents_of_an_extended_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "shadow",
            "root:$y$j9T$S3CRETHASH$xyz:19000:0:99999:7:::\nbin:*:19000::::::\n",
        ),
        ("pass", "S3CRETHASH\n"),
        ("creds", "token = \"S3CRETHASH\"\n"),
        (
            "creds2",
            "[seccomp]\ndefault_action = \"allow\"\nS3CRETHASH = 1\n",
        ),
        ("creds3", "name = \"x\"\n[limits]\npids = \"S3CRETHASH\"\n"),
    ];
    for (name, text) in cases {
        let secret = dir.path().join(name);
        std::fs::write(&secret, text).unwrap();
        let child = dir.path().join(format!("child-{name}.toml"));
        std::fs::write(
            &child,
            format!(
                "name = \"child\"\nextends = {:?}\n",
                secret.display().to_string()
            ),
        )
        .unwrap();
        let e = load(child.to_str().unwrap(), &[]).unwrap_err().to_string();
        assert!(!e.contains("S3CRET"), "{name}: error prints file text: {e}");
        assert!(e.contains(&secret.display().to_string()), "{name}: {e}");
        eprintln!("{name}: {e}");
    }
}
