//! The `ecs-diag` binary: parses arguments and hands over to the library.
//!
//! The static (musl) builds keep their C library's own malloc (zig's libc, which
//! `cargo zigbuild` links: its SmpAllocator): measured against mimalloc
//! (bench/static-vs-glibc.sh, the flood test in agent/tests/daemon.rs) it is as fast on the
//! 100,000-rule diagnosis and holds a third of the memory (3.3 vs 14.1 MiB idle RSS; after a
//! slow-reader flood 10.8 vs 17.3 MiB peak).

fn main() {
    std::process::exit(ecs_diag::cli::main());
}
