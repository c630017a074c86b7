//! The `callproof` binary: everything it does lives in the library;
//! see `callproof --help` and README.md.

fn main() -> std::process::ExitCode {
    callproof::cli::main()
}
