//! Files with real processes: a snapshot uploaded at a school is viewed at the province (fetched
//! through the tree on demand, checked against its hash, cached on the way); with the county down
//! it comes via the city the school failed over to; with the school itself down a file nobody
//! cached is reported unavailable — never missing — while a cached one is still shown.

use std::time::Duration;

use harness::cluster::Cluster;
use node::api::alerts::RaiseAlert;
use topology::NodeId;

use crate::eventually;

fn id(s: &str) -> NodeId {
    s.parse().unwrap()
}

/// A PNG-looking file of `len` bytes (the magic number, then a pattern of `seed`).
fn png(len: usize, seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..len - 8).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    b
}

fn refused(e: anyhow::Error) -> (u16, String) {
    match e.downcast_ref::<client::CallError>() {
        Some(client::CallError::Refused { status, message }) => (*status, message.clone()),
        _ => panic!("not a refusal: {e:#}"),
    }
}

#[test]
fn a_school_snapshot_is_viewed_at_the_province_through_any_path_or_reported_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 1, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    cluster.register_cameras().unwrap();
    let (province, city, county, school) = (id("13"), id("1301"), id("130102"), id("130102-S0001"));
    let at_school = cluster.client(school);

    // Uploaded at the school (two file parts' worth), named by an alert.
    let a = png(300 * 1024, 1);
    let stored = at_school.upload_file("snapshot", &a).unwrap();
    assert!(stored.file.starts_with("sha256:") && stored.size == a.len() as u64, "{stored:?}");
    assert_eq!(at_school.upload_file("snapshot", &a).unwrap().file, stored.file, "same bytes, same file");
    let alert = at_school
        .raise_alert(&RaiseAlert {
            camera: "cam-01".into(),
            alert_type: "NO_MASK".into(),
            snapshot: Some(stored.file.clone()),
            ..RaiseAlert::default()
        })
        .unwrap();
    assert_eq!(alert.snapshot, stored.file);

    // Bad uploads are refused in Chinese and store nothing.
    let (status, why) = refused(at_school.upload_file("snapshot", b"<html>not an image</html>").unwrap_err());
    assert_eq!(status, 400);
    assert!(why.contains("只接受 JPEG 或 PNG"), "{why}");
    assert_eq!(refused(at_school.upload_file("snapshot", b"").unwrap_err()).0, 400);

    // Viewed at the province: fetched through city and county, the very bytes.
    let (kind, got) = cluster.client(province).file(&stored.file, school).unwrap();
    assert_eq!(kind, "image/png");
    assert!(got == a, "the province got other bytes");
    // A file the school has not: missing (404), not unavailable.
    let nothing = format!("sha256:{}", "ab".repeat(32));
    let (status, why) = refused(cluster.client(province).file(&nothing, school).unwrap_err());
    assert_eq!(status, 404, "{why}");

    // The same by the command line: put at the school, get at the province.
    let path = dir.path().join("snap.png");
    std::fs::write(&path, png(20 * 1024, 9)).unwrap();
    let school_admin = cluster.admin_addr(school).to_string();
    let (ok, out, err) = crate::mingchu(&["file", "put", path.to_str().unwrap(), "--admin", &school_admin]);
    assert!(ok, "{err}");
    let cli_ref = out.split_whitespace().nth(1).unwrap().to_string();
    assert!(cli_ref.starts_with("sha256:"), "{out}");
    let back = dir.path().join("back.png");
    let province_admin = cluster.admin_addr(province).to_string();
    let holder = school.to_string();
    let (ok, out, err) = crate::mingchu(&[
        "file",
        "get",
        &cli_ref,
        "--holder",
        &holder,
        "--out",
        back.to_str().unwrap(),
        "--admin",
        &province_admin,
    ]);
    assert!(ok, "{out}{err}");
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&path).unwrap());
    let (ok, _, err) = crate::mingchu(&["file", "put", "/etc/hostname", "--admin", &school_admin]);
    assert!(!ok && err.contains("不是 JPEG 或 PNG"), "{err}");

    // Two more files, nobody has looked at them yet.
    let b = png(40 * 1024, 2);
    let c = png(50 * 1024, 3);
    let b_ref = at_school.upload_file("evidence", &b).unwrap().file;
    let c_ref = at_school.upload_file("snapshot", &c).unwrap().file;

    // The county goes down; the school fails over to the city, and the province gets B that way.
    cluster.kill(county).unwrap();
    eventually(Duration::from_secs(60), "the school failed over to the city", || {
        let st = cluster.status(school).ok()?;
        (st.failover.as_ref()?.peer == city && st.failover.as_ref()?.state == node::runtime::link::LinkState::Up)
            .then_some(())
    });
    let (_, got) = eventually(Duration::from_secs(30), "B at the province via the city", || {
        cluster.client(province).file(&b_ref, school).ok()
    });
    assert!(got == b);

    // The school goes down too: C, never fetched, is unavailable (503, saying why); A is still
    // shown from the province's cache.
    cluster.kill(school).unwrap();
    let (status, why) = eventually(Duration::from_secs(60), "C unavailable at the province", || {
        match cluster.client(province).file(&c_ref, school) {
            Err(e) => Some(refused(e)).filter(|(s, _)| *s == 503),
            Ok(_) => None,
        }
    });
    assert_eq!(status, 503);
    assert!(why.contains("联系不上") || why.contains("连接"), "{why}");
    let (_, got) = cluster.client(province).file(&stored.file, school).unwrap();
    assert!(got == a, "the cached copy");
    cluster.stop_all();
}

#[test]
fn a_snapshot_taken_at_the_province_is_seen_below_and_a_copy_it_cached_from_elsewhere_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let spec = topology::generate::SmallSpec { cities: 1, counties_per_city: 2, schools_per_county: 1 };
    let mut cluster = Cluster::create(dir.path(), &spec, &crate::binary()).unwrap();
    cluster.start_all().unwrap();
    cluster.wait_links_up(Duration::from_secs(30)).unwrap();
    let (province, county_a, county_b) = (id("13"), id("130102"), id("130104"));
    let (school_a, school_b) = (id("130102-S0001"), id("130104-S0001"));

    // The province's snapshot (as its spot check uploads it), held above everyone: the schools
    // and a county fetch it up the tree.
    let shot = png(30 * 1024, 5);
    let shot_ref = cluster.client(province).upload_file("snapshot", &shot).unwrap().file;
    for n in [school_a, county_b, school_b] {
        let (_, got) = eventually(Duration::from_secs(30), "the province's snapshot below", || {
            cluster.client(n).file(&shot_ref, province).ok()
        });
        assert!(got == shot, "at {n}");
    }

    // A school's photo the province fetched (and so cached): another branch naming the province
    // as its holder gets nothing — the province hands down only what was uploaded there.
    let photo = png(20 * 1024, 6);
    let photo_ref = cluster.client(school_a).upload_file("evidence", &photo).unwrap().file;
    let (_, got) = cluster.client(province).file(&photo_ref, school_a).unwrap();
    assert!(got == photo);
    let (status, why) = refused(cluster.client(county_b).file(&photo_ref, province).unwrap_err());
    assert_eq!(status, 404, "{why}");
    assert!(why.contains("没有这个文件"), "{why}");
    // Nor can a county ask for a file of another branch by its real holder: no path there.
    let (status, why) = refused(cluster.client(school_b).file(&photo_ref, school_a).unwrap_err());
    assert_eq!(status, 403, "{why}");

    // Unlinked from its county, the school still gets the province's snapshot through the
    // ancestor it failed over to.
    cluster.kill(county_a).unwrap();
    eventually(Duration::from_secs(60), "the school failed over to the city", || {
        let st = cluster.status(school_a).ok()?;
        (st.failover.as_ref()?.state == node::runtime::link::LinkState::Up).then_some(())
    });
    let again = png(25 * 1024, 7);
    let again_ref = cluster.client(province).upload_file("snapshot", &again).unwrap().file;
    let (_, got) = eventually(Duration::from_secs(30), "a new snapshot at the failed-over school", || {
        cluster.client(school_a).file(&again_ref, province).ok()
    });
    assert!(got == again);
    cluster.stop_all();
}
