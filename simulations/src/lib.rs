//! The deterministic simulation harness: the whole province (or a smaller tree) through a school
//! day on one machine. The **real node actors** (root, store, listener, links, case scheduler from
//! the `node` crate) run on one tokio current-thread runtime with a paused clock, over a seeded
//! in-memory network ([`net::SimNet`]: latency, loss, duplication, reordering, partitions) and
//! in-memory storage (`node::storage::mem::MemStorage`: a crash drops what was not flushed).
//! A workload drawn from the seed ([`workload`]) and faults from the seed or a scenario file
//! ([`faults`]) drive it; [`sim::run`] checks safety during the run and liveness after it, holds
//! the province's health view to the truth within a bound ([`health`]), and returns a
//! [`sim::Report`] with a digest of every node's events: same seed, same digest.
//! [`cli`] is the command line (`mingchu sim`, and the standalone `mingchu-sim`).

pub mod cli;
pub mod faults;
pub mod health;
pub mod ledgers;
pub mod net;
pub mod report;
pub mod sim;
pub mod warnings;
pub mod workload;
pub mod world;
