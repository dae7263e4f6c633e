//! The identities everything else refers to: an event's [`EventId`], its [`Hlc`] timestamp, and a
//! case's [`CaseId`]. The bottom module of the crate: it depends on nothing else here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::NodeId;

/// Identity of one event: the node that wrote it and its position in that node's sequence.
/// JSON and TOML carry it as `"130102-S0001#7"`; the wire as the `(origin, seq)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    pub origin: NodeId,
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.origin, self.seq)
    }
}

/// A hybrid logical clock timestamp: wall-clock milliseconds plus a logical counter, ordered
/// lexicographically, with the origin as the final tie-break in [`Event::order_key`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    pub wall_ms: u64,
    pub logical: u32,
}

/// The HLC state of one node. Pure: the caller passes the physical time in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    pub fn new(last: Hlc) -> HlcClock {
        HlcClock { last }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a new local event at physical time `now_ms`: strictly after every timestamp
    /// this clock has issued or observed.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        self.last = if now_ms > self.last.wall_ms {
            Hlc { wall_ms: now_ms, logical: 0 }
        } else {
            Hlc { wall_ms: self.last.wall_ms, logical: self.last.logical.saturating_add(1) }
        };
        self.last
    }

    /// Merges a timestamp seen on a received event, so later local events order after it.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) {
        let wall = now_ms.max(remote.wall_ms).max(self.last.wall_ms);
        let logical = if wall == self.last.wall_ms && wall == remote.wall_ms {
            self.last.logical.max(remote.logical)
        } else if wall == self.last.wall_ms {
            self.last.logical
        } else if wall == remote.wall_ms {
            remote.logical
        } else {
            0
        };
        self.last = Hlc { wall_ms: wall, logical };
    }
}

/// A case's identity: the [`EventId`] of the event that opened it. Displays as `130102#17`.
/// JSON and TOML carry it as `"130102#17"`; the wire as the `(opened_by, seq)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseId {
    /// The supervisor that wrote the `Open` event.
    pub opened_by: NodeId,
    /// The `Open` event's seq in its origin's sequence.
    pub seq: u64,
}

impl CaseId {
    /// The id of the case opened by the event `id`.
    pub fn of_open(id: EventId) -> CaseId {
        CaseId { opened_by: id.origin, seq: id.seq }
    }

    /// The id of the `Open` event.
    pub fn event_id(self) -> EventId {
        EventId { origin: self.opened_by, seq: self.seq }
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.opened_by, self.seq)
    }
}

/// Why a string is not a [`CaseId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("“{0}”不是案件编号：应为“挂账单位#序号”，如 130102#17")]
pub struct CaseIdError(pub String);

impl FromStr for CaseId {
    type Err = CaseIdError;
    fn from_str(s: &str) -> Result<CaseId, CaseIdError> {
        let bad = || CaseIdError(s.to_string());
        let (node, seq) = s.trim().split_once('#').ok_or_else(bad)?;
        let opened_by: NodeId = node.parse().map_err(|_| bad())?;
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        if seq == 0 {
            return Err(bad());
        }
        Ok(CaseId { opened_by, seq })
    }
}

/// `origin#seq` → an [`EventId`] (seq ≥ 1).
impl FromStr for EventId {
    type Err = CaseIdError;
    fn from_str(s: &str) -> Result<EventId, CaseIdError> {
        s.parse::<CaseId>().map(CaseId::event_id)
    }
}

/// Human-readable formats (JSON, TOML) get `"origin#seq"`; binary formats (the wire, storage) the
/// `(node, seq)` pair, exactly as the derived form encoded it.
macro_rules! id_serde {
    ($t:ty, $node:ident) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() { s.collect_str(self) } else { (self.$node, self.seq).serialize(s) }
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                use serde::de::Error;
                if d.is_human_readable() {
                    String::deserialize(d)?.parse().map_err(D::Error::custom)
                } else {
                    let ($node, seq) = <(NodeId, u64)>::deserialize(d)?;
                    Ok(Self { $node, seq })
                }
            }
        }
    };
}

id_serde!(EventId, origin);
id_serde!(CaseId, opened_by);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strings_in_json_and_pairs_on_the_wire() {
        let e = EventId { origin: "130102-S0001".parse().unwrap(), seq: 7 };
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"130102-S0001#7\"");
        assert_eq!(serde_json::from_str::<EventId>("\"130102-S0001#7\"").unwrap(), e);
        let c = CaseId { opened_by: "130102".parse().unwrap(), seq: 4 };
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"130102#4\"");
        // The wire form is the pair, byte for byte what the derived struct encoded.
        #[derive(Serialize)]
        struct Derived {
            origin: NodeId,
            seq: u64,
        }
        let cfg = bincode::config::standard();
        assert_eq!(
            bincode::serde::encode_to_vec(e, cfg).unwrap(),
            bincode::serde::encode_to_vec(Derived { origin: e.origin, seq: 7 }, cfg).unwrap()
        );
        let (back, _): (EventId, usize) =
            bincode::serde::decode_from_slice(&bincode::serde::encode_to_vec(e, cfg).unwrap(), cfg).unwrap();
        assert_eq!(back, e);
    }
}
