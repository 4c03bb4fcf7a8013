//! `ward check`: node readiness table.
