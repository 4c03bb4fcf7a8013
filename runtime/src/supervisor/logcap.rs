//! Ward's log (`--log`) as the supervisor writes it: bounded. A denial storm is rate-limited
//! to [`super::EVENT_RATE`] lines a second, which still grows the engine's log by ~7.6 KB/s
//! per container for as long as the storm lasts. So the supervisor appends only while the
//! file (whoever else writes to it) is below [`LOG_CAP`] bytes; past it, one `log-full` line
//! says so, and each event it keeps out is counted. The count is written as one
//! `log-events-dropped` line as soon as there is room again (the file was rotated or
//! truncated) and when the supervisor exits, so nothing goes missing silently.

use std::fs::File;
use std::io::Write;

use super::event::{log_json, log_text, Event};

/// The size past which the supervisor stops appending to Ward's log.
pub const LOG_CAP: u64 = 4 << 20;

pub(crate) struct CappedLog {
    file: File,
    json: bool,
    cap: u64,
    /// The `log-full` line was written since the file last had room.
    full_noted: bool,
    /// Events kept out of the log since the last `log-events-dropped` line.
    dropped: u64,
}

impl CappedLog {
    pub(crate) fn new(file: File, json: bool, cap: u64) -> Self {
        Self {
            file,
            json,
            cap,
            full_noted: false,
            dropped: 0,
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    fn render(&self, ev: &Event) -> String {
        if self.json {
            log_json(ev)
        } else {
            log_text(ev)
        }
    }

    fn size(&self) -> u64 {
        // Unknown size: treat as full (fail closed on growth, never on the container).
        self.file.metadata().map_or(u64::MAX, |m| m.len())
    }

    /// Append `ev` in one write, or count it when the file has reached the cap.
    pub(crate) fn write(&mut self, ev: &Event) {
        let line = self.render(ev);
        if self.size().saturating_add(line.len() as u64) <= self.cap {
            self.full_noted = false;
            if self.dropped > 0 {
                let note = self.dropped_note(ev);
                let _ = self.file.write_all(self.render(&note).as_bytes());
            }
            let _ = self.file.write_all(line.as_bytes());
            return;
        }
        self.dropped += 1;
        if !self.full_noted {
            self.full_noted = true;
            let full = Event {
                message: Some(format!(
                    "Ward's log reached {} bytes: the supervisor stops appending events to it; those kept out are counted (`ward events` still has them while the events file has room)",
                    self.cap
                )),
                ..Event::new("log-full", &ev.id, &ev.profile)
            };
            let _ = self.file.write_all(self.render(&full).as_bytes());
        }
    }

    fn dropped_note(&mut self, like: &Event) -> Event {
        let n = std::mem::take(&mut self.dropped);
        Event {
            suppressed: Some(n),
            message: Some(format!(
                "{n} events were dropped from Ward's log (size cap {} bytes)",
                self.cap
            )),
            ..Event::new("log-events-dropped", &like.id, &like.profile)
        }
    }

    /// At exit: one last line with the count, past the cap if need be (one line per life).
    pub(crate) fn finish(&mut self, id: &str, profile: &str) {
        if self.dropped > 0 {
            let note = self.dropped_note(&Event::new("", id, profile));
            let _ = self.file.write_all(self.render(&note).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(n: u32) -> Event {
        Event {
            syscall: Some("keyctl".into()),
            nr: Some(n),
            ..Event::new("seccomp-denial", "c1", "default")
        }
    }

    #[test]
    fn stops_at_the_cap_counts_and_reports_the_drops() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log.json");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap()
        };
        let mut log = CappedLog::new(open(), true, 2000);
        for n in 0..1000 {
            log.write(&denial(n));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Bounded: the cap plus the one log-full line.
        assert!(text.len() < 2000 + 600, "{}", text.len());
        assert_eq!(text.matches("\"log-full\"").count(), 1, "{text}");
        let written = text.matches("seccomp-denial").count() as u64;
        assert!(written > 0 && written < 1000);
        // Rotated away: room again, the count comes first.
        std::fs::write(&path, "").unwrap();
        log.write(&denial(5000));
        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["type"], "log-events-dropped");
        assert_eq!(first["suppressed"].as_u64(), Some(1000 - written));
        assert!(text.lines().nth(1).unwrap().contains("seccomp-denial"));
        // At exit, with nothing dropped since: no line.
        log.finish("c1", "default");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
