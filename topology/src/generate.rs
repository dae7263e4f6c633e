//! Topology generators: a small regular tree for tests, and the full Hebei province with its real
//! cities and county-level units and 17,183 school canteens spread realistically across them.
//!
//! The administrative data is embedded from `data/*.csv` at compile time. Generation is
//! deterministic for a seed: only ordered collections are iterated, the random draws come from
//! `ChaCha8Rng`, and the floating-point math uses only `+ - * /` and `floor` (no `exp`/`ln` from
//! the platform's libm), so the same seed gives the same file on every platform.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::file::{NodeEntry, Topology, TopologyError};
use crate::id::{NodeId, SCHOOL_NUMBER_MAX};

/// Hebei's province code.
pub const HEBEI_CODE: u32 = 13;
/// Hebei's name.
pub const HEBEI_NAME: &str = "河北省";
/// School canteens in the whole province, zones included.
pub const HEBEI_SCHOOLS: u32 = 17_183;
/// Fewest schools a county-level unit (kind `unit`) gets from [`generate_hebei`].
pub const UNIT_SCHOOLS_MIN: u32 = 20;
/// Most schools a county-level unit (kind `unit`) gets from [`generate_hebei`].
pub const UNIT_SCHOOLS_MAX: u32 = 300;
/// Fewest schools a development zone (kind `zone`) gets when zones are included.
pub const ZONE_SCHOOLS_MIN: u32 = 2;
/// Most schools a development zone (kind `zone`) gets when zones are included.
pub const ZONE_SCHOOLS_MAX: u32 = 8;

/// Hengshui, the city with the smallest counties.
const HENGSHUI: u32 = 1311;
/// Schools per county-level unit in Hengshui (exact, so the city total is 11 × 84 = 924).
const HENGSHUI_MEAN: u32 = 84;
/// Spread of the per-city factor on the mean county size (log scale).
const CITY_SIGMA: f64 = 0.15;
/// Spread of county sizes inside a city (log scale).
const COUNTY_SIGMA: f64 = 0.5;

const CITIES_CSV: &str = include_str!("../data/hebei-cities.csv");
const UNITS_CSV: &str = include_str!("../data/hebei-county-units.csv");

/// Why a topology could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("`{field}` must be at least 1")]
    ZeroCount { field: &'static str },
    #[error("asked for {asked} cities but Hebei has only {available}")]
    TooManyCities { asked: u32, available: usize },
    #[error("asked for {asked} county-level units per city but {city} {name} has only {available}")]
    NotEnoughCounties { city: NodeId, name: String, asked: u32, available: usize },
    #[error("asked for {asked} schools per county; school numbers stop at {SCHOOL_NUMBER_MAX}")]
    TooManySchools { asked: u32 },
    #[error("base port 0 would mean \"any port\"; choose a fixed base port such as 20000")]
    BasePortZero,
    #[error("{}", port_overflow_message(*nodes, *base_port))]
    PortOverflow { nodes: usize, base_port: u16 },
    #[error("cannot spread {total} schools over {units} units of {what} with {min}..={max} each")]
    Infeasible { what: String, total: u64, units: usize, min: u64, max: u64 },
    #[error("the generated topology is invalid (a bug in the generator): {0}")]
    Topology(#[from] TopologyError),
}

fn port_overflow_message(nodes: usize, base_port: u16) -> String {
    let fits = (65_536 - usize::from(base_port)) / 2;
    let mut msg = format!(
        "{nodes} nodes need {} ports (quic and admin each) from base port {base_port}, past 65535; \
         base port {base_port} fits at most {fits} nodes",
        nodes.saturating_mul(2)
    );
    match nodes.checked_mul(2).and_then(|p| 65_536usize.checked_sub(p)).filter(|&b| b >= 1) {
        Some(base) => msg.push_str(&format!(", and {nodes} nodes fit with a base port of at most {base}")),
        None => msg.push_str(&format!(", and no base port fits {nodes} nodes (at most 32767 fit, from base port 2)")),
    }
    msg
}

/// How generated nodes get their addresses: node `i` in depth-first order listens for QUIC on
/// `host:(base_port + 2i)` and for admin HTTP on `host:(base_port + 2i + 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrPlan {
    pub host: IpAddr,
    pub base_port: u16,
}

impl Default for AddrPlan {
    /// `127.0.0.1`, ports from 20000.
    fn default() -> Self {
        AddrPlan { host: IpAddr::V4(Ipv4Addr::LOCALHOST), base_port: 20_000 }
    }
}

impl AddrPlan {
    /// Checks that `nodes` nodes get ports no higher than 65535 (and that the base port is not 0).
    pub fn check(&self, nodes: usize) -> Result<(), GenerateError> {
        if self.base_port == 0 {
            return Err(GenerateError::BasePortZero);
        }
        if nodes > 0 && self.addrs(nodes - 1).is_none() {
            return Err(GenerateError::PortOverflow { nodes, base_port: self.base_port });
        }
        Ok(())
    }

    /// The `(quic, admin)` addresses of node `index`, or `None` if a port would pass 65535.
    pub fn addrs(&self, index: usize) -> Option<(SocketAddr, SocketAddr)> {
        let quic = index.checked_mul(2)?.checked_add(usize::from(self.base_port))?;
        let quic = u16::try_from(quic).ok()?;
        let admin = quic.checked_add(1)?;
        Some((SocketAddr::new(self.host, quic), SocketAddr::new(self.host, admin)))
    }
}

/// A small regular tree: the first `cities` Hebei cities, the first `counties_per_city` county-level
/// units (kind `unit`) of each, and `schools_per_county` schools under each county.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallSpec {
    pub cities: u32,
    pub counties_per_city: u32,
    pub schools_per_county: u32,
}

impl SmallSpec {
    /// Total node count: `1 + c + c·k + c·k·s`.
    pub fn node_count(&self) -> u64 {
        let c = u64::from(self.cities);
        let k = c * u64::from(self.counties_per_city);
        1 + c + k + k * u64::from(self.schools_per_county)
    }
}

/// Builds the tree described by `spec`, with real names for the province, cities and counties and
/// `<county name>第N学校食堂` for schools.
pub fn generate_small(spec: &SmallSpec, plan: &AddrPlan) -> Result<Topology, GenerateError> {
    for (field, n) in [
        ("cities", spec.cities),
        ("counties_per_city", spec.counties_per_city),
        ("schools_per_county", spec.schools_per_county),
    ] {
        if n == 0 {
            return Err(GenerateError::ZeroCount { field });
        }
    }
    if spec.schools_per_county > SCHOOL_NUMBER_MAX {
        return Err(GenerateError::TooManySchools { asked: spec.schools_per_county });
    }
    let data = hebei();
    if spec.cities as usize > data.len() {
        return Err(GenerateError::TooManyCities { asked: spec.cities, available: data.len() });
    }
    let cities = &data[..spec.cities as usize];
    for city in cities {
        let available = city.units.iter().filter(|u| !u.zone).count();
        if spec.counties_per_city as usize > available {
            return Err(GenerateError::NotEnoughCounties {
                city: city.id,
                name: city.name.to_string(),
                asked: spec.counties_per_city,
                available,
            });
        }
    }
    // Checked before building so a huge spec fails fast instead of allocating.
    plan.check(usize::try_from(spec.node_count()).unwrap_or(usize::MAX))?;

    let mut named = vec![(province_id(), HEBEI_NAME.to_string())];
    for city in cities {
        named.push((city.id, city.name.to_string()));
        for unit in city.units.iter().filter(|u| !u.zone).take(spec.counties_per_city as usize) {
            push_county(&mut named, unit, spec.schools_per_county);
        }
    }
    assign_addresses(named, plan)
}

/// Builds the whole province: the 11 cities, the 167 county-level units of kind `unit` (plus the
/// 23 development zones of kind `zone` if `include_zones`) and exactly [`HEBEI_SCHOOLS`] schools.
///
/// Units get between [`UNIT_SCHOOLS_MIN`] and [`UNIT_SCHOOLS_MAX`] schools (mean ≈ 103), spread
/// lognormally inside each city around a per-city mean that varies a little by seed; Hengshui's
/// units average exactly 84. Zones get [`ZONE_SCHOOLS_MIN`]..=[`ZONE_SCHOOLS_MAX`] schools each,
/// taken out of the other cities' share. For a given seed the units' relative sizes do not depend
/// on `include_zones`.
pub fn generate_hebei(seed: u64, include_zones: bool, plan: &AddrPlan) -> Result<Topology, GenerateError> {
    let data = hebei();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // All draws happen in one fixed order, zones last, so `include_zones` changes only the totals.
    let city_factor: Vec<f64> = data.iter().map(|_| det_exp(CITY_SIGMA * std_normal(&mut rng))).collect();
    let unit_weight: Vec<Vec<f64>> = data
        .iter()
        .map(|city| {
            city.units.iter().filter(|u| !u.zone).map(|_| det_exp(COUNTY_SIGMA * std_normal(&mut rng))).collect()
        })
        .collect();
    let mut zone_schools: BTreeMap<NodeId, u32> = BTreeMap::new();
    if include_zones {
        for unit in data.iter().flat_map(|c| &c.units).filter(|u| u.zone) {
            zone_schools.insert(unit.id, rng.random_range(ZONE_SCHOOLS_MIN..=ZONE_SCHOOLS_MAX));
        }
    }

    // City totals: Hengshui fixed, the other cities share the rest in proportion to their unit
    // count times their factor.
    let zone_total: u32 = zone_schools.values().sum();
    let mut remaining = u64::from(HEBEI_SCHOOLS - zone_total);
    let mut city_total = vec![0u64; data.len()];
    let (mut others, mut weights, mut bounds) = (Vec::new(), Vec::new(), Vec::new());
    for (i, city) in data.iter().enumerate() {
        let n = unit_weight[i].len() as u64;
        if city.code == HENGSHUI {
            city_total[i] = n * u64::from(HENGSHUI_MEAN);
            remaining = remaining.saturating_sub(city_total[i]);
        } else {
            others.push(i);
            weights.push(n as f64 * city_factor[i]);
            bounds.push((n * u64::from(UNIT_SCHOOLS_MIN), n * u64::from(UNIT_SCHOOLS_MAX)));
        }
    }
    let shares = apportion(remaining, &weights, &bounds).ok_or_else(|| GenerateError::Infeasible {
        what: "the cities other than Hengshui".to_string(),
        total: remaining,
        units: others.len(),
        min: bounds.iter().map(|b| b.0).min().unwrap_or(0),
        max: bounds.iter().map(|b| b.1).max().unwrap_or(0),
    })?;
    for (&i, share) in others.iter().zip(shares) {
        city_total[i] = share;
    }

    let mut named = vec![(province_id(), HEBEI_NAME.to_string())];
    for (i, city) in data.iter().enumerate() {
        let n = unit_weight[i].len();
        let unit_bounds = vec![(u64::from(UNIT_SCHOOLS_MIN), u64::from(UNIT_SCHOOLS_MAX)); n];
        let counts =
            apportion(city_total[i], &unit_weight[i], &unit_bounds).ok_or_else(|| GenerateError::Infeasible {
                what: format!("{} {}", city.id, city.name),
                total: city_total[i],
                units: n,
                min: u64::from(UNIT_SCHOOLS_MIN),
                max: u64::from(UNIT_SCHOOLS_MAX),
            })?;
        named.push((city.id, city.name.to_string()));
        let mut counts = counts.into_iter();
        for unit in &city.units {
            let schools = match zone_schools.get(&unit.id) {
                Some(&z) => z,
                None if unit.zone => continue,
                // The counts cover exactly the non-zone units, in order; each is at most 300.
                None => counts.next().map_or(0, |c| c as u32),
            };
            push_county(&mut named, unit, schools);
        }
    }
    assign_addresses(named, plan)
}

fn province_id() -> NodeId {
    NodeId::province(HEBEI_CODE).expect("13 is a valid province code")
}

fn push_county(named: &mut Vec<(NodeId, String)>, unit: &Unit, schools: u32) {
    named.push((unit.id, unit.name.to_string()));
    for n in 1..=schools {
        let school = NodeId::school(unit.id, n).expect("school numbers are checked against SCHOOL_NUMBER_MAX");
        named.push((school, format!("{}第{n}学校食堂", unit.name)));
    }
}

/// Sorts the nodes depth-first, gives node `i` its addresses from `plan`, and validates the result.
fn assign_addresses(mut named: Vec<(NodeId, String)>, plan: &AddrPlan) -> Result<Topology, GenerateError> {
    named.sort_by_key(|(id, _)| *id);
    plan.check(named.len())?;
    let mut entries = Vec::with_capacity(named.len());
    for (i, (id, name)) in named.into_iter().enumerate() {
        let (quic, admin) =
            plan.addrs(i).ok_or(GenerateError::PortOverflow { nodes: i + 1, base_port: plan.base_port })?;
        entries.push(NodeEntry { id, name, quic, admin });
    }
    Ok(Topology::from_entries(entries)?)
}

/// Splits `total` into integers `c[i]` within `bounds[i]`, roughly proportional to `weights[i]`
/// (positive): the largest scale `s` with `Σ clamp(floor(s·w[i]))` ≤ `total` is found by
/// bisection, then the remainder goes one by one to the largest fractional parts.
/// `None` if the bounds cannot add up to `total`.
fn apportion(total: u64, weights: &[f64], bounds: &[(u64, u64)]) -> Option<Vec<u64>> {
    let lo_sum: u64 = bounds.iter().map(|b| b.0).sum();
    let hi_sum: u64 = bounds.iter().map(|b| b.1).sum();
    if weights.len() != bounds.len() || total < lo_sum || total > hi_sum {
        return None;
    }
    let at = |s: f64| -> Vec<u64> {
        weights.iter().zip(bounds).map(|(w, &(lo, hi))| ((s * w).floor() as u64).clamp(lo, hi)).collect()
    };
    let sum = |c: &[u64]| c.iter().sum::<u64>();
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while sum(&at(hi)) < total && hi < 1e300 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = lo + (hi - lo) / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        if sum(&at(mid)) <= total {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut counts = at(lo);
    let mut missing = total - sum(&counts);
    let mut order: Vec<usize> = (0..weights.len()).collect();
    let frac = |i: usize| {
        let x = lo * weights[i];
        x - x.floor()
    };
    order.sort_by(|&a, &b| frac(b).total_cmp(&frac(a)).then(a.cmp(&b)));
    while missing > 0 {
        let mut progressed = false;
        for &i in &order {
            if missing > 0 && counts[i] < bounds[i].1 {
                counts[i] += 1;
                missing -= 1;
                progressed = true;
            }
        }
        if !progressed {
            return None;
        }
    }
    Some(counts)
}

/// A standard normal draw, approximated by the sum of 12 uniforms minus 6 (Irwin–Hall): exact
/// arithmetic everywhere, tails cut at ±6.
fn std_normal(rng: &mut ChaCha8Rng) -> f64 {
    (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0
}

/// `e^x` for moderate `x` using only `+ * /`, so it is bit-identical on every platform:
/// a Taylor series on `x / 2^16`, squared 16 times (relative error ~1e-11).
fn det_exp(x: f64) -> f64 {
    let y = x / 65_536.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for i in 1..=8 {
        term *= y / f64::from(i);
        sum += term;
    }
    for _ in 0..16 {
        sum *= sum;
    }
    sum
}

/// A city from the embedded data, with its county-level units in code order.
#[derive(Debug)]
struct City {
    id: NodeId,
    code: u32,
    name: &'static str,
    units: Vec<Unit>,
}

/// A county-level unit: `zone` for development zones and the like (kind `zone` in the data).
#[derive(Debug)]
struct Unit {
    id: NodeId,
    name: &'static str,
    zone: bool,
}

/// The embedded Hebei data, parsed. The data is a compile-time constant checked by a unit test.
fn hebei() -> Vec<City> {
    parse_hebei(CITIES_CSV, UNITS_CSV).expect("embedded Hebei data is valid (see data/*.csv)")
}

/// Data rows of a header-first CSV without quoting: `(line number, fields)`; blank lines skipped.
fn csv_rows<'a>(text: &'a str, header: &str) -> Result<Vec<(usize, Vec<&'a str>)>, String> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == header => {}
        other => return Err(format!("expected header `{header}`, found {other:?}")),
    }
    let columns = header.split(',').count();
    lines
        .map(|(i, l)| {
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            if fields.len() == columns {
                Ok((i + 1, fields))
            } else {
                Err(format!("line {}: expected {columns} fields, found {}: {l:?}", i + 1, fields.len()))
            }
        })
        .collect()
}

fn parse_hebei(cities_csv: &'static str, units_csv: &'static str) -> Result<Vec<City>, String> {
    let mut cities: BTreeMap<NodeId, City> = BTreeMap::new();
    for (line, f) in csv_rows(cities_csv, "code,name")? {
        let code: u32 = f[0].parse().map_err(|e| format!("cities line {line}: code `{}`: {e}", f[0]))?;
        let id = NodeId::city(code).map_err(|e| format!("cities line {line}: {e}"))?;
        if id.parent() != Some(province_id()) || f[1].is_empty() {
            return Err(format!("cities line {line}: {id} is not a named city of province {HEBEI_CODE}"));
        }
        let city = City { id, code, name: f[1], units: Vec::new() };
        if cities.insert(id, city).is_some() {
            return Err(format!("cities line {line}: city {id} listed twice"));
        }
    }
    for (line, f) in csv_rows(units_csv, "code,name,city_code,kind")? {
        let code: u32 = f[0].parse().map_err(|e| format!("units line {line}: code `{}`: {e}", f[0]))?;
        let id = NodeId::county(code).map_err(|e| format!("units line {line}: {e}"))?;
        let city_code: u32 = f[2].parse().map_err(|e| format!("units line {line}: city_code `{}`: {e}", f[2]))?;
        let city_id = NodeId::city(city_code).map_err(|e| format!("units line {line}: {e}"))?;
        if id.parent() != Some(city_id) {
            return Err(format!("units line {line}: {id} is not under city {city_id}"));
        }
        let zone = match f[3] {
            "unit" => false,
            "zone" => true,
            other => {
                return Err(format!("units line {line}: kind `{other}` is neither `unit` nor `zone`"));
            }
        };
        if f[1].is_empty() {
            return Err(format!("units line {line}: {id} has no name"));
        }
        let city = cities.get_mut(&city_id).ok_or_else(|| format!("units line {line}: unknown city {city_id}"))?;
        if city.units.iter().any(|u| u.id == id) {
            return Err(format!("units line {line}: unit {id} listed twice"));
        }
        city.units.push(Unit { id, name: f[1], zone });
    }
    let mut cities: Vec<City> = cities.into_values().collect();
    for city in &mut cities {
        city.units.sort_by_key(|u| u.id);
    }
    Ok(cities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Tier;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    /// School counts of each county-level node, in order.
    fn schools_per_county(t: &Topology) -> Vec<(NodeId, usize)> {
        t.nodes().filter(|e| e.id.tier() == Tier::County).map(|e| (e.id, t.children(e.id).count())).collect()
    }

    #[test]
    fn embedded_data_parses() {
        let data = hebei();
        assert_eq!(data.len(), 11);
        assert_eq!((data[0].code, data[0].name), (1301, "石家庄市"));
        assert_eq!((data[10].code, data[10].name), (1311, "衡水市"));
        let units = data.iter().flat_map(|c| &c.units).filter(|u| !u.zone).count();
        let zones = data.iter().flat_map(|c| &c.units).filter(|u| u.zone).count();
        assert_eq!((units, zones), (167, 23));
        assert_eq!(data[10].units.iter().filter(|u| !u.zone).count(), 11);
        assert_eq!((data[0].units[0].id, data[0].units[0].name), (id("130102"), "长安区"));
        for city in &data {
            assert!(city.units.windows(2).all(|w| w[0].id < w[1].id));
            assert!(city.units.iter().all(|u| u.id.parent() == Some(city.id) && !u.name.is_empty()));
        }
    }

    #[test]
    fn bad_embedded_data_is_reported() {
        assert!(
            parse_hebei("code,name\n1301,石家庄市\n", "code,name,city_code,kind\n130102,长安区,1302,unit\n").is_err()
        );
        assert!(
            parse_hebei("code,name\n1301,石家庄市\n", "code,name,city_code,kind\n130102,长安区,1301,other\n").is_err()
        );
        assert!(parse_hebei("code,name\n1401,太原市\n", "code,name,city_code,kind\n").is_err());
        assert!(parse_hebei("name,code\n", "code,name,city_code,kind\n").is_err());
        assert!(parse_hebei("code,name\n1301\n", "code,name,city_code,kind\n").is_err());
        let ok =
            parse_hebei("code,name\r\n1301,石家庄市\r\n", "code,name,city_code,kind\r\n130102,长安区,1301,unit\r\n")
                .unwrap();
        assert_eq!(ok[0].units[0].name, "长安区");
    }

    #[test]
    fn small_spec_counts_and_names() {
        let spec = SmallSpec { cities: 2, counties_per_city: 2, schools_per_county: 4 };
        let t = generate_small(&spec, &AddrPlan::default()).unwrap();
        assert_eq!(t.len(), 23);
        assert_eq!(spec.node_count(), 23);
        assert_eq!(t.count_by_tier(), [1, 2, 4, 16]);
        for e in t.nodes() {
            if let Some(p) = e.id.parent() {
                assert!(t.contains(p), "{} has no parent", e.id);
            }
        }
        assert_eq!(t.get(id("13")).unwrap().name, "河北省");
        assert_eq!(t.get(id("1302")).unwrap().name, "唐山市");
        assert_eq!(t.get(id("130102-S0001")).unwrap().name, "长安区第1学校食堂");
        assert_eq!(t.get(id("130104-S0004")).unwrap().name, "桥西区第4学校食堂");
        let cities: Vec<String> = t.children(id("13")).map(|e| e.id.to_string()).collect();
        assert_eq!(cities, ["1301", "1302"]);
        let counties: Vec<String> = t.children(id("1302")).map(|e| e.id.to_string()).collect();
        assert_eq!(counties, ["130202", "130203"]);
        // Addresses follow depth-first order.
        let nodes: Vec<&NodeEntry> = t.nodes().collect();
        for (i, e) in nodes.iter().enumerate() {
            assert_eq!(e.quic, SocketAddr::new([127, 0, 0, 1].into(), 20_000 + 2 * i as u16));
            assert_eq!(e.admin.port(), e.quic.port() + 1);
        }
        assert_eq!(Topology::from_toml_str(&t.to_toml_string()).unwrap(), t);
    }

    #[test]
    fn small_spec_errors() {
        let plan = AddrPlan::default();
        let e = |c, k, s| {
            generate_small(&SmallSpec { cities: c, counties_per_city: k, schools_per_county: s }, &plan)
                .unwrap_err()
                .to_string()
        };
        assert!(e(12, 1, 1).contains("12 cities") && e(12, 1, 1).contains("11"));
        let m = e(3, 8, 1);
        assert!(m.contains("1303") && m.contains("秦皇岛市") && m.contains("only 7"), "{m}");
        assert!(e(0, 1, 1).contains("`cities`"));
        assert!(e(1, 0, 1).contains("`counties_per_city`"));
        assert!(e(1, 1, 0).contains("`schools_per_county`"));
        assert!(e(1, 1, 10_000).contains("9999"));
        assert!(e(11, 7, 9_999).contains("past 65535"));
        let zero = AddrPlan { base_port: 0, ..plan };
        let spec = SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
        assert!(matches!(generate_small(&spec, &zero), Err(GenerateError::BasePortZero)));
    }

    #[test]
    fn port_overflow_says_what_fits() {
        let spec = SmallSpec { cities: 2, counties_per_city: 2, schools_per_county: 4 };
        // 23 nodes need 46 ports: base 65490 is the last that fits.
        let ok = AddrPlan { base_port: 65_490, ..AddrPlan::default() };
        let t = generate_small(&spec, &ok).unwrap();
        assert_eq!(t.nodes().last().unwrap().admin.port(), 65_535);
        let over = AddrPlan { base_port: 65_491, ..AddrPlan::default() };
        let m = generate_small(&spec, &over).unwrap_err().to_string();
        assert!(
            m.contains("23 nodes")
                && m.contains("65491")
                && m.contains("at most 22 nodes")
                && m.contains("at most 65490"),
            "{m}"
        );
        let m = AddrPlan::default().check(40_000).unwrap_err().to_string();
        assert!(m.contains("40000 nodes") && m.contains("no base port"), "{m}");
        assert!(AddrPlan { base_port: 1, ..AddrPlan::default() }.check(32_767).is_ok());
        let m =
            generate_hebei(1, false, &AddrPlan { base_port: 40_000, ..AddrPlan::default() }).unwrap_err().to_string();
        assert!(m.contains("17362 nodes") && m.contains("at most 30812"), "{m}");
    }

    #[test]
    fn hebei_totals_and_spread() {
        let t = generate_hebei(7, false, &AddrPlan::default()).unwrap();
        assert_eq!(t.count_by_tier(), [1, 11, 167, 17_183]);
        assert_eq!(t.len(), 1 + 11 + 167 + 17_183);
        let counts = schools_per_county(&t);
        for &(county, n) in &counts {
            assert!((20..=300).contains(&n), "{county} has {n} schools");
        }
        let hengshui: Vec<usize> = counts.iter().filter(|(c, _)| c.code() / 100 == 1311).map(|&(_, n)| n).collect();
        assert_eq!(hengshui.len(), 11);
        let mean = hengshui.iter().sum::<usize>() / hengshui.len();
        assert!((74..=94).contains(&mean), "Hengshui mean {mean}");
        // Lognormal-ish: a real spread, not a flat 103 everywhere.
        let (min, max) = (counts.iter().map(|c| c.1).min().unwrap(), counts.iter().map(|c| c.1).max().unwrap());
        assert!(min < 60 && max > 180, "spread {min}..{max}");
        assert_eq!(t.get(id("130102-S0001")).unwrap().name, "长安区第1学校食堂");
        let last = t.nodes().last().unwrap();
        assert_eq!(last.admin.port() as usize, 20_000 + 2 * t.len() - 1);
    }

    #[test]
    fn hebei_is_deterministic_per_seed() {
        let plan = AddrPlan::default();
        let a = generate_hebei(42, false, &plan).unwrap().to_toml_string();
        let b = generate_hebei(42, false, &plan).unwrap().to_toml_string();
        assert!(a == b, "same seed gave different files");
        let c = generate_hebei(43, false, &plan).unwrap();
        let c_text = c.to_toml_string();
        assert!(a != c_text, "different seeds gave the same file");
        assert_eq!(c.count_by_tier(), [1, 11, 167, 17_183]);
        assert_eq!(Topology::from_toml_str(&c_text).unwrap(), c);
    }

    #[test]
    fn hebei_with_zones() {
        let t = generate_hebei(7, true, &AddrPlan::default()).unwrap();
        assert_eq!(t.count_by_tier(), [1, 11, 167 + 23, 17_183]);
        let data = hebei();
        let zones: Vec<NodeId> = data.iter().flat_map(|c| &c.units).filter(|u| u.zone).map(|u| u.id).collect();
        for (county, n) in schools_per_county(&t) {
            if zones.contains(&county) {
                assert!((2..=8).contains(&n), "zone {county} has {n} schools");
            } else {
                assert!((20..=300).contains(&n), "{county} has {n} schools");
            }
        }
        let hengshui: usize = schools_per_county(&t)
            .iter()
            .filter(|(c, _)| c.code() / 100 == 1311 && !zones.contains(c))
            .map(|c| c.1)
            .sum();
        assert_eq!(hengshui, 11 * 84);
    }

    #[test]
    fn apportion_hits_the_total_within_bounds() {
        let w = [1.0, 2.0, 3.0, 0.5, 10.0];
        let b = [(20, 300); 5];
        for total in [100, 101, 517, 999, 1_500] {
            let c = apportion(total, &w, &b).unwrap();
            assert_eq!(c.iter().sum::<u64>(), total);
            assert!(c.iter().all(|&x| (20..=300).contains(&x)), "{c:?}");
        }
        assert!(apportion(99, &w, &b).is_none());
        assert!(apportion(1_501, &w, &b).is_none());
    }

    #[test]
    fn det_exp_is_accurate() {
        for x in [-3.0f64, -1.0, -0.1, 0.0, 0.5, 1.0, 2.5] {
            let rel = (det_exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 1e-9, "{x}: {rel}");
        }
    }
}
