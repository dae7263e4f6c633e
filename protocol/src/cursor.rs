//! Cursors: what a node holds of each origin, as ranges of seqs "complete within my filter".
//!
//! For every origin a node keeps a [`SeqRanges`]: each range `(a, b]` says "I hold every event of
//! this origin with `a < seq <= b` that I should hold". The first range normally starts at 0; its end
//! is the **contiguous cursor** exchanged in hellos and acks. Later ranges ("islands") arise when
//! batches arrive out of order or a priority lane delivers fresh events ahead of a backlog; they
//! merge into the first range as the gaps fill. Dedup is a membership test: an event whose seq is
//! covered is already held.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use topology::NodeId;

/// Most islands kept per origin; past it the highest ones are forgotten (they are re-sent later,
/// and re-applying a held event is a no-op), so a hostile or buggy peer cannot grow this unboundedly.
pub const ISLANDS_MAX: usize = 64;

/// Disjoint, non-adjacent, sorted ranges `(start, end]` of seqs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRanges {
    ranges: Vec<(u64, u64)>,
}

impl SeqRanges {
    /// Ranges holding everything from 1 up to `cursor`.
    pub fn up_to(cursor: u64) -> SeqRanges {
        let mut r = SeqRanges::default();
        r.insert(0, cursor);
        r
    }

    /// The contiguous cursor: the highest `c` such that all of `(0, c]` is held.
    pub fn contiguous(&self) -> u64 {
        match self.ranges.first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// The highest seq covered anywhere.
    pub fn max(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }

    pub fn contains(&self, seq: u64) -> bool {
        // Ranges are few (usually one); a linear scan beats a search.
        self.ranges.iter().any(|&(a, b)| a < seq && seq <= b)
    }

    /// True if all of `(start, end]` is held.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.ranges.iter().any(|&(a, b)| a <= start && end <= b)
    }

    /// True if any seq strictly between `a` and `b` is held.
    pub fn holds_any_between(&self, a: u64, b: u64) -> bool {
        b > a + 1 && self.ranges.iter().any(|&(x, y)| x + 1 < b && y > a)
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Adds `(start, end]`, merging with overlapping or touching ranges. Returns true if anything
    /// new was covered.
    pub fn insert(&mut self, start: u64, end: u64) -> bool {
        if start >= end || self.covers(start, end) {
            return false;
        }
        let (mut s, mut e) = (start, end);
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.ranges {
            if b < s {
                out.push((a, b));
            } else if e < a {
                if !placed {
                    out.push((s, e));
                    placed = true;
                }
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        if !placed {
            out.push((s, e));
        }
        out.truncate(ISLANDS_MAX + 1);
        self.ranges = out;
        true
    }
}

/// A node's holdings: per origin, the seq ranges it holds completely within its filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors {
    origins: BTreeMap<NodeId, SeqRanges>,
}

impl Cursors {
    pub fn get(&self, origin: NodeId) -> Option<&SeqRanges> {
        self.origins.get(&origin)
    }

    /// The contiguous cursor for `origin` (0 when nothing is held).
    pub fn contiguous(&self, origin: NodeId) -> u64 {
        self.origins.get(&origin).map_or(0, SeqRanges::contiguous)
    }

    pub fn holds_seq(&self, origin: NodeId, seq: u64) -> bool {
        self.origins.get(&origin).is_some_and(|r| r.contains(seq))
    }

    pub fn insert(&mut self, origin: NodeId, start: u64, end: u64) -> bool {
        self.origins.entry(origin).or_default().insert(start, end)
    }

    pub fn set(&mut self, origin: NodeId, ranges: SeqRanges) {
        self.origins.insert(origin, ranges);
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &SeqRanges)> {
        self.origins.iter().map(|(k, v)| (*k, v))
    }

    /// Contiguous cursors of the origins selected by `keep`, as exchanged on the wire.
    pub fn contiguous_vector(&self, mut keep: impl FnMut(NodeId) -> bool) -> Vec<(NodeId, u64)> {
        self.origins
            .iter()
            .filter(|(o, r)| keep(**o) && r.contiguous() > 0)
            .map(|(o, r)| (*o, r.contiguous()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn islands_merge_as_gaps_fill() {
        let mut r = SeqRanges::default();
        assert!(r.insert(5, 7));
        assert_eq!(r.contiguous(), 0);
        assert!(r.insert(0, 3));
        assert_eq!(r.contiguous(), 3);
        assert!(r.contains(6) && !r.contains(4) && !r.contains(5) && r.contains(7));
        assert!(r.insert(3, 5));
        assert_eq!(r.ranges(), &[(0, 7)]);
        assert!(!r.insert(2, 6), "already covered");
    }

    proptest! {
        /// Inserting any ranges in any order covers exactly their union.
        #[test]
        fn ranges_cover_exactly_the_union(ops in proptest::collection::vec((0u64..60, 1u64..8), 0..30)) {
            let mut r = SeqRanges::default();
            let mut model = std::collections::BTreeSet::new();
            for (s, len) in ops {
                r.insert(s, s + len);
                model.extend(s + 1..=s + len);
            }
            for seq in 0..80 {
                prop_assert_eq!(r.contains(seq), model.contains(&seq), "seq {}", seq);
            }
            let expect_cursor = (1..).take_while(|s| model.contains(s)).last().unwrap_or(0);
            for a in 0..70u64 {
                for b in a..72u64 {
                    let any = (a + 1..b).any(|s| model.contains(&s));
                    prop_assert_eq!(r.holds_any_between(a, b), any, "between {} and {}", a, b);
                }
            }
            prop_assert_eq!(r.contiguous(), expect_cursor);
            for w in r.ranges().windows(2) {
                prop_assert!(w[0].1 < w[1].0, "ranges disjoint and non-adjacent: {:?}", r.ranges());
            }
        }
    }
}
