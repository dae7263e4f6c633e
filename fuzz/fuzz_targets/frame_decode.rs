//! The wire frame decoder on arbitrary bytes: an error, never a panic, and never an allocation far
//! beyond the frame limit, whatever lengths the bytes claim (an allocator that counts the peak
//! checks it: it works without a sanitizer, where libFuzzer's `-malloc_limit_mb` does not). A frame
//! that decodes encodes back to the same frame.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use protocol::wire::{FRAME_BYTES_MAX, decode_event, decode_frame, encode_frame};

/// Bytes allocated and not freed, and the most there were since the last reset.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Most bytes a decode may hold at once above what was live before it: a few times the frame limit
/// (a decoded frame is larger in memory than on the wire, but never by a claimed length).
const DECODE_PEAK_MAX: usize = 8 * FRAME_BYTES_MAX;

fn decode_bounded<T>(decode: impl FnOnce() -> T) -> T {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = decode();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(peak <= DECODE_PEAK_MAX, "decoding held {peak} bytes at once (limit {DECODE_PEAK_MAX})");
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_bounded(|| decode_frame(data)) {
        let bytes = encode_frame(&frame).expect("a decoded frame encodes");
        assert!(bytes.len() <= FRAME_BYTES_MAX);
        assert_eq!(decode_frame(&bytes).expect("a re-encoded frame decodes"), frame);
        let _ = (frame.name(), frame.lane());
    }
    // Stored events go through the same codec.
    let _ = decode_bounded(|| decode_event(data));
});
