//! `[rootfs]`: a writable rootfs is off unless a profile allows it; errors name the key;
//! inheritance, canonical form and Landlock follow it.

use ward_profiles::*;

const BASE: &str = "[seccomp]\ndefault_action = \"allow\"\n";

fn err(text: &str) -> String {
    parse("t.toml", text, &[]).unwrap_err().to_string()
}

#[test]
fn off_by_default_everywhere() {
    for name in builtin_names() {
        let p = load(name, &[]).unwrap();
        assert_eq!(p.rootfs(), &RootfsPolicy::default(), "{name}");
        assert_eq!(p.rootfs().writable_size(), None, "{name}");
    }
    let p = parse("t.toml", BASE, &[]).unwrap();
    assert!(!p.rootfs().writable);
}

#[test]
fn writable_with_size() {
    let p = parse(
        "t.toml",
        &format!("{BASE}[rootfs]\nwritable = true\nsize = \"64M\"\n"),
        &[],
    )
    .unwrap();
    assert_eq!(p.rootfs().writable_size(), Some(64 << 20));
    assert!(
        lint(&p)
            .iter()
            .any(|f| f.severity == Severity::Warning && f.message.starts_with("rootfs.writable")),
        "{:?}",
        lint(&p)
    );
    assert!(!lint(&parse("t.toml", BASE, &[]).unwrap())
        .iter()
        .any(|f| f.message.starts_with("rootfs")));
    // The canonical form keeps it (and parses back equal); the hash sees it.
    let again = parse("t.toml", &p.to_toml(), &[]).unwrap();
    assert_eq!(again, p);
    assert_ne!(p.hash(), parse("t.toml", BASE, &[]).unwrap().hash());
    // A child replaces the table as a whole.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.toml"), p.to_toml()).unwrap();
    let dirs = [dir.path().to_path_buf()];
    let child = parse("c.toml", "extends = \"w\"\n", &dirs).unwrap();
    assert_eq!(child.rootfs().writable_size(), Some(64 << 20));
    let off = parse(
        "c.toml",
        "extends = \"w\"\n[rootfs]\nwritable = false\n",
        &dirs,
    )
    .unwrap();
    assert_eq!(off.rootfs().writable_size(), None);
    assert!(diff(&p, &off).lines.iter().any(|l| l.contains("rootfs")));
}

#[test]
fn errors_name_the_key() {
    let e = err(&format!("{BASE}[rootfs]\nwritable = true\n"));
    assert!(
        e.starts_with("t.toml:3: rootfs.size: required when rootfs.writable = true"),
        "{e}"
    );
    let e = err(&format!(
        "{BASE}[rootfs]\nwritable = true\nsize = \"64X\"\n"
    ));
    assert!(e.starts_with("t.toml:5: rootfs.size: size \"64X\""), "{e}");
    let e = err(&format!("{BASE}[rootfs]\nsize = \"64M\"\n"));
    assert!(
        e.starts_with("t.toml:4: rootfs.size: only meaningful with rootfs.writable = true"),
        "{e}"
    );
    let e = err(&format!("{BASE}[rootfs]\nwritable = \"yes\"\n"));
    assert!(e.starts_with("t.toml:4: rootfs.writable:"), "{e}");
    let e = err(&format!(
        "{BASE}[rootfs]\nwritable = true\nsize = 1\nupper = \"/x\"\n"
    ));
    assert!(e.starts_with("t.toml:6: rootfs.(unknown key):"), "{e}");
}

#[test]
fn landlock_writes_to_root_only_when_profile_and_spec_agree() {
    let get = |plan: &LandlockPlan| plan.rules.iter().find(|r| r.path == "/").unwrap().access;
    let allowed = parse(
        "t.toml",
        &format!("{BASE}[rootfs]\nwritable = true\nsize = \"1M\"\n"),
        &[],
    )
    .unwrap();
    let default = load("default", &[]).unwrap();
    assert_eq!(
        get(&landlock_plan_rootfs(&allowed, &[], true)),
        FsAccess::ReadWriteExec
    );
    assert_eq!(
        get(&landlock_plan_rootfs(&allowed, &[], false)),
        FsAccess::ReadExec
    );
    // The spec asked, the profile does not allow it: `/` stays read-only.
    assert_eq!(
        get(&landlock_plan_rootfs(&default, &[], true)),
        FsAccess::ReadExec
    );
    assert_eq!(
        landlock_plan(&allowed, &[]),
        landlock_plan_rootfs(&allowed, &[], false)
    );
}
