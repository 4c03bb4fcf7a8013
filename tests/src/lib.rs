//! Helpers for real-container tests.
