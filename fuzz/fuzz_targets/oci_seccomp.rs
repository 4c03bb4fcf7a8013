//! OCI linux.seccomp translation and import (see ward_profiles::fuzz_harness::oci_case).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_profiles::fuzz_harness::oci_case(data));
