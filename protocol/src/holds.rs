//! The one replication rule and the authority checks built on it.
//!
//! > A node holds an event iff the node is on the path from the root to the event's scope, or
//! > inside the scope's subtree.
//!
//! [`holds`] is that rule, and every filter, check and query in the system goes through it.

use topology::{NodeId, Tier};

use crate::alert::AlertAction;
use crate::case::check_case_event;
use crate::event::{Body, Event};

/// THE holds rule: `node` holds events scoped to `scope` iff `node` is an ancestor of (or is)
/// `scope`, or `scope` is an ancestor of `node`.
pub fn holds(node: NodeId, scope: NodeId) -> bool {
    node.is_ancestor_or_self_of(scope) || scope.is_ancestor_or_self_of(node)
}

/// An origin may only write events scoped to itself or to a node inside its own subtree.
pub fn may_write(origin: NodeId, scope: NodeId) -> bool {
    origin.is_ancestor_or_self_of(scope)
}

/// Which side of a link the peer is on, seen from this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerSide {
    /// The peer is an ancestor (our parent, or a grandparent during failover): we report up to it.
    Ancestor,
    /// The peer is a descendant (a child, or a grandchild during failover): it reports up to us.
    Descendant,
}

impl PeerSide {
    /// The side of `peer` relative to `me`, or `None` when neither is an ancestor of the other
    /// (such nodes never link).
    pub fn of(me: NodeId, peer: NodeId) -> Option<PeerSide> {
        if me == peer {
            None
        } else if peer.is_ancestor_or_self_of(me) {
            Some(PeerSide::Ancestor)
        } else if me.is_ancestor_or_self_of(peer) {
            Some(PeerSide::Descendant)
        } else {
            None
        }
    }
}

/// Origins whose events `me` sends to `peer` on a link.
///
/// Upward (`peer` an ancestor) a node sends only origins inside its own subtree: for those both
/// sides hold every event. Downward (`peer` a descendant) it sends every origin whose events can
/// fall in the peer's filter: the peer's own subtree and the peer's ancestors.
pub fn sends_origin(me: NodeId, peer: NodeId, origin: NodeId) -> bool {
    match PeerSide::of(me, peer) {
        Some(PeerSide::Ancestor) => me.is_ancestor_or_self_of(origin),
        Some(PeerSide::Descendant) => peer.is_ancestor_or_self_of(origin) || origin.is_ancestor_or_self_of(peer),
        None => false,
    }
}

/// Origins whose events a node can hold at all: its subtree and its ancestors.
pub fn relevant_origin(node: NodeId, origin: NodeId) -> bool {
    node.is_ancestor_or_self_of(origin) || origin.is_ancestor_or_self_of(node)
}

/// Longest directive title and text (bytes).
pub const DIRECTIVE_TITLE_BYTES_MAX: usize = 256;
pub const DIRECTIVE_TEXT_BYTES_MAX: usize = 16 * 1024;

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("{origin} 只能写本单位及下级单位的事件，{scope} 不在其管辖范围内")]
    ScopeOutsideOrigin { origin: NodeId, scope: NodeId },
    #[error("{node} 不保存记在 {scope} 名下的事件")]
    NotHeld { node: NodeId, scope: NodeId },
    /// `kind` and `rule` are for a person (Chinese).
    #[error("{origin} 写给 {scope} 的{kind}被拒绝：{rule}")]
    KindAuthority { kind: &'static str, rule: &'static str, origin: NodeId, scope: NodeId },
    #[error("{peer} 不能转发 {origin} 的事件")]
    ForeignOrigin { peer: NodeId, origin: NodeId },
    #[error("事件 {origin}#{seq} 的序号为 0（序号从 1 开始）")]
    ZeroSeq { origin: NodeId, seq: u64 },
    #[error("内容不合规：{0}")]
    Body(String),
    #[error("案件操作被拒绝：{0}")]
    Case(#[from] crate::case::Refusal),
    #[error("登记变更被拒绝：{0}")]
    Registry(#[from] crate::registry::RegistryRefusal),
}

/// Checks the rules an event must satisfy wherever it is: the origin's authority over the scope and
/// the body's own rules. A node checks it when writing locally and again when receiving.
pub fn check_event(event: &Event) -> Result<(), Violation> {
    if event.seq == 0 {
        return Err(Violation::ZeroSeq { origin: event.origin, seq: event.seq });
    }
    if !may_write(event.origin, event.scope) {
        return Err(Violation::ScopeOutsideOrigin { origin: event.origin, scope: event.scope });
    }
    if let Some(p) = &event.by
        && !p.is_well_formed()
    {
        return Err(Violation::Body(format!(
            "事件 {}#{} 记录的操作人不合规（为空、过长或含控制字符）",
            event.origin, event.seq
        )));
    }
    match &event.body {
        Body::Alert(alert) => {
            // An alert is raised by a school about itself.
            if event.origin.tier() != Tier::School || event.scope != event.origin {
                return Err(Violation::KindAuthority {
                    kind: "告警",
                    rule: "告警只能由学校就自身发出",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            alert.validate().map_err(|e| Violation::Body(e.to_string()))?;
        }
        Body::Directive(d) => {
            // Only supervisors (county and above) direct; schools report.
            if event.origin.tier() == Tier::School {
                return Err(Violation::KindAuthority {
                    kind: "指令",
                    rule: "只有县级及以上监管部门可以下发指令",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            if d.title.trim().is_empty()
                || d.title.len() > DIRECTIVE_TITLE_BYTES_MAX
                || d.text.len() > DIRECTIVE_TEXT_BYTES_MAX
            {
                return Err(Violation::Body(format!(
                    "指令标题须为 1 到 {DIRECTIVE_TITLE_BYTES_MAX} 字节，正文最多 {DIRECTIVE_TEXT_BYTES_MAX} 字节"
                )));
            }
        }
        Body::Case(case) => check_case_event(event.id(), event.scope, case)?,
        Body::AlertUpdate(update) => {
            // About an alert of the scope's school, by that school (repeats, and its own verdict)
            // or a supervisor of it.
            let school = update.alert.origin;
            if event.scope != school || school.tier() != Tier::School {
                return Err(Violation::KindAuthority {
                    kind: "告警处理",
                    rule: "告警处理须记在告警所属学校名下",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            if matches!(update.action, AlertAction::Repeat { .. }) && event.origin != school {
                return Err(Violation::KindAuthority {
                    kind: "告警重复合并",
                    rule: "只有学校自己能把重复检测合并进它的告警",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            if matches!(update.action, AlertAction::Overturn { .. }) && event.origin.tier() == Tier::School {
                return Err(Violation::KindAuthority {
                    kind: "推翻误报判定",
                    rule: "只有学校的上级监管部门可以推翻学校的误报判定",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            update.validate().map_err(|e| Violation::Body(e.to_string()))?;
        }
        // One owner, only writer (see `crate::registry`).
        Body::Registry(change) => crate::registry::check_registry(event.origin, event.scope, change)?,
        Body::SpotCheck(check) => {
            // Supervisors inspect a school's canteen.
            if event.origin.tier() == Tier::School || event.scope.tier() != Tier::School {
                return Err(Violation::KindAuthority {
                    kind: "抽查",
                    rule: "抽查由县级及以上监管部门对学校进行",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            check.validate().map_err(Violation::Body)?;
        }
        Body::Ledger(entry) => {
            // A school keeps its own ledgers.
            if event.origin.tier() != Tier::School || event.scope != event.origin {
                return Err(Violation::KindAuthority {
                    kind: "台账",
                    rule: "台账只能由学校自己填报",
                    origin: event.origin,
                    scope: event.scope,
                });
            }
            entry.validate().map_err(Violation::Body)?;
        }
        Body::Warning(w) => {
            crate::warning::check_warning(event.origin, event.scope, w).map_err(Violation::Body)?;
        }
    }
    Ok(())
}

/// Checks an event that `me` received from `peer` over a link: the general rules, that `me` should
/// hold it, and that `peer` may forward its origin to `me`.
pub fn check_received(me: NodeId, peer: NodeId, event: &Event) -> Result<(), Violation> {
    if !sends_origin(peer, me, event.origin) {
        return Err(Violation::ForeignOrigin { peer, origin: event.origin });
    }
    if !holds(me, event.scope) {
        return Err(Violation::NotHeld { node: me, scope: event.scope });
    }
    check_event(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    #[test]
    fn holds_follows_the_rule() {
        let school = id("130102-S0001");
        // An alert scoped to a school lives at the school and its ancestors only.
        for n in ["130102-S0001", "130102", "1301", "13"] {
            assert!(holds(id(n), school), "{n}");
        }
        for n in ["130102-S0002", "130104", "1302", "130104-S0001"] {
            assert!(!holds(id(n), school), "{n}");
        }
        // A county directive: the county's schools and its ancestors.
        let county = id("130102");
        assert!(holds(id("130102-S0009"), county));
        assert!(holds(id("13"), county));
        assert!(!holds(id("130104-S0001"), county));
        // A province bulletin: everybody.
        assert!(holds(id("131182-S0003"), id("13")));
    }

    #[test]
    fn parents_filter_is_a_superset_of_the_childs() {
        let nodes = ["13", "1301", "1302", "130102", "130104", "130102-S0001", "130102-S0002", "130104-S0001"];
        for child in nodes.iter().map(|s| id(s)) {
            let Some(parent) = child.parent() else { continue };
            for scope in nodes.iter().map(|s| id(s)) {
                if holds(child, scope) {
                    assert!(holds(parent, scope), "{parent} ⊉ {child} for {scope}");
                }
            }
        }
    }

    #[test]
    fn origins_sent_each_way() {
        let (county, school) = (id("130102"), id("130102-S0001"));
        // Up: only the school's own subtree.
        assert!(sends_origin(school, county, school));
        assert!(!sends_origin(school, county, id("130102")));
        // Down: the child's subtree and its ancestors, not its siblings.
        assert!(sends_origin(county, school, school));
        assert!(sends_origin(county, school, id("13")));
        assert!(sends_origin(county, school, county));
        assert!(!sends_origin(county, school, id("130102-S0002")));
        // Unrelated nodes never exchange anything.
        assert!(!sends_origin(id("130104"), school, school));
    }

    /// Case steps and alert verdicts carry their authority rules on every path: a school closing
    /// its own case, a county acting on another county's school, or a supervisor forging a school's
    /// repeat is refused wherever the event shows up (written locally or received from a peer).
    #[test]
    fn case_and_verdict_authority() {
        use crate::alert::{AlertAction, AlertUpdate};
        use crate::case::{CaseAction, CaseEvent, CaseId};
        use crate::event::{EventId, Hlc};
        let (school, county, other) = (id("130102-S0001"), id("130102"), id("130104"));
        let case = CaseId { opened_by: county, seq: 1 };
        let ev =
            |origin: NodeId, body: Body| Event { by: None, origin, seq: 5, hlc: Hlc::default(), scope: school, body };
        let close = Body::Case(CaseEvent { case, action: CaseAction::Close { comment: "done".into() } });
        assert!(matches!(check_event(&ev(school, close.clone())), Err(Violation::Case(_))));
        assert!(check_event(&ev(county, close.clone())).is_ok());
        // Another county may not even write about the school (outside its subtree).
        assert!(check_event(&ev(other, close)).is_err());
        let ack = Body::Case(CaseEvent { case, action: CaseAction::Acknowledge });
        assert!(check_event(&ev(school, ack.clone())).is_ok());
        assert!(matches!(check_event(&ev(county, ack)), Err(Violation::Case(_))));
        let alert = EventId { origin: school, seq: 3 };
        let repeat = Body::AlertUpdate(AlertUpdate { alert, action: AlertAction::Repeat { detected_at_ms: 1 } });
        assert!(check_event(&ev(school, repeat.clone())).is_ok());
        assert!(check_event(&ev(county, repeat)).is_err(), "only the school merges repeats");
        let dismiss = Body::AlertUpdate(AlertUpdate { alert, action: AlertAction::Dismiss { reason: String::new() } });
        assert!(check_event(&ev(county, dismiss)).is_err(), "a dismissal needs its reason");
        let spot = Body::SpotCheck(crate::spot::SpotCheck {
            canteen: "main".into(),
            results: vec![(crate::spot::FocusArea::StaffAttire, false)],
            note: String::new(),
        });
        assert!(check_event(&ev(county, spot.clone())).is_ok());
        assert!(check_event(&ev(school, spot)).is_err(), "a school does not spot-check itself");
    }

    #[test]
    fn peer_side() {
        assert_eq!(PeerSide::of(id("130102-S0001"), id("13")), Some(PeerSide::Ancestor));
        assert_eq!(PeerSide::of(id("1301"), id("130102")), Some(PeerSide::Descendant));
        assert_eq!(PeerSide::of(id("1301"), id("1302")), None);
        assert_eq!(PeerSide::of(id("1301"), id("1301")), None);
    }
}
