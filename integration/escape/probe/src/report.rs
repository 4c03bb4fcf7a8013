//! The one JSON line a technique prints, and the helpers that classify a
//! syscall's outcome into a verdict.

use std::fmt::Write as _;

/// What the technique achieved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// The call failed with an errno a defence produces.
    Blocked,
    /// The call succeeded in a way that matters.
    Escaped,
    /// The technique could not be tried here; the reason says why.
    NotApplicable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Escaped => "escaped",
            Verdict::NotApplicable => "not-applicable",
        }
    }
}

/// One syscall (or file operation) and what it returned.
#[derive(Clone, Debug)]
pub struct Call {
    pub call: String,
    pub ret: i64,
    pub errno: Option<i32>,
}

/// The record printed for one technique.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub tried: String,
    pub results: Vec<Call>,
    pub verdict: Verdict,
    pub reason: String,
    /// A JSON line already produced by a forked helper, passed through as is.
    pub raw: Option<String>,
}

impl Outcome {
    pub fn new(id: &str, tried: &str) -> Self {
        Outcome {
            id: id.to_string(),
            tried: tried.to_string(),
            results: Vec::new(),
            verdict: Verdict::NotApplicable,
            reason: String::new(),
            raw: None,
        }
    }

    /// Record a raw return value; errno is read when `ret < 0`.
    pub fn rec(&mut self, call: &str, ret: i64) -> Call {
        let errno = if ret < 0 { Some(last_errno()) } else { None };
        let c = Call {
            call: call.to_string(),
            ret,
            errno,
        };
        self.results.push(c.clone());
        c
    }

    /// Record the outcome of a std::io operation.
    pub fn rec_io<T>(&mut self, call: &str, r: &std::io::Result<T>) -> Option<i32> {
        let errno = r.as_ref().err().map(|e| e.raw_os_error().unwrap_or(0));
        self.results.push(Call {
            call: call.to_string(),
            ret: if errno.is_some() { -1 } else { 0 },
            errno,
        });
        errno
    }

    pub fn set(&mut self, v: Verdict, reason: impl Into<String>) {
        self.verdict = v;
        self.reason = reason.into();
    }

    pub fn escaped(mut self, reason: impl Into<String>) -> Self {
        self.set(Verdict::Escaped, reason);
        self
    }
    pub fn blocked(mut self, reason: impl Into<String>) -> Self {
        self.set(Verdict::Blocked, reason);
        self
    }
    pub fn na(mut self, reason: impl Into<String>) -> Self {
        self.set(Verdict::NotApplicable, reason);
        self
    }

    /// Classify from the last recorded call: success is an escape, a
    /// defence errno (EPERM, EACCES, ENOSYS, EROFS) is blocked, anything else
    /// is `other_verdict` with the errno in the reason.
    pub fn by_last(self, what: &str, other_verdict: Verdict) -> Self {
        let last = self.results.last().cloned();
        match last {
            None => self.na("no call was made"),
            Some(c) => match c.errno {
                None => self.escaped(format!("{what}: {} succeeded", c.call)),
                Some(e) if is_defence(e) => {
                    self.blocked(format!("{} failed with {}", c.call, errno_name(e)))
                }
                Some(e) => {
                    let r = format!("{} failed with {}", c.call, errno_name(e));
                    let mut s = self;
                    s.set(other_verdict, r);
                    s
                }
            },
        }
    }

    pub fn to_json(&self) -> String {
        if let Some(r) = &self.raw {
            return r.clone();
        }
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"id\":{},\"tried\":{},\"results\":[",
            jstr(&self.id),
            jstr(&self.tried)
        );
        for (i, c) in self.results.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let errno = match c.errno {
                Some(e) => jstr(&errno_name(e)),
                None => "null".to_string(),
            };
            let _ = write!(
                s,
                "{{\"call\":{},\"ret\":{},\"errno\":{}}}",
                jstr(&c.call),
                c.ret,
                errno
            );
        }
        let _ = write!(
            s,
            "],\"verdict\":{},\"reason\":{}}}",
            jstr(self.verdict.as_str()),
            jstr(&self.reason)
        );
        s
    }
}

/// Errnos that a defence (capabilities, seccomp, LSM, read-only mounts,
/// masked paths) returns.
pub fn is_defence(e: i32) -> bool {
    matches!(
        e,
        libc::EPERM | libc::EACCES | libc::ENOSYS | libc::EROFS | libc::EOPNOTSUPP
    )
}

pub fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::ENOTBLK => "ENOTBLK",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENOKEY => "ENOKEY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ESTALE => "ESTALE",
        libc::EUSERS => "EUSERS",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

pub fn jstr(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
