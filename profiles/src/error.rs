//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, resolving or compiling a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A profile file is malformed or names something unknown. Displayed as
    /// `file:line: key: message`, e.g. `strict.toml:12: seccomp.allow: unknown syscall "fooo"`.
    #[error("{file}:{line}: {key}: {message}")]
    Parse {
        /// Source name (file name or path as given).
        file: String,
        /// 1-based line of the offending value (0 when not known).
        line: usize,
        /// Dotted key path of the offending value.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a profile file failed.
    #[error("read profile {path}: {source}")]
    Read {
        /// File that could not be read.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No builtin, no `<dir>/<name>.toml` and no file of that name.
    #[error("profile {name:?} not found (searched builtins and {searched:?})")]
    NotFound {
        /// The name asked for.
        name: String,
        /// Directories searched.
        searched: Vec<PathBuf>,
    },
    /// `extends` chains loop back on themselves.
    #[error("profile inheritance cycle: {}", chain.join(" -> "))]
    Cycle {
        /// The chain of profile names, ending with the repeated one.
        chain: Vec<String>,
    },
    /// An OCI `linux.seccomp` object (spec or JSON file) cannot be translated.
    #[error("linux.seccomp.{field}: {message}")]
    Oci {
        /// Field path inside `linux.seccomp`, e.g. `syscalls[2].action`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// seccompiler refused to build a filter.
    #[error("compile seccomp filter for {arch}: {message}")]
    Compile {
        /// Target architecture.
        arch: &'static str,
        /// seccompiler's message.
        message: String,
    },
    /// A syscall name is not known on the given architecture.
    #[error("unknown syscall {name:?} on {arch}")]
    UnknownSyscall {
        /// The name asked about.
        name: String,
        /// Architecture.
        arch: &'static str,
    },
    /// A notification mode cannot be used with this profile.
    #[error("mode {mode}: {message}")]
    Mode {
        /// Mode name.
        mode: &'static str,
        /// Why it cannot be used.
        message: String,
    },
    /// The compiled-filter cache could not be read or written.
    #[error("seccomp cache {path}: {message}")]
    Cache {
        /// Cache file involved.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}
