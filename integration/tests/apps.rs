//! The real-application matrix (issue 11): Debian's nginx, redis, postgresql and python3,
//! under the `ward` CLI (default and workload profile), through containerd 2 and 1.6 with
//! Ward's shim (both profiles), and under runc (Debian's, and runc 1.3 from `make peers`),
//! each checked from outside. Prints the table, writes it to `<target>/apps-matrix.md`, and
//! fails when a cell expected to work does not, or a by-design refusal does not refuse with
//! its expected line. The image comes from `integration/apps/build-images.sh` (cached under
//! `<target>/apps`; an unreachable mirror fails; `WARD_APPS_SKIP=1` skips with SKIP).

mod common;

use std::path::{Path, PathBuf};

use ward_integration::apps::matrix::{run_cell, table, Cell};
use ward_integration::apps::runners::FrontDoor;
use ward_integration::apps::{self, App, Expect};
use ward_integration::containerd::{self, Containerd};

/// One column: its title and, per app, the cell, what it was expected to be and the
/// workload profile it ran with.
struct Column {
    title: String,
    cells: Vec<(Cell, Option<Expect>, Option<&'static str>)>,
}

fn id(app: &App, col: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("apps-{}-{col}-{}-{n}", app.name, std::process::id())
}

/// Which profile a column runs each app with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Ward's `default`.
    Default,
    /// The app's workload profile (cell `—` where it has none).
    Workload,
    /// runc: no Ward profile; everything is expected to work.
    Reference,
}

/// A column of `door` with `profile`.
fn column<'a>(
    title: String,
    tag: &str,
    image: &Path,
    profile: Profile,
    door: impl Fn(Option<&'static str>) -> FrontDoor<'a>,
) -> Column {
    let cells = apps::apps()
        .iter()
        .map(|app| {
            if profile != Profile::Workload {
                let expect = match profile {
                    Profile::Reference => Expect::Works,
                    _ => app.default,
                };
                let cell = run_cell(&door(None), app, image, &id(app, tag));
                return (cell, Some(expect), None);
            }
            match app.workload {
                Some((profile, expect)) => {
                    let cell = run_cell(&door(Some(profile)), app, image, &id(app, tag));
                    (cell, Some(expect), Some(profile))
                }
                None => (Cell::NotApplicable, None, None),
            }
        })
        .collect();
    Column { title, cells }
}

fn runc_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.lines().next().map(|l| l.replace("runc version ", ""))
        })
        .unwrap_or_else(|| "?".into())
}

/// The shim's node config: the builtin profiles, `nginx` and `python-worker` allowed by
/// annotation.
fn shim_node_config(c: &Containerd) -> PathBuf {
    let text = containerd::ward_toml("default", false, &c.ward_state);
    let allowed = r#"["default", "restricted", "strict"]"#;
    assert!(text.contains(allowed), "{text}");
    let text = text.replace(allowed, r#"["default", "nginx", "python-worker"]"#);
    let path = c.dir.join("ward-apps.toml");
    std::fs::write(&path, text).expect("write node config");
    path
}

/// Container dirs (not Ward's dot-dirs) left under a state root.
fn containers_left(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The `ward` CLI columns, on a private `--root` that must be empty afterwards.
fn cli_columns(image: &Path) -> Vec<Column> {
    let bin = containerd::ward_bin_dir().join("ward");
    let root = tempfile::Builder::new()
        .prefix("ward-apps-root-")
        .tempdir()
        .expect("ward root");
    let cli = |profile| FrontDoor::WardCli {
        bin: bin.clone(),
        root: root.path().to_path_buf(),
        profile,
    };
    let title = "ward CLI `default`".to_string();
    let cols = vec![
        column(title, "cli", image, Profile::Default, cli),
        column(
            "ward CLI workload profile".into(),
            "cliw",
            image,
            Profile::Workload,
            cli,
        ),
    ];
    let left = containers_left(root.path());
    assert!(left.is_empty(), "ward CLI containers left: {left:?}");
    cols
}

/// The shim columns, once per containerd release (2 first, then 1.6).
fn shim_columns(image: &Path) -> Vec<Column> {
    let mut cols = vec![];
    for release in common::releases_under_test("real_applications_matrix") {
        let label = release.label();
        let c = Containerd::start_temp_release(release).expect("start containerd");
        let cfg = shim_node_config(&c);
        let shim = |profile| FrontDoor::Shim {
            containerd: &c,
            node_config: cfg.clone(),
            profile,
        };
        let title = format!("shim `default`, {label}");
        cols.push(column(title, "shim", image, Profile::Default, shim));
        let title = format!("shim workload, {label}");
        cols.push(column(title, "shimw", image, Profile::Workload, shim));
        let left = containers_left(&c.ward_state.join("default"));
        assert!(left.is_empty(), "{label}: shim containers left: {left:?}");
        // Stop this containerd (and remove what it left) before the next one starts.
        drop(c);
    }
    cols
}

/// The reference: Debian's runc, and runc 1.3 from `make peers` when it is there.
fn runc_columns(image: &Path) -> Vec<Column> {
    let mut runcs = vec![PathBuf::from("/usr/sbin/runc")];
    let peers = ward_integration::release::containerd2_bin_dir().join("runc");
    if peers.exists() {
        runcs.push(peers);
    } else {
        let p = peers.display();
        eprintln!("SKIP: runc 1.3 column: {p} not found (make peers)");
    }
    let mut cols = vec![];
    for r in runcs {
        let rroot = tempfile::tempdir().expect("runc root");
        let title = format!("runc {}", runc_version(&r));
        let door = |_| FrontDoor::Runc {
            bin: r.clone(),
            root: rroot.path().to_path_buf(),
        };
        cols.push(column(title, "runc", image, Profile::Reference, door));
    }
    cols
}

/// The table, then one line per by-design refusal.
fn report(cols: &[Column], apps: &[App]) -> String {
    let titles: Vec<String> = cols.iter().map(|c| c.title.clone()).collect();
    let rows: Vec<(String, Vec<String>)> = apps
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let cells = cols
                .iter()
                .map(|c| c.cells[i].0.render(c.cells[i].1, c.cells[i].2))
                .collect();
            (a.name.to_string(), cells)
        })
        .collect();
    let mut t = table(&titles, &rows);
    t.push_str("\nBy design:\n");
    for a in apps {
        let refusals = [
            ("default", Some(a.default)),
            (a.workload.map_or("", |w| w.0), a.workload.map(|w| w.1)),
        ];
        for (profile, e) in refusals {
            if let Some(Expect::Refused { why, .. }) = e {
                t.push_str(&format!("- {} under `{profile}`: {why}.\n", a.name));
            }
        }
    }
    t
}

/// Every cell that is not what it was expected to be, and why.
fn misjudged(cols: &[Column], apps: &[App]) -> Vec<String> {
    let mut bad = vec![];
    for c in cols {
        for (i, (cell, expect, _)) in c.cells.iter().enumerate() {
            if let Some(Err(why)) = expect.map(|e| cell.judge(e)) {
                bad.push(format!("{} / {}: {why}", apps[i].name, c.title));
            }
        }
    }
    bad
}

#[test]
fn real_applications_matrix() {
    if let Some(why) = containerd::skip_reason() {
        eprintln!("SKIP: real_applications_matrix: {why}");
        return;
    }
    let image = match apps::image_rootfs() {
        Ok(Some(p)) => p,
        Ok(None) => return,
        Err(e) => panic!("real_applications_matrix: image: {e}"),
    };
    let started = std::time::Instant::now();
    let mut cols = cli_columns(&image);
    cols.extend(shim_columns(&image));
    cols.extend(runc_columns(&image));
    let apps = apps::apps();
    let t = report(&cols, &apps);
    println!("\n{t}");
    eprintln!("apps: matrix in {:.0} s", started.elapsed().as_secs_f64());
    let out = apps::target_dir().join("apps-matrix.md");
    std::fs::write(&out, &t).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    let bad = misjudged(&cols, &apps);
    assert!(bad.is_empty(), "cells not as expected:\n{}", bad.join("\n"));
}
