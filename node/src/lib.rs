//! The mingchu node: the actors (`runtime`), the three seams they reach the world through
//! (`transport`, `storage`, `clock`) with their production implementations (QUIC + mTLS, redb
//! — sled for data directories made before it — and system time), the certificates (`tls`), the
//! admin API (`api`), and `server`, the one place that composes them into a running node from its
//! `config`.
//!
//! Direction: `server → api → runtime → seams → protocol → topology`; never `runtime → api`
//! (ARCHITECTURE.md, enforced by the tidy test in `tests/it/tidy.rs`).

pub mod api;
pub mod clock;
pub mod config;
pub mod console;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod tls;
pub mod transport;
