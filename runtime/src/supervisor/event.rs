//! Denial events: the JSON line of `events.jsonl`, its rendering in Ward's log (text or
//! JSON), the token bucket that rate-limits them, and timestamps.

use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// Burst of denial events a container may log at once.
pub const EVENT_BURST: f64 = 100.0;
/// Sustained denial events per second once the burst is spent; the rest is counted and
/// reported as one "N denials suppressed" line at most once a second.
pub const EVENT_RATE: f64 = 20.0;

/// One line of `events.jsonl` (and of `ward events`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub time: String,
    /// `seccomp-denial`, `seccomp-denials-suppressed`, `supervisor-error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The caller's pid inside the container's pid namespace (best effort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// What the caller got: `errno:EPERM`, `kill`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Event {
    /// An event of `kind` for container `id` now, every optional field empty.
    pub(crate) fn new(kind: &str, id: &str, profile: &str) -> Self {
        Event {
            time: now_rfc3339(),
            kind: kind.to_string(),
            id: id.to_string(),
            profile: profile.to_string(),
            pid: None,
            container_pid: None,
            syscall: None,
            nr: None,
            args: None,
            action: None,
            suppressed: None,
            message: None,
        }
    }
}

/// RFC 3339 UTC time with microseconds (as Ward's log prints it).
pub(crate) fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Token bucket: `burst` at once, `rate` per second after that.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(burst: f64, rate: f64) -> Self {
        Self {
            tokens: burst,
            burst,
            rate,
            last: Instant::now(),
        }
    }

    pub(crate) fn take_at(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The level of a line in Ward's log.
fn level(ev: &Event) -> &'static str {
    match ev.kind.as_str() {
        "supervisor-error" => "ERROR",
        _ => "WARN",
    }
}

fn summary(ev: &Event) -> String {
    match (&ev.syscall, &ev.message) {
        (Some(s), _) => format!(
            "seccomp denied {s}({}) -> {}",
            ev.args.as_deref().unwrap_or_default().join(", "),
            ev.action.as_deref().unwrap_or("?")
        ),
        (None, Some(m)) => m.clone(),
        (None, None) => ev.kind.clone(),
    }
}

/// A JSON line shaped like the rest of Ward's `--log-format json` log.
pub(crate) fn log_json(ev: &Event) -> String {
    let mut v = serde_json::to_value(ev).expect("serializable");
    if let Some(o) = v.as_object_mut() {
        o.remove("time");
        o.insert("timestamp".into(), ev.time.clone().into());
        o.insert("level".into(), level(ev).into());
        o.insert("message".into(), summary(ev).into());
        o.insert("target".into(), "ward::supervisor".into());
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// A text line shaped like the rest of Ward's text log.
pub(crate) fn log_text(ev: &Event) -> String {
    let mut s = format!(
        "{} {:>5} {} id={} profile={}",
        ev.time,
        level(ev),
        summary(ev),
        ev.id,
        ev.profile
    );
    if let Some(p) = ev.pid {
        s.push_str(&format!(" pid={p}"));
    }
    if let Some(p) = ev.container_pid {
        s.push_str(&format!(" container_pid={p}"));
    }
    if let Some(nr) = ev.nr {
        s.push_str(&format!(" nr={nr}"));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 2.0);
        b.last = t0;
        assert!((0..3).all(|_| b.take_at(t0)));
        assert!(!b.take_at(t0));
        assert!(!b.take_at(t0 + Duration::from_millis(400)));
        assert!(b.take_at(t0 + Duration::from_millis(600)));
        assert!(!b.take_at(t0 + Duration::from_millis(700)));
        // Never more than the burst after a long pause.
        let later = t0 + Duration::from_secs(100);
        assert!((0..3).all(|_| b.take_at(later)));
        assert!(!b.take_at(later));
    }

    #[test]
    fn rfc3339_format() {
        let s = now_rfc3339();
        assert_eq!(s.len(), "2026-11-22T16:00:00.000000Z".len(), "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        let year: i32 = s[..4].parse().unwrap();
        assert!(year >= 2024, "{s}");
    }

    #[test]
    fn log_lines_name_container_and_syscall() {
        let ev = Event {
            time: "2026-11-22T16:00:00.000000Z".into(),
            kind: "seccomp-denial".into(),
            id: "c1".into(),
            profile: "default".into(),
            pid: Some(10),
            syscall: Some("unshare".into()),
            nr: Some(272),
            args: Some(vec!["0x10000000".into()]),
            action: Some("errno:EPERM".into()),
            ..Event::new("", "", "")
        };
        let j: serde_json::Value = serde_json::from_str(&log_json(&ev)).unwrap();
        assert_eq!(j["id"], "c1");
        assert_eq!(j["syscall"], "unshare");
        assert_eq!(j["level"], "WARN");
        assert_eq!(j["profile"], "default");
        let t = log_text(&ev);
        assert!(t.contains("seccomp denied unshare(0x10000000) -> errno:EPERM id=c1"));
    }
}
