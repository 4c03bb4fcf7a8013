//! A test double of systemd's `org.freedesktop.systemd1.Manager`, for the systemd cgroup
//! driver's tests on a machine without systemd. It serves peer-to-peer D-Bus on a unix socket
//! (as systemd does on /run/systemd/private) and does what systemd does for the calls Ward
//! makes:
//!
//! * `StartTransientUnit(name, mode, props, aux)`: refuses a unit it knows ("Unit x already
//!   exists."); else makes the scope's cgroup `<slices>/<name>` (the slice `a-b.slice`
//!   nested as `a.slice/a-b.slice`) in every mounted hierarchy (or, with
//!   `--systemd-controllers-only`, in those systemd manages on a v1 host: name=systemd,
//!   cgroup2, cpu, cpuacct, blkio, memory, devices, pids), moves `PIDs` in, and emits
//!   `JobRemoved(id, job, name, "done")` after the reply.
//! * `StopUnit(name, mode)`: kills the scope's processes, removes its cgroups (and slices it
//!   made, once empty), emits `JobRemoved`. `NoSuchUnit` for a unit it does not know.
//! * `ResetFailedUnit(name)`, `SetUnitProperties(name, runtime, props)` (recorded), `Subscribe()`.
//! * A scope whose cgroup2 directory becomes empty is stopped and its cgroups removed, as
//!   systemd does (recorded as an event).
//!
//! Every call is appended to the `--record` file as one JSON line.
//!
//! Faults for tests: `--job-result R` (the start job ends with R, the unit left "failed"),
//! `--place-under DIR` (the scope is made under /DIR instead of its slice), `--loaded UNIT`
//! (a unit systemd has loaded already, cgroup elsewhere).
//!
//! Usage: fake-systemd --socket PATH --record FILE [options]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    UnitExists(String),
    NoSuchUnit(String),
}

#[derive(Default)]
struct Unit {
    dirs: Vec<PathBuf>,
    /// The scope's cgroup2 directory, where systemd sees whether the scope is empty.
    unified: Option<PathBuf>,
    made_slices: Vec<PathBuf>,
    failed: bool,
}

struct Opts {
    record: PathBuf,
    job_result: String,
    place_under: Option<String>,
    systemd_controllers_only: bool,
}

struct State {
    opts: Opts,
    units: BTreeMap<String, Unit>,
    next_job: u32,
}

struct Manager {
    st: Arc<Mutex<State>>,
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Bool(b) => json!(b),
        Value::U8(n) => json!(n),
        Value::U16(n) => json!(n),
        Value::U32(n) => json!(n),
        Value::U64(n) => json!(n),
        Value::I16(n) => json!(n),
        Value::I32(n) => json!(n),
        Value::I64(n) => json!(n),
        Value::Str(s) => json!(s.as_str()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        other => json!(format!("{other:?}")),
    }
}

impl State {
    fn record(&self, entry: serde_json::Value) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.opts.record)
            .expect("record file");
        writeln!(f, "{entry}").expect("record");
    }

    fn job(&mut self) -> (u32, OwnedObjectPath) {
        self.next_job += 1;
        let id = self.next_job;
        let path = ObjectPath::try_from(format!("/org/freedesktop/systemd1/job/{id}"))
            .expect("job path")
            .into();
        (id, path)
    }
}

/// Mount points of the cgroup hierarchies (those systemd manages on a v1 host with
/// `controllers_only`), each with whether it is the cgroup2 one.
fn hierarchies(controllers_only: bool) -> Vec<(PathBuf, bool)> {
    const SYSTEMD_V1: &[&str] = &[
        "name=systemd",
        "cpu",
        "cpuacct",
        "blkio",
        "memory",
        "devices",
        "pids",
    ];
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mi.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mut f = post.split(' ');
            let (fstype, _, opts) = (f.next()?, f.next()?, f.next()?);
            let mp = PathBuf::from(pre.split(' ').nth(4)?);
            let keep = match fstype {
                "cgroup2" => true,
                "cgroup" => !controllers_only || opts.split(',').any(|o| SYSTEMD_V1.contains(&o)),
                _ => false,
            };
            keep.then_some((mp, fstype == "cgroup2"))
        })
        .collect()
}

/// systemd's cgroup name escaping, for the names these tests use (a leading `_` or `.`).
fn escape(name: &str) -> String {
    if name.starts_with(['_', '.']) {
        format!("_{name}")
    } else {
        name.to_string()
    }
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` → the root.
fn slice_path(slice: &str) -> PathBuf {
    let stem = slice.trim_end_matches(".slice");
    let mut p = PathBuf::new();
    if stem == "-" || stem.is_empty() {
        return p;
    }
    let mut acc = String::new();
    for part in stem.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        p.push(escape(&format!("{acc}.slice")));
    }
    p
}

fn kill_and_remove(unit: &Unit) {
    for _ in 0..250 {
        let mut any = false;
        for d in &unit.dirs {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                any = true;
                // SAFETY: kill(2) on a pid read from the scope's own cgroup.procs.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !any {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for d in unit.dirs.iter().chain(&unit.made_slices) {
        for _ in 0..50 {
            match std::fs::remove_dir(d) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
}

/// Make the scope's cgroup under `rel` in every hierarchy and move `pids` in.
fn place(unit: &mut Unit, rel: &Path, name: &str, pids: &[u32], controllers_only: bool) {
    for (m, v2) in hierarchies(controllers_only) {
        let d = m.join(rel).join(escape(name));
        // Other tests' scopes share the slices: one may remove an emptied slice between our
        // mkdirs. Make the path again then, as systemd would realize it again.
        let mut made = false;
        for _ in 0..20 {
            let mut cur = m.clone();
            for c in rel.components() {
                cur.push(c);
                if std::fs::create_dir(&cur).is_ok() {
                    unit.made_slices.push(cur.clone());
                }
            }
            match std::fs::create_dir(&d) {
                Ok(()) => made = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {}
            }
            break;
        }
        if !made {
            continue;
        }
        for pid in pids {
            let _ = std::fs::write(d.join("cgroup.procs"), pid.to_string());
        }
        if v2 {
            unit.unified = Some(d.clone());
        }
        unit.dirs.push(d);
    }
    unit.made_slices.reverse();
}

fn emit_later(em: &SignalEmitter<'_>, id: u32, job: OwnedObjectPath, unit: String, result: String) {
    let em = em.to_owned();
    tokio::spawn(async move {
        // After the method's reply, as systemd's job queue does.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let _ = Manager::job_removed(&em, id, job.as_ref(), &unit, &result).await;
    });
}

/// systemd stops a scope whose cgroup becomes empty (seen in cgroup2's `cgroup.events`) and
/// removes its cgroups: a scope only systemd's own first process ever held does not outlive it.
async fn collect_when_empty(st: Arc<Mutex<State>>, name: String, unified: PathBuf) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let events = std::fs::read_to_string(unified.join("cgroup.events")).unwrap_or_default();
        if events.contains("populated 1") {
            continue;
        }
        let mut st = st.lock().unwrap();
        let ours = st
            .units
            .get(&name)
            .is_some_and(|u| u.unified.as_ref() == Some(&unified));
        if ours {
            let unit = st.units.remove(&name).expect("present");
            st.record(json!({"event": "scope empty: stopped by systemd", "name": name}));
            kill_and_remove(&unit);
        }
        return;
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    async fn start_transient_unit(
        &self,
        name: String,
        mode: String,
        properties: Vec<(String, OwnedValue)>,
        _aux: Vec<(String, Vec<(String, OwnedValue)>)>,
        #[zbus(signal_emitter)] em: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SdError> {
        let mut st = self.st.lock().unwrap();
        let props: serde_json::Map<String, serde_json::Value> = properties
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect();
        st.record(
            json!({"method": "StartTransientUnit", "name": name, "mode": mode, "props": props}),
        );
        if st.units.contains_key(&name) {
            return Err(SdError::UnitExists(format!("Unit {name} already exists.")));
        }
        let pids: Vec<u32> = props
            .get("PIDs")
            .and_then(|p| p.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_u64())
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default();
        let slice = props
            .get("Slice")
            .and_then(|s| s.as_str())
            .unwrap_or("system.slice");
        let rel = match &st.opts.place_under {
            Some(d) => PathBuf::from(d),
            None => slice_path(slice),
        };
        let mut unit = Unit::default();
        let result = st.opts.job_result.clone();
        if result == "done" {
            place(
                &mut unit,
                &rel,
                &name,
                &pids,
                st.opts.systemd_controllers_only,
            );
        } else {
            unit.failed = true;
        }
        if let Some(u) = &unit.unified {
            tokio::spawn(collect_when_empty(self.st.clone(), name.clone(), u.clone()));
        }
        st.units.insert(name.clone(), unit);
        let (id, job) = st.job();
        emit_later(&em, id, job.clone(), name, result);
        Ok(job)
    }

    async fn stop_unit(
        &self,
        name: String,
        mode: String,
        #[zbus(signal_emitter)] em: SignalEmitter<'_>,
    ) -> Result<OwnedObjectPath, SdError> {
        let mut st = self.st.lock().unwrap();
        st.record(json!({"method": "StopUnit", "name": name, "mode": mode}));
        let Some(unit) = st.units.remove(&name) else {
            return Err(SdError::NoSuchUnit(format!("Unit {name} not loaded.")));
        };
        kill_and_remove(&unit);
        if unit.failed {
            // A failed unit stays loaded until reset.
            st.units.insert(name.clone(), unit);
        }
        let (id, job) = st.job();
        emit_later(&em, id, job.clone(), name, "done".into());
        Ok(job)
    }

    async fn reset_failed_unit(&self, name: String) -> Result<(), SdError> {
        let mut st = self.st.lock().unwrap();
        st.record(json!({"method": "ResetFailedUnit", "name": name}));
        match st.units.get(&name).map(|u| u.failed) {
            None => Err(SdError::NoSuchUnit(format!("Unit {name} not loaded."))),
            Some(true) => {
                st.units.remove(&name);
                Ok(())
            }
            Some(false) => Ok(()),
        }
    }

    async fn set_unit_properties(
        &self,
        name: String,
        runtime: bool,
        properties: Vec<(String, OwnedValue)>,
    ) -> Result<(), SdError> {
        let st = self.st.lock().unwrap();
        let props: serde_json::Map<String, serde_json::Value> = properties
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect();
        st.record(json!({"method": "SetUnitProperties", "name": name, "runtime": runtime, "props": props}));
        if !st.units.contains_key(&name) {
            return Err(SdError::NoSuchUnit(format!("Unit {name} not loaded.")));
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<(), SdError> {
        self.st
            .lock()
            .unwrap()
            .record(json!({"method": "Subscribe"}));
        Ok(())
    }

    #[zbus(signal)]
    async fn job_removed(
        em: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

fn parse_args() -> (PathBuf, Opts, BTreeSet<String>) {
    let mut args = std::env::args().skip(1);
    let (mut socket, mut record) = (None, None);
    let mut opts_loaded = BTreeSet::new();
    let (mut job_result, mut place_under, mut only) = ("done".to_string(), None, false);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a}: value missing"));
        match a.as_str() {
            "--socket" => socket = Some(PathBuf::from(val())),
            "--record" => record = Some(PathBuf::from(val())),
            "--job-result" => job_result = val(),
            "--place-under" => place_under = Some(val()),
            "--loaded" => {
                opts_loaded.insert(val());
            }
            "--systemd-controllers-only" => only = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let opts = Opts {
        record: record.expect("--record"),
        job_result,
        place_under,
        systemd_controllers_only: only,
    };
    (socket.expect("--socket"), opts, opts_loaded)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> zbus::Result<()> {
    let (socket, opts, loaded) = parse_args();
    let mut units = BTreeMap::new();
    for name in loaded {
        units.insert(name, Unit::default());
    }
    let st = Arc::new(Mutex::new(State {
        opts,
        units,
        next_job: 0,
    }));
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    let mut conns = vec![];
    loop {
        let (stream, _) = listener.accept().await?;
        let guid = zbus::Guid::generate();
        let mgr = Manager { st: st.clone() };
        let conn = zbus::connection::Builder::unix_stream(stream)
            .server(guid)?
            .p2p()
            .serve_at("/org/freedesktop/systemd1", mgr)?
            .build()
            .await;
        match conn {
            Ok(c) => conns.push(c),
            Err(e) => eprintln!("fake-systemd: connection: {e}"),
        }
    }
}
