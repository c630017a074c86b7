//! The `callproof` binary: everything it does lives in the library;
//! see `callproof --help` and README.md.

/// mimalloc instead of the system allocator: webhooks allocate small,
/// short-lived buffers on every worker thread at once, where glibc's arenas
/// contend on their locks (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    callproof::cli::main()
}
