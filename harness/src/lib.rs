//! Tooling around real nodes: a federation of `mingchu node run` processes on loopback
//! ([`cluster::Cluster`]), the demo, and the benchmarks. Used by the `mingchu` CLI and the
//! integration tests; never by a node.

pub mod bench;
pub mod bench_backlog;
pub mod bench_console;
pub mod bench_health;
pub mod bench_intake;
pub mod bench_listing;
pub mod bench_lossy;
pub mod bench_outage;
pub mod bench_screen;
pub mod bench_seals;
pub mod bench_year;
pub mod cluster;
pub mod demo;
pub mod relay;
