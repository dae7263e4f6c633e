//! The node's actors and tasks: the root (supervision, links, failover), one link per connection,
//! the listener, the store (the only writer of storage; its read paths in `store::read`), the case
//! scheduler, the join check, and a school's cameras as its devices report them (`cameras`). They
//! reach the world only through the seams (`Transport`, `Storage`, `Clock`), so the simulator runs
//! them unchanged.

pub mod cameras;
pub mod files;
pub mod health;
mod invariant;
pub mod join;
pub mod link;
pub mod listener;
pub mod reads;
pub mod root;
pub mod scheduler;
pub mod seal_keys;
pub mod store;
pub mod warnings;
