//! `ecs-diag` itself (the same entry point as `agent/src/main.rs`), built inside this crate so
//! the fault matrix always runs the code under test.

fn main() {
    std::process::exit(ecs_diag::cli::main());
}
