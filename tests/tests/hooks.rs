//! Hooks as the runtime spec says (issue 11, item 7), for programs the node allows: the state
//! on stdin carries the caller's bundle; a failing createRuntime hook fails create naming it;
//! a failing poststart is logged and start stands; a failing poststop is logged and delete
//! goes on; a hook without a timeout of its own gets Ward's default, one with a timeout is
//! killed at it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ward_tests::{assert_no_leftovers, require_root, unique_id, Bundle, Ward};

/// A root-owned hook program: `$1` names what to do.
fn program(dir: &Path) -> PathBuf {
    let p = dir.join("hook.sh");
    std::fs::write(
        &p,
        "#!/bin/sh\ncase \"$1\" in\n  save) cat > \"$2\" ;;\n  fail) cat >/dev/null; exit 3 ;;\n  hang) sleep 100 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn ward_allowing(dir: &Path, prog: &Path) -> Ward {
    let cfg = dir.join("ward.toml");
    std::fs::write(
        &cfg,
        format!("[hooks]\nallow = [{:?}]\n", prog.display().to_string()),
    )
    .unwrap();
    Ward::new().with_global(["--config".into(), cfg.into_os_string()])
}

fn hook(prog: &Path, args: &[&str], timeout: Option<i64>) -> Value {
    let mut argv = vec!["hook.sh".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let mut h = json!({"path": prog, "args": argv});
    if let Some(t) = timeout {
        h["timeout"] = json!(t);
    }
    h
}

#[test]
fn hooks_get_the_bundle_and_fail_as_the_spec_says() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let prog = program(dir.path());
    let ward = ward_allowing(dir.path(), &prog);
    let saved = dir.path().join("create.json");
    let started = dir.path().join("start.json");
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["hooks"] = json!({
            "createRuntime": [hook(&prog, &["save", saved.to_str().unwrap()], None)],
            "poststart": [hook(&prog, &["save", started.to_str().unwrap()], None)],
            "poststop": [hook(&prog, &["fail"], None)],
        })
    });
    let id = unique_id("hooks");
    ward.run_detached(&b, &id);
    let st: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let bundle = std::fs::canonicalize(b.path()).unwrap();
    assert_eq!(st["bundle"], json!(bundle), "{st}");
    assert_eq!(st["id"], json!(id));
    assert!(st["pid"].as_i64().unwrap() > 0, "{st}");
    let st2: Value = serde_json::from_slice(&std::fs::read(&started).unwrap()).unwrap();
    assert_eq!(st2["status"], "running");
    // A failing poststop hook: logged, and delete goes on and leaves nothing.
    let o = ward.output(&["delete", "--force", &id]);
    assert!(o.success(), "{o}");
    assert!(
        o.stderr.contains("hooks.poststop[0]"),
        "the failure is logged: {o}"
    );
    assert_no_leftovers(&ward, &id);

    // A failing createRuntime hook fails create, naming it, and leaves nothing.
    let mut b2 = Bundle::new(&["true"]);
    b2.edit(|c| c["hooks"] = json!({"createRuntime": [hook(&prog, &["fail"], None)]}));
    let id2 = unique_id("hookfail");
    let o = ward.run(&b2, &id2);
    assert!(!o.success(), "{o}");
    assert!(
        o.stderr.contains("hooks.createRuntime[0]") && o.stderr.contains("exited"),
        "{o}"
    );
    assert_no_leftovers(&ward, &id2);
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let prog = program(dir.path());
    let ward = ward_allowing(dir.path(), &prog);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["hooks"] = json!({"poststart": [hook(&prog, &["hang"], Some(1))]}));
    let id = unique_id("hookhang");
    let t = Instant::now();
    ward.run_detached(&b, &id);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "run -d waited {:?}",
        t.elapsed()
    );
    assert_eq!(ward.status(&id), "running");
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
}
