//! Ward's runtime library: policy, harden, sandbox plan, launch, state.
