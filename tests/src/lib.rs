//! Test support for the end-to-end suites: the fault matrix's namespace harness and a daemon
//! served inside a case's namespace.

pub mod matrix;
pub mod served;
pub mod unit;
