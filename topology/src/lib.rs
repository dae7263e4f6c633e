//! Pure values describing the federation: [`NodeId`], [`Tier`], the tree of admin units, topology
//! files and the generator of a realistic province. No I/O beyond reading and writing a topology file.

pub mod file;
pub mod generate;
pub mod id;

pub use file::{NodeEntry, Topology, TopologyError};
pub use id::{IdError, NodeId, Tier};
