//! The deterministic simulation harness — not built yet.
//!
//! It will run the real node actors (the `node` crate's store, link and root actors) for the whole
//! province on one tokio current-thread runtime with a paused clock, over a seeded in-memory
//! network and in-memory storage (the `node` crate's `storage::mem::MemStorage` already drops unflushed
//! writes on a crash), with faults drawn from a seed, invariant checks after every step and a
//! report. Its own issue ("The simulation harness") builds it; until then this crate holds only
//! this description so the workspace layout is in place.
