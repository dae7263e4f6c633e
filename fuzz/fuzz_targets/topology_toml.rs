//! Topology files (`topology::Topology::from_toml_str`) on arbitrary text: a clear error, never a
//! panic. A topology that parses must write back to TOML that parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use topology::Topology;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(topo) = Topology::from_toml_str(text) else { return };
    let again = Topology::from_toml_str(&topo.to_toml_string()).expect("a written topology parses");
    assert_eq!(again.len(), topo.len());
    assert_eq!(again.root(), topo.root());
    let root = topo.root();
    assert_eq!(topo.subtree(root).count(), topo.len());
    let _ = topo.count_by_tier();
    for n in topo.nodes() {
        let _ = topo.children(n.id).count();
    }
});
