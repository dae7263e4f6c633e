//! The mingchu node: the actors (root, store, one link per connection), the three seams they use
//! to reach the world (Transport, Storage, Clock) with their production implementations (QUIC +
//! mTLS, sled, system time), the admin API, and the `mingchu` command line.

pub mod admin;
pub mod bench;
pub mod bench_backlog;
pub mod bench_listing;
pub mod bench_outage;
pub mod cases;
pub mod cli;
pub mod cli_cases;
pub mod cli_registry;
pub mod cli_spot;
pub mod clock;
pub mod cluster;
pub mod demo;
pub mod link;
pub mod listener;
pub mod registry;
pub mod root;
pub mod server;
pub mod spot;
pub mod storage;
pub mod store;
pub mod tls;
pub mod transport;
