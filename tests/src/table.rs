//! Tables of refusals: each [`Case`] prepares a bundle (and helper files), runs
//! `ward run` on it under a time limit ([`LIMIT`]: a FIFO must not hang Ward), and [`check`]s
//! exit 1, exactly one stderr line holding every expected fragment, and nothing left behind
//! (no state dir, uid range, mount, cgroup or process). [`table`] runs every case and reports
//! them all before it fails. The program is `true`, so a case wrongly accepted ends by itself.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{leftovers, unique_id, Bundle, Out, Ward};

/// What a case adds to the command line.
#[derive(Default)]
pub struct Flags {
    /// Before the verb (`--config F`, `--profile P`).
    pub global: Vec<String>,
    /// After `run`.
    pub run: Vec<String>,
    /// The container id; `None`: a fresh valid one (then leftovers are checked by id).
    pub id: Option<String>,
    /// `--bundle` other than the case's bundle.
    pub bundle: Option<PathBuf>,
}

pub type Setup = Box<dyn Fn(&mut Bundle, &Path) -> Flags>;

pub struct Case {
    pub name: &'static str,
    /// Change the bundle; `aux` is a scratch dir for helper files.
    pub setup: Setup,
    /// Fragments the one stderr line must hold.
    pub expect: Vec<String>,
}

pub fn case(
    name: &'static str,
    setup: impl Fn(&mut Bundle, &Path) -> Flags + 'static,
    expect: &[&str],
) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        expect: expect.iter().map(|s| s.to_string()).collect(),
    }
}

/// A case that only edits config.json.
pub fn spec(name: &'static str, edit: impl Fn(&mut Value) + 'static, expect: &[&str]) -> Case {
    case(
        name,
        move |b, _| {
            b.edit(&edit);
            Flags::default()
        },
        expect,
    )
}

pub const LIMIT: Duration = Duration::from_secs(30);

/// Run `ward` with a time limit; stderr through a file (a container would inherit a pipe).
pub fn run_limited(ward: &Ward, args: &[String]) -> Result<Out, String> {
    let mut c = ward.cmd(args);
    let mut err = tempfile::tempfile().unwrap();
    c.stdout(Stdio::null()).stderr(err.try_clone().unwrap());
    let mut child = c.spawn().map_err(|e| format!("spawn: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("ward hung for more than {LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    err.seek(SeekFrom::Start(0)).unwrap();
    err.read_to_string(&mut text).unwrap();
    Ok(Out {
        code: status.code(),
        stdout: String::new(),
        stderr: crate::strip_ansi(&text),
    })
}

pub fn check(c: &Case) -> Result<String, String> {
    let mut b = Bundle::new(&["true"]);
    let aux = tempfile::Builder::new()
        .prefix("ward-aux-")
        .tempdir()
        .unwrap();
    let flags = (c.setup)(&mut b, aux.path());
    let ward = Ward::new().with_global(flags.global.iter());
    let id = flags.id.clone().unwrap_or_else(|| unique_id("bi"));
    let mut args = vec!["run".to_string()];
    args.extend(flags.run.iter().cloned());
    let bundle = flags
        .bundle
        .clone()
        .unwrap_or_else(|| b.path().to_path_buf());
    args.extend(["--bundle".into(), bundle.display().to_string(), id.clone()]);
    let o = run_limited(&ward, &args)?;
    let mut problems = vec![];
    if o.code != Some(1) {
        problems.push(format!("exit {:?}, want 1", o.code));
    }
    // Past harden, Ward reports each spec field it did not honour ("spec overridden", a
    // warning by design); anything else is the error.
    let lines: Vec<&str> = o
        .stderr_lines()
        .into_iter()
        .filter(|l| !l.contains(" WARN spec overridden "))
        .collect();
    if lines.len() != 1 {
        problems.push(format!("{} stderr lines, want 1", lines.len()));
    }
    for f in &c.expect {
        if !o.stderr.contains(f.as_str()) {
            problems.push(format!("stderr lacks {f:?}"));
        }
    }
    if flags.id.is_none() {
        problems.extend(leftovers(&ward, &id));
    }
    let stray: Vec<String> = ward.ids();
    if !stray.is_empty() {
        problems.push(format!("containers left under --root: {stray:?}"));
    }
    if problems.is_empty() {
        Ok(o.stderr.trim().to_string())
    } else {
        Err(format!("{}\n{o}", problems.join("; ")))
    }
}

/// Run every case; report them all, then fail if any failed.
pub fn table(cases: Vec<Case>) {
    let mut failed = vec![];
    let n = cases.len();
    for c in &cases {
        match check(c) {
            Ok(line) => eprintln!("ok   {}: {line}", c.name),
            Err(e) => {
                eprintln!("FAIL {}: {e}", c.name);
                failed.push(c.name);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} cases failed: {failed:?}",
        failed.len()
    );
}

impl Case {
    pub fn with_setup(mut self, f: impl Fn(&mut Bundle, &Path) -> Flags + 'static) -> Self {
        self.setup = Box::new(f);
        self
    }

    pub fn expecting(mut self, e: &[&str]) -> Self {
        self.expect = e.iter().map(|s| s.to_string()).collect();
        self
    }
}
