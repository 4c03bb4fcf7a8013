//! Host-side canaries and the checks made after every technique: the probe's
//! word is only trusted when the host agrees.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const HOST_CANARY: &str = "ward-host-canary";
pub const RO_CANARY: &str = "ward-ro-volume-canary: must stay unchanged\n";
pub const OUTSIDE_CANARY: &str = "ward-outside-canary: next to the volumes, in neither\n";

/// Everything planted on the host for one suite run.
pub struct Canaries {
    pub host_dir: PathBuf,
    /// The read-write volume: the container's to write, but it must leave no
    /// set-id file, device node or hard link to a file outside it.
    pub vol: PathBuf,
    /// The read-only volume with a host-uid-0 canary.
    pub ro_vol: PathBuf,
    /// A host-uid-0 file next to both volumes.
    pub outside: PathBuf,
    pub sleeper: Child,
    pub abstract_name: String,
    pub abstract_hits: Arc<AtomicUsize>,
    /// An fd to the host canary dir, deliberately left without CLOEXEC so
    /// every runtime we spawn inherits it (CVE-2024-21626 class).
    pub leaked_fd: i32,
    /// A fake host control socket (docker.sock) in a host directory; only
    /// the unconfined column mounts it, to show `host-sockets` can succeed.
    pub sock_dir: PathBuf,
    pub sock_hits: Arc<AtomicUsize>,
    pub runtime_bins: Vec<PathBuf>,
}

fn set_mtime(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().to_string_lossy().as_bytes()).expect("path");
    let t = [
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
    ];
    // SAFETY: `c` is NUL-terminated, `t` holds two valid timespecs.
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), 0) };
}

impl Canaries {
    pub fn plant(
        paths: &crate::bundle::Paths,
        sock_dir: &Path,
        runtime_bins: Vec<PathBuf>,
    ) -> Result<Self, String> {
        let (host_dir, vol) = (paths.host.as_path(), paths.vol.as_path());
        std::fs::create_dir_all(sock_dir)
            .map_err(|e| format!("mkdir {}: {e}", sock_dir.display()))?;
        let sock_hits = Arc::new(AtomicUsize::new(0));
        let l = UnixListener::bind(sock_dir.join("docker.sock"))
            .map_err(|e| format!("bind docker.sock: {e}"))?;
        let h = sock_hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                if s.is_ok() {
                    h.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        std::fs::create_dir_all(host_dir)
            .map_err(|e| format!("mkdir {}: {e}", host_dir.display()))?;
        for d in [vol, &paths.ro_vol] {
            std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(vol, std::fs::Permissions::from_mode(0o777));
        let _ = std::fs::set_permissions(host_dir, std::fs::Permissions::from_mode(0o755));
        let mut cmd = Command::new("sleep");
        cmd.arg("100000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
        // The canary process dies with the runner, however the runner ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            })
        };
        let sleeper = cmd.spawn().map_err(|e| format!("spawn sleep: {e}"))?;
        let abstract_name = format!("ward-escape-{}-{}", std::process::id(), nonce());
        let hits = Arc::new(AtomicUsize::new(0));
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .map_err(|e| format!("abstract addr: {e}"))?;
            let l = UnixListener::bind_addr(&addr).map_err(|e| format!("bind abstract: {e}"))?;
            let h = hits.clone();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    if s.is_ok() {
                        h.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        let c = std::ffi::CString::new(host_dir.as_os_str().to_string_lossy().as_bytes())
            .expect("path");
        // SAFETY: `c` is NUL-terminated; no O_CLOEXEC on purpose (see field doc).
        let leaked_fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        let me = Canaries {
            host_dir: host_dir.to_path_buf(),
            vol: vol.to_path_buf(),
            ro_vol: paths.ro_vol.clone(),
            outside: paths.outside.clone(),
            sleeper,
            abstract_name,
            abstract_hits: hits,
            leaked_fd,
            sock_dir: sock_dir.to_path_buf(),
            sock_hits,
            runtime_bins,
        };
        me.reset();
        Ok(me)
    }

    /// Put canaries back to their known state and remove anything else.
    pub fn reset(&self) {
        for dir in [&self.host_dir, &self.vol, &self.ro_vol] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    // symlink_metadata: never follow what the container planted.
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => {
                            let _ = std::fs::remove_dir_all(&p);
                        }
                        _ => {
                            let _ = std::fs::remove_file(&p);
                        }
                    }
                }
            }
        }
        use std::os::unix::fs::PermissionsExt;
        let hc = self.host_dir.join("canary.txt");
        let _ = std::fs::write(&hc, format!("{HOST_CANARY}\n"));
        set_mtime(&hc);
        // The directory the symlinked mount targets point into.
        let _ = std::fs::create_dir(self.host_dir.join("target"));
        set_mtime(&self.host_dir.join("target"));
        for (f, text) in [
            (self.ro_vol.join("canary"), RO_CANARY),
            (self.outside.clone(), OUTSIDE_CANARY),
        ] {
            let _ = std::fs::write(&f, text);
            // Owned by host uid 0, mode 0644.
            let _ = std::os::unix::fs::chown(&f, Some(0), Some(0));
            let _ = std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644));
            set_mtime(&f);
        }
        set_mtime(&self.host_dir);
    }

    pub fn pid(&self) -> i32 {
        self.sleeper.id() as i32
    }
}

pub fn nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

/// Identity of a large binary without reading it: any write changes ctime.
fn bin_sig(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => format!(
            "ino={} mode={:o} size={} mtime={}.{} ctime={}.{}",
            m.ino(),
            m.mode(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ),
        Err(e) => format!("missing: {e}"),
    }
}

fn file_sig(p: &Path) -> String {
    match (std::fs::symlink_metadata(p), std::fs::read(p)) {
        (Ok(m), Ok(b)) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut h);
            format!(
                "uid={} mode={:o} nlink={} size={} mtime={} hash={:x}",
                m.uid(),
                m.mode(),
                m.nlink(),
                m.len(),
                m.mtime(),
                h.finish()
            )
        }
        (Ok(m), Err(_)) => format!("uid={} mode={:o} unreadable", m.uid(), m.mode()),
        (Err(e), _) => format!("missing: {e}"),
    }
}

fn listing(d: &Path) -> BTreeSet<String> {
    std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points of the host mount namespace that matter: everything except
/// scratch areas other tools on a shared machine mount into, and the
/// runtimes' own bookkeeping under their --root state dirs (ward mounts
/// idmapped layers there; those are checked as leaks after delete).
fn host_mounts(ours: &Path) -> BTreeSet<String> {
    let state = ours.join("state").to_string_lossy().into_owned();
    let ours = ours.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let mp = (*f.get(4)?).to_string();
            let scratch = ["/tmp/", "/run/", "/var/", "/work/"]
                .iter()
                .any(|p| mp.starts_with(p));
            if mp.starts_with(&state) {
                return None;
            }
            (mp.starts_with(&ours) || !scratch).then(|| format!("{mp} {}", f.get(3).unwrap_or(&"")))
        })
        .collect()
}

/// A snapshot of the host taken before a technique runs.
pub struct Snapshot {
    files: BTreeMap<String, String>,
    bins: BTreeMap<String, String>,
    host_listing: BTreeSet<String>,
    root_listing: BTreeSet<String>,
    mounts: BTreeSet<String>,
    hits: usize,
    sock_hits: usize,
}

impl Snapshot {
    pub fn take(c: &Canaries, work: &Path) -> Self {
        let mut files = BTreeMap::new();
        for p in [
            c.host_dir.join("canary.txt"),
            c.ro_vol.join("canary"),
            c.outside.clone(),
            c.host_dir.clone(),
        ] {
            files.insert(p.to_string_lossy().into_owned(), file_sig(&p));
        }
        let mut bins = BTreeMap::new();
        for b in &c.runtime_bins {
            bins.insert(b.to_string_lossy().into_owned(), bin_sig(b));
        }
        Snapshot {
            files,
            bins,
            host_listing: listing(&c.host_dir),
            root_listing: listing(Path::new("/")),
            mounts: host_mounts(work),
            hits: c.abstract_hits.load(Ordering::SeqCst),
            sock_hits: c.sock_hits.load(Ordering::SeqCst),
        }
    }

    /// Every way the host differs from the snapshot.
    pub fn verify(&self, c: &Canaries, work: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for (p, sig) in &self.files {
            let now = file_sig(Path::new(p));
            // The host dir's own mtime may change when the runner resets it;
            // its listing is compared below instead.
            if &now != sig && Path::new(p) != c.host_dir {
                v.push(format!("{p} changed ({sig} -> {now})"));
            }
        }
        for (p, sig) in &self.bins {
            let now = bin_sig(Path::new(p));
            if &now != sig {
                v.push(format!("runtime binary {p} changed ({sig} -> {now})"));
            }
        }
        v.extend(planted_in(&c.vol));
        v.extend(links_out(&c.vol));
        for (d, n) in [
            (&c.ro_vol, "read-only volume"),
            (&c.host_dir.join("target"), "host canary dir's target"),
        ] {
            for x in listing(d) {
                if x != "canary" {
                    v.push(format!("new entry in the {n}: {x}"));
                }
            }
        }
        let hl = listing(&c.host_dir);
        for n in hl.difference(&self.host_listing) {
            v.push(format!("new file in host canary dir: {n}"));
        }
        let rl = listing(Path::new("/"));
        for n in rl.difference(&self.root_listing) {
            v.push(format!("new entry in host /: {n}"));
        }
        for m in host_mounts(work).difference(&self.mounts) {
            v.push(format!("new host mount: {m}"));
        }
        let pid = c.pid();
        match std::fs::read_to_string(format!("/proc/{pid}/status")) {
            Err(_) => v.push(format!("host canary process {pid} is gone")),
            Ok(s) => {
                let tracer = s
                    .lines()
                    .find_map(|l| l.strip_prefix("TracerPid:"))
                    .map(str::trim);
                if tracer != Some("0") {
                    v.push(format!(
                        "host canary process {pid} is traced (TracerPid {tracer:?})"
                    ));
                }
                if s.lines().any(|l| {
                    l.starts_with("State:")
                        && (l.contains("(stopped)") || l.contains("(tracing stop)"))
                }) {
                    v.push(format!("host canary process {pid} is stopped"));
                }
            }
        }
        let hits = c.abstract_hits.load(Ordering::SeqCst);
        if hits != self.hits {
            v.push(format!(
                "host abstract socket @{} got {} connection(s)",
                c.abstract_name,
                hits - self.hits
            ));
        }
        let sh = c.sock_hits.load(Ordering::SeqCst);
        if sh != self.sock_hits {
            v.push(format!(
                "fake host docker.sock got {} connection(s)",
                sh - self.sock_hits
            ));
        }
        v
    }
}

/// Walk `dir` without following symlinks (bounded depth), calling `f` on
/// every entry's path and lstat.
fn walk(dir: &Path, depth: u32, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        f(&p, &m);
        if m.is_dir() && depth > 0 {
            walk(&p, depth - 1, f);
        }
    }
}

/// Set-id files and device nodes under a read-write volume: through an
/// idmapped mount they belong to host root, so they would work on the host.
pub fn planted_in(vol: &Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut v = Vec::new();
    walk(vol, 8, &mut |p, m| {
        let ft = m.file_type();
        if ft.is_char_device() || ft.is_block_device() {
            v.push(format!(
                "device node planted in the rw volume: {} (rdev {:#x}, uid {})",
                p.display(),
                m.rdev(),
                m.uid()
            ));
        } else if !ft.is_symlink() && m.mode() & 0o6000 != 0 && !ft.is_dir() {
            v.push(format!(
                "set-id file planted in the rw volume: {} (mode {:o}, uid {})",
                p.display(),
                m.mode() & 0o7777,
                m.uid()
            ));
        }
    });
    v
}

/// Regular files under a read-write volume with more links than the volume
/// itself holds: hard links to files outside it.
pub fn links_out(vol: &Path) -> Vec<String> {
    let mut seen: BTreeMap<(u64, u64), (u64, u64, PathBuf)> = BTreeMap::new();
    walk(vol, 8, &mut |p, m| {
        if m.file_type().is_file() && m.nlink() > 1 {
            let e = seen
                .entry((m.dev(), m.ino()))
                .or_insert((m.nlink(), 0, p.to_path_buf()));
            e.1 += 1;
        }
    });
    seen.into_values()
        .filter(|(nlink, inside, _)| inside < nlink)
        .map(|(nlink, inside, p)| {
            format!(
                "hard link to a file outside the rw volume: {} ({nlink} links, {inside} inside the volume)",
                p.display()
            )
        })
        .collect()
}

/// Processes whose root directory is our rootfs: container processes that
/// outlived their container.
pub fn leaked_processes(rootfs: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(r) = std::fs::read_link(format!("/proc/{n}/root")) {
            if r.starts_with(rootfs) {
                let comm = std::fs::read_to_string(format!("/proc/{n}/comm")).unwrap_or_default();
                v.push(format!(
                    "pid {n} ({}) still runs in the rootfs",
                    comm.trim()
                ));
            }
        }
    }
    v
}

/// Host mounts under the state dirs that name a container (runtime
/// bookkeeping that must be gone after delete).
pub fn leaked_mounts(work: &Path, needle: &str) -> Vec<String> {
    let state = work.join("state").to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&state) && m.contains(needle))
        .map(|m| format!("mount left: {m}"))
        .collect()
}

/// Entries under a runtime's --root state dir (any depth up to 4) whose
/// name contains `needle`: container state left after delete.
pub fn leaked_state(root: &Path, needle: &str) -> Vec<String> {
    fn walk(d: &Path, needle: &str, depth: u32, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(format!("state left: {}", p.display()));
            } else if depth > 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&p, needle, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, needle, 4, &mut out);
    out
}

/// cgroup directories (v1 controllers and the unified tree) named after `needle`.
pub fn leaked_cgroups(needle: &str) -> Vec<String> {
    fn walk(d: &Path, needle: &str, depth: u32, out: &mut Vec<String>) {
        if depth == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                out.push(p.to_string_lossy().into_owned());
            } else {
                walk(&p, needle, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 5, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host-side volume checks can fail: they see what a container that
    /// got through would leave behind.
    #[test]
    fn volume_checks_detect_plants_and_links_out() {
        let t = std::env::temp_dir().join(format!("ward-escape-test-{}", nonce()));
        let vol = t.join("rw");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(t.join("outside"), "x").unwrap();
        std::fs::write(vol.join("plain"), "x").unwrap();
        std::fs::hard_link(vol.join("plain"), vol.join("sub/plain2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", vol.join("sym")).unwrap();
        assert!(planted_in(&vol).is_empty(), "{:?}", planted_in(&vol));
        assert!(links_out(&vol).is_empty(), "{:?}", links_out(&vol));

        std::fs::hard_link(t.join("outside"), vol.join("sub/hl")).unwrap();
        let l = links_out(&vol);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].contains("sub/hl"), "{l:?}");

        use std::os::unix::fs::PermissionsExt;
        std::fs::write(vol.join("sub/suid"), "x").unwrap();
        std::fs::set_permissions(
            vol.join("sub/suid"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let p = planted_in(&vol);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("mode 4755"), "{p:?}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
