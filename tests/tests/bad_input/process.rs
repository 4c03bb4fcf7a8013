//! Bad input in `process`: one line naming the field, and nothing left behind.

use super::*;

#[test]
fn process_fields() {
    require_root!();
    let mut cases = vec![
        spec(
            "program not in the rootfs",
            |c| c["process"]["args"] = json!(["nosuch"]),
            &["process.args[0]", "\"nosuch\"", "not found"],
        ),
        spec(
            "absolute program missing",
            |c| c["process"]["args"] = json!(["/usr/bin/nosuch"]),
            &["process.args[0]", "/usr/bin/nosuch"],
        ),
        spec(
            "relative program missing",
            |c| c["process"]["args"] = json!(["./nosuch"]),
            &["process.args[0]", "./nosuch"],
        ),
        spec(
            "empty program name",
            |c| c["process"]["args"] = json!([""]),
            &["process.args[0]"],
        ),
        spec(
            "program is a directory",
            |c| c["process"]["args"] = json!(["/etc"]),
            &["process.args[0]", "directory"],
        ),
        case(
            "program not executable",
            |b, _| {
                let p = b.rootfs().join("bin/noexec");
                std::fs::write(&p, "#!/bin/sh\n").unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
                b.edit(|c| c["process"]["args"] = json!(["noexec"]));
                Flags::default()
            },
            &["process.args[0]", "not executable"],
        ),
        case(
            "rootfs without /bin",
            |b, _| {
                std::fs::remove_dir_all(b.rootfs().join("bin")).unwrap();
                b.edit(|c| c["process"]["args"] = json!(["sh", "-c", "true"]));
                Flags::default()
            },
            &["process.args[0]", "\"sh\""],
        ),
        spec(
            "NUL in an argument",
            |c| c["process"]["args"] = json!(["echo", "a\u{0}b"]),
            &["process.args[1]", "NUL"],
        ),
        spec(
            "NUL in an env value",
            |c| {
                c["process"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("X=a\u{0}b"))
            },
            &["process.env[", "NUL"],
        ),
        spec(
            "env entry without =",
            |c| c["process"]["env"] = json!(["PATH=/bin", "JUSTNAME"]),
            &["process.env[1]", "NAME=VALUE"],
        ),
        spec(
            "one env string over 128 KiB",
            |c| {
                c["process"]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(format!("BIG={}", "x".repeat(200_000))))
            },
            &["process.env[", "E2BIG"],
        ),
        spec(
            "uid 70000, beyond the range",
            |c| c["process"]["user"]["uid"] = json!(70000),
            &["process.user.uid", "70000", "not mapped"],
        ),
        spec(
            "uid 65536, just beyond the range",
            |c| c["process"]["user"]["uid"] = json!(65536),
            &["process.user.uid", "65536"],
        ),
        spec(
            "uid 4294967295",
            |c| c["process"]["user"]["uid"] = json!(4294967295u32),
            &["process.user.uid", "4294967295"],
        ),
        spec(
            "gid 4294967295",
            |c| c["process"]["user"]["gid"] = json!(4294967295u32),
            &["process.user.gid", "4294967295"],
        ),
        spec(
            "additional gid beyond the range",
            |c| c["process"]["user"]["additionalGids"] = json!([10, 70000]),
            &["process.user.additionalGids[1]", "70000"],
        ),
        spec(
            "cwd missing",
            |c| c["process"]["cwd"] = json!("/nope"),
            &["process.cwd", "/nope"],
        ),
        spec(
            "cwd is a file",
            |c| c["process"]["cwd"] = json!("/etc/passwd"),
            &["process.cwd", "not a directory"],
        ),
        spec(
            "oomScoreAdj 1001",
            |c| c["process"]["oomScoreAdj"] = json!(1001),
            &["process.oomScoreAdj", "1001"],
        ),
        spec(
            "oomScoreAdj -1001",
            |c| c["process"]["oomScoreAdj"] = json!(-1001),
            &["process.oomScoreAdj", "-1001"],
        ),
        spec(
            "rlimit soft above hard",
            |c| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 20, "hard": 10}])
            },
            &["process.rlimits[RLIMIT_NOFILE]", "soft 20"],
        ),
        spec(
            "rlimit given twice",
            |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]),
            &["process.rlimits[RLIMIT_CORE]", "twice"],
        ),
        case(
            "program's ELF interpreter missing (reported by start)",
            |b, _| {
                b.add_host_binary_alone(Path::new("/bin/ls"), "/bin/dynls");
                b.edit(|c| c["process"]["args"] = json!(["dynls"]));
                Flags::default()
            },
            &["start:", "process.args[0]", "ENOENT"],
        ),
        case(
            "program missing on a volume (reported by start)",
            |b, aux| {
                std::fs::create_dir(aux.join("vol")).unwrap();
                b.bind(&aux.join("vol"), "/vol", true);
                b.edit(|c| c["process"]["args"] = json!(["/vol/nosuch"]));
                Flags::default()
            },
            &["start:", "process.args[0]", "/vol/nosuch", "ENOENT"],
        ),
        case(
            "profile denies execve (reported by start)",
            |_, aux| {
                let p = aux_file(
                    aux,
                    "noexec.toml",
                    "name = \"noexec\"\nextends = \"default\"\n[seccomp]\ndeny = [\"execve\"]\n",
                );
                global(&["--profile", &s(&p), "--seccomp-mode", "enforce"])
            },
            &["start:", "process.args[0]", "EPERM"],
        ),
    ];
    // SAFETY: sysconf has no memory effects.
    let arg_max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) } as usize;
    let n = arg_max / 100_000 + 2;
    if n * 100_010 < (4 << 20) - 8192 {
        cases.push(spec(
            "args + env over ARG_MAX",
            move |c| {
                let env = c["process"]["env"].as_array_mut().unwrap();
                for i in 0..n {
                    env.push(json!(format!("V{i}={}", "x".repeat(100_000))));
                }
            },
            &["process.args + process.env", "E2BIG"],
        ));
    } else {
        eprintln!(
            "SKIP: args + env over ARG_MAX ({arg_max}): would not fit the 4 MiB cap on config.json"
        );
    }
    if has_sys_resource() {
        eprintln!("SKIP: oomScoreAdj -1000 and a raised hard rlimit: this process has CAP_SYS_RESOURCE, so Ward may grant them");
    } else {
        cases.push(spec(
            "oomScoreAdj -1000 without CAP_SYS_RESOURCE",
            |c| c["process"]["oomScoreAdj"] = json!(-1000),
            &["process.oomScoreAdj", "CAP_SYS_RESOURCE"],
        ));
        match own_hard_nofile() {
            Some(h) => cases.push(spec(
                "rlimit hard above Ward's own",
                move |c| {
                    c["process"]["rlimits"] =
                        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": h + 1}])
                },
                &["process.rlimits[RLIMIT_NOFILE]", "CAP_SYS_RESOURCE"],
            )),
            None => eprintln!("SKIP: rlimit above Ward's own: RLIMIT_NOFILE is unlimited here"),
        }
    }
    table(cases);
}
