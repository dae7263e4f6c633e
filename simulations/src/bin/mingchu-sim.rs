//! `mingchu-sim`: the whole province (or a smaller tree) through a simulated school day, with
//! faults from a seed or a scenario file, and a verdict. The same as `mingchu sim`
//! ([`simulations::cli`]), as a program of its own.

use std::process::ExitCode;

use clap::Parser;
use simulations::cli::SimArgs;

/// The same allocator as `mingchu` (see its `main.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "mingchu-sim",
    version,
    about = "Deterministic simulation of the mingchu federation: real node actors, \
    seeded in-memory network and storage, paused clock, faults, invariant checks and a report \
    (the same as `mingchu sim`)."
)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn main() -> ExitCode {
    simulations::cli::main(Cli::parse().args)
}
