//! `ctr` end to end, each case against every runtime under test
//! (`io.containerd.runc.v2` always, `io.containerd.ward.v2` once its shim
//! answers). Assertions marked WARD-ONLY run only against Ward.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{cid, ctr_run, errtext, text, Containerd, WARD_RUNTIME};
use ward_integration::image::BUSYBOX;
use ward_integration::procfs::SandboxFacts;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

/// Start `id` detached running `args`.
fn run_detached(c: &Containerd, rt: &str, flags: &[&str], id: &str, args: &[&str]) {
    let mut cmd = c.ctr_cmd(Some("default"));
    cmd.args(["run", "-d", "--runtime", rt]);
    if rt == WARD_RUNTIME {
        cmd.arg("--runtime-config-path").arg(&c.ward_config);
    }
    let out = cmd
        .args(flags)
        .arg(BUSYBOX)
        .arg(id)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ctr run -d {id}: {}", errtext(&out));
}

/// `(pid, status)` of task `id` from `ctr tasks ls`.
fn task_state(c: &Containerd, id: &str) -> Option<(u32, String)> {
    let ls = c.ctr_ok("default", &["tasks", "ls"]).ok()?;
    ls.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    })
}

fn wait_state(c: &Containerd, id: &str, want: &str, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if task_state(c, id).is_some_and(|(_, s)| s == want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn remove(c: &Containerd, id: &str) {
    let _ = c.ctr(
        Some("default"),
        &["tasks", "kill", "-a", "-s", "SIGKILL", id],
    );
    wait_state(c, id, "STOPPED", Duration::from_secs(10));
    let _ = c.ctr(Some("default"), &["tasks", "delete", "-f", id]);
    let _ = c.ctr(Some("default"), &["containers", "delete", id]);
}

#[test]
fn exit_codes_stdio_and_terminal() {
    common::each_containerd("exit_codes_stdio_and_terminal", |c| {
        for rt in common::runtimes_under_test() {
            let out = ctr_run(c, rt, &[], &cid(rt, "exit7"), &["sh", "-c", "exit 7"]);
            assert_eq!(code(&out), Some(7), "{rt}: {}", errtext(&out));

            let out = ctr_run(c, rt, &[], &cid(rt, "true"), &["/bin/true"]);
            assert_eq!(code(&out), Some(0), "{rt}: {}", errtext(&out));

            // Reopening stdout/stderr by path, as the official nginx image's log symlinks do:
            // under Ward containerd's FIFOs go to the container's root and its Landlock
            // ruleset allows exactly them.
            let out = ctr_run(
                c,
                rt,
                &[],
                &cid(rt, "reopen"),
                &[
                    "sh",
                    "-c",
                    "echo to-dev-stdout > /dev/stdout && echo to-dev-stderr > /dev/stderr",
                ],
            );
            assert_eq!(code(&out), Some(0), "{rt}: {}", errtext(&out));
            assert!(
                text(&out).contains("to-dev-stdout"),
                "{rt}: {}",
                errtext(&out)
            );
            assert!(
                errtext(&out).contains("to-dev-stderr"),
                "{rt}: {}",
                errtext(&out)
            );

            // stdin → container → stdout. ctr 1.6 does not pass stdin's EOF on,
            // so the container reads a known number of lines.
            let mut cmd = c.ctr_cmd(Some("default"));
            cmd.args(["run", "--rm", "--runtime", rt]);
            if rt == WARD_RUNTIME {
                cmd.arg("--runtime-config-path").arg(&c.ward_config);
            }
            let mut child = cmd
                .args([
                    BUSYBOX,
                    &cid(rt, "cat"),
                    "sh",
                    "-c",
                    "head -n 2000; echo done >&2",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let payload: String = (0..2000).map(|i| format!("line {i}\n")).collect();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(payload.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert_eq!(code(&out), Some(0), "{rt}: {}", errtext(&out));
            assert_eq!(text(&out), payload, "{rt}: stdin round trip");
            assert!(
                errtext(&out).contains("done"),
                "{rt}: stderr {}",
                errtext(&out)
            );

            // -t: a terminal inside. `script` gives ctr a pty of its own.
            let mut ctr = format!(
                "{} --address {} -n default run --rm -t --runtime {rt}",
                c.release.ctr().display(),
                c.address.display()
            );
            if rt == WARD_RUNTIME {
                ctr.push_str(&format!(
                    " --runtime-config-path {}",
                    c.ward_config.display()
                ));
            }
            ctr.push_str(&format!(
                " {BUSYBOX} {} sh -c 'test -t 0 && test -t 1 && echo IS_TTY; tty; exit 3'",
                cid(rt, "tty")
            ));
            let out = Command::new("script")
                .args(["-qec", &ctr, "/dev/null"])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let t = text(&out);
            assert!(
                t.contains("IS_TTY"),
                "{rt}: no tty inside: {t} {}",
                errtext(&out)
            );
            assert!(t.contains("/dev/pts/"), "{rt}: {t}");
            assert_eq!(code(&out), Some(3), "{rt}: exit code through the terminal");
        }
    });
}

#[test]
fn pause_resume_metrics_kill() {
    common::each_containerd("pause_resume_metrics_kill", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "life");
            run_detached(
                c,
                rt,
                &["--memory-limit", "67108864"],
                &id,
                &["sleep", "600"],
            );
            assert!(
                wait_state(c, &id, "RUNNING", Duration::from_secs(10)),
                "{rt}"
            );

            // pause / resume.
            c.ctr_ok("default", &["tasks", "pause", &id]).unwrap();
            assert!(
                wait_state(c, &id, "PAUSED", Duration::from_secs(5)),
                "{rt}: paused"
            );
            c.ctr_ok("default", &["tasks", "resume", &id]).unwrap();
            assert!(
                wait_state(c, &id, "RUNNING", Duration::from_secs(5)),
                "{rt}: resumed"
            );

            // metrics: the memory limit set at run time shows in the stats.
            // (ctr 1.6 has no `tasks update`: the update path is tested via CRI
            // UpdateContainerResources in tests/cri.rs.)
            let m = c
                .ctr_ok("default", &["tasks", "metrics", "--format", "json", &id])
                .unwrap();
            let v: serde_json::Value =
                serde_json::from_str(&m).unwrap_or_else(|e| panic!("{rt}: {e}: {m}"));
            let limit = v
                .pointer("/memory/usage/limit")
                .or_else(|| v.pointer("/memory/max"));
            assert_eq!(
                limit.and_then(serde_json::Value::as_u64),
                Some(67_108_864),
                "{rt}: metrics: {m}"
            );
            let usage = v
                .pointer("/memory/usage/usage")
                .or_else(|| v.pointer("/memory/usage"));
            assert!(
                usage.and_then(serde_json::Value::as_u64).unwrap_or(0) > 0,
                "{rt}: {m}"
            );

            // kill: SIGKILL reaches the init; the task stops.
            c.ctr_ok("default", &["tasks", "kill", "-s", "SIGKILL", &id])
                .unwrap();
            assert!(
                wait_state(c, &id, "STOPPED", Duration::from_secs(10)),
                "{rt}: killed"
            );
            remove(c, &id);
        }
    });
}

#[test]
fn exec_in_running_container() {
    common::each_containerd("exec_in_running_container", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "exec");
            run_detached(c, rt, &[], &id, &["sleep", "600"]);
            assert!(
                wait_state(c, &id, "RUNNING", Duration::from_secs(10)),
                "{rt}"
            );
            // exec: output and exit code of the exec'd process.
            let out = c
                .ctr(
                    Some("default"),
                    &[
                        "tasks",
                        "exec",
                        "--exec-id",
                        "e1",
                        &id,
                        "sh",
                        "-c",
                        "echo from-exec; exit 5",
                    ],
                )
                .unwrap();
            assert_eq!(code(&out), Some(5), "{rt}: {}", errtext(&out));
            assert_eq!(text(&out).trim(), "from-exec", "{rt}");

            // A second exec with stdin → stdout through the exec'd process.
            let out = c
                .ctr(
                    Some("default"),
                    &[
                        "tasks",
                        "exec",
                        "--exec-id",
                        "e2",
                        &id,
                        "sh",
                        "-c",
                        "echo $$; cat /proc/self/uid_map",
                    ],
                )
                .unwrap();
            assert!(out.status.success(), "{rt}: {}", errtext(&out));
            remove(c, &id);
        }
    });
}

#[test]
fn oom_event_and_exit_137() {
    common::each_containerd("oom_event_and_exit_137", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "oom");
            let mut events = c
                .ctr_cmd(None)
                .arg("events")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = events.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            let want = id.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("/tasks/oom") && line.contains(&want) {
                        let _ = tx.send(line);
                        return;
                    }
                }
            });
            std::thread::sleep(Duration::from_millis(200));
            // `tail /dev/zero` keeps one ever-growing line in memory.
            let out = ctr_run(
                c,
                rt,
                &["--memory-limit", "33554432"],
                &id,
                &["tail", "/dev/zero"],
            );
            let seen = rx.recv_timeout(Duration::from_secs(10));
            // The `ctr events` child is ours; end it by its own handle.
            let _ = events.kill();
            let _ = events.wait();
            assert_eq!(code(&out), Some(137), "{rt}: {}", errtext(&out));
            assert!(seen.is_ok(), "{rt}: no /tasks/oom event for {id}");
        }
    });
}

#[test]
fn sandbox_seen_from_inside() {
    common::each_containerd("sandbox_seen_from_inside", |c| {
        for rt in common::runtimes_under_test() {
            let out = ctr_run(
                c,
                rt,
                &[],
                &cid(rt, "facts"),
                &[
                    "sh",
                    "-c",
                    "cat /proc/self/status; echo ===; cat /proc/self/uid_map; echo ===; \
                 if touch /rootfs-write-probe 2>/dev/null; then echo RW; else echo RO; fi",
                ],
            );
            assert!(out.status.success(), "{rt}: {}", errtext(&out));
            let t = text(&out);
            let parts: Vec<&str> = t.split("===\n").collect();
            assert_eq!(parts.len(), 3, "{rt}: {t}");
            let facts = SandboxFacts::parse(parts[0], parts[1]);
            eprintln!("{rt}: {facts:?} rootfs {}", parts[2].trim());
            if rt != WARD_RUNTIME {
                // runc's defaults: identity map, no seccomp filter from ctr.
                assert!(facts.uid_map_is_identity(), "{rt}: {facts:?}");
                continue;
            }
            // WARD-ONLY: the sandbox Ward promises.
            assert!(!facts.uid_map_is_identity(), "ward: uid_map is identity");
            assert!(
                !facts.maps_host_root(),
                "ward: host uid 0 mapped: {facts:?}"
            );
            assert_eq!(facts.cap_eff, Some(0), "ward: CapEff");
            assert_eq!(facts.no_new_privs, Some(1), "ward: NoNewPrivs");
            assert_eq!(facts.seccomp, Some(2), "ward: Seccomp filter mode");
            assert_eq!(parts[2].trim(), "RO", "ward: rootfs writable");
        }
        if common::ward_shim_status().is_err() {
            common::skip_or_fail_ward("sandbox_seen_from_inside: ward assertions not run");
        }
    });
}

#[test]
fn two_hundred_short_containers() {
    common::each_containerd("two_hundred_short_containers", |c| {
        let n: usize = std::env::var("WARD_E2E_MANY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        for rt in common::runtimes_under_test() {
            let started = Instant::now();
            // Two at a time: enough to interleave shims without starving the host.
            let mut wrong = Vec::new();
            for pair in (0..n).collect::<Vec<_>>().chunks(2) {
                let children: Vec<_> = pair
                    .iter()
                    .map(|&i| {
                        let mut cmd = c.ctr_cmd(Some("default"));
                        cmd.args(["run", "--rm", "--runtime", rt]);
                        if rt == WARD_RUNTIME {
                            cmd.arg("--runtime-config-path").arg(&c.ward_config);
                        }
                        let child = cmd
                            .args([BUSYBOX, &cid(rt, &format!("many{i}")), "sh", "-c"])
                            .arg(format!("exit {}", i % 256))
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .spawn()
                            .unwrap();
                        (i, child)
                    })
                    .collect();
                for (i, child) in children {
                    let out = child.wait_with_output().unwrap();
                    if out.status.code() != Some((i % 256) as i32) {
                        wrong.push((i, out.status.code(), errtext(&out)));
                    }
                }
            }
            eprintln!("{rt}: {n} containers in {:?}", started.elapsed());
            assert!(
                wrong.is_empty(),
                "{rt}: {} of {n} wrong exit codes, first: {:?}",
                wrong.len(),
                &wrong[..wrong.len().min(3)]
            );
        }
    });
}

/// WARD-ONLY: the node config given as the runtime's `ConfigPath` picks the
/// profile (what the `ward` / `ward-strict` CRI handlers rely on), and a
/// `ward.dev/profile` annotation is honoured only when the node allows it.
#[test]
fn ward_config_path_and_profile_annotation() {
    if let Err(why) = common::ward_shim_status() {
        common::skip_or_fail_ward(&format!("ward_config_path_and_profile_annotation: {why}"));
        return;
    }
    common::each_containerd("ward_config_path_and_profile_annotation", |c| {
        let probe = |id: &str, config: &std::path::Path, annotation: Option<&str>| {
            let mut cmd = c.ctr_cmd(Some("default"));
            cmd.args(["run", "--rm", "--runtime", WARD_RUNTIME])
                .arg("--runtime-config-path")
                .arg(config);
            if let Some(a) = annotation {
                cmd.args(["--annotation", &format!("ward.dev/profile={a}")]);
            }
            cmd.args([BUSYBOX, id, "nc", "127.0.0.1", "1"])
                .output()
                .unwrap()
        };
        let denied = |o: &std::process::Output| errtext(o).contains("Operation not permitted");

        let default = probe("cfg-default", &c.ward_config, None);
        // ctr's fresh netns has no interface up: connect fails, socket() works.
        assert!(
            errtext(&default).contains("can't connect") && !denied(&default),
            "default profile: socket must work: {}",
            errtext(&default)
        );
        let strict = probe("cfg-strict", &c.ward_strict_config, None);
        assert!(denied(&strict), "ward-strict config: {}", errtext(&strict));
        let by_annotation = probe("ann-strict", &c.ward_config, Some("strict"));
        assert!(
            denied(&by_annotation),
            "annotation strict under the default node config: {}",
            errtext(&by_annotation)
        );
        let escape = probe("ann-escape", &c.ward_strict_config, Some("default"));
        assert!(
            !escape.status.success() && errtext(&escape).contains("allowed_profiles"),
            "a pod must not leave the strict node config by annotation: {} {}",
            text(&escape),
            errtext(&escape)
        );
    });
}

/// Issue 11 through the shim: root binds :80 in the container's network namespace (Ward has
/// no NET_BIND_SERVICE; it sets ip_unprivileged_port_start=0 there), and the init and an
/// exec'd process get the supplementary groups containerd lists, as under runc.
#[test]
fn port_80_and_supplementary_groups_as_runc() {
    common::each_containerd("port_80_and_supplementary_groups_as_runc", |c| {
        let mut groups = vec![];
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "port80");
            let out = ctr_run(
                c,
                rt,
                &[],
                &id,
                &[
                    "sh",
                    "-c",
                    "mkdir -p /tmp/w && echo hello > /tmp/w/i && httpd -p 80 -h /tmp/w && sleep 0.3 \
                     && wget -q -O - http://127.0.0.1:80/i",
                ],
            );
            assert!(out.status.success(), "{rt}: {}", errtext(&out));
            assert_eq!(text(&out).trim(), "hello", "{rt}");

            let id = cid(rt, "groups");
            run_detached(c, rt, &[], &id, &["sleep", "600"]);
            assert!(
                wait_state(c, &id, "RUNNING", Duration::from_secs(10)),
                "{rt}"
            );
            let out = c
                .ctr(
                    Some("default"),
                    &[
                        "tasks",
                        "exec",
                        "--exec-id",
                        "g1",
                        &id,
                        "sh",
                        "-c",
                        "grep Groups /proc/1/status /proc/self/status",
                    ],
                )
                .unwrap();
            assert!(out.status.success(), "{rt}: {}", errtext(&out));
            let lines: Vec<String> = text(&out)
                .lines()
                .map(|l| l.split_once(':').map_or("", |(_, g)| g).trim().to_string())
                .collect();
            assert_eq!(lines.len(), 2, "{rt}: {}", text(&out));
            assert_eq!(lines[0], lines[1], "{rt}: init and exec differ");
            groups.push((rt, lines[0].clone()));
            remove(c, &id);
        }
        // Whatever containerd lists (its primary gid at least), every runtime gives the same.
        assert!(
            groups.windows(2).all(|w| w[0].1 == w[1].1),
            "groups differ between runtimes: {groups:?}"
        );
    });
}

/// A program that is not in the image fails `ctr run` at once; through Ward the error names
/// the field (WARD-ONLY), and nothing is left running.
#[test]
fn missing_program_is_named() {
    common::each_containerd("missing_program_is_named", |c| {
        for rt in common::runtimes_under_test() {
            let id = cid(rt, "noprog");
            let out = ctr_run(c, rt, &[], &id, &["/no/such/program"]);
            assert!(!out.status.success(), "{rt}: accepted");
            eprintln!("{rt}: refused: {}", errtext(&out).trim());
            if rt == WARD_RUNTIME {
                let e = errtext(&out);
                assert!(
                    e.contains("process.args[0]") && e.contains("/no/such/program"),
                    "{rt}: {e}"
                );
            }
            assert!(task_state(c, &id).is_none(), "{rt}: a task remains");
            let _ = c.ctr(Some("default"), &["containers", "delete", &id]);
        }
    });
}
