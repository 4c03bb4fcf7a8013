//! Lint regressions found by the fuzz harnesses.

use super::*;

fn errors(text: &str) -> Vec<String> {
    let p = crate::parse("t.toml", text, &[]).unwrap();
    lint(&p)
        .into_iter()
        .filter(|f| matches!(f.severity, Severity::Error))
        .map(|f| f.message)
        .collect()
}

/// A clone filter that denies some namespace flags but not CLONE_NEWUSER used to pass lint
/// (it only asked whether clone had any deny rule).
#[test]
fn clone_filter_missing_newuser_is_an_error() {
    let e = errors(
        r#"name = "t"
[seccomp]
default_action = "allow"
deny = ["@ward-dangerous"]
[[seccomp.rule]]
syscall = "clone"
action = "errno"
args = [{ index = 0, op = "any_set", mask = "CLONE_NEWNS|CLONE_NEWNET" }]
"#,
    );
    let clone: Vec<_> = e.iter().filter(|m| m.starts_with("clone")).collect();
    assert_eq!(clone.len(), 1, "{e:?}");
    assert!(
        clone[0].contains("CLONE_NEWUSER") && !clone[0].contains("CLONE_NEWNS"),
        "{e:?}"
    );
}

#[test]
fn builtins_have_no_clone_error() {
    for name in crate::builtin_names() {
        if *name == "record" {
            continue;
        }
        let p = crate::load(name, &[]).unwrap();
        let e: Vec<_> = lint(&p)
            .into_iter()
            .filter(|f| matches!(f.severity, Severity::Error) && f.message.starts_with("clone"))
            .collect();
        assert!(e.is_empty(), "{name}: {e:?}");
    }
}
