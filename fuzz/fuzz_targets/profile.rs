//! Profile parser + resolver + compiler (see ward_profiles::fuzz_harness::profile_case).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_profiles::fuzz_harness::profile_case(data));
