//! Test support for the end-to-end suites: the fault matrix's namespace harness.

pub mod matrix;
