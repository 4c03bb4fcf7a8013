//! Terminals as runc users know them: `ward run` of a `process.terminal` bundle and
//! `ward exec -t`, in the foreground with no `--console-socket`, get a pty that Ward holds;
//! a bare `exec` command line starts from the container's own process (env, cwd).
//! A real terminal comes from util-linux `script`.

use std::process::Command;

use serde_json::json;
use ward_tests::{
    assert_no_leftovers, assert_root_clean, require_root, strip_ansi, unique_id, Bundle, Ward,
};

/// Run `ward ARGS` under `script` (a real pty on its stdin/stdout); returns (exit, output).
fn in_terminal(ward: &Ward, args: &[&str]) -> (Option<i32>, String) {
    let mut line = format!("{} --root {}", ward.bin().display(), ward.root().display());
    for a in args {
        line.push(' ');
        line.push_str(&ward_tests::probe::sh_quote(a));
    }
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn script (util-linux)");
    // `script` forwards a NUL from its own (null) stdin, which the pty echoes as "^@".
    let out = strip_ansi(&String::from_utf8_lossy(&o.stdout))
        .replace('\r', "")
        .replace("^@", "");
    (o.status.code(), out)
}

/// Private console directories Ward made and did not remove.
fn console_dirs() -> Vec<String> {
    std::fs::read_dir("/run")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ward-tty-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn run_and_exec_with_a_terminal_in_the_foreground() {
    require_root!();
    let ward = Ward::new();

    // run: process.terminal = true, no --console-socket.
    let mut b =
        Bundle::sh("tty; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 3");
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = unique_id("tty-run");
    let (code, out) = in_terminal(&ward, &["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(
        code,
        Some(3),
        "exit code of the container through the pty:\n{out}"
    );
    assert!(
        out.contains("/dev/pts/"),
        "stdin is not a pty inside:\n{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert_no_leftovers(&ward, &id);

    // exec -t into a running container, and a plain exec that inherits env and cwd.
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("WARD_TTY_TEST=from-config"));
        c["process"]["cwd"] = json!("/tmp");
    });
    let id = unique_id("tty-exec");
    ward.run_detached(&b, &id);
    let init = ward.pid(&id);
    let (code, out) = in_terminal(
        &ward,
        &[
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "tty; cat /proc/self/uid_map; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 7",
        ],
    );
    assert_eq!(code, Some(7), "exit code of exec -t:\n{out}");
    assert!(
        out.contains("/dev/pts/"),
        "exec -t: stdin is not a pty:\n{out}"
    );
    let init_map = std::fs::read_to_string(format!("/proc/{init}/uid_map")).unwrap();
    let init_map: Vec<&str> = init_map.split_whitespace().collect();
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == init_map),
        "exec -t is not in the init's user namespace ({init_map:?}):\n{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );

    let plain = ward.ok(&["exec", &id, "sh", "-c", "echo $WARD_TTY_TEST; pwd"]);
    assert_eq!(
        plain.lines().collect::<Vec<_>>(),
        ["from-config", "/tmp"],
        "a bare exec does not start from the container's process"
    );

    // Detached with a terminal and nowhere to send it: refused, as runc.
    let o = ward.output(&["exec", "-t", "-d", &id, "true"]);
    assert!(!o.success());
    assert!(o.stderr.contains("--console-socket"), "{o}");

    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);

    let mut b = Bundle::new(&["true"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = unique_id("tty-detach");
    let o = ward.output(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(
        !o.success(),
        "a detached terminal without a console socket ran"
    );
    assert!(o.stderr.contains("process.terminal"), "{o}");
    assert_no_leftovers(&ward, &id);
    assert_root_clean(&ward);
    assert!(
        console_dirs().is_empty(),
        "console dirs left: {:?}",
        console_dirs()
    );
}
