//! The process exit codes outside the diagnosis' own (DESIGN.md: 2 fail, 1 warn, 3 unknown,
//! 0 ok, from [`crate::report::Report::exit_code`]): the sysexits codes for errors before a
//! diagnosis, shared by every command (`check`, `serve`, `watch`, `snapshot`).

/// A usage error: bad arguments.
pub const USAGE: i32 = 64;
/// An input that cannot be read (a snapshot, the ICMP counters).
pub const NOINPUT: i32 = 66;
/// The system refused something the program needs (a runtime, a socket, signal handlers).
pub const OSERR: i32 = 71;
/// Not permitted: `fix --apply` without root, `trace` without CAP_NET_RAW.
pub const NOPERM: i32 = 77;
/// A bad configuration file.
pub const CONFIG: i32 = 78;
