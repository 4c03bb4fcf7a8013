//! The TOML profile format: raw deserialization with spans, `extends` resolution,
//! validation and group expansion into a [`Profile`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::arch::{is_known_syscall, Arch};
use crate::constants;
use crate::error::ProfileError;
use crate::groups;
use crate::profile::{
    Action, ArgCond, ArgRule, ArgTest, ArgWidth, CmpOp, ExecScope, LandlockPolicy, Limits, Profile,
    SeccompPolicy, Tmpfs,
};

mod rootfs;

const MAX_DEPTH: usize = 16;
const MAX_RULE_EXPANSION: usize = 64;

/// Every Linux capability name (as of 6.17).
pub(crate) const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Namespaces a profile may let a spec share (OCI names).
pub(crate) const SHAREABLE: &[&str] = &["pid", "network", "ipc", "uts", "mount", "cgroup"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Option<Spanned<String>>,
    description: Option<String>,
    extends: Option<Spanned<String>>,
    capabilities: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    seccomp: RawSeccomp,
    #[serde(default)]
    landlock: RawLandlock,
    tmpfs: Option<Vec<Spanned<RawTmpfs>>>,
    rootfs: Option<Spanned<rootfs::RawRootfs>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    namespaces: RawNamespaces,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSeccomp {
    default_action: Option<Spanned<String>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    log: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    kill: Vec<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    syscall: Spanned<String>,
    action: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<RawArg>>,
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArg {
    index: u8,
    op: String,
    value: Option<RawValue>,
    values: Option<Vec<RawValue>>,
    mask: Option<RawValue>,
    bits: Option<u8>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawValue {
    Int(i64),
    Str(String),
}

impl RawValue {
    fn expr(&self) -> String {
        match self {
            RawValue::Int(i) => (*i as u64).to_string(),
            RawValue::Str(s) => s.trim().to_owned(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPorts {
    List(Vec<u16>),
    Word(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLandlock {
    exec: Option<Spanned<String>>,
    read: Option<Vec<Spanned<String>>>,
    read_exec: Option<Vec<Spanned<String>>>,
    write: Option<Vec<Spanned<String>>>,
    tcp_bind: Option<Spanned<RawPorts>>,
    tcp_connect: Option<Spanned<RawPorts>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTmpfs {
    path: Spanned<String>,
    size: Spanned<RawValue>,
    mode: Option<Spanned<RawValue>>,
    #[serde(default)]
    noexec: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    pids: Option<Spanned<i64>>,
    memory: Option<Spanned<RawValue>>,
    cpu_shares: Option<Spanned<u64>>,
    cpu_quota_us: Option<Spanned<i64>>,
    cpu_period_us: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNamespaces {
    shareable: Option<Vec<Spanned<String>>>,
}

/// Builds located errors for one source text.
struct Src<'a> {
    file: &'a str,
    text: &'a str,
}

impl Src<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|b| *b == b'\n').count() + 1
    }

    fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> ProfileError {
        ProfileError::Parse {
            file: self.file.to_owned(),
            line: self.line(span),
            key: key.into(),
            message: msg.into(),
        }
    }

    /// The dotted key at a byte offset: the enclosing `[table]` plus the line's key.
    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let upto = &self.text[..offset];
        let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[line_start..].lines().next().unwrap_or("");
        let mut table = String::new();
        for l in upto[..line_start].lines() {
            let t = l.trim();
            if t.starts_with('[') {
                table = t.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            }
        }
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            return trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        match (table.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

/// Where profiles come from while resolving `extends`.
pub(crate) struct Resolver<'a> {
    dirs: &'a [PathBuf],
    stack: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(dirs: &'a [PathBuf]) -> Self {
        Resolver {
            dirs,
            stack: Vec::new(),
        }
    }

    /// Load by builtin name, `<dir>/<name>.toml`, or path.
    pub(crate) fn load(
        &mut self,
        name_or_path: &str,
        base: Option<&Path>,
    ) -> Result<Profile, ProfileError> {
        let is_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
        if !is_path {
            if let Some(src) = crate::builtin_source(name_or_path) {
                let file = format!("{name_or_path}.toml");
                return self.parse(&file, src, None);
            }
            for d in self.dirs {
                let p = d.join(format!("{name_or_path}.toml"));
                if p.is_file() {
                    return self.load_file(&p);
                }
            }
            return Err(ProfileError::NotFound {
                name: name_or_path.to_owned(),
                searched: self.dirs.to_vec(),
            });
        }
        let p = Path::new(name_or_path);
        let p = match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        self.load_file(&p)
    }

    fn load_file(&mut self, path: &Path) -> Result<Profile, ProfileError> {
        // Bounded and regular files only: `extends = "/dev/zero"` or a FIFO is refused.
        let text =
            crate::bounded::read_text(path, crate::bounded::Follow::Yes).map_err(|source| {
                ProfileError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let file = path.display().to_string();
        self.parse(&file, &text, path.parent())
    }

    pub(crate) fn parse(
        &mut self,
        file: &str,
        text: &str,
        base: Option<&Path>,
    ) -> Result<Profile, ProfileError> {
        let src = Src { file, text };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // Not TOML (or not profile-shaped): the text may be any file `extends` named,
            // so the error keeps only the format's own words (see redact.rs).
            src.err(
                span.clone(),
                crate::redact::key(src.key_at(span.start)),
                crate::redact::message(e.message().trim()),
            )
        })?;
        let name = match &raw.name {
            Some(n) => {
                check_name(n.get_ref()).map_err(|m| src.err(n.span(), "name", m))?;
                n.get_ref().clone()
            }
            None => {
                let stem = Path::new(file)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_owned();
                check_name(&stem).map_err(|m| src.err(0..0, "name", m))?;
                stem
            }
        };
        if self.stack.contains(&name) {
            let mut chain = self.stack.clone();
            chain.push(name);
            return Err(ProfileError::Cycle { chain });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(src.err(
                0..0,
                "extends",
                format!("inheritance deeper than {MAX_DEPTH}"),
            ));
        }
        self.stack.push(name.clone());
        let parent = match &raw.extends {
            Some(ext) => {
                let parent_name = ext.get_ref();
                if self.stack.iter().any(|s| s == parent_name) {
                    let mut chain = self.stack.clone();
                    chain.push(parent_name.clone());
                    return Err(ProfileError::Cycle { chain });
                }
                match self.load(parent_name, base) {
                    Ok(p) => Some(p),
                    Err(ProfileError::NotFound { .. }) => {
                        return Err(src.err(
                            ext.span(),
                            "extends",
                            format!("no profile named {parent_name:?}"),
                        ))
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        let result = apply(&src, name, raw, parent);
        self.stack.pop();
        result
    }
}

fn check_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !n.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid profile name {n:?} (1-64 of a-z 0-9 - _, not starting with -)"
        ))
    }
}

/// Expand a syscall name or `@group` into names; errors say what is unknown.
pub(crate) fn expand(entry: &str) -> Result<Vec<&'static str>, String> {
    if entry.starts_with('@') {
        return groups::group(entry)
            .map(|g| g.syscalls.to_vec())
            .ok_or_else(|| format!("unknown syscall group {entry:?}"));
    }
    if is_known_syscall(entry) {
        // Return the table's own &'static str.
        for arch in Arch::ALL {
            if let Some(s) = arch.syscall_names().find(|s| *s == entry) {
                return Ok(vec![s]);
            }
        }
    }
    Err(format!("unknown syscall {entry:?}"))
}

fn apply(
    src: &Src<'_>,
    name: String,
    raw: RawProfile,
    parent: Option<Profile>,
) -> Result<Profile, ProfileError> {
    let mut p = parent.unwrap_or_else(|| Profile {
        name: String::new(),
        description: String::new(),
        seccomp: SeccompPolicy {
            default_action: Action::Allow,
            syscalls: BTreeMap::new(),
        },
        capabilities: Vec::new(),
        landlock: LandlockPolicy::default(),
        tmpfs: Vec::new(),
        rootfs: Default::default(),
        limits: Limits::default(),
        shareable_namespaces: Vec::new(),
        provenance: BTreeMap::new(),
    });
    let is_root = raw.extends.is_none();
    p.name = name;
    if let Some(d) = raw.description {
        p.description = d;
    }
    if let Some(caps) = raw.capabilities {
        let mut out = Vec::new();
        for c in caps {
            if !CAPABILITIES.contains(&c.get_ref().as_str()) {
                return Err(src.err(
                    c.span(),
                    "capabilities",
                    format!("unknown capability {:?}", c.get_ref()),
                ));
            }
            if !out.contains(c.get_ref()) {
                out.push(c.get_ref().clone());
            }
        }
        out.sort();
        p.capabilities = out;
    }
    apply_seccomp(src, &mut p, raw.seccomp, is_root)?;
    apply_landlock(src, &mut p.landlock, raw.landlock)?;
    if let Some(tmpfs) = raw.tmpfs {
        p.tmpfs = tmpfs
            .into_iter()
            .enumerate()
            .map(|(i, t)| tmpfs_entry(src, i, t.into_inner()))
            .collect::<Result<_, _>>()?;
        let mut paths: Vec<&str> = p.tmpfs.iter().map(|t| t.path.as_str()).collect();
        paths.sort();
        if paths.windows(2).any(|w| w[0] == w[1]) {
            return Err(src.err(0..0, "tmpfs", "the same path is declared twice"));
        }
    }
    if let Some(r) = raw.rootfs {
        p.rootfs = rootfs::rootfs(src, r)?;
    }
    apply_limits(src, &mut p.limits, raw.limits)?;
    if let Some(ns) = raw.namespaces.shareable {
        let mut out = Vec::new();
        for n in ns {
            if !SHAREABLE.contains(&n.get_ref().as_str()) {
                return Err(src.err(
                    n.span(),
                    "namespaces.shareable",
                    format!(
                        "namespace {:?} cannot be shared (one of {})",
                        n.get_ref(),
                        SHAREABLE.join(", ")
                    ),
                ));
            }
            if !out.contains(n.get_ref()) {
                out.push(n.get_ref().clone());
            }
        }
        out.sort();
        p.shareable_namespaces = out;
    }
    Ok(p)
}

fn merge_action(p: &mut Profile, sys: &str, action: Action, origin: &str) {
    let entry = p.seccomp.syscalls.entry(sys.to_owned()).or_default();
    let replace = match entry.action {
        None => true,
        Some(old) => action.rank() >= old.rank(),
    };
    if replace {
        entry.action = Some(action);
        p.provenance.insert(sys.to_owned(), origin.to_owned());
    }
}

fn apply_seccomp(
    src: &Src<'_>,
    p: &mut Profile,
    raw: RawSeccomp,
    is_root: bool,
) -> Result<(), ProfileError> {
    match &raw.default_action {
        Some(a) => {
            p.seccomp.default_action = Action::parse(a.get_ref())
                .map_err(|m| src.err(a.span(), "seccomp.default_action", m))?;
        }
        None if is_root => {
            return Err(src.err(
                0..0,
                "seccomp.default_action",
                "required in a profile without `extends`",
            ))
        }
        None => {}
    }
    for r in &raw.remove {
        let names = expand(r.get_ref()).map_err(|m| src.err(r.span(), "seccomp.remove", m))?;
        for n in names {
            p.seccomp.syscalls.remove(n);
            p.provenance.remove(n);
        }
    }
    let lists: [(&str, &Vec<Spanned<String>>, Action); 4] = [
        ("allow", &raw.allow, Action::Allow),
        ("log", &raw.log, Action::Log),
        ("deny", &raw.deny, Action::Errno(libc::EPERM as u32)),
        ("kill", &raw.kill, Action::Kill),
    ];
    for (key, entries, base_action) in lists {
        let key = format!("seccomp.{key}");
        // Groups first, then named syscalls, so that a named entry overrides a group's
        // action of equal rank (e.g. `clone3:ENOSYS` after `@ward-dangerous`).
        for pass_groups in [true, false] {
            for e in entries {
                let text = e.get_ref().as_str();
                if text.starts_with('@') != pass_groups {
                    continue;
                }
                let (target, action) = match text.split_once(':') {
                    Some((t, errno)) if key == "seccomp.deny" => {
                        let n = constants::errno(errno).ok_or_else(|| {
                            src.err(e.span(), key.clone(), format!("unknown errno {errno:?}"))
                        })?;
                        (t, Action::Errno(n))
                    }
                    Some(_) => {
                        return Err(src.err(
                            e.span(),
                            key.clone(),
                            format!("{text:?}: only `deny` entries take an `:ERRNO` suffix"),
                        ))
                    }
                    None => (text, base_action),
                };
                let names = expand(target).map_err(|m| src.err(e.span(), key.clone(), m))?;
                let origin = if target.starts_with('@') {
                    format!("{} via {target} in {}", action.as_text(), src.file)
                } else {
                    format!("{} in {}", action.as_text(), src.file)
                };
                for n in names {
                    merge_action(p, n, action, &origin);
                }
            }
        }
    }
    for (i, r) in raw.rule.iter().enumerate() {
        let key = format!("seccomp.rule[{i}]");
        let rule = r.get_ref();
        let sys = rule.syscall.get_ref();
        if sys.starts_with('@') || !is_known_syscall(sys) {
            return Err(src.err(
                rule.syscall.span(),
                format!("{key}.syscall"),
                format!("unknown syscall {sys:?} (rules name one syscall, not a group)"),
            ));
        }
        let action = Action::parse(rule.action.get_ref())
            .map_err(|m| src.err(rule.action.span(), format!("{key}.action"), m))?;
        if rule.args.is_empty() {
            return Err(src.err(r.span(), format!("{key}.args"), "a rule needs at least one arg condition (use the allow/deny lists for unconditional actions)"));
        }
        let mut args = Vec::new();
        for (j, a) in rule.args.iter().enumerate() {
            let akey = format!("{key}.args[{j}]");
            args.push(arg_cond(a.get_ref()).map_err(|m| src.err(a.span(), akey, m))?);
        }
        let n: usize = args.iter().map(|c| alternatives(&c.test)).product();
        if n > MAX_RULE_EXPANSION {
            return Err(src.err(
                r.span(),
                format!("{key}.args"),
                format!("expands to {n} BPF rules (max {MAX_RULE_EXPANSION})"),
            ));
        }
        p.seccomp
            .syscalls
            .entry(sys.clone())
            .or_default()
            .rules
            .push(ArgRule { action, args });
    }
    Ok(())
}

/// How many alternative condition sets one test becomes.
pub(crate) fn alternatives(t: &ArgTest) -> usize {
    match t {
        ArgTest::In(v) => v.len(),
        ArgTest::AnySet(m) => Arch::ALL
            .iter()
            .map(|a| constants::eval(m, *a).map_or(1, |v| v.count_ones() as usize))
            .max()
            .unwrap_or(1),
        _ => 1,
    }
}

fn check_expr(e: &str) -> Result<u64, String> {
    let mut first = None;
    for a in Arch::ALL {
        let v = constants::eval(e, a)?;
        first.get_or_insert(v);
    }
    Ok(first.unwrap_or(0))
}

fn arg_cond(a: &RawArg) -> Result<ArgCond, String> {
    if a.index > 5 {
        return Err(format!("index {} out of range 0..=5", a.index));
    }
    let width = match a.bits {
        None => ArgWidth::Auto,
        Some(32) => ArgWidth::Bits32,
        Some(64) => ArgWidth::Bits64,
        Some(b) => return Err(format!("bits = {b}: must be 32 or 64")),
    };
    let need = |v: &Option<RawValue>, what: &str| -> Result<String, String> {
        let e = v
            .as_ref()
            .map(RawValue::expr)
            .ok_or_else(|| format!("op {:?} needs `{what}`", a.op))?;
        check_expr(&e)?;
        Ok(e)
    };
    let test = match a.op.as_str() {
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            let op = match a.op.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                "gt" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            ArgTest::Cmp(op, need(&a.value, "value")?)
        }
        "masked_eq" => ArgTest::MaskedEq {
            mask: need(&a.mask, "mask")?,
            value: need(&a.value, "value")?,
        },
        "in" => {
            let vs = a.values.as_ref().ok_or("op \"in\" needs `values`")?;
            if vs.is_empty() {
                return Err("op \"in\" needs at least one value".into());
            }
            let mut out = Vec::new();
            for v in vs {
                let e = v.expr();
                check_expr(&e)?;
                out.push(e);
            }
            ArgTest::In(out)
        }
        "any_set" | "all_set" | "none_set" => {
            let m = need(&a.mask, "mask")?;
            if check_expr(&m)? == 0 {
                return Err("mask must not be 0".into());
            }
            match a.op.as_str() {
                "any_set" => ArgTest::AnySet(m),
                "all_set" => ArgTest::AllSet(m),
                _ => ArgTest::NoneSet(m),
            }
        }
        other => {
            return Err(format!(
                "unknown op {other:?} (eq ne lt le gt ge masked_eq in any_set all_set none_set)"
            ))
        }
    };
    let used_ok = match &test {
        ArgTest::Cmp(..) => a.values.is_none() && a.mask.is_none(),
        ArgTest::MaskedEq { .. } => a.values.is_none(),
        ArgTest::In(_) => a.value.is_none() && a.mask.is_none(),
        _ => a.value.is_none() && a.values.is_none(),
    };
    if !used_ok {
        return Err(format!("op {:?} given a field it does not use", a.op));
    }
    Ok(ArgCond {
        index: a.index,
        test,
        width,
    })
}

fn check_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("path {p:?} must be absolute"));
    }
    if p.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!("path {p:?} must not contain . or .."));
    }
    let mut norm: String = p
        .split('/')
        .filter(|c| !c.is_empty())
        .fold(String::new(), |acc, c| acc + "/" + c);
    if norm.is_empty() {
        norm.push('/');
    }
    Ok(norm)
}

fn paths(src: &Src<'_>, key: &str, v: Vec<Spanned<String>>) -> Result<Vec<String>, ProfileError> {
    let mut out = Vec::new();
    for s in v {
        let p = check_path(s.get_ref()).map_err(|m| src.err(s.span(), key, m))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn port_list(
    src: &Src<'_>,
    key: &str,
    v: Spanned<RawPorts>,
) -> Result<Option<Vec<u16>>, ProfileError> {
    let span = v.span();
    match v.into_inner() {
        RawPorts::Word(w) if w == "any" => Ok(None),
        RawPorts::Word(w) => Err(src.err(
            span,
            key,
            format!("{w:?}: expected a list of ports or \"any\""),
        )),
        RawPorts::List(mut l) => {
            l.sort_unstable();
            l.dedup();
            Ok(Some(l))
        }
    }
}

fn apply_landlock(
    src: &Src<'_>,
    ll: &mut LandlockPolicy,
    raw: RawLandlock,
) -> Result<(), ProfileError> {
    if let Some(e) = raw.exec {
        ll.exec = match e.get_ref().as_str() {
            "rootfs" => ExecScope::Rootfs,
            "bin-dirs" => ExecScope::BinDirs,
            other => {
                return Err(src.err(
                    e.span(),
                    "landlock.exec",
                    format!("{other:?}: expected \"rootfs\" or \"bin-dirs\""),
                ))
            }
        };
    }
    if let Some(v) = raw.read {
        ll.read = paths(src, "landlock.read", v)?;
    }
    if let Some(v) = raw.read_exec {
        ll.read_exec = paths(src, "landlock.read_exec", v)?;
    }
    if let Some(v) = raw.write {
        ll.write = paths(src, "landlock.write", v)?;
    }
    if let Some(v) = raw.tcp_bind {
        ll.tcp_bind = port_list(src, "landlock.tcp_bind", v)?;
    }
    if let Some(v) = raw.tcp_connect {
        ll.tcp_connect = port_list(src, "landlock.tcp_connect", v)?;
    }
    Ok(())
}

/// Parse a size like `64M`, `1G`, `512k`, `4096` (binary units).
pub(crate) fn parse_size(v: &RawValueLike) -> Result<u64, String> {
    match v {
        RawValueLike::Int(i) if *i > 0 => Ok(*i as u64),
        RawValueLike::Int(i) => Err(format!("size {i} must be positive")),
        RawValueLike::Str(s) => {
            let s = s.trim();
            let (num, mult) = match s.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => {
                    let m: u64 = match c.to_ascii_uppercase() {
                        'K' => 1 << 10,
                        'M' => 1 << 20,
                        'G' => 1 << 30,
                        'T' => 1 << 40,
                        _ => return Err(format!("size {s:?}: unit must be K, M, G or T")),
                    };
                    (&s[..i], m)
                }
                _ => (s, 1),
            };
            let n: u64 = num
                .trim()
                .parse()
                .map_err(|_| format!("size {s:?}: expected e.g. 64M or a byte count"))?;
            n.checked_mul(mult)
                .filter(|v| *v > 0 && *v <= i64::MAX as u64)
                .ok_or_else(|| format!("size {s:?} out of range"))
        }
    }
}

/// A size or mode value as written (integer or string).
pub(crate) enum RawValueLike {
    Int(i64),
    Str(String),
}

impl From<&RawValue> for RawValueLike {
    fn from(v: &RawValue) -> Self {
        match v {
            RawValue::Int(i) => RawValueLike::Int(*i),
            RawValue::Str(s) => RawValueLike::Str(s.clone()),
        }
    }
}

fn tmpfs_entry(src: &Src<'_>, i: usize, t: RawTmpfs) -> Result<Tmpfs, ProfileError> {
    let key = format!("tmpfs[{i}]");
    let path = check_path(t.path.get_ref())
        .map_err(|m| src.err(t.path.span(), format!("{key}.path"), m))?;
    if path == "/" {
        return Err(src.err(
            t.path.span(),
            format!("{key}.path"),
            "tmpfs on / is not allowed",
        ));
    }
    let size_bytes = parse_size(&t.size.get_ref().into())
        .map_err(|m| src.err(t.size.span(), format!("{key}.size"), m))?;
    let mode = match &t.mode {
        None => 0o1777,
        Some(m) => {
            let parsed = match m.get_ref() {
                RawValue::Int(i) => u32::try_from(*i).ok(),
                RawValue::Str(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
            };
            match parsed {
                Some(v) if v <= 0o7777 => v,
                _ => {
                    return Err(src.err(
                        m.span(),
                        format!("{key}.mode"),
                        "mode must be octal permission bits, e.g. \"1777\"",
                    ))
                }
            }
        }
    };
    Ok(Tmpfs {
        path,
        size_bytes,
        mode,
        noexec: t.noexec,
    })
}

fn apply_limits(src: &Src<'_>, l: &mut Limits, raw: RawLimits) -> Result<(), ProfileError> {
    if let Some(v) = raw.pids {
        if *v.get_ref() <= 0 {
            return Err(src.err(v.span(), "limits.pids", "must be positive"));
        }
        l.pids = Some(*v.get_ref());
    }
    if let Some(v) = raw.memory {
        let b =
            parse_size(&v.get_ref().into()).map_err(|m| src.err(v.span(), "limits.memory", m))?;
        l.memory_bytes = Some(b as i64);
    }
    if let Some(v) = raw.cpu_shares {
        if !(2..=262_144).contains(v.get_ref()) {
            return Err(src.err(v.span(), "limits.cpu_shares", "must be in 2..=262144"));
        }
        l.cpu_shares = Some(*v.get_ref());
    }
    if let Some(v) = raw.cpu_quota_us {
        if *v.get_ref() < 1000 {
            return Err(src.err(v.span(), "limits.cpu_quota_us", "must be at least 1000"));
        }
        l.cpu_quota_us = Some(*v.get_ref());
    }
    if let Some(v) = raw.cpu_period_us {
        if !(1000..=1_000_000).contains(v.get_ref()) {
            return Err(src.err(
                v.span(),
                "limits.cpu_period_us",
                "must be in 1000..=1000000",
            ));
        }
        l.cpu_period_us = Some(*v.get_ref());
    }
    Ok(())
}
