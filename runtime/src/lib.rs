//! Ward's runtime library: policy, harden, sandbox plan, launch, state.
//!
//! The `ward` CLI and `containerd-shim-ward-v2` are two front doors onto the
//! same path: [`Runtime`] (policy → harden → compile → launch → supervise).

pub mod alloc;
pub mod cgroup_guard;
pub mod charge;
pub mod check;
pub mod config;
pub mod error;
pub mod exec_status;
pub mod features;
/// Fuzz harness for `harden` (tests and the `fuzzing` feature only; see `fuzz/`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_harness;
pub mod groups;
pub mod harden;
pub mod hook_run;
pub mod hooks;
pub mod host_view;
pub mod id;
pub mod mount_attrs;
pub mod netns;
pub mod oom;
pub mod pod;
pub mod pod_trust;
pub mod pod_userns;
pub mod preflight;
pub mod prepare;
pub mod resolve;
pub mod rootfs;
pub mod runtime;
pub mod sandbox;
pub mod state;
pub mod stdio_owner;
pub mod supervisor;
pub mod sys;
pub mod systemd;

pub use error::{Error, Result};
pub use id::{ContainerId, InvalidId, Signal};
pub use runtime::{CreateOptions, ExecOptions, Runtime, RuntimeOptions, PROFILE_ANNOTATION};
pub use state::{State, WardState};

pub use libcgroups;
pub use oci_spec;
/// Bounded, regular-file-only reads of input files (config.json, node config, profiles).
pub use ward_profiles::bounded;
