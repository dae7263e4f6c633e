//! The `frame_decode` fuzz target's seeds (`fuzz/corpus-seeds/frame_decode`): one frame of each
//! kind as this build encodes it, checked in so the fuzzer starts from real frames (the protocol
//! crate does no file I/O, so the check lives here). After a wire change,
//! `MINGCHU_WRITE_SEEDS=1 cargo test -p tests --test it fuzz_seeds` writes them anew.

use protocol::wire::{Ack, Batch, Frame, Hello, PROTOCOL_VERSION, SeqRange, encode_frame};

#[test]
fn fuzz_seeds_are_current() {
    let e = crate::alert_event("130102-S0042".parse().unwrap(), 7);
    let hello = Hello { version: PROTOCOL_VERSION, node: e.origin, cursors: vec![(e.origin, 9)] };
    let batch = Batch {
        id: 1,
        ranges: vec![SeqRange { origin: e.origin, after: 6, upto: 7 }],
        events: vec![e.clone()],
        ..Default::default()
    };
    let frames = [
        Frame::Hello(hello.clone()),
        Frame::HelloAck(hello),
        Frame::Batch(batch.clone()),
        Frame::Ack(Ack { id: 1, cursors: vec![(e.origin, 7)] }),
        Frame::Ping { backlog: 3 },
        Frame::Goodbye { reason: "再见 / bye".into() },
        Frame::Fresh(batch),
        Frame::Health(protocol::health::HealthDelta { after: 0, upto: 1, rows: vec![] }),
        Frame::HealthAck { upto: 1 },
        Frame::FileGet { req: 1, holder: e.origin, hash: [7; 32] },
        Frame::FileData { req: 1, offset: 0, total: 3, meta: None, bytes: vec![1, 2, 3] },
        Frame::FileFail { req: 1, missing: true, reason: "gone".into() },
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus-seeds/frame_decode");
    let write = std::env::var_os("MINGCHU_WRITE_SEEDS").is_some();
    for f in frames {
        let path = dir.join(format!("{}.bin", f.name()));
        let bytes = encode_frame(&f).unwrap();
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            seed,
            bytes,
            "{} is stale: MINGCHU_WRITE_SEEDS=1 cargo test -p tests --test it fuzz_seeds",
            path.display()
        );
    }
}
