//! Ward sandbox profiles: the TOML format, syscall tables and groups, seccomp BPF
//! generation (profiles and a spec's own OCI `linux.seccomp`), Landlock plans, and the
//! tooling behind `ward profile ...` (lint, diff, explain, import/export, learn mode).
//!
//! Flow: TOML text → [`parse`] (resolve `extends`, expand groups, validate) → [`Profile`]
//! → [`compile_seccomp`] / [`landlock_plan`] → what the runtime installs.

mod arch;
pub mod bounded;
mod constants;
mod error;
mod explain;
mod format;
/// Fuzz harnesses (tests and the `fuzzing` feature only; see `fuzz/`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_harness;
mod groups;
mod landlock;
mod oci;
mod profile;
mod redact;
mod seccomp;
mod tools;

use std::path::PathBuf;

pub use arch::{is_known_syscall, Arch};
pub use constants::{constant, errno};
pub use error::ProfileError;
pub use explain::{evaluate, explain, unconditional, Explanation, Verdict};
pub use groups::{group, Group, GROUPS, WARD_DANGEROUS};
pub use landlock::{
    landlock_plan, landlock_plan_rootfs, FsAccess, LandlockPlan, LandlockRule, MountAccess,
    BIN_DIRS, RW_DEVICES,
};
pub use oci::{compile_oci_seccomp, export_oci, import_oci_json};
pub use profile::{
    Action, ArgCond, ArgRule, ArgTest, ArgWidth, CmpOp, ExecScope, LandlockPolicy, Limits, Profile,
    RootfsPolicy, SeccompPolicy, SyscallPolicy, Tmpfs,
};
pub use seccomp::{
    compile_seccomp, rewrite_trap_to_notify, Mode, SeccompProgram, NOTIFY_PROTOCOL_SYSCALLS,
    SECCOMP_RET_USER_NOTIF,
};
/// One classic BPF instruction (seccompiler's `sock_filter`, the kernel's layout).
pub use seccompiler::sock_filter as SockFilter;
pub use tools::{
    compile_seccomp_cached, diff, draft_from_recording, lint, Finding, ProfileDiff, Severity,
    DANGEROUS_CAPABILITIES, SET_ID_MODE_CALLS,
};

const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../builtin/default.toml")),
    ("restricted", include_str!("../builtin/restricted.toml")),
    ("strict", include_str!("../builtin/strict.toml")),
    ("record", include_str!("../builtin/record.toml")),
    ("nginx", include_str!("../builtin/nginx.toml")),
    (
        "python-worker",
        include_str!("../builtin/python-worker.toml"),
    ),
];

const BUILTIN_NAMES: &[&str] = &[
    "default",
    "restricted",
    "strict",
    "record",
    "nginx",
    "python-worker",
];

/// Names of the built-in profiles.
pub fn builtin_names() -> &'static [&'static str] {
    BUILTIN_NAMES
}

/// TOML text of a built-in profile.
pub fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Load a profile: a builtin name, a name found as `<dir>/<name>.toml` in `dirs` (in
/// order; builtins win), or a path (contains '/' or ends with `.toml`).
pub fn load(name_or_path: &str, dirs: &[PathBuf]) -> Result<Profile, ProfileError> {
    format::Resolver::new(dirs).load(name_or_path, None)
}

/// Parse profile text. `source_name` is used in error messages (and as the profile name
/// when the text has no `name`); `extends` is resolved against builtins and `dirs`.
pub fn parse(
    source_name: &str,
    toml_text: &str,
    dirs: &[PathBuf],
) -> Result<Profile, ProfileError> {
    let base = std::path::Path::new(source_name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    format::Resolver::new(dirs).parse(source_name, toml_text, base)
}
