//! `mingchu bench --year` on what `mingchu sim --export-root` wrote: the province's events of a
//! small simulated day, applied to a real store day after day, every one applied once; a sled
//! store converted to redb, and reopened after its process was killed.

use crate::mingchu;

#[test]
fn a_simulated_day_exported_from_the_root_is_replayed_into_a_real_store_for_each_day() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.events");
    let file = file.to_str().unwrap();
    let sim =
        format!("sim --cities 1 --counties 2 --schools 3 --hours 6 --intensity 20 --no-faults --export-root {file}");
    let (ok, out, err) = mingchu(&sim.split_whitespace().collect::<Vec<_>>());
    assert!(ok, "{out}\n{err}");
    let events = protocol::wire::decode_event_log(&std::fs::read(file).unwrap()).unwrap();
    assert!(events.len() > 100, "the root held {} events", events.len());
    assert!(events.iter().any(|e| matches!(e.body, protocol::Body::Registry(_))));
    assert!(events.iter().any(|e| matches!(e.body, protocol::Body::AlertUpdate(_))));

    let (ok, out, err) = mingchu(&["bench", "--year", file, "--year-days", "3"]);
    assert!(ok, "{out}\n{err}");
    // Three days: the first with the registry, two without; the store applied each event once
    // (the bench fails otherwise) and the year is projected.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next().is_some_and(|d| d.parse::<u32>().is_ok()) && w.next().is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(out.contains("a year (365 days) at that growth:"), "{out}");

    // The same days kept in a sled directory, converted to redb with every key, and reopened:
    // once cleanly, once after a process holding it was killed (the flushed write is there).
    let kept = dir.path().join("sled-store");
    let kept_s = kept.to_str().unwrap();
    let (ok, out, err) =
        mingchu(&["bench", "--year", file, "--year-days", "2", "--year-storage", "sled", "--year-dir", kept_s]);
    assert!(ok && out.contains("the root's sled store"), "{out}\n{err}");
    let (ok, out, err) = mingchu(&["node", "migrate-store", "--data", kept_s]);
    assert!(ok && out.contains("从 sled 转为 redb") && out.contains("事件："), "{out}\n{err}");
    assert!(kept.join("store.redb").is_file() && kept.join("sled-before-redb").join("db").is_file());
    let (ok, out, err) = mingchu(&["node", "migrate-store", "--data", kept_s]);
    assert!(!ok && err.contains("不是 sled 数据目录"), "a second conversion is refused: {out}\n{err}");
    let (ok, out, err) = mingchu(&["bench", "--reopen", kept_s, "--reopen-crash"]);
    assert!(ok && out.contains("redb store") && out.contains("the flushed write survived"), "{out}\n{err}");

    // A file that is not one is refused with a clear error, and nothing is measured.
    std::fs::write(dir.path().join("junk"), b"\x05\x00\x00\x00abc").unwrap();
    let (ok, out, err) = mingchu(&["bench", "--year", dir.path().join("junk").to_str().unwrap()]);
    assert!(!ok && err.contains("is not an event file"), "{out}\n{err}");
}
