//! The `ecs-diag` binary: parses arguments and hands over to the library.

fn main() {
    std::process::exit(ecs_diag::cli::main());
}
