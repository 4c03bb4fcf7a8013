//! harden() on mutated runc specs, with the sandbox invariants (see
//! ward_runtime::fuzz_harness::harden_case).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_runtime::fuzz_harness::harden_case(data));
