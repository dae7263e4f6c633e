//! Topology files (TOML).
