//! The mingchu node.
pub mod tls;
pub mod transport;
