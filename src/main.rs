//! Thin binary: parse arguments, set up logging, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let args = rowbridge::cli::Args::parse();
    std::process::exit(rowbridge::cli::main(args));
}
