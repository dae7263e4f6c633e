//! The event model: every piece of replicated data is an [`Event`] `(origin, seq, hlc, scope, kind, body)`,
//! with the person (if any) who acted.
//!
//! `(origin, seq)` identifies an event; the origin's `seq` is dense (1, 2, 3, …) and never reused.
//! The `scope` decides which nodes hold it (see [`crate::holds`]); the body says what happened.

use serde::{Deserialize, Serialize};
use topology::NodeId;

use crate::alert::{AlertRaised, AlertUpdate};
use crate::case::CaseEvent;
use crate::registry::RegistryChange;
use crate::spot::SpotCheck;

pub use crate::ids::{EventId, Hlc, HlcClock};

/// What kind of data an event carries (the body's discriminant, for counting and filtering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Alert,
    Directive,
    Case,
    AlertUpdate,
    Registry,
    SpotCheck,
    Ledger,
    Warning,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::Directive => "directive",
            EventKind::Case => "case",
            EventKind::AlertUpdate => "alert-update",
            EventKind::Registry => "registry",
            EventKind::SpotCheck => "spot-check",
            EventKind::Ledger => "ledger",
            EventKind::Warning => "warning",
        }
    }

    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Alert,
        EventKind::Directive,
        EventKind::Case,
        EventKind::AlertUpdate,
        EventKind::Registry,
        EventKind::SpotCheck,
        EventKind::Ledger,
        EventKind::Warning,
    ];

    /// One byte naming the kind in storage indexes.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The payload. Wire rule: variants are encoded by position, so only ever append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// An AI camera detection or rule warning raised at a school.
    Alert(AlertRaised),
    /// A notice, directive or bulletin from a supervisor to the unit named by the event's scope
    /// (a school, a county-wide directive, a province-wide bulletin).
    Directive(Directive),
    /// One step of a case's lifecycle (scope: the case's school).
    Case(CaseEvent),
    /// An alert confirmed, dismissed or repeated (scope: the alert's school).
    AlertUpdate(AlertUpdate),
    /// A registry entity created, changed or removed by its one owner (scope: the entity's node;
    /// see [`crate::registry`]).
    Registry(RegistryChange),
    /// An online spot check of a canteen of the scope's school, by a supervisor.
    SpotCheck(SpotCheck),
    /// A record of the school's food-safety ledgers, by the school (see [`crate::ledger`]).
    Ledger(crate::ledger::LedgerEntry),
    /// An early warning raised or resolved (see [`crate::warning`]).
    Warning(crate::warning::WarningEvent),
}

/// A supervisor's message down the tree; who receives it follows from the event's scope alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directive {
    pub title: String,
    pub text: String,
}

impl Body {
    pub fn kind(&self) -> EventKind {
        match self {
            Body::Alert(_) => EventKind::Alert,
            Body::Directive(_) => EventKind::Directive,
            Body::Case(_) => EventKind::Case,
            Body::AlertUpdate(_) => EventKind::AlertUpdate,
            Body::Registry(_) => EventKind::Registry,
            Body::SpotCheck(_) => EventKind::SpotCheck,
            Body::Ledger(_) => EventKind::Ledger,
            Body::Warning(_) => EventKind::Warning,
        }
    }
}

/// One replicated event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub origin: NodeId,
    pub seq: u64,
    pub hlc: Hlc,
    pub scope: NodeId,
    pub body: Body,
    /// The person on whose behalf the origin wrote it (an account of the origin's unit); `None`
    /// for what a node writes by itself (a camera's alert, the scheduler's escalation) or its
    /// local operator.
    pub by: Option<crate::people::Person>,
}

impl Event {
    pub fn id(&self) -> EventId {
        EventId { origin: self.origin, seq: self.seq }
    }

    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }

    /// Total order used by folds: HLC, then origin, then seq. Every node sorts the same events the
    /// same way, whatever order they arrived in.
    pub fn order_key(&self) -> (Hlc, NodeId, u64) {
        (self.hlc, self.origin, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_ticks_strictly_increase_even_when_wall_clock_stalls_or_goes_back() {
        let mut c = HlcClock::default();
        let a = c.tick(100);
        let b = c.tick(100);
        let d = c.tick(90);
        let e = c.tick(200);
        assert!(a < b && b < d && d < e);
        assert_eq!(e, Hlc { wall_ms: 200, logical: 0 });
    }

    #[test]
    fn hlc_observe_orders_later_events_after_remote_ones() {
        let mut c = HlcClock::default();
        c.tick(100);
        let remote = Hlc { wall_ms: 500, logical: 7 };
        c.observe(remote, 120);
        let next = c.tick(130);
        assert!(next > remote);
    }
}
