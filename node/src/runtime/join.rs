//! The join check: a school (or city) registered at run time may link here although the topology
//! file does not list it.
//!
//! A county registers a school (a `School` entity: scope the school, written by the county). When
//! a node not in the topology file dials a node of which it is a descendant, the root actor asks
//! [`check_registered`]: the connection is accepted iff this node's own registry holds the peer as
//! a school (or city) entity that has not been removed. Every ancestor of the school holds that
//! registration, so failover to a city or the province works too. The read runs beside the store
//! actor ([`Reads`]).

use protocol::registry::{EntityKind, EntityRef};
use topology::{NodeId, Tier};

use crate::runtime::reads::Reads;

/// Whether `peer`, a descendant of this node absent from its topology file, is registered in this
/// node's own registry (as a school, or a city) and not removed.
pub async fn check_registered(reads: &Reads, peer: NodeId) -> Result<(), String> {
    let kind = match peer.tier() {
        Tier::School => EntityKind::School,
        Tier::City => EntityKind::City,
        t => return Err(format!("{peer} is not in the topology (a {t} cannot be registered at run time)")),
    };
    let view = reads.registry().await.map_err(|e| format!("{peer} is not in the topology; {e}"))?;
    if view.contains_key(&EntityRef { kind, node: peer, id: String::new() }) {
        Ok(())
    } else {
        Err(format!("{peer} is neither in the topology nor a registered {kind} in this node's registry"))
    }
}
