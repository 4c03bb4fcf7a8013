//! Newtypes validated where they are made: a [`ContainerId`] is checked once,
//! before any path is built from it.

use std::fmt;
use std::str::FromStr;

/// Why a container id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidId {
    #[error("container id is empty")]
    Empty,
    #[error("container id {0:?} is longer than 1024 bytes")]
    TooLong(String),
    #[error(
        "container id {0:?} may only contain [A-Za-z0-9_+.-] and must not start with '.' or '-'"
    )]
    BadChars(String),
}

/// A container id: `[A-Za-z0-9][A-Za-z0-9_+.-]*`, at most 1024 bytes (runc's rule,
/// minus a leading dot so `.` / `..` / hidden names can never appear).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidId> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidId::Empty);
        }
        if id.len() > 1024 {
            return Err(InvalidId::TooLong(id));
        }
        let first_ok = id.as_bytes()[0].is_ascii_alphanumeric();
        let rest_ok = id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'.' | b'-'));
        if !first_ok || !rest_ok {
            return Err(InvalidId::BadChars(id));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signal, parsed from `KILL`, `SIGKILL` or `9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(nix::sys::signal::Signal);

#[derive(Debug, thiserror::Error)]
#[error("invalid signal {0:?}: expected a name (TERM, SIGTERM) or number (15)")]
pub struct InvalidSignal(pub String);

impl Signal {
    pub fn as_nix(self) -> nix::sys::signal::Signal {
        self.0
    }
}

impl From<nix::sys::signal::Signal> for Signal {
    fn from(s: nix::sys::signal::Signal) -> Self {
        Self(s)
    }
}

impl FromStr for Signal {
    type Err = InvalidSignal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<i32>() {
            return nix::sys::signal::Signal::try_from(n)
                .map(Self)
                .map_err(|_| InvalidSignal(s.to_string()));
        }
        let upper = s.to_ascii_uppercase();
        let name = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        nix::sys::signal::Signal::from_str(&name)
            .map(Self)
            .map_err(|_| InvalidSignal(s.to_string()))
    }
}

impl TryFrom<&str> for Signal {
    type Error = InvalidSignal;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(ContainerId::new("abc-1_2.3+x").is_ok());
        assert_eq!(ContainerId::new(""), Err(InvalidId::Empty));
        for bad in [
            "../x", "a/b", ".", "..", ".hidden", "-x", "a b", "a\0b", "ü",
        ] {
            assert!(ContainerId::new(bad).is_err(), "{bad} accepted");
        }
        assert!(ContainerId::new("a".repeat(1025)).is_err());
    }

    #[test]
    fn signals() {
        use nix::sys::signal::Signal as S;
        assert_eq!("KILL".parse::<Signal>().unwrap().as_nix(), S::SIGKILL);
        assert_eq!("sigterm".parse::<Signal>().unwrap().as_nix(), S::SIGTERM);
        assert_eq!("9".parse::<Signal>().unwrap().as_nix(), S::SIGKILL);
        assert!("NOPE".parse::<Signal>().is_err());
        assert!("99".parse::<Signal>().is_err());
    }
}
