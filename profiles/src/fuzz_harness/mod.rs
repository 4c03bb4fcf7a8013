//! Fuzz harnesses shared by the cargo-fuzz targets (`fuzz/`, nightly) and the stable
//! fallback (fixed-seed generators run as ordinary unit tests, `make test` and `make fuzz`).
//!
//! Each harness takes raw bytes and turns them into structured input through [`Input`]
//! (choices, lengths, values), so libFuzzer's mutations and the stable generator's random
//! bytes drive the same code. A harness panics when an invariant breaks; the invariants are
//! written next to each harness.
//!
//! Built only for tests and with the `fuzzing` feature; nothing here is part of the API.

mod bpf;
mod oci_case;
mod profile_case;

use std::time::{Duration, Instant};

pub use bpf::{audit_arch as bpf_audit_arch, check_program, interpret, BpfCheck};
pub use oci_case::oci_case;
pub use profile_case::{profile_case, profile_text_case};

/// A byte source that turns fuzzer bytes into choices. Reading past the end yields zeros,
/// so every input, even empty, is a valid case.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let v = if n <= 256 {
            usize::from(self.byte())
        } else {
            self.u32() as usize
        };
        v % n
    }

    pub fn pick<'s, T>(&mut self, items: &'s [T]) -> &'s T {
        &items[self.below(items.len())]
    }

    /// An "interesting" 64-bit value: boundaries, single bits, or raw bytes.
    pub fn value(&mut self) -> u64 {
        match self.below(6) {
            0 => *self.pick(&[0, 1, u64::from(u32::MAX), u64::MAX, 1 << 32, 0x8000_0000]),
            1 => 1u64 << self.below(64),
            2 => u64::from(self.byte()),
            3 => u64::from(self.u32()),
            _ => self.u64(),
        }
    }

    /// The unread bytes, consumed.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.data.get(self.pos..).unwrap_or(&[]);
        self.pos = self.data.len();
        r
    }
}

/// With `WARD_FUZZ_SHOW=1`, print a case's input (to see what a replayed seed does).
pub fn show(what: &str, input: &str) {
    if std::env::var_os("WARD_FUZZ_SHOW").is_some() {
        eprintln!("--- {what} input ---\n{input}\n---");
    }
}

/// An error message must be one line (it reaches logs and a terminal as one record).
pub fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.contains('\n') && !message.contains('\r'),
        "{what}: error message is not one line: {message:?}"
    );
    assert!(!message.trim().is_empty(), "{what}: empty error message");
}

/// SplitMix64: the stable fallback's generator (fixed seed, reproducible).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// What one stable run did.
#[derive(Debug, Clone, Copy)]
pub struct DriveStats {
    pub cases: u64,
    pub elapsed: Duration,
}

/// The stable fallback: feed `case` random byte strings from a fixed seed until the time
/// budget runs out. `WARD_FUZZ_SECS` (default `default_secs`) sets the budget,
/// `WARD_FUZZ_ITERS` a case count instead, `WARD_FUZZ_SEED` the seed. A failing case is
/// reported with the seed that replays it alone (`WARD_FUZZ_SEED=<s> WARD_FUZZ_ITERS=1`).
pub fn drive(name: &str, default_secs: u64, case: impl FnMut(&[u8])) -> DriveStats {
    let seed = env_u64("WARD_FUZZ_SEED").unwrap_or(0x5741_5244_0000_0001);
    let iters = env_u64("WARD_FUZZ_ITERS");
    let budget = Duration::from_secs(env_u64("WARD_FUZZ_SECS").unwrap_or(default_secs));
    drive_with(name, seed, iters, budget, case)
}

fn drive_with(
    name: &str,
    seed: u64,
    iters: Option<u64>,
    budget: Duration,
    mut case: impl FnMut(&[u8]),
) -> DriveStats {
    let start = Instant::now();
    let mut state = seed;
    let mut cases = 0u64;
    let mut buf = Vec::new();
    loop {
        match iters {
            Some(n) if cases >= n => break,
            None if start.elapsed() >= budget => break,
            _ => {}
        }
        // Each case has its own seed so that one case can be replayed alone.
        let case_seed = if cases == 0 {
            seed
        } else {
            splitmix(&mut state)
        };
        let mut s = case_seed;
        let len = match splitmix(&mut s) % 8 {
            0 => (splitmix(&mut s) % 16) as usize,
            1..=5 => (splitmix(&mut s) % 256) as usize,
            _ => (splitmix(&mut s) % 4096) as usize,
        };
        buf.clear();
        while buf.len() < len {
            buf.extend_from_slice(&splitmix(&mut s).to_le_bytes());
        }
        buf.truncate(len);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&buf)));
        if let Err(e) = r {
            eprintln!(
                "fuzz {name}: case {cases} failed; replay with WARD_FUZZ_SEED={case_seed} WARD_FUZZ_ITERS=1"
            );
            std::panic::resume_unwind(e);
        }
        cases += 1;
    }
    let elapsed = start.elapsed();
    println!(
        "fuzz {name}: {cases} cases in {:.1}s ({:.0}/s), seed {seed} (stable fallback; WARD_FUZZ_SECS/WARD_FUZZ_ITERS/WARD_FUZZ_SEED)",
        elapsed.as_secs_f64(),
        cases as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    DriveStats { cases, elapsed }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Default budget per target in `cargo test` (CI): brief.
    const SECS: u64 = 3;

    #[test]
    fn fuzz_profile_parser_and_compiler() {
        let s = drive("profile", SECS, profile_case);
        assert!(s.cases > 0);
    }

    #[test]
    fn fuzz_oci_seccomp_import() {
        let s = drive("oci_seccomp", SECS, oci_case);
        assert!(s.cases > 0);
    }

    #[test]
    fn input_reads_zeros_past_the_end() {
        let mut u = Input::new(&[7]);
        assert_eq!(u.byte(), 7);
        assert_eq!(u.u64(), 0);
        assert_eq!(u.below(10), 0);
        assert!(u.rest().is_empty());
    }

    #[test]
    fn drive_reports_the_failing_seed() {
        let r = std::panic::catch_unwind(|| {
            let budget = Duration::from_secs(5);
            drive_with("selftest", 1, None, budget, |d| {
                assert!(d.len() < 200, "long input")
            });
        });
        assert!(r.is_err(), "a failing invariant must fail the run");
    }
}
