//! The `ecs-diag` binary: parses arguments and hands over to the library.

// The static (musl) builds the packages ship: musl's malloc is slow for the allocation-heavy
// ruleset parse (bench/static-vs-glibc.sh), mimalloc is not, and returns freed memory.
#[cfg(all(target_env = "musl", not(feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(ecs_diag::cli::main());
}
