//! The container's stdio as a way back into the host: a container whose stdout is a pipe it
//! shares with host processes (`make | tee`, an engine's log pipe) reopens that pipe through
//! `/proc/self/fd/1` for **reading** and takes what the host processes write into it.
//! Ward gives the pipe to the container's root so `/dev/stdout` can be reopened (as under
//! runc), but only in the direction of its fd (mode 0200): judged from the host, the host's
//! reader must get every line its writer wrote, and the container's stderr none of them.
//! Both runtimes start the container with `run -d`, which hands it the caller's stdio as it
//! is (runc's foreground `run` copies through pipes of its own instead).

use crate::bundle;
use crate::machinery::{judge, na, Mach};
use crate::report::Cell;
use crate::rt::Runtime;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

pub const TECH: &str = "stdio-pipe-read";

/// Lines the host writer puts into the shared pipe while the container runs.
const LINES: usize = 40;

/// In the container: reopen stdout for reading (in a subshell: a failed `exec` redirection
/// ends a shell); on success, copy what arrives, for 3 s, to stderr.
const PROBE: &str = "if (exec 3</dev/stdout) 2>/dev/null; then echo reopened-for-read >&2; \
                     exec 3</dev/stdout; timeout 3 cat <&3 >&2; \
                     else echo read-reopen-refused >&2; fi; exit 0";

pub fn stdio_read(m: &Mach, r: &Runtime) -> Cell {
    if r.ctrd.is_some() {
        return na(
            TECH,
            r,
            "containerd gives each container FIFOs of its own (no pipe shared with a host \
             writer); the shim's reopen is limited to the fd's direction by Landlock \
             (integration/tests/ctr.rs)",
        );
    }
    let col = crate::machinery::column(r);
    let snap = m.snapshot();
    let id = m.id("stdio");
    let b = m.dir.join("bundles").join(&id);
    if let Err(e) = bundle::write_config(&b, &m.spec(&id, &["/bin/sh", "-c", PROBE])) {
        return Cell::error(TECH, col, &format!("bundle: {e}"));
    }
    let run = match Sharing::start(r, &b, &id) {
        Ok(run) => run,
        Err(e) => {
            let _ = m.remove(r, &id);
            return Cell::error(TECH, col, &e);
        }
    };
    let received = run.finish(r, &id);
    let leaks = m.remove(r, &id);
    let stderr = run.stderr();
    let mut findings = m.verify(&snap);
    let received = match received {
        Ok(n) => n,
        Err(e) => return Cell::error(TECH, col, &e),
    };
    let stolen = stderr
        .lines()
        .filter(|l| l.starts_with("host-secret-"))
        .count();
    if stolen > 0 {
        findings.push(format!(
            "the container read {stolen} line(s) a host process wrote into the pipe it shares \
             (the host's reader got {received} of {LINES})"
        ));
    } else if received < LINES {
        findings.push(format!(
            "the host's reader got {received} of {LINES} lines its writer put in the pipe"
        ));
    }
    let ok = if stderr.contains("read-reopen-refused") {
        format!("reopening stdout for reading refused; the host's reader got all {LINES} lines")
    } else {
        format!("no host line reached the container; the host's reader got all {LINES}")
    };
    judge(TECH, r, findings, leaks, ok)
}

/// A detached container whose stdout is a pipe a host writer also writes into.
struct Sharing {
    reader: std::io::PipeReader,
    sentinel: std::io::PipeWriter,
    writer: std::thread::JoinHandle<()>,
    stderr: std::thread::JoinHandle<String>,
}

impl Sharing {
    fn start(r: &Runtime, bundle: &std::path::Path, id: &str) -> Result<Self, String> {
        let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let for_runtime = writer.try_clone().map_err(|e| format!("dup: {e}"))?;
        let sentinel = writer.try_clone().map_err(|e| format!("dup: {e}"))?;
        let (err_r, err_w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let b = bundle.to_string_lossy();
        let out = r
            .cmd(&["run", "-d", "--bundle", &b, id])
            .stdin(Stdio::null())
            .stdout(Stdio::from(for_runtime))
            .stderr(Stdio::from(err_w))
            .status()
            .map_err(|e| format!("spawn: {e}"))?;
        // Read to EOF: the container's stderr (the runtime's own lines too).
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut { err_r }, &mut s);
            s
        });
        if !out.success() {
            return Err(format!("run -d {id}: {out}"));
        }
        let writer = std::thread::spawn(move || {
            let mut w = writer;
            for i in 0..LINES {
                let _ = writeln!(w, "host-secret-{i}");
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Ok(Self {
            reader,
            sentinel,
            writer,
            stderr,
        })
    }

    /// Wait for the container to stop, then read the host's pipe: while it ran every line
    /// waited there, so a container able to read it took them. The host reads up to an end
    /// mark (a runtime process that keeps the pipe open must not hold it until EOF).
    fn finish(&self, r: &Runtime, id: &str) -> Result<usize, String> {
        let t0 = std::time::Instant::now();
        while r.state(id).is_some_and(|s| s["status"] != "stopped") {
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(format!("{id} still runs after 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        while !self.writer.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = writeln!(&self.sentinel, "host-done");
        Ok(BufReader::new(&self.reader)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| l != "host-done")
            .filter(|l| l.starts_with("host-secret-"))
            .count())
    }

    /// What the container wrote to stderr (once the runtime has let go of the pipe).
    fn stderr(self) -> String {
        drop(self.sentinel);
        self.stderr.join().unwrap_or_default()
    }
}
