//! Ward's containerd / Kubernetes integration harness.
//!
//! - [`image`]: test images (busybox, pause) as OCI layout tarballs, no registry.
//! - [`containerd::Containerd`]: a private containerd per test, with CRI, a
//!   test-only CNI bridge and the `runc`, `ward` and `ward-strict` runtimes.
//! - [`release`]: the containerd releases under test (containerd 2 first, then 1.6);
//!   [`containerd_config`] writes each one's config schema.
//! - [`cri`]: a CRI v1 client acting as kubelet over the unix socket.
//! - [`leaks`]: what a removed pod may leave behind under Ward's shim.
//! - [`apps`]: the real-application matrix (Debian's nginx, redis, postgresql, python3).

pub mod apps;
pub mod containerd;
pub mod containerd_config;
pub mod cri;
pub mod image;
pub mod leaks;
pub mod procfs;
pub mod release;
