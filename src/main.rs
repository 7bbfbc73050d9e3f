//! Thin binary: parse the command line, run it, print any error on one line, exit non-zero.

use clap::Parser;

/// mimalloc: measured faster than glibc malloc for the proxy's many small, cross-thread
/// allocations (see README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = dlpgate::cli::Cli::parse();
    if let Err(e) = dlpgate::cli::run(cli) {
        eprintln!("dlpgate: {e:#}");
        std::process::exit(1);
    }
}
