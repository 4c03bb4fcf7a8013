//! Ward's runtime library: policy, harden, sandbox plan, launch, state.
//!
//! The `ward` CLI and `containerd-shim-ward-v2` are two front doors onto the
//! same path: [`Runtime`] (policy → harden → compile → launch → supervise).

pub mod check;
pub mod config;
pub mod harden;
pub mod id;

pub use id::{ContainerId, InvalidId, Signal};
