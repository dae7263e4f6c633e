//! The tidy test (as rust-analyzer has one): the architecture's direction, checked on the sources.
//!
//! `cli → harness → client → api | console → runtime → seams → protocol → topology`: a module may
//! use what is to its right, never what is to its left; `server` is the only place that composes
//! them. The web console sits beside the admin API: it may use `api` (its domain functions, the
//! principal, the audit log), and `api` may hold the console's session store in its state.
//! Files stay below a named size. No import circle remains among the node's modules except an
//! actor and its child.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// No source file grows past this many lines: split it by concern first.
const FILE_LINES_MAX: usize = 1_600;

/// An actor and its child may know each other (the root spawns links and the listener, which
/// report back to it); no other circle is allowed.
const ALLOWED_CIRCLES: [(&str, &str); 2] = [("runtime::link", "runtime::root"), ("runtime::listener", "runtime::root")];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `node/src/runtime/store/read.rs` → `runtime::store::read`; `…/mod.rs` names its folder.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::…` paths a file names (in `use` lines and inline), cut to known modules.
fn crate_refs(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest: String =
            text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let mut path: Vec<&str> = rest.split("::").filter(|s| !s.is_empty()).collect();
        while !path.is_empty() {
            let m = path.join("::");
            if modules.contains(&m) {
                out.insert(m);
                break;
            }
            path.pop();
        }
    }
    out
}

/// The node crate's modules, each with the modules it names.
fn node_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("node/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        let refs: BTreeSet<String> =
            crate_refs(&text, &modules).into_iter().filter(|r| *r != m && !m.starts_with(&format!("{r}::"))).collect();
        graph.insert(m, refs);
    }
    graph
}

/// Which layer a node module is in; a module may only use its own layer or those below.
fn layer(m: &str) -> u8 {
    match m.split("::").next().unwrap_or_default() {
        "" => 4,
        "server" => 4,
        "api" => 3,
        "console" => 3,
        "runtime" => 2,
        "config" => 2,
        _ => 1, // the seams: transport, storage, clock, tls
    }
}

#[test]
fn node_modules_import_only_downwards() {
    let mut wrong = Vec::new();
    for (m, refs) in node_graph() {
        for r in refs {
            if layer(&r) > layer(&m) {
                wrong.push(format!("{m} → {r}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the direction server → api | console → runtime → seams:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_circle_but_an_actor_and_its_child() {
    let graph = node_graph();
    let mut circles = Vec::new();
    for (a, refs) in &graph {
        for b in refs {
            // Any path back from b to a closes a circle.
            let mut seen = BTreeSet::new();
            let mut stack = vec![b.clone()];
            while let Some(n) = stack.pop() {
                if !seen.insert(n.clone()) {
                    continue;
                }
                if n == *a {
                    let pair = if a < b { (a.as_str(), b.as_str()) } else { (b.as_str(), a.as_str()) };
                    if !ALLOWED_CIRCLES.contains(&pair) {
                        circles.push(format!("{a} ⇄ {b}"));
                    }
                    break;
                }
                stack.extend(graph.get(&n).into_iter().flatten().cloned());
            }
        }
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

/// The crates a package depends on (its `[dependencies]`, not dev-dependencies).
fn dependencies(package: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace().join(package).join("Cargo.toml")).unwrap();
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps
            && let Some((name, _)) = line.split_once(['.', ' ', '='])
            && !name.is_empty()
        {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn crates_depend_only_downwards() {
    // cli → harness → client → node → protocol → topology; the node library ships no CLI,
    // HTTP client, temp folders or benchmarks.
    let order = ["topology", "protocol", "node", "client", "harness", "mingchu"];
    let folders = ["topology", "protocol", "node", "client", "harness", "cli"];
    for (i, folder) in folders.iter().enumerate() {
        let deps = dependencies(folder);
        for above in &order[i + 1..] {
            assert!(!deps.contains(*above), "{folder} depends on {above}, which is above it");
        }
    }
    for banned in ["clap", "ureq", "tempfile"] {
        assert!(!dependencies("node").contains(banned), "the node library depends on {banned}");
    }
    for io in ["tokio", "sled", "redb", "quinn", "ractor", "rustls"] {
        assert!(!dependencies("protocol").contains(io), "protocol (sans-IO) depends on {io}");
    }
}

#[test]
fn only_the_storage_backends_touch_their_databases() {
    let mut files = Vec::new();
    for dir in ["node/src", "harness/src", "cli/src", "simulations/src", "tests/it"] {
        rust_files(&workspace().join(dir), &mut files);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.to_string_lossy().replace('\\', "/");
        for (db, home) in [("sled::", "node/src/storage/sled_store.rs"), ("redb::", "node/src/storage/redb_store.rs")] {
            if name.ends_with("tests/it/tidy.rs") {
                continue;
            }
            assert!(name.ends_with(home) || !text.contains(db), "{} uses {db}: only {home} may", f.display());
        }
    }
}

#[test]
fn protocol_reads_no_clock_and_does_no_io() {
    let mut files = Vec::new();
    rust_files(&workspace().join("protocol/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in ["SystemTime", "Instant::now", "std::fs", "std::net::UdpSocket", "std::net::TcpStream", "tokio"] {
            assert!(!text.contains(banned), "{} uses {banned}: protocol is sans-IO", f.display());
        }
    }
    // The bottom module knows nothing else of the crate.
    let ids = std::fs::read_to_string(workspace().join("protocol/src/ids.rs")).unwrap();
    assert!(!ids.contains("crate::"), "protocol::ids must not import the rest of the crate");
}

#[test]
fn no_file_grows_past_its_bound() {
    let mut files = Vec::new();
    for dir in [
        "topology/src",
        "protocol/src",
        "node/src",
        "client/src",
        "harness/src",
        "cli/src",
        "simulations/src",
        "tests/it",
    ] {
        rust_files(&workspace().join(dir), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > FILE_LINES_MAX).then(|| format!("{} has {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files above {FILE_LINES_MAX} lines:\n{}", long.join("\n"));
}
