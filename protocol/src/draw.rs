//! The province's daily draw of canteens to spot-check (每日抽查): a pure function of the day, a
//! seed, the candidate canteens and the canteens drawn recently, so anyone holding the same inputs
//! draws the same list (an auditor re-runs it). The node keeps the draw and its seed at the
//! province only; nothing here is an event.
//!
//! - The quota is spread over counties in proportion to their registered canteens (largest
//!   remainders), each county capped at the canteens it has that were not drawn within the window;
//!   what a capped county cannot take goes to the others, by the same rule.
//! - Within a county, canteens are ranked by a 64-bit mix of the seed, the day and the canteen;
//!   the lowest ranks are drawn. Without the seed (kept secret at the province) the ranks cannot be
//!   known in advance.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

/// Canteens drawn per school day unless the province set another number.
pub const DRAW_QUOTA_DEFAULT: u32 = 200;
/// A canteen drawn is not drawn again for this many weeks unless the province set another number.
pub const DRAW_WINDOW_WEEKS_DEFAULT: u32 = 4;
/// The largest quota a province may set.
pub const DRAW_QUOTA_MAX: u32 = 5_000;
/// The longest window a province may set (weeks).
pub const DRAW_WINDOW_WEEKS_MAX: u32 = 26;

/// The draw's two settings, kept at the province (a local record, never replicated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrawSettings {
    /// Canteens drawn per school day.
    pub quota: u32,
    /// A canteen drawn is not drawn again within this many weeks (0: no such rule).
    pub window_weeks: u32,
}

impl Default for DrawSettings {
    fn default() -> DrawSettings {
        DrawSettings { quota: DRAW_QUOTA_DEFAULT, window_weeks: DRAW_WINDOW_WEEKS_DEFAULT }
    }
}

impl DrawSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.quota == 0 || self.quota > DRAW_QUOTA_MAX {
            return Err(format!("每日抽查数量应在 1 到 {DRAW_QUOTA_MAX} 之间，现在是 {}", self.quota));
        }
        if self.window_weeks > DRAW_WINDOW_WEEKS_MAX {
            return Err(format!(
                "不重复抽查的周数应在 0 到 {DRAW_WINDOW_WEEKS_MAX} 之间，现在是 {}",
                self.window_weeks
            ));
        }
        Ok(())
    }

    /// The days whose draws keep a canteen out of `day`'s draw: `day - 7 × weeks ..= day - 1` (day
    /// numbers since 1970-01-01), empty when the window is 0.
    pub fn window(&self, day: u64) -> std::ops::Range<u64> {
        day.saturating_sub(7 * u64::from(self.window_weeks))..day
    }
}

/// One canteen of one school: what the draw picks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CanteenRef {
    pub school: NodeId,
    /// The canteen's id in the school's registry (`main`).
    pub canteen: String,
}

impl CanteenRef {
    /// The county the canteen's school belongs to (the school itself if it has none).
    pub fn county(&self) -> NodeId {
        self.school.ancestor_at(Tier::County).unwrap_or(self.school)
    }
}

/// How one county fared in a draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountyShare {
    pub county: NodeId,
    /// Its registered canteens (the weight of its share).
    pub canteens: u32,
    /// Those not drawn within the window (the cap of its share).
    pub available: u32,
    pub drawn: u32,
}

/// A day's draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drawn {
    /// The canteens drawn, by county, school and canteen.
    pub items: Vec<CanteenRef>,
    pub counties: Vec<CountyShare>,
    /// How many short of the quota the draw fell (too few canteens left outside the window).
    pub shortfall: u32,
}

/// Everything a day's draw was made from: an auditor re-runs [`draw`] on it
/// (`mingchu spot rerun --inputs FILE`, no node needed) and compares the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawInputs {
    pub day: String,
    pub seed: u64,
    pub quota: u32,
    pub candidates: Vec<CanteenRef>,
    /// The canteens drawn within the window before `day`.
    pub recent: Vec<CanteenRef>,
}

impl DrawInputs {
    /// The draw these inputs give.
    pub fn rerun(&self) -> Drawn {
        draw(&self.day, self.seed, self.quota, &self.candidates, &self.recent.iter().cloned().collect())
    }
}

/// Draws `quota` canteens for `day` (`2026-12-01`) with `seed` among `candidates` (duplicates are
/// one), none of `recent`. Same arguments, same draw, whatever the order of `candidates`.
pub fn draw(day: &str, seed: u64, quota: u32, candidates: &[CanteenRef], recent: &BTreeSet<CanteenRef>) -> Drawn {
    // Per county: its canteens, and those outside the window with their ranks.
    type Ranked<'c> = Vec<(u64, &'c CanteenRef)>;
    let mut by_county: BTreeMap<NodeId, (u32, Ranked)> = BTreeMap::new();
    let unique: BTreeSet<&CanteenRef> = candidates.iter().collect();
    for c in unique {
        let entry = by_county.entry(c.county()).or_default();
        entry.0 += 1;
        if !recent.contains(c) {
            entry.1.push((rank(seed, day, c), c));
        }
    }
    let shares: Vec<(u64, u64)> =
        by_county.values().map(|(total, avail)| (u64::from(*total), avail.len() as u64)).collect();
    let counts = apportion(u64::from(quota), &shares);
    let mut items = Vec::new();
    let mut counties = Vec::new();
    for ((county, (total, mut avail)), n) in by_county.into_iter().zip(counts) {
        avail.sort();
        let mut picked: Vec<CanteenRef> = avail.iter().take(n as usize).map(|(_, c)| (*c).clone()).collect();
        picked.sort();
        counties.push(CountyShare { county, canteens: total, available: avail.len() as u32, drawn: n as u32 });
        items.extend(picked);
    }
    let shortfall = quota.saturating_sub(items.len() as u32);
    Drawn { items, counties, shortfall }
}

/// Splits `quota` over shares `(weight, cap)` in proportion to their weights (largest remainders,
/// ties to the earlier share), none above its cap; what a capped share cannot take goes to the
/// others by the same rule. The total is `min(quota, Σ cap)`.
pub fn apportion(quota: u64, shares: &[(u64, u64)]) -> Vec<u64> {
    let mut alloc = vec![0u64; shares.len()];
    let mut left = quota.min(shares.iter().map(|(_, cap)| *cap).sum());
    while left > 0 {
        let active: Vec<usize> = (0..shares.len()).filter(|&i| alloc[i] < shares[i].1).collect();
        let weight: u128 = active.iter().map(|&i| u128::from(shares[i].0.max(1))).sum();
        let mut remainders = Vec::with_capacity(active.len());
        let mut given = 0;
        for &i in &active {
            let num = u128::from(left) * u128::from(shares[i].0.max(1));
            let g = ((num / weight) as u64).min(shares[i].1 - alloc[i]);
            alloc[i] += g;
            given += g;
            remainders.push((num % weight, i));
        }
        left -= given;
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in remainders {
            if left == 0 {
                break;
            }
            if alloc[i] < shares[i].1 {
                alloc[i] += 1;
                left -= 1;
            }
        }
    }
    alloc
}

/// Splits `n` items, in order, into contiguous runs over `inspectors` (the first runs one longer
/// when it does not divide): each inspector's canteens stay together by county. No inspectors:
/// nobody is assigned.
pub fn assign(n: usize, inspectors: &[String]) -> Vec<Option<String>> {
    if inspectors.is_empty() {
        return vec![None; n];
    }
    let k = inspectors.len();
    let (base, extra) = (n / k, n % k);
    let mut out = Vec::with_capacity(n);
    for (i, who) in inspectors.iter().enumerate() {
        let len = base + usize::from(i < extra);
        out.extend(std::iter::repeat_n(Some(who.clone()), len));
    }
    out
}

/// A short fingerprint of a candidate list (order and duplicates do not matter): an auditor
/// compares it to know the registry they re-run with is the one the draw used.
pub fn candidates_digest(candidates: &[CanteenRef]) -> String {
    let unique: BTreeSet<&CanteenRef> = candidates.iter().collect();
    let mut h = FNV_OFFSET;
    for c in unique {
        h = fnv(h, c.school.to_string().as_bytes());
        h = fnv(h, b"/");
        h = fnv(h, c.canteen.as_bytes());
        h = fnv(h, b"\n");
    }
    format!("{:016x}", splitmix(h))
}

/// The rank of a canteen in `day`'s draw with `seed`: lower is drawn first.
fn rank(seed: u64, day: &str, c: &CanteenRef) -> u64 {
    let mut h = fnv(FNV_OFFSET, day.as_bytes());
    h = fnv(h, b"|");
    h = fnv(h, c.school.to_string().as_bytes());
    h = fnv(h, b"|");
    h = fnv(h, c.canteen.as_bytes());
    splitmix(splitmix(h ^ seed) ^ seed.rotate_left(32))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: every input bit reaches every output bit.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canteens(county: &str, schools: u32, per_school: u32) -> Vec<CanteenRef> {
        let mut out = Vec::new();
        for s in 1..=schools {
            for c in 0..per_school {
                out.push(CanteenRef { school: format!("{county}-S{s:04}").parse().unwrap(), canteen: format!("c{c}") });
            }
        }
        out
    }

    fn drawn_in(d: &Drawn, county: &str) -> u32 {
        d.counties.iter().find(|c| c.county.to_string() == county).map_or(0, |c| c.drawn)
    }

    #[test]
    fn the_quota_is_spread_by_canteen_count() {
        // 300, 100 and 50 canteens: 200 go 133 / 45 / 22 by largest remainders (133.3, 44.4, 22.2).
        let mut all = canteens("130102", 100, 3);
        all.extend(canteens("130104", 50, 2));
        all.extend(canteens("130203", 50, 1));
        let d = draw("2026-12-01", 7, 200, &all, &BTreeSet::new());
        assert_eq!(d.items.len(), 200);
        assert_eq!(d.shortfall, 0);
        let got: Vec<u32> = ["130102", "130104", "130203"].iter().map(|c| drawn_in(&d, c)).collect();
        assert_eq!(got.iter().sum::<u32>(), 200);
        assert_eq!(got, [133, 45, 22], "{:?}", d.counties);
        assert!(d.items.iter().all(|c| all.contains(c)));
        assert_eq!(d.items.iter().collect::<BTreeSet<_>>().len(), 200, "no canteen twice");
    }

    #[test]
    fn the_same_inputs_give_the_same_draw_and_another_seed_another() {
        let all = canteens("130102", 40, 2);
        let a = draw("2026-12-01", 42, 10, &all, &BTreeSet::new());
        let mut shuffled = all.clone();
        shuffled.reverse();
        shuffled.extend(all.iter().take(5).cloned());
        assert_eq!(a, draw("2026-12-01", 42, 10, &shuffled, &BTreeSet::new()), "order and duplicates do not matter");
        assert_ne!(a.items, draw("2026-12-01", 43, 10, &all, &BTreeSet::new()).items);
        assert_ne!(a.items, draw("2026-12-02", 42, 10, &all, &BTreeSet::new()).items);
        assert_eq!(candidates_digest(&all), candidates_digest(&shuffled));
        assert_ne!(candidates_digest(&all), candidates_digest(&all[1..]));
    }

    #[test]
    fn recent_canteens_are_not_drawn_again_and_a_capped_county_passes_its_share_on() {
        // 6 canteens in one county, 2 in another, 4 a day: 3 + 1, then the other 3 + 1, then none.
        let mut all = canteens("130102", 2, 3);
        all.extend(canteens("130104", 2, 1));
        let mut recent = BTreeSet::new();
        let mut days = Vec::new();
        for day in ["2026-12-01", "2026-12-02", "2026-12-03"] {
            let d = draw(day, 9, 4, &all, &recent);
            assert!(d.items.iter().all(|c| !recent.contains(c)), "{day}: a repeat within the window");
            recent.extend(d.items.iter().cloned());
            days.push(d);
        }
        assert_eq!((drawn_in(&days[0], "130102"), drawn_in(&days[0], "130104")), (3, 1));
        assert_eq!((drawn_in(&days[1], "130102"), drawn_in(&days[1], "130104")), (3, 1));
        assert_eq!(recent.len(), 8, "two days drew every canteen once");
        assert!(days[2].items.is_empty() && days[2].shortfall == 4);
        // One county exhausted: the other takes the whole quota as far as it can.
        let only = draw("2026-12-04", 9, 4, &all, &canteens("130104", 2, 1).into_iter().collect());
        assert_eq!((drawn_in(&only, "130102"), drawn_in(&only, "130104"), only.shortfall), (4, 0, 0));
    }

    #[test]
    fn apportion_respects_caps_and_the_total() {
        let check = |quota, shares: &[(u64, u64)], want: &[u64]| assert_eq!(apportion(quota, shares), want);
        check(4, &[(6, 6), (2, 2)], &[3, 1]);
        check(10, &[(6, 6), (2, 2)], &[6, 2]);
        check(5, &[(1, 1), (1, 1), (1, 1)], &[1, 1, 1]);
        check(2, &[(1, 1), (1, 1), (1, 1)], &[1, 1, 0]);
        check(9, &[(90, 1), (10, 10)], &[1, 8]);
        check(0, &[(5, 5)], &[0]);
        check(3, &[], &[]);
    }

    #[test]
    fn inspectors_get_contiguous_runs() {
        let who = |n: &str| Some(n.to_string());
        let names = ["a".to_string(), "b".to_string()];
        assert_eq!(assign(5, &names), [who("a"), who("a"), who("a"), who("b"), who("b")]);
        assert_eq!(assign(2, &[]), [None, None]);
        assert_eq!(assign(1, &names), [who("a")]);
    }

    #[test]
    fn settings_are_checked_and_the_window_is_the_weeks_before() {
        assert!(DrawSettings::default().validate().is_ok());
        let e = DrawSettings { quota: 0, window_weeks: 4 }.validate().unwrap_err();
        assert!(e.contains("每日抽查数量"), "{e}");
        assert!(DrawSettings { quota: 200, window_weeks: 27 }.validate().is_err());
        assert_eq!(DrawSettings { quota: 1, window_weeks: 2 }.window(100), 86..100);
        assert!(DrawSettings { quota: 1, window_weeks: 0 }.window(100).is_empty());
    }
}
