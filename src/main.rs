//! Thin binary: parse arguments, set up logging, run, map the outcome to an exit code.

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args = rowbridge::cli::Args::parse();
    std::process::exit(rowbridge::cli::main(args));
}
