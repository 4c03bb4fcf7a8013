//! Names in config.json that point at the host's own machinery (THREATS.md, "Trust in
//! names"): a `cgroupsPath` naming an existing host cgroup, and host-side hooks. Each attack
//! is mounted for real and judged from the host: the host cgroup's process and limit, marker
//! files a hook would write.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use ward_tests::{assert_no_leftovers, assert_root_clean, require_root, unique_id, Bundle, Ward};

/// A host cgroup in the pids hierarchy with a host `sleep` in it and a pids limit of 77.
struct HostCgroup {
    name: String,
    dir: PathBuf,
    child: Child,
}

impl HostCgroup {
    fn new() -> Self {
        let name = unique_id("ward-victim");
        let dir = Path::new("/sys/fs/cgroup/pids").join(&name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        std::fs::write(dir.join("pids.max"), "77").unwrap();
        Self { name, dir, child }
    }

    /// The host process: alive, not stopped or frozen, still in this cgroup.
    fn assert_untouched(&self) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(')').unwrap().1.trim_start().chars().next();
        assert_eq!(state, Some('S'), "host process state: {stat}");
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string(), "host cgroup's processes");
        let max = std::fs::read_to_string(self.dir.join("pids.max")).unwrap();
        assert_eq!(max.trim(), "77", "host cgroup's pids.max was rewritten");
    }

    /// No directory of this name in any other hierarchy (the freezer one `pause` would use).
    fn assert_no_ward_dirs(&self) {
        let made: Vec<String> = ward_tests::leaks::cgroup_dirs_named(&self.name)
            .into_iter()
            .filter(|d| Path::new(d) != self.dir)
            .collect();
        assert!(made.is_empty(), "Ward left cgroups: {made:?}");
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn with_cgroups_path(b: &mut Bundle, path: &str) {
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
}

/// `ward run` must fail with exit 1 and one stderr line containing every fragment, leaving
/// nothing behind.
fn refused(ward: &Ward, b: &Bundle, expect: &[&str]) {
    let id = unique_id("bad");
    let o = ward.run(b, &id);
    assert_eq!(o.code, Some(1), "{o}");
    for f in expect {
        assert!(o.stderr.contains(f), "stderr lacks {f:?}:\n{o}");
    }
    assert_eq!(o.stderr_lines().len(), 1, "{o}");
    eprintln!("refused as expected: {}", o.stderr.trim());
    assert_no_leftovers(ward, &id);
}

#[test]
fn cgroups_path_naming_a_host_cgroup_is_refused() {
    require_root!();
    if !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        eprintln!("SKIP: no cgroup v1 pids hierarchy at /sys/fs/cgroup/pids");
        return;
    }
    let host = HostCgroup::new();
    let ward = Ward::new();
    // The leaf exists in one hierarchy (pids) only: still refused, in every hierarchy.
    let mut b = Bundle::new(&["true"]);
    with_cgroups_path(&mut b, &format!("/{}", host.name));
    refused(
        &ward,
        &b,
        &[
            "linux.cgroupsPath",
            &host.name,
            "already exists and was not created by Ward",
            "refusing to take over a cgroup",
        ],
    );
    host.assert_untouched();
    host.assert_no_ward_dirs();
    // A leaf of its own *under* the host cgroup (an existing ancestor, as the pod cgroup an
    // engine lays out) is fine, and removing it leaves the ancestor alone.
    let id = unique_id("under");
    let mut ok = Bundle::new(&["sleep", "1000"]);
    with_cgroups_path(&mut ok, &format!("/{}/{id}", host.name));
    ward.run_detached(&ok, &id);
    let pid = ward.pid(&id);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!(":pids:/{}/{id}\n", host.name);
    assert!(
        cg.contains(&want),
        "container not in its own leaf {want:?}: {cg}"
    );
    let ps: Vec<i64> = serde_json::from_str(&ward.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![i64::from(pid)], "ward ps lists other processes");
    host.assert_untouched();
    ward.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&ward, &id);
    host.assert_untouched();
    assert!(
        host.dir.is_dir(),
        "the host cgroup (an ancestor) was removed"
    );
    host.assert_no_ward_dirs();
    assert_root_clean(&ward);
}

/// A root-owned hook program that drains its stdin (the state) and creates the file named
/// by its first argument.
fn hook_program(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("mark-hook");
    std::fs::write(&p, "#!/bin/sh\ncat >/dev/null\ntouch \"$1\"\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn add_hook(c: &mut Value, kind: &str, program: &Path, marker: &Path) {
    let hook = json!({"path": program, "args": ["mark-hook", marker]});
    if !c["hooks"].is_object() {
        c["hooks"] = json!({});
    }
    c["hooks"][kind] = json!([hook]);
}

fn node_config(dir: &Path, name: &str, allow: &[&Path]) -> PathBuf {
    let p = dir.join(name);
    let list: Vec<String> = allow
        .iter()
        .map(|a| format!("{:?}", a.display().to_string()))
        .collect();
    std::fs::write(&p, format!("[hooks]\nallow = [{}]\n", list.join(", "))).unwrap();
    p
}

#[test]
fn host_side_hooks_need_the_node_allow_list() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let program = hook_program(dir.path());
    let link = dir.path().join("link-hook");
    std::os::unix::fs::symlink(&program, &link).unwrap();
    let ward = Ward::new();

    // Default node config: no hook runs, whichever kind.
    for kind in [
        "createRuntime",
        "prestart",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let marker = dir.path().join(format!("marker-{kind}"));
        let mut b = Bundle::new(&["true"]);
        b.edit(|c| add_hook(c, kind, &program, &marker));
        let field = format!("hooks.{kind}[0].path");
        refused(&ward, &b, &[&field, "not in the node's [hooks] allow list"]);
        assert!(!marker.exists(), "{kind} hook ran");
    }
    assert_root_clean(&ward);

    // A node that allows the program: a symlink to it is not it, and an allowed path that
    // is a symlink is refused; startContainer (an image program run outside the sandbox)
    // is refused whatever the list says.
    let only = node_config(dir.path(), "only.toml", &[&program]);
    let only = Ward::new().with_global(["--config".into(), only.into_os_string()]);
    let marker = dir.path().join("marker-link");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| add_hook(c, "createRuntime", &link, &marker));
    refused(
        &only,
        &b,
        &["hooks.createRuntime[0].path", "not in the node's"],
    );
    let cfg = node_config(dir.path(), "both.toml", &[&program, &link]);
    let allowed = Ward::new().with_global(["--config".into(), cfg.into_os_string()]);
    refused(&allowed, &b, &["hooks.createRuntime[0].path", "symlink"]);
    assert!(!marker.exists());
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| add_hook(c, "startContainer", &program, &marker));
    refused(&allowed, &b, &["hooks.startContainer[0].path", "refused"]);
    assert!(!marker.exists());

    // Allowed: createRuntime runs at create, poststop at delete (`run` deletes).
    let created = dir.path().join("marker-createRuntime-ok");
    let stopped = dir.path().join("marker-poststop-ok");
    let mut b = Bundle::new(&["true"]);
    b.edit(|c| {
        add_hook(c, "createRuntime", &program, &created);
        c["hooks"]["poststop"] = json!([{"path": program, "args": ["mark-hook", stopped]}]);
    });
    let id = unique_id("hooked");
    let o = allowed.run(&b, &id);
    assert!(o.success(), "{o}");
    assert!(created.exists(), "allowed createRuntime hook did not run");
    assert!(stopped.exists(), "allowed poststop hook did not run");
    assert_no_leftovers(&allowed, &id);
    assert_root_clean(&allowed);
}

/// A profile whose `extends` names a file that is not a profile (`/etc/shadow`-like): the
/// error names the file and the line, never its text, on `ward run`, `ward spec` and
/// `ward profile lint`.
#[test]
fn profile_errors_never_print_the_extended_file() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shadow");
    std::fs::write(&secret, "root:$y$j9T$S3CRETHASH$x:19000:0:99999:7:::\n").unwrap();
    let profile = dir.path().join("p1.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"p1\"\nextends = {:?}\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let p = profile.display().to_string();
    let ward = Ward::new();
    let b = Bundle::new(&["true"]);
    let id = unique_id("shadow");
    let run = Ward::output_of(ward.cmd(&[
        "--profile",
        &p,
        "run",
        "--bundle",
        &b.path().display().to_string(),
        &id,
    ]));
    let lint = ward.output(&["profile", "lint", &p]);
    for o in [run, lint] {
        assert!(!o.success(), "{o}");
        assert!(o.stderr.contains(&secret.display().to_string()), "{o}");
        assert!(!o.stderr.contains("S3CRET"), "error prints the file: {o}");
        assert!(!o.stdout.contains("S3CRET"), "output prints the file: {o}");
    }
    assert_no_leftovers(&ward, &id);
}
