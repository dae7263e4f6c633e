//! The topology file (TOML): every node's id, name and addresses, validated as one tree on load.
//!
//! ```toml
//! version = 1
//! [[node]]
//! id = "13"
//! name = "河北省"
//! quic = "127.0.0.1:20000"
//! admin = "127.0.0.1:20001"
//! ```
//!
//! A [`Topology`] can only be built through validation, so every value of it has exactly one
//! province, every node's parent present, unique ids, unique addresses and non-empty names.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::id::{IdError, NodeId, Tier};

/// The only file `version` this build reads and writes.
pub const FILE_VERSION: i64 = 1;

/// One node of the topology: who it is and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Where the node sits in the tree (`13`, `1301`, `130102`, `130102-S0042`).
    pub id: NodeId,
    /// Human-readable name, e.g. `长安区` or `长安区第1学校食堂`.
    pub name: String,
    /// The QUIC (UDP) address peers connect to.
    pub quic: SocketAddr,
    /// The admin (HTTP) address.
    pub admin: SocketAddr,
}

/// Which of a node's two addresses an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrField {
    Quic,
    Admin,
}

impl AddrField {
    /// The field's name in the file: `quic` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrField::Quic => "quic",
            AddrField::Admin => "admin",
        }
    }
}

impl fmt::Display for AddrField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a topology file or a set of entries is not a valid topology. Every message names the node
/// (or, before its id is known, the `[[node]]` entry, counted from 1) and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read or write topology file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("topology file is not valid: {0}")]
    Toml(toml::de::Error),
    #[error("topology file has `version = {found}`; this build reads only version {FILE_VERSION}")]
    UnsupportedVersion { found: i64 },
    #[error("[[node]] entry #{index} (counting from 1) has a bad `id`: {error}")]
    BadId { index: usize, id: String, error: IdError },
    #[error("node {id}: `name` is empty")]
    EmptyName { id: NodeId },
    #[error("node {id}: `{field}` = `{value}` is not a socket address like 127.0.0.1:20000 ({reason})")]
    BadAddress { id: NodeId, field: AddrField, value: String, reason: String },
    #[error("node {id} appears twice: [[node]] entries #{first} and #{second} (counting from 1)")]
    DuplicateId { id: NodeId, first: usize, second: usize },
    #[error("node {id} is already in the topology")]
    AlreadyPresent { id: NodeId },
    #[error("the topology has no province node (e.g. `id = \"13\"`); exactly one is required")]
    NoProvince,
    #[error("the topology has two province nodes, {first} and {second}; exactly one is allowed")]
    MultipleProvinces { first: NodeId, second: NodeId },
    #[error("node {id}: parent {parent} is not in the topology")]
    MissingParent { id: NodeId, parent: NodeId },
    #[error("address {addr} is used twice: by node {first} (`{first_field}`) and by node {second} (`{second_field}`)")]
    AddressReused { addr: SocketAddr, first: NodeId, first_field: AddrField, second: NodeId, second_field: AddrField },
}

/// The file as written, before any validation beyond TOML syntax and field names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: i64,
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    name: String,
    quic: String,
    admin: String,
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: i64,
    node: Vec<&'a NodeEntry>,
}

/// A validated tree of nodes, kept in depth-first order (a node right before its subtree).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    root: NodeId,
    nodes: BTreeMap<NodeId, NodeEntry>,
    /// Every address in use, with its owner.
    addrs: BTreeMap<SocketAddr, (NodeId, AddrField)>,
}

/// Accumulates entries in input order, checking what can be checked one entry at a time.
#[derive(Default)]
struct Builder {
    nodes: BTreeMap<NodeId, NodeEntry>,
    /// 1-based input position of each id, for duplicate reports.
    position: BTreeMap<NodeId, usize>,
    addrs: BTreeMap<SocketAddr, (NodeId, AddrField)>,
}

impl Builder {
    fn add(&mut self, index: usize, entry: NodeEntry) -> Result<(), TopologyError> {
        let id = entry.id;
        check_name(&entry)?;
        if let Some(&first) = self.position.get(&id) {
            return Err(TopologyError::DuplicateId { id, first, second: index });
        }
        claim_addrs(&mut self.addrs, &entry)?;
        self.position.insert(id, index);
        self.nodes.insert(id, entry);
        Ok(())
    }

    fn finish(self) -> Result<Topology, TopologyError> {
        let mut provinces = self.nodes.keys().filter(|n| n.tier() == Tier::Province);
        let root = *provinces.next().ok_or(TopologyError::NoProvince)?;
        if let Some(&second) = provinces.next() {
            return Err(TopologyError::MultipleProvinces { first: root, second });
        }
        for &id in self.nodes.keys() {
            if let Some(parent) = id.parent().filter(|p| !self.nodes.contains_key(p)) {
                return Err(TopologyError::MissingParent { id, parent });
            }
        }
        Ok(Topology { root, nodes: self.nodes, addrs: self.addrs })
    }
}

fn check_name(entry: &NodeEntry) -> Result<(), TopologyError> {
    if entry.name.trim().is_empty() {
        return Err(TopologyError::EmptyName { id: entry.id });
    }
    Ok(())
}

/// Records `entry`'s two addresses in `addrs`, or fails (leaving `addrs` untouched) if either is
/// already taken, or if both are the same.
fn claim_addrs(addrs: &mut BTreeMap<SocketAddr, (NodeId, AddrField)>, entry: &NodeEntry) -> Result<(), TopologyError> {
    check_addrs_free(addrs, entry)?;
    addrs.insert(entry.quic, (entry.id, AddrField::Quic));
    addrs.insert(entry.admin, (entry.id, AddrField::Admin));
    Ok(())
}

fn check_addrs_free(addrs: &BTreeMap<SocketAddr, (NodeId, AddrField)>, entry: &NodeEntry) -> Result<(), TopologyError> {
    for (addr, field) in [(entry.quic, AddrField::Quic), (entry.admin, AddrField::Admin)] {
        if let Some(&(first, first_field)) = addrs.get(&addr) {
            return Err(TopologyError::AddressReused {
                addr,
                first,
                first_field,
                second: entry.id,
                second_field: field,
            });
        }
    }
    if entry.quic == entry.admin {
        return Err(TopologyError::AddressReused {
            addr: entry.quic,
            first: entry.id,
            first_field: AddrField::Quic,
            second: entry.id,
            second_field: AddrField::Admin,
        });
    }
    Ok(())
}

fn parse_raw_node(index: usize, raw: RawNode) -> Result<NodeEntry, TopologyError> {
    let id: NodeId = raw.id.parse().map_err(|error| TopologyError::BadId { index, id: raw.id.clone(), error })?;
    let addr = |field: AddrField, value: &str| {
        value.trim().parse::<SocketAddr>().map_err(|e| TopologyError::BadAddress {
            id,
            field,
            value: value.to_string(),
            reason: e.to_string(),
        })
    };
    let quic = addr(AddrField::Quic, &raw.quic)?;
    let admin = addr(AddrField::Admin, &raw.admin)?;
    Ok(NodeEntry { id, name: raw.name, quic, admin })
}

impl Topology {
    /// Parses and validates a topology file's text.
    pub fn from_toml_str(text: &str) -> Result<Topology, TopologyError> {
        let raw: RawFile = toml::from_str(text).map_err(TopologyError::Toml)?;
        if raw.version != FILE_VERSION {
            return Err(TopologyError::UnsupportedVersion { found: raw.version });
        }
        let mut builder = Builder::default();
        for (i, node) in raw.node.into_iter().enumerate() {
            let entry = parse_raw_node(i + 1, node)?;
            builder.add(i + 1, entry)?;
        }
        builder.finish()
    }

    /// Validates a list of entries exactly as a file would be (positions count from 1 in errors).
    pub fn from_entries(entries: Vec<NodeEntry>) -> Result<Topology, TopologyError> {
        let mut builder = Builder::default();
        for (i, entry) in entries.into_iter().enumerate() {
            builder.add(i + 1, entry)?;
        }
        builder.finish()
    }

    /// Reads and validates the topology file at `path`.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TopologyError::Io { path: path.to_path_buf(), source })?;
        Topology::from_toml_str(&text)
    }

    /// The file text: `version = 1`, then one `[[node]]` table per node in depth-first order.
    pub fn to_toml_string(&self) -> String {
        let out = FileOut { version: FILE_VERSION, node: self.nodes.values().collect() };
        // Strings, ids and socket addresses always serialize; a failure would be a bug here.
        toml::to_string(&out).expect("a topology always serializes to TOML")
    }

    /// Writes the file text to `path`, replacing any file there.
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        std::fs::write(path, self.to_toml_string())
            .map_err(|source| TopologyError::Io { path: path.to_path_buf(), source })
    }

    /// The entry for `id`, if it is in the topology.
    pub fn get(&self, id: NodeId) -> Option<&NodeEntry> {
        self.nodes.get(&id)
    }

    /// True if `id` is in the topology.
    pub fn contains(&self, id: NodeId) -> bool {
        self.nodes.contains_key(&id)
    }

    /// Number of nodes, the province included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a valid topology holds at least its province.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The province node's id.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// Every node in depth-first order (the province first, each node right before its subtree).
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// The direct children of `id`, in order; empty if `id` is unknown or a school.
    /// Walks `id`'s whole subtree, so it costs O(subtree size).
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = &NodeEntry> {
        self.subtree(id).filter(move |e| e.id.parent() == Some(id))
    }

    /// `id` itself and everything below it, in depth-first order; empty if `id` is unknown.
    pub fn subtree(&self, id: NodeId) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.range(id..).take_while(move |(k, _)| id.is_ancestor_or_self_of(**k)).map(|(_, e)| e)
    }

    /// How many nodes sit at each tier, indexed by [`Tier::depth`]: `[province, city, county, school]`.
    pub fn count_by_tier(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for id in self.nodes.keys() {
            counts[id.tier().depth()] += 1;
        }
        counts
    }

    /// Adds one node. Its parent must already be present, and its id and addresses must be new;
    /// on error the topology is unchanged.
    pub fn insert(&mut self, entry: NodeEntry) -> Result<(), TopologyError> {
        let id = entry.id;
        check_name(&entry)?;
        if self.nodes.contains_key(&id) {
            return Err(TopologyError::AlreadyPresent { id });
        }
        match id.parent() {
            None => {
                return Err(TopologyError::MultipleProvinces { first: self.root, second: id });
            }
            Some(parent) if !self.nodes.contains_key(&parent) => {
                return Err(TopologyError::MissingParent { id, parent });
            }
            Some(_) => {}
        }
        claim_addrs(&mut self.addrs, &entry)?;
        self.nodes.insert(id, entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        s.parse().unwrap()
    }

    fn entry(i: &str, name: &str, port: u16) -> NodeEntry {
        NodeEntry {
            id: id(i),
            name: name.to_string(),
            quic: format!("127.0.0.1:{port}").parse().unwrap(),
            admin: format!("127.0.0.1:{}", port + 1).parse().unwrap(),
        }
    }

    fn small() -> Vec<NodeEntry> {
        vec![
            entry("13", "河北省", 20000),
            entry("1301", "石家庄市", 20002),
            entry("130102", "长安区", 20004),
            entry("130102-S0001", "长安区第1学校食堂", 20006),
            entry("130102-S0002", "长安区第2学校食堂", 20008),
            entry("130104", "桥西区", 20010),
            entry("1302", "唐山市", 20012),
        ]
    }

    const SMALL_TOML: &str = r#"
version = 1

[[node]]
id = "13"
name = "河北省"
quic = "127.0.0.1:20000"
admin = "127.0.0.1:20001"

[[node]]
id = "1301"
name = "石家庄市"
quic = "127.0.0.1:20002"
admin = "127.0.0.1:20003"

[[node]]
id = "130102"
name = "长安区"
quic = "127.0.0.1:20004"
admin = "127.0.0.1:20005"
"#;

    fn err(text: &str) -> String {
        match Topology::from_toml_str(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_hand_written_file() {
        let t = Topology::from_toml_str(SMALL_TOML).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.root(), id("13"));
        assert_eq!(t.get(id("1301")).unwrap().name, "石家庄市");
        assert_eq!(t.get(id("130102")).unwrap().admin, "127.0.0.1:20005".parse().unwrap());
        assert_eq!(t.count_by_tier(), [1, 1, 1, 0]);
    }

    #[test]
    fn round_trips_through_toml() {
        let t = Topology::from_entries(small()).unwrap();
        let text = t.to_toml_string();
        assert!(text.starts_with("version = 1\n"), "{text}");
        assert!(text.contains("[[node]]\nid = \"130102-S0001\"\nname = \"长安区第1学校食堂\""), "{text}");
        let back = Topology::from_toml_str(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_toml_string(), text);
    }

    #[test]
    fn file_order_does_not_matter() {
        let mut entries = small();
        entries.reverse();
        let t = Topology::from_entries(entries).unwrap();
        assert_eq!(t, Topology::from_entries(small()).unwrap());
        let order: Vec<String> = t.nodes().map(|e| e.id.to_string()).collect();
        assert_eq!(order, ["13", "1301", "130102", "130102-S0001", "130102-S0002", "130104", "1302"]);
    }

    #[test]
    fn save_and_load() {
        let dir = std::env::temp_dir().join(format!("topology-file-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("topology.toml");
        let t = Topology::from_entries(small()).unwrap();
        t.save(&path).unwrap();
        assert_eq!(Topology::load(&path).unwrap(), t);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = Topology::load(&path).unwrap_err().to_string();
        assert!(e.contains("topology.toml"), "{e}");
    }

    fn ids<'a>(it: impl Iterator<Item = &'a NodeEntry>) -> Vec<String> {
        it.map(|e| e.id.to_string()).collect()
    }

    #[test]
    fn subtree_and_children() {
        let t = Topology::from_entries(small()).unwrap();
        assert_eq!(ids(t.subtree(id("1301"))), ["1301", "130102", "130102-S0001", "130102-S0002", "130104"]);
        assert_eq!(ids(t.subtree(id("130102"))), ["130102", "130102-S0001", "130102-S0002"]);
        assert_eq!(ids(t.subtree(id("130102-S0002"))), ["130102-S0002"]);
        assert_eq!(ids(t.subtree(id("1302"))), ["1302"]);
        assert_eq!(ids(t.subtree(id("13"))).len(), 7);
        assert!(ids(t.subtree(id("1303"))).is_empty());
        assert_eq!(ids(t.children(id("13"))), ["1301", "1302"]);
        assert_eq!(ids(t.children(id("1301"))), ["130102", "130104"]);
        assert_eq!(ids(t.children(id("130102"))), ["130102-S0001", "130102-S0002"]);
        assert!(ids(t.children(id("130102-S0001"))).is_empty());
        assert!(ids(t.children(id("1303"))).is_empty());
        assert_eq!(t.count_by_tier(), [1, 2, 2, 2]);
        assert!(t.contains(id("130104")) && !t.contains(id("130105")));
    }

    #[test]
    fn insert_checks_parent_id_and_addresses() {
        let mut t = Topology::from_entries(small()).unwrap();
        let before = t.clone();
        let e = t.insert(entry("130105-S0001", "x", 30000)).unwrap_err().to_string();
        assert_eq!(e, "node 130105-S0001: parent 130105 is not in the topology");
        let e = t.insert(entry("130104", "x", 30000)).unwrap_err().to_string();
        assert!(e.contains("130104") && e.contains("already"), "{e}");
        let e = t.insert(entry("14", "x", 30000)).unwrap_err().to_string();
        assert!(e.contains("13") && e.contains("14"), "{e}");
        let e = t.insert(entry("130104-S0001", "x", 20005)).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:20005") && e.contains("130102") && e.contains("130104-S0001"), "{e}");
        let e = t.insert(entry("130104-S0001", " ", 30000)).unwrap_err().to_string();
        assert!(e.contains("130104-S0001") && e.contains("name"), "{e}");
        assert_eq!(t, before);
        t.insert(entry("130104-S0001", "桥西区第1学校食堂", 30000)).unwrap();
        assert_eq!(t.children(id("130104")).count(), 1);
        // Addresses of inserted nodes are claimed too.
        let e = t.insert(entry("130104-S0002", "y", 30001)).unwrap_err().to_string();
        assert!(e.contains("130104-S0001") && e.contains("130104-S0002"), "{e}");
    }

    fn with_node(extra: &str) -> String {
        format!("{SMALL_TOML}\n[[node]]\n{extra}\n")
    }

    #[test]
    fn toml_syntax_error_has_line_and_column() {
        let e = err("version = 1\n[[node]\nid = \"13\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("column"), "{e}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let e = err(&with_node(
            "id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\"\nadmn = \"127.0.0.1:1\"",
        ));
        assert!(e.contains("admn"), "{e}");
        assert!(e.contains("line"), "{e}");
        let e = err(&format!("versoin = 2\n{SMALL_TOML}"));
        assert!(e.contains("versoin"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = err(&with_node("id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20006\""));
        assert!(e.contains("admin"), "{e}");
    }

    #[test]
    fn unsupported_version() {
        let e = err(&SMALL_TOML.replace("version = 1", "version = 2"));
        assert!(e.contains("version = 2"), "{e}");
    }

    #[test]
    fn bad_id_names_the_entry() {
        let e = err(&with_node(
            "id = \"1302x\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\"",
        ));
        assert!(e.contains("#4"), "{e}");
        assert!(e.contains("`1302x` is not a node id"), "{e}");
    }

    #[test]
    fn duplicate_id() {
        let e = err(&with_node(
            "id = \"1301\"\nname = \"又一个\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\"",
        ));
        assert!(e.contains("node 1301 appears twice") && e.contains("#2") && e.contains("#4"), "{e}");
    }

    #[test]
    fn missing_or_duplicate_province() {
        let e = err("version = 1\n");
        assert!(e.contains("no province"), "{e}");
        let no_root = SMALL_TOML.replacen("id = \"13\"\n", "id = \"1399\"\n", 1);
        let e = err(&no_root);
        assert!(e.contains("no province"), "{e}");
        let e =
            err(&with_node("id = \"14\"\nname = \"山西省\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\""));
        assert!(e.contains("13") && e.contains("14") && e.contains("province"), "{e}");
    }

    #[test]
    fn missing_parent() {
        let e = err(&with_node(
            "id = \"130104-S0001\"\nname = \"桥西区第1学校食堂\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\"",
        ));
        assert_eq!(e, "node 130104-S0001: parent 130104 is not in the topology");
    }

    #[test]
    fn reused_address_names_both_nodes() {
        let e = err(&with_node(
            "id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20003\"\nadmin = \"127.0.0.1:20007\"",
        ));
        assert!(e.contains("127.0.0.1:20003"), "{e}");
        assert!(e.contains("node 1301 (`admin`)") && e.contains("node 1302 (`quic`)"), "{e}");
        let e = err(&with_node(
            "id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20006\"",
        ));
        assert!(e.contains("node 1302 (`quic`)") && e.contains("node 1302 (`admin`)"), "{e}");
    }

    #[test]
    fn unparsable_address_names_node_and_field() {
        let e = err(&with_node(
            "id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1:20006\"\nadmin = \"localhost:20007\"",
        ));
        assert!(e.contains("node 1302") && e.contains("`admin`") && e.contains("localhost:20007"), "{e}");
        let e = err(&with_node("id = \"1302\"\nname = \"唐山市\"\nquic = \"127.0.0.1\"\nadmin = \"127.0.0.1:20007\""));
        assert!(e.contains("node 1302") && e.contains("`quic`"), "{e}");
    }

    #[test]
    fn empty_name() {
        let e = err(&with_node("id = \"1302\"\nname = \"\"\nquic = \"127.0.0.1:20006\"\nadmin = \"127.0.0.1:20007\""));
        assert_eq!(e, "node 1302: `name` is empty");
    }

    #[test]
    fn from_entries_validates_like_the_file() {
        let mut entries = small();
        entries.push(entry("1301", "again", 30000));
        let e = Topology::from_entries(entries).unwrap_err().to_string();
        assert!(e.contains("node 1301 appears twice") && e.contains("#2") && e.contains("#8"), "{e}");
        let e = Topology::from_entries(small()[1..].to_vec()).unwrap_err();
        assert!(matches!(e, TopologyError::NoProvince), "{e}");
        let e = Topology::from_entries(vec![]).unwrap_err();
        assert!(matches!(e, TopologyError::NoProvince), "{e}");
    }

    #[test]
    fn node_entry_rejects_unknown_fields() {
        let e = toml::from_str::<NodeEntry>(
            "id = \"13\"\nname = \"x\"\nquic = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\nport = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("port"), "{e}");
    }
}
