//! Ward sandbox profiles.
