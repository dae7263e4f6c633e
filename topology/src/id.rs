//! `NodeId` and `Tier`: the identity of one admin unit, encoding its path in the tree.
//!
//! A `NodeId` is a GB/T 2260 administrative code plus, for a school, its number inside the county:
//! province `13`, city `1301`, county `130102`, school `130102-S0042`. The parent, the ancestors and
//! subtree membership follow from the value alone, with no table lookup, so the holds rule in
//! `protocol` is a couple of integer comparisons.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The DNS suffix under which every node's certificate name lives (`1301.13.mingchu`).
pub const DNS_SUFFIX: &str = "mingchu";

/// Largest school number inside one county (`S9999`); Hebei's largest county has ~300 schools.
pub const SCHOOL_NUMBER_MAX: u32 = 9_999;

/// The four administrative levels, ordered from the root down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Province,
    City,
    County,
    School,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Province, Tier::City, Tier::County, Tier::School];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Province => "province",
            Tier::City => "city",
            Tier::County => "county",
            Tier::School => "school",
        }
    }

    /// The tier as a person names it in a sentence: `省级`, `市级`, `县级`, `学校`.
    pub fn zh(self) -> &'static str {
        match self {
            Tier::Province => "省级",
            Tier::City => "市级",
            Tier::County => "县级",
            Tier::School => "学校",
        }
    }

    /// Depth below the root: province 0 … school 3.
    pub fn depth(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One admin unit. Internally the 6-digit code (`130000`, `130100`, `130102`) and a school number
/// (0 for every non-school), which makes the derived `Ord` a depth-first order of the tree:
/// a node sorts right before its own subtree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    code: u32,
    school: u32,
}

/// Why a string or number is not a `NodeId`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "`{0}` is not a node id: expected a 2-digit province (13), 4-digit city (1301), 6-digit county (130102) or school (130102-S0042)"
    )]
    Syntax(String),
    #[error("`{0}` is not a node id: the code's parts must not be 00 below a non-zero part")]
    Code(String),
    #[error("`{0}` is not a node id: school numbers run from 1 to {SCHOOL_NUMBER_MAX}")]
    SchoolNumber(String),
    #[error("`{0}` is not a mingchu certificate name: expected e.g. `s0042.130102.1301.13.{DNS_SUFFIX}`")]
    DnsName(String),
}

impl NodeId {
    /// The province with the given 2-digit code (`13` for Hebei).
    pub fn province(code: u32) -> Result<NodeId, IdError> {
        if !(11..=99).contains(&code) {
            return Err(IdError::Code(code.to_string()));
        }
        Ok(NodeId { code: code * 10_000, school: 0 })
    }

    /// A city from its 4-digit code (`1301`).
    pub fn city(code: u32) -> Result<NodeId, IdError> {
        if !(1100..=9999).contains(&code) || code.is_multiple_of(100) {
            return Err(IdError::Code(code.to_string()));
        }
        Ok(NodeId { code: code * 100, school: 0 })
    }

    /// A county-level unit from its 6-digit code (`130102`).
    pub fn county(code: u32) -> Result<NodeId, IdError> {
        if !(110_000..=999_999).contains(&code) || code.is_multiple_of(100) || (code / 100).is_multiple_of(100) {
            return Err(IdError::Code(code.to_string()));
        }
        Ok(NodeId { code, school: 0 })
    }

    /// School number `number` (1-based) under `county`.
    pub fn school(county: NodeId, number: u32) -> Result<NodeId, IdError> {
        if county.tier() != Tier::County {
            return Err(IdError::Code(county.to_string()));
        }
        if !(1..=SCHOOL_NUMBER_MAX).contains(&number) {
            return Err(IdError::SchoolNumber(format!("{county}-S{number}")));
        }
        Ok(NodeId { code: county.code, school: number })
    }

    pub fn tier(self) -> Tier {
        if self.school != 0 {
            Tier::School
        } else if self.code.is_multiple_of(10_000) {
            Tier::Province
        } else if self.code.is_multiple_of(100) {
            Tier::City
        } else {
            Tier::County
        }
    }

    /// The short administrative code as written by people: 13, 1301, 130102 (the county's for a school).
    pub fn code(self) -> u32 {
        match self.tier() {
            Tier::Province => self.code / 10_000,
            Tier::City => self.code / 100,
            Tier::County | Tier::School => self.code,
        }
    }

    /// A school's number inside its county, `None` for other tiers.
    pub fn school_number(self) -> Option<u32> {
        (self.school != 0).then_some(self.school)
    }

    pub fn parent(self) -> Option<NodeId> {
        match self.tier() {
            Tier::Province => None,
            Tier::City => Some(NodeId { code: self.code / 10_000 * 10_000, school: 0 }),
            Tier::County => Some(NodeId { code: self.code / 100 * 100, school: 0 }),
            Tier::School => Some(NodeId { code: self.code, school: 0 }),
        }
    }

    /// Ancestors from the parent up to the root.
    pub fn ancestors(self) -> impl Iterator<Item = NodeId> {
        std::iter::successors(self.parent(), |n| n.parent())
    }

    /// The node itself, then its ancestors up to the root.
    pub fn path_up(self) -> impl Iterator<Item = NodeId> {
        std::iter::successors(Some(self), |n| n.parent())
    }

    /// The ancestor of `self` at `tier`, or `self` if it is at that tier; `None` below `self`.
    pub fn ancestor_at(self, tier: Tier) -> Option<NodeId> {
        self.path_up().find(|n| n.tier() == tier)
    }

    /// True if `self` is `other` or one of `other`'s ancestors (so `other` is in `self`'s subtree).
    pub fn is_ancestor_or_self_of(self, other: NodeId) -> bool {
        match self.tier() {
            Tier::Province => self.code / 10_000 == other.code / 10_000,
            Tier::City => self.code / 100 == other.code / 100,
            Tier::County => self.code == other.code,
            Tier::School => self == other,
        }
    }

    /// True if `other` is a strict ancestor of `self`.
    pub fn is_descendant_of(self, other: NodeId) -> bool {
        self != other && other.is_ancestor_or_self_of(self)
    }

    /// True if `self` lies in the subtree rooted at `root` (itself included).
    pub fn in_subtree_of(self, root: NodeId) -> bool {
        root.is_ancestor_or_self_of(self)
    }

    /// The certificate DNS name: the path reversed, `s0042.130102.1301.13.mingchu`.
    pub fn dns_name(self) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(5);
        for n in self.path_up() {
            match n.tier() {
                Tier::School => parts.push(format!("s{:04}", n.school)),
                _ => parts.push(n.code().to_string()),
            }
        }
        parts.push(DNS_SUFFIX.to_string());
        parts.join(".")
    }

    /// Parses a certificate DNS name back into a `NodeId`, checking that every label agrees with
    /// the path (a name like `130102.1302.13.mingchu` is refused: 130102 is not under 1302).
    pub fn from_dns_name(name: &str) -> Result<NodeId, IdError> {
        let bad = || IdError::DnsName(name.to_string());
        let labels: Vec<&str> = name.split('.').collect();
        let (suffix, path) = labels.split_last().ok_or_else(bad)?;
        if *suffix != DNS_SUFFIX || path.is_empty() || path.len() > 4 {
            return Err(bad());
        }
        // The most specific label comes first; parse it and rebuild the name to compare.
        let first = path[0];
        let id = if let Some(num) = first.strip_prefix('s') {
            if path.len() != 4 || num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let county: u32 = path[1].parse().map_err(|_| bad())?;
            let number: u32 = num.parse().map_err(|_| bad())?;
            NodeId::school(NodeId::county(county).map_err(|_| bad())?, number).map_err(|_| bad())?
        } else {
            first.parse::<NodeId>().map_err(|_| bad())?
        };
        if id.dns_name() != name {
            return Err(bad());
        }
        Ok(id)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tier() {
            Tier::School => write!(f, "{}-S{:04}", self.code, self.school),
            _ => write!(f, "{}", self.code()),
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for NodeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<NodeId, IdError> {
        let syntax = || IdError::Syntax(s.to_string());
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if let Some((county, school)) = s.split_once('-') {
            let num = school.strip_prefix('S').or_else(|| school.strip_prefix('s')).ok_or_else(syntax)?;
            if county.len() != 6 || !digits(county) || !digits(num) || num.len() > 6 {
                return Err(syntax());
            }
            let county = NodeId::county(county.parse().map_err(|_| syntax())?)?;
            let number: u32 = num.parse().map_err(|_| syntax())?;
            return NodeId::school(county, number).map_err(|_| IdError::SchoolNumber(s.to_string()));
        }
        if !digits(s) {
            return Err(syntax());
        }
        let code: u32 = s.parse().map_err(|_| syntax())?;
        match s.len() {
            2 => NodeId::province(code),
            4 => NodeId::city(code),
            6 => NodeId::county(code),
            _ => Err(syntax()),
        }
        .map_err(|e| match e {
            IdError::Code(_) => IdError::Code(s.to_string()),
            other => other,
        })
    }
}

impl Serialize for NodeId {
    /// Human-readable formats (TOML, JSON) get the string form; binary formats (the wire) get the
    /// compact `(code, school)` pair.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { (self.code, self.school).serialize(s) }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        use serde::de::Error;
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(D::Error::custom)
        } else {
            let (code, school) = <(u32, u32)>::deserialize(d)?;
            NodeId::from_raw(code, school).map_err(D::Error::custom)
        }
    }
}

impl NodeId {
    /// The compact form used on the wire and in storage keys: `(6-digit code, school number)`.
    pub fn to_raw(self) -> (u32, u32) {
        (self.code, self.school)
    }

    /// Validates a compact `(code, school)` pair from a peer or a file.
    pub fn from_raw(code: u32, school: u32) -> Result<NodeId, IdError> {
        let bad = || IdError::Code(format!("{code}/{school}"));
        if !(110_000..=999_999).contains(&code) {
            return Err(bad());
        }
        let id = if code.is_multiple_of(10_000) {
            NodeId::province(code / 10_000)?
        } else if code.is_multiple_of(100) {
            NodeId::city(code / 100)?
        } else {
            NodeId::county(code)?
        };
        if school == 0 {
            return Ok(id);
        }
        NodeId::school(id, school).map_err(|_| bad())
    }

    /// Eight bytes that sort like the `NodeId` itself: storage keys use them as a prefix.
    pub fn to_key(self) -> [u8; 8] {
        let mut k = [0u8; 8];
        k[..4].copy_from_slice(&self.code.to_be_bytes());
        k[4..].copy_from_slice(&self.school.to_be_bytes());
        k
    }

    pub fn from_key(k: &[u8]) -> Result<NodeId, IdError> {
        let bad = || IdError::Code(format!("key {k:?}"));
        let code = u32::from_be_bytes(k.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let school = u32::from_be_bytes(k.get(4..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        NodeId::from_raw(code, school)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_every_tier() {
        for (s, tier) in
            [("13", Tier::Province), ("1301", Tier::City), ("130102", Tier::County), ("130102-S0042", Tier::School)]
        {
            assert_eq!(id(s).tier(), tier);
            assert_eq!(id(s).to_string(), s);
        }
        assert_eq!(id("130102-s42").to_string(), "130102-S0042");
    }

    #[test]
    fn rejects_bad_ids() {
        for s in [
            "",
            "1",
            "130",
            "13010",
            "1300",
            "130100",
            "130002",
            "130102-S0",
            "130102-X1",
            "x",
            "13-S1",
            "130102-S10000",
            "1301021",
        ] {
            assert!(s.parse::<NodeId>().is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn parent_and_ancestors() {
        let s = id("130102-S0042");
        assert_eq!(s.parent(), Some(id("130102")));
        let anc: Vec<String> = s.ancestors().map(|n| n.to_string()).collect();
        assert_eq!(anc, ["130102", "1301", "13"]);
        assert_eq!(id("13").parent(), None);
        assert_eq!(s.ancestor_at(Tier::City), Some(id("1301")));
    }

    #[test]
    fn subtree_membership() {
        let s = id("130102-S0042");
        assert!(id("13").is_ancestor_or_self_of(s));
        assert!(id("1301").is_ancestor_or_self_of(s));
        assert!(id("130102").is_ancestor_or_self_of(s));
        assert!(s.is_ancestor_or_self_of(s));
        assert!(!id("130104").is_ancestor_or_self_of(s));
        assert!(!id("1302").is_ancestor_or_self_of(s));
        assert!(!id("130102-S0041").is_ancestor_or_self_of(s));
        assert!(!s.is_ancestor_or_self_of(id("130102")));
        assert!(s.is_descendant_of(id("13")));
        assert!(!s.is_descendant_of(s));
    }

    #[test]
    fn dns_names_round_trip() {
        for (s, dns) in [
            ("13", "13.mingchu"),
            ("1301", "1301.13.mingchu"),
            ("130102", "130102.1301.13.mingchu"),
            ("130102-S0042", "s0042.130102.1301.13.mingchu"),
        ] {
            assert_eq!(id(s).dns_name(), dns);
            assert_eq!(NodeId::from_dns_name(dns).unwrap(), id(s));
        }
        for bad in [
            "13",
            "1301.14.mingchu",
            "130102.1302.13.mingchu",
            "s0042.130102.1301.13.example",
            "*.13.mingchu",
            "s42.130102.1301.13.mingchu",
            "s0042.1301.13.mingchu",
        ] {
            assert!(NodeId::from_dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_is_depth_first() {
        let mut v = [id("130102-S0001"), id("1302"), id("130102"), id("13"), id("1301"), id("130104")];
        v.sort();
        let s: Vec<String> = v.iter().map(|n| n.to_string()).collect();
        assert_eq!(s, ["13", "1301", "130102", "130102-S0001", "130104", "1302"]);
    }

    #[test]
    fn raw_and_key_round_trip() {
        for s in ["13", "1301", "130102", "130102-S0042"] {
            let (c, n) = id(s).to_raw();
            assert_eq!(NodeId::from_raw(c, n).unwrap(), id(s));
            assert_eq!(NodeId::from_key(&id(s).to_key()).unwrap(), id(s));
        }
        assert!(NodeId::from_raw(0, 0).is_err());
        assert!(NodeId::from_raw(130000, 5).is_err());
    }
}
