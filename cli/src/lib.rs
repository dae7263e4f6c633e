//! The `mingchu` command line: argument parsing, the small commands, and `main`.

pub mod bulletin;
pub mod cases;
pub mod cli;
pub mod devices;
pub mod files;
pub mod ledger;
pub mod registry;
pub mod spot;
pub mod users;
pub mod warnings;

pub use cli::main;
