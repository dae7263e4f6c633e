//! The node's config file (`node::config::NodeConfig::parse`, what `NodeConfig::load` checks
//! after reading the file) on arbitrary text: a clear error, never a panic. A config that parses
//! passes its own rules, and the listeners' sections plan without a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use node::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = NodeConfig::parse(text, Path::new("/nonexistent/mingchu/node.toml")) else { return };
    assert!(cfg.keepalive_ms > 0 && cfg.idle_timeout_ms > cfg.keepalive_ms);
    assert!(cfg.health_flush_ms > 0 && cfg.health_refresh_ms >= cfg.health_flush_ms);
    assert!(cfg.health_stale_after_ms > cfg.health_refresh_ms);
    assert!(cfg.topology.is_absolute() && cfg.data_dir.is_absolute() && cfg.cert_dir.is_absolute());
    let _ = cfg.session();
    let _ = cfg.health();
    let dir = Path::new("/nonexistent/mingchu/certs");
    if let Some(c) = &cfg.console {
        let _ = c.plan(dir);
    }
    if let Some(d) = &cfg.devices {
        let _ = d.plan(dir, cfg.node);
    }
    // The TOML written back from a parsed config reads again as the same config.
    if let Ok(again) = toml::to_string(&cfg) {
        let back =
            NodeConfig::parse(&again, Path::new("/nonexistent/mingchu/node.toml")).expect("a written config parses");
        assert_eq!(back, cfg);
    }
});
