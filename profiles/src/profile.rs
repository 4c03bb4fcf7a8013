//! The resolved, validated profile and its canonical TOML form.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::constants;

/// What the kernel does with a matching syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Let the call through.
    Allow,
    /// Let it through and log it (kernel audit log).
    Log,
    /// Fail the call with this errno.
    Errno(u32),
    /// Kill the whole process.
    Kill,
}

impl Action {
    /// Higher is more restrictive (the kernel's precedence between filters).
    pub fn rank(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Log => 1,
            Action::Errno(_) => 2,
            Action::Kill => 3,
        }
    }

    /// Parse `allow`, `log`, `kill`, `errno` (EPERM) or `errno:NAME`.
    pub fn parse(s: &str) -> Result<Action, String> {
        match s {
            "allow" => Ok(Action::Allow),
            "log" => Ok(Action::Log),
            "kill" => Ok(Action::Kill),
            "errno" => Ok(Action::Errno(libc::EPERM as u32)),
            other => match other.strip_prefix("errno:") {
                Some(e) => constants::errno(e)
                    .map(Action::Errno)
                    .ok_or_else(|| format!("unknown errno {e:?}")),
                None => Err(format!(
                    "unknown action {other:?} (allow, log, kill, errno, errno:NAME)"
                )),
            },
        }
    }

    /// Canonical text form, the inverse of [`Action::parse`].
    pub fn as_text(self) -> String {
        match self {
            Action::Allow => "allow".into(),
            Action::Log => "log".into(),
            Action::Kill => "kill".into(),
            Action::Errno(n) => match constants::errno_name(n) {
                Some(name) => format!("errno:{name}"),
                None => format!("errno:{n}"),
            },
        }
    }

    pub(crate) fn to_seccompiler(self) -> seccompiler::SeccompAction {
        match self {
            Action::Allow => seccompiler::SeccompAction::Allow,
            Action::Log => seccompiler::SeccompAction::Log,
            Action::Errno(n) => seccompiler::SeccompAction::Errno(n),
            Action::Kill => seccompiler::SeccompAction::KillProcess,
        }
    }
}

/// Comparison operators for [`ArgTest::Cmp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// A test on one syscall argument. Values are expressions such as `AF_INET` or
/// `CLONE_NEWUSER|CLONE_NEWNS`, evaluated per architecture at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgTest {
    /// `arg <op> value`
    Cmp(CmpOp, String),
    /// `arg & mask == value`
    MaskedEq {
        /// Mask expression.
        mask: String,
        /// Expected value after masking.
        value: String,
    },
    /// `arg` equals one of the values.
    In(Vec<String>),
    /// At least one bit of the mask is set.
    AnySet(String),
    /// Every bit of the mask is set.
    AllSet(String),
    /// No bit of the mask is set.
    NoneSet(String),
}

impl ArgTest {
    /// The operator's name in the profile format.
    pub fn op_name(&self) -> &'static str {
        match self {
            ArgTest::Cmp(op, _) => op.name(),
            ArgTest::MaskedEq { .. } => "masked_eq",
            ArgTest::In(_) => "in",
            ArgTest::AnySet(_) => "any_set",
            ArgTest::AllSet(_) => "all_set",
            ArgTest::NoneSet(_) => "none_set",
        }
    }
}

/// Width of the compared argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgWidth {
    /// 32 bits when every value fits in 32 bits, else 64. Comparing only the low
    /// half of `int` arguments stops callers hiding a value behind garbage upper bits.
    Auto,
    /// Low 32 bits only.
    Bits32,
    /// All 64 bits.
    Bits64,
}

/// One condition of an argument rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgCond {
    /// Argument index, 0..=5.
    pub index: u8,
    /// The test.
    pub test: ArgTest,
    /// Compared width.
    pub width: ArgWidth,
}

/// A conditional rule: when every condition holds, `action` applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgRule {
    /// What happens when the rule matches.
    pub action: Action,
    /// Conditions, all of which must hold.
    pub args: Vec<ArgCond>,
}

/// Everything a profile says about one syscall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallPolicy {
    /// Unconditional action, if any.
    pub action: Option<Action>,
    /// Conditional rules.
    pub rules: Vec<ArgRule>,
}

/// The seccomp part of a profile.
///
/// Semantics: for a call, take every rule that matches it (the unconditional action and
/// each argument rule whose conditions hold). The most restrictive non-allow result wins
/// (kill > errno > log). If none, the call is allowed when an allow rule matched, else the
/// default action applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompPolicy {
    /// Action for calls no rule allows.
    pub default_action: Action,
    /// Per-syscall policy, by name.
    pub syscalls: BTreeMap<String, SyscallPolicy>,
}

/// Where Landlock allows execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecScope {
    /// Anywhere on the read-only rootfs.
    Rootfs,
    /// Only from /bin, /sbin, /usr/bin, /usr/sbin, /usr/lib, /lib, /lib64.
    BinDirs,
}

/// Landlock settings of a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandlockPolicy {
    /// Where execution is allowed.
    pub exec: ExecScope,
    /// Extra read-only paths.
    pub read: Vec<String>,
    /// Extra read + execute paths.
    pub read_exec: Vec<String>,
    /// Extra read-write paths.
    pub write: Vec<String>,
    /// TCP ports the container may bind; `None` = unrestricted.
    pub tcp_bind: Option<Vec<u16>>,
    /// TCP ports the container may connect to; `None` = unrestricted.
    pub tcp_connect: Option<Vec<u16>>,
}

impl Default for LandlockPolicy {
    fn default() -> Self {
        LandlockPolicy {
            exec: ExecScope::Rootfs,
            read: Vec::new(),
            read_exec: Vec::new(),
            write: Vec::new(),
            tcp_bind: None,
            tcp_connect: None,
        }
    }
}

/// A tmpfs the runtime mounts for the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    /// Container path.
    pub path: String,
    /// Size limit in bytes.
    pub size_bytes: u64,
    /// Permission bits of the mount root.
    pub mode: u32,
    /// Mount with `noexec`.
    pub noexec: bool,
}

/// Whether the container's rootfs may be writable (`[rootfs]`). Off by default: the rootfs
/// is read-only and only the profile's tmpfs paths are writable. When allowed, a spec that
/// asks (`root.readonly: false`) gets a writable rootfs whose writes land in a per-container
/// upper layer on a tmpfs of `size_bytes`, gone with the container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootfsPolicy {
    /// A spec may ask for a writable rootfs.
    pub writable: bool,
    /// Size limit of the writable layer, in bytes (set when `writable`).
    pub size_bytes: Option<u64>,
}

impl RootfsPolicy {
    /// The writable layer's size when a writable rootfs is allowed, else `None`.
    pub fn writable_size(&self) -> Option<u64> {
        self.size_bytes.filter(|_| self.writable)
    }
}

/// Resource limits (cgroup).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// pids.max
    pub pids: Option<i64>,
    /// memory limit in bytes
    pub memory_bytes: Option<i64>,
    /// cpu shares (weight)
    pub cpu_shares: Option<u64>,
    /// cpu quota per period, microseconds
    pub cpu_quota_us: Option<i64>,
    /// cpu period, microseconds
    pub cpu_period_us: Option<u64>,
}

/// A resolved, validated profile: `extends` applied, groups expanded.
#[derive(Clone, Debug)]
pub struct Profile {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) seccomp: SeccompPolicy,
    pub(crate) capabilities: Vec<String>,
    pub(crate) landlock: LandlockPolicy,
    pub(crate) tmpfs: Vec<Tmpfs>,
    pub(crate) rootfs: RootfsPolicy,
    pub(crate) limits: Limits,
    pub(crate) shareable_namespaces: Vec<String>,
    /// syscall -> where its unconditional action came from (for `explain`); not part of
    /// equality or the hash.
    pub(crate) provenance: BTreeMap<String, String>,
}

impl PartialEq for Profile {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.description == other.description
            && self.seccomp == other.seccomp
            && self.capabilities == other.capabilities
            && self.landlock == other.landlock
            && self.tmpfs == other.tmpfs
            && self.rootfs == other.rootfs
            && self.limits == other.limits
            && self.shareable_namespaces == other.shareable_namespaces
    }
}

impl Profile {
    /// Profile name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// One-line description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// sha256 (hex) of the canonical resolved TOML form.
    pub fn hash(&self) -> String {
        let digest = Sha256::digest(self.render(false).as_bytes());
        digest.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
    /// Capabilities a spec may keep (e.g. `CAP_NET_BIND_SERVICE`); all others are dropped.
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }
    /// tmpfs mounts the runtime adds.
    pub fn tmpfs(&self) -> &[Tmpfs] {
        &self.tmpfs
    }
    /// Whether a spec may have a writable rootfs, and its size.
    pub fn rootfs(&self) -> &RootfsPolicy {
        &self.rootfs
    }
    /// cgroup limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Namespaces (OCI names) a spec may share with another container or the host.
    pub fn shareable_namespaces(&self) -> &[String] {
        &self.shareable_namespaces
    }
    /// Landlock settings.
    pub fn landlock(&self) -> &LandlockPolicy {
        &self.landlock
    }
    /// The seccomp policy.
    pub fn seccomp(&self) -> &SeccompPolicy {
        &self.seccomp
    }
    /// Fully resolved TOML (groups expanded, no `extends`), with comments saying where
    /// each unconditional entry came from. Parsing it gives back an equal profile.
    pub fn to_toml(&self) -> String {
        self.render(true)
    }

    fn render(&self, comments: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "name = {}", q(&self.name));
        let _ = writeln!(out, "description = {}", q(&self.description));
        let _ = writeln!(out, "capabilities = {}", list(&self.capabilities));
        out.push_str("\n[seccomp]\n");
        let _ = writeln!(
            out,
            "default_action = {}",
            q(&self.seccomp.default_action.as_text())
        );
        let mut lists: [(&str, Vec<(String, &str)>); 4] = [
            ("allow", vec![]),
            ("log", vec![]),
            ("deny", vec![]),
            ("kill", vec![]),
        ];
        for (name, sp) in &self.seccomp.syscalls {
            let Some(action) = sp.action else { continue };
            let (slot, entry) = match action {
                Action::Allow => (0, name.clone()),
                Action::Log => (1, name.clone()),
                Action::Errno(n) if n == libc::EPERM as u32 => (2, name.clone()),
                Action::Errno(_) => (
                    2,
                    format!("{name}:{}", action.as_text().trim_start_matches("errno:")),
                ),
                Action::Kill => (3, name.clone()),
            };
            let origin = self.provenance.get(name).map(String::as_str).unwrap_or("");
            lists[slot].1.push((entry, origin));
        }
        for (key, entries) in &lists {
            if entries.is_empty() {
                let _ = writeln!(out, "{key} = []");
                continue;
            }
            let _ = writeln!(out, "{key} = [");
            for (e, origin) in entries {
                if comments && !origin.is_empty() {
                    let _ = writeln!(out, "    {},  # {origin}", q(e));
                } else {
                    let _ = writeln!(out, "    {},", q(e));
                }
            }
            out.push_str("]\n");
        }
        for (name, sp) in &self.seccomp.syscalls {
            for rule in &sp.rules {
                out.push_str("\n[[seccomp.rule]]\n");
                let _ = writeln!(out, "syscall = {}", q(name));
                let _ = writeln!(out, "action = {}", q(&rule.action.as_text()));
                let args: Vec<String> = rule.args.iter().map(render_arg).collect();
                let _ = writeln!(out, "args = [{}]", args.join(", "));
            }
        }
        let ll = &self.landlock;
        out.push_str("\n[landlock]\n");
        let exec = match ll.exec {
            ExecScope::Rootfs => "rootfs",
            ExecScope::BinDirs => "bin-dirs",
        };
        let _ = writeln!(out, "exec = {}", q(exec));
        let _ = writeln!(out, "read = {}", list(&ll.read));
        let _ = writeln!(out, "read_exec = {}", list(&ll.read_exec));
        let _ = writeln!(out, "write = {}", list(&ll.write));
        let _ = writeln!(out, "tcp_bind = {}", ports(&ll.tcp_bind));
        let _ = writeln!(out, "tcp_connect = {}", ports(&ll.tcp_connect));
        for t in &self.tmpfs {
            out.push_str("\n[[tmpfs]]\n");
            let _ = writeln!(out, "path = {}", q(&t.path));
            let _ = writeln!(out, "size = {}", t.size_bytes);
            let _ = writeln!(out, "mode = \"{:o}\"", t.mode);
            let _ = writeln!(out, "noexec = {}", t.noexec);
        }
        if self.rootfs.writable {
            // Rendered only when set, so the hash of every profile without it is unchanged.
            out.push_str("\n[rootfs]\nwritable = true\n");
            if let Some(size) = self.rootfs.size_bytes {
                let _ = writeln!(out, "size = {size}");
            }
        }
        out.push_str("\n[limits]\n");
        let l = &self.limits;
        if let Some(v) = l.pids {
            let _ = writeln!(out, "pids = {v}");
        }
        if let Some(v) = l.memory_bytes {
            let _ = writeln!(out, "memory = {v}");
        }
        if let Some(v) = l.cpu_shares {
            let _ = writeln!(out, "cpu_shares = {v}");
        }
        if let Some(v) = l.cpu_quota_us {
            let _ = writeln!(out, "cpu_quota_us = {v}");
        }
        if let Some(v) = l.cpu_period_us {
            let _ = writeln!(out, "cpu_period_us = {v}");
        }
        out.push_str("\n[namespaces]\n");
        let _ = writeln!(out, "shareable = {}", list(&self.shareable_namespaces));
        out
    }
}

pub(crate) fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let v: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", v.join(", "))
}

fn ports(p: &Option<Vec<u16>>) -> String {
    match p {
        None => q("any"),
        Some(v) => format!(
            "[{}]",
            v.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn width_suffix(w: ArgWidth) -> &'static str {
    match w {
        ArgWidth::Auto => "",
        ArgWidth::Bits32 => ", bits = 32",
        ArgWidth::Bits64 => ", bits = 64",
    }
}

pub(crate) fn render_arg(c: &ArgCond) -> String {
    let body = match &c.test {
        ArgTest::Cmp(_, v) => format!("value = {}", q(v)),
        ArgTest::MaskedEq { mask, value } => format!("mask = {}, value = {}", q(mask), q(value)),
        ArgTest::In(vs) => format!("values = {}", list(vs)),
        ArgTest::AnySet(m) | ArgTest::AllSet(m) | ArgTest::NoneSet(m) => {
            format!("mask = {}", q(m))
        }
    };
    format!(
        "{{ index = {}, op = {}, {body}{} }}",
        c.index,
        q(c.test.op_name()),
        width_suffix(c.width)
    )
}
