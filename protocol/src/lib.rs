//! The sans-IO core of mingchu: the event model, the holds rule and authority checks, cursors,
//! the wire codec, and the per-link sync [`session::Session`].
//!
//! Architecture invariant: this crate does no I/O and reads no clock. It depends on `topology`,
//! `serde`, `bincode`, `serde_json` (the device intake's bodies, [`intake`]), `thiserror` and
//! `ring` (hashes and signatures of the signed history, [`seal`]) only;
//! time comes in as arguments.

pub mod alert;
pub mod apply;
pub mod bulletin;
pub mod calendar;
pub mod case;
#[cfg(test)]
mod case_tests;
pub mod cursor;
pub mod draw;
pub mod event;
pub mod files;
pub mod health;
pub mod holds;
pub mod ids;
pub mod intake;
pub mod ledger;
pub mod people;
pub mod registry;
pub mod rules;
#[cfg(test)]
mod rules_tests;
pub mod seal;
pub mod session;
#[cfg(test)]
mod session_tests;
pub mod spot;
pub mod verdict;
pub mod warning;
pub mod wire;

pub use alert::{AlertRaised, AlertType, Severity, Zone};
pub use cursor::{Cursors, SeqRanges};
pub use event::{Body, Directive, Event, EventKind};
pub use holds::{PeerSide, Violation, holds};
pub use ids::{CaseId, EventId, Hlc, HlcClock};
pub use session::{FetchRequest, InvariantViolation, Role, Session, SessionConfig, SessionEvent, Watermarks};
pub use wire::{Frame, SeqRange};
