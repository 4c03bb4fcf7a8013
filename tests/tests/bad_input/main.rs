//! Bad and hostile input, as tables (issue "fails safe and says why"): config.json that is
//! no regular file or is huge, node configs and profiles that are devices or FIFOs, process
//! fields the init would fail on without a word, ids, annotations, rlimits, sysctls, cgroup
//! values, mounts, flags. Each case runs `ward run` under a time limit and must exit 1 with
//! exactly one stderr line naming the field (or flag, or path), and leave nothing behind
//! (harness: `ward_tests::table`).
//!
//! Cases already in refusals.rs are not repeated here.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use ward_tests::table::{case, spec, table, Flags};
use ward_tests::{require_root, unique_id, Bundle, Ward};

// linux: sysctls, cgroup values, mounts; annotations.
mod linux;
// process: args, env, user, cwd, rlimits, ...
mod process;

fn global(args: &[&str]) -> Flags {
    Flags {
        global: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// Write `text` as a file in `aux` and return its path.
fn aux_file(aux: &Path, name: &str, text: &str) -> PathBuf {
    let p = aux.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Replace config.json with something else.
fn replace_config(b: &Bundle, with: impl FnOnce(&Path)) {
    let c = b.config_path();
    std::fs::remove_file(&c).unwrap();
    with(&c);
}
/// Whether this process holds CAP_SYS_RESOURCE (then Ward may raise rlimits and lower
/// oom_score_adj, and those cases are not refusals).
fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 24) != 0
}

fn own_hard_nofile() -> Option<u64> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct rlimit into `l`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return None;
    }
    (l.rlim_max != libc::RLIM_INFINITY).then_some(l.rlim_max)
}

// ---- config.json itself ----

#[test]
fn config_json_files() {
    require_root!();
    table(vec![
        case(
            "config.json is a FIFO",
            |b, _| {
                replace_config(b, mkfifo);
                Flags::default()
            },
            &["config.json", "FIFO"],
        ),
        case(
            "config.json is a symlink to /dev/zero",
            |b, _| {
                replace_config(b, |c| std::os::unix::fs::symlink("/dev/zero", c).unwrap());
                Flags::default()
            },
            &["config.json", "symlink"],
        ),
        case(
            "config.json is a symlink to a valid config",
            |b, aux| {
                let real = aux.join("real.json");
                std::fs::copy(b.config_path(), &real).unwrap();
                replace_config(b, |c| std::os::unix::fs::symlink(&real, c).unwrap());
                Flags::default()
            },
            &["config.json", "symlink"],
        ),
        case(
            "config.json is a directory",
            |b, _| {
                replace_config(b, |c| std::fs::create_dir(c).unwrap());
                Flags::default()
            },
            &["config.json", "directory"],
        ),
        case(
            "config.json is missing",
            |b, _| {
                replace_config(b, |_| {});
                Flags::default()
            },
            &["config.json", "No such file"],
        ),
        case(
            "config.json of 5 MiB",
            |b, _| {
                let text = serde_json::to_string(b.config()).unwrap();
                b.write_raw(&format!("{text}{}", " ".repeat(5 << 20)));
                Flags::default()
            },
            &["config.json", "more than"],
        ),
        case(
            "config.json is not UTF-8",
            |b, _| {
                std::fs::write(b.config_path(), [b'{', 0xff, 0xfe, b'}']).unwrap();
                Flags::default()
            },
            &["config.json", "UTF-8"],
        ),
        case(
            "config.json with two process keys",
            |b, _| {
                let text = serde_json::to_string(b.config()).unwrap();
                let second =
                    r#"{"process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "#;
                b.write_raw(&format!("{second}{}", &text[1..]));
                Flags::default()
            },
            &["config.json", "duplicate field `process`"],
        ),
        case(
            "config.json is empty",
            |b, _| {
                b.write_raw("");
                Flags::default()
            },
            &["config.json", "EOF"],
        ),
        case(
            "config.json is null",
            |b, _| {
                b.write_raw("null");
                Flags::default()
            },
            &["config.json"],
        ),
        spec(
            "process.args is a string",
            |c| c["process"]["args"] = json!("true"),
            &["config.json", "invalid type"],
        ),
        spec(
            "annotation value is a number",
            |c| c["annotations"] = json!({"x": 5}),
            &["config.json", "invalid type"],
        ),
        spec(
            "unknown rlimit type",
            |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]),
            &["config.json", "RLIMIT_BOGUS"],
        ),
        case(
            "--bundle does not exist",
            |_, aux| Flags {
                bundle: Some(aux.join("none")),
                ..Default::default()
            },
            &["bundle"],
        ),
    ]);
}

// ---- node config and profiles ----

#[test]
fn node_config_and_profiles() {
    require_root!();
    table(vec![
        case(
            "--config /dev/zero",
            |_, _| global(&["--config", "/dev/zero"]),
            &["/dev/zero", "character device"],
        ),
        case(
            "--config is a FIFO",
            |_, aux| {
                mkfifo(&aux.join("fifo"));
                global(&["--config", &s(&aux.join("fifo"))])
            },
            &["fifo", "FIFO"],
        ),
        case(
            "--config is a directory",
            |_, aux| global(&["--config", &s(aux)]),
            &["directory"],
        ),
        case(
            "--config of 5 MiB",
            |_, aux| {
                let p = aux_file(aux, "big.toml", &"# padding\n".repeat(600_000));
                global(&["--config", &s(&p)])
            },
            &["big.toml", "more than"],
        ),
        case(
            "--config not UTF-8",
            |_, aux| {
                std::fs::write(aux.join("bin.toml"), [0xff, 0xfe]).unwrap();
                global(&["--config", &s(&aux.join("bin.toml"))])
            },
            &["bin.toml", "UTF-8"],
        ),
        case(
            "relative userns.claims_dir",
            |_, aux| {
                let p = aux_file(aux, "w.toml", "[userns]\nclaims_dir = \"claims\"\n");
                global(&["--config", &s(&p)])
            },
            &["userns.claims_dir", "absolute"],
        ),
        case(
            "hooks.default_timeout_secs = 0",
            |_, aux| {
                let p = aux_file(aux, "w.toml", "[hooks]\ndefault_timeout_secs = 0\n");
                global(&["--config", &s(&p)])
            },
            &["hooks.default_timeout_secs"],
        ),
        case(
            "profile extends /dev/zero",
            |_, aux| {
                let p = aux_file(aux, "p.toml", "name = \"p\"\nextends = \"/dev/zero\"\n");
                global(&["--profile", &s(&p)])
            },
            &["/dev/zero", "character device"],
        ),
        case(
            "profile extends a FIFO",
            |_, aux| {
                mkfifo(&aux.join("fifo"));
                let p = aux_file(
                    aux,
                    "p.toml",
                    &format!("name = \"p\"\nextends = {:?}\n", s(&aux.join("fifo"))),
                );
                global(&["--profile", &s(&p)])
            },
            &["fifo", "FIFO"],
        ),
        case(
            "--profile is a FIFO",
            |_, aux| {
                mkfifo(&aux.join("p.toml"));
                global(&["--profile", &s(&aux.join("p.toml"))])
            },
            &["p.toml", "FIFO"],
        ),
        case(
            "--profile /dev/zero",
            |_, _| global(&["--profile", "/dev/zero"]),
            &["/dev/zero", "character device"],
        ),
    ]);
}

// ---- ids, flags, hooks ----

fn id(id: &str) -> Flags {
    Flags {
        id: Some(id.to_string()),
        ..Default::default()
    }
}

/// A root-owned hook program (the node's allow list wants that) in `aux`.
fn hook_program(aux: &Path, body: &str) -> PathBuf {
    let p = aux.join("hook.sh");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(aux, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn ids_flags_and_hooks() {
    require_root!();
    table(vec![
        case(
            "id of 2000 characters",
            |_, _| id(&"a".repeat(2000)),
            &["container id"],
        ),
        case("id with a newline", |_, _| id("a\nb"), &["container id"]),
        case("id with a space", |_, _| id("a b"), &["container id"]),
        case("id .", |_, _| id("."), &["container id"]),
        case("id ..", |_, _| id(".."), &["container id"]),
        case(
            "--pid-file in a missing directory",
            |_, aux| Flags {
                run: vec!["--pid-file".into(), s(&aux.join("no/such/dir/pid"))],
                ..Default::default()
            },
            &["--pid-file", "no/such/dir"],
        ),
        case(
            "--pid-file is a directory",
            |_, aux| Flags {
                run: vec!["--pid-file".into(), s(aux)],
                ..Default::default()
            },
            &["--pid-file", "directory"],
        ),
        case(
            "allowed hook that does not exist",
            |b, aux| {
                let hook = aux.join("gone.sh");
                let cfg = aux_file(
                    aux,
                    "w.toml",
                    &format!("[hooks]\nallow = [{:?}]\n", s(&hook)),
                );
                b.edit(|c| c["hooks"] = json!({"poststart": [{"path": hook}]}));
                global(&["--config", &s(&cfg)])
            },
            &["hooks.poststart[0].path", "gone.sh", "ENOENT"],
        ),
    ]);
}

/// `start` reports the program's exec failure itself, before it returns (runc does the
/// same); the container is then stopped and deletes cleanly.
#[test]
fn start_reports_exec_failure() {
    require_root!();
    let mut b = Bundle::new(&["dynls"]);
    b.add_host_binary_alone(Path::new("/bin/ls"), "/bin/dynls");
    let ward = Ward::new();
    let id = unique_id("startfail");
    let o = ward.create(&b, &id);
    assert!(o.success(), "{o}");
    let o = ward.output(&["start", &id]);
    assert_eq!(o.code, Some(1), "{o}");
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    assert!(
        o.stderr.contains("process.args[0]: exec \"dynls\": ENOENT"),
        "{o}"
    );
    assert_eq!(ward.status(&id), "stopped");
    ward.ok(&["delete", &id]);
    ward_tests::assert_no_leftovers(&ward, &id);
}

/// A relative `--root` is taken from the current directory (it used to fail with "oci spec
/// error: io operation failed" and leave a state dir behind).
#[test]
fn relative_root_works() {
    require_root!();
    let b = Bundle::new(&["true"]);
    let cwd = tempfile::tempdir().unwrap();
    let id = unique_id("relroot");
    let o = std::process::Command::new(ward_tests::ward::ward_bin())
        .current_dir(cwd.path())
        .args(["--root", "state", "run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ward_dir = cwd.path().join("state/.ward");
    assert!(ward_dir.join("ranges.json").is_file());
    assert!(!ward_dir.join(&id).exists(), "state dir left behind");
}

/// `ward exec` into a running container: the same checks, one line each, and the container
/// keeps running.
#[test]
fn exec_refusals() {
    require_root!();
    let b = Bundle::new(&["sleep", "1000"]);
    let ward = Ward::new();
    let id = unique_id("execbad");
    ward.run_detached(&b, &id);
    let aux = tempfile::tempdir().unwrap();
    mkfifo(&aux.path().join("fifo"));
    let nul = aux_file(
        aux.path(),
        "nul.json",
        r#"{"user": {"uid": 0, "gid": 0}, "args": ["echo", "a\u0000b"], "cwd": "/"}"#,
    );
    let missing = aux.path().join("no/dir/pid");
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (
            vec!["--user".into(), "70000".into(), id.clone(), "true".into()],
            &["process.user.uid", "70000"],
        ),
        (
            vec![
                "--user".into(),
                "0:4294967295".into(),
                id.clone(),
                "true".into(),
            ],
            &["process.user.gid", "4294967295"],
        ),
        (
            vec!["--pid-file".into(), s(&missing), id.clone(), "true".into()],
            &["--pid-file", "no/dir"],
        ),
        (
            vec!["--process".into(), s(&nul), id.clone()],
            &["process.args[1]", "NUL"],
        ),
        (
            vec!["--process".into(), s(&aux.path().join("fifo")), id.clone()],
            &["--process", "FIFO"],
        ),
        (
            vec!["--process".into(), "/dev/zero".into(), id.clone()],
            &["--process", "character device"],
        ),
    ];
    for (args, expect) in cases {
        let mut full = vec!["exec".to_string()];
        full.extend(args);
        let o = ward_tests::table::run_limited(&ward, &full).unwrap();
        assert_eq!(o.code, Some(1), "{full:?}: {o}");
        assert_eq!(o.stderr_lines().len(), 1, "{full:?}: {o}");
        for f in expect {
            assert!(o.stderr.contains(f), "{full:?}: stderr lacks {f:?}: {o}");
        }
        eprintln!("refused as expected: {}", o.stderr.trim());
    }
    assert_eq!(ward.status(&id), "running");
    ward.ok(&["delete", "--force", &id]);
    ward_tests::assert_no_leftovers(&ward, &id);
}

/// A poststart hook with `timeout: -1` that never ends gets the node's
/// `[hooks] default_timeout_secs`: `run -d` comes back (the runtime spec has start go on after
/// a failed poststart hook, with a warning naming it) instead of hanging with all its state.
#[test]
fn poststart_hook_without_a_timeout_does_not_hold_run() {
    require_root!();
    let aux = tempfile::tempdir().unwrap();
    let hook = hook_program(aux.path(), "exec sleep 1000");
    let cfg = aux_file(
        aux.path(),
        "w.toml",
        &format!(
            "[hooks]\nallow = [{:?}]\ndefault_timeout_secs = 1\n",
            s(&hook)
        ),
    );
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["hooks"] = json!({"poststart": [{"path": hook, "timeout": -1}]}));
    let ward = Ward::new().with_global(["--config".to_string(), s(&cfg)]);
    let id = unique_id("hookto");
    let args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--bundle".into(),
        s(b.path()),
        id.clone(),
    ];
    let t = std::time::Instant::now();
    let o = ward_tests::table::run_limited(&ward, &args).unwrap();
    let took = t.elapsed();
    eprintln!("run -d took {took:?}: {}", o.stderr.trim());
    assert_eq!(o.code, Some(0), "{o}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(o.stderr.contains("hooks.poststart[0]"), "{o}");
    assert!(o.stderr.contains("timed out after 1s"), "{o}");
    ward.track(ward.pid(&id));
    assert_eq!(ward.status(&id), "running");
    ward.ok(&["delete", "--force", &id]);
    ward_tests::assert_no_leftovers(&ward, &id);
}
