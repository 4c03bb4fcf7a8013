//! Chaos mode (stub replaced below).
use crate::suite::Suite;
use crate::Cli;
pub fn run(s: &mut Suite, _cli: &Cli) -> Result<i32, String> {
    s.run_all()
}
