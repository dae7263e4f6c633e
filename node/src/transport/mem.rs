//! In-memory transport.
