//! Thin binary: parse the command line, run it, print any error on one line, exit non-zero.

use clap::Parser;

fn main() {
    let cli = dlpgate::cli::Cli::parse();
    if let Err(e) = dlpgate::cli::run(cli) {
        eprintln!("dlpgate: {e:#}");
        std::process::exit(1);
    }
}
