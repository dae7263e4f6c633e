//! Broken invariants in debug builds. The link and store actors check their invariants after
//! every step when `debug_assertions` are on (the simulator and the tests run them so); release
//! builds skip the checks.
//!
//! A broken invariant aborts the process rather than panicking: ractor catches a panicking
//! handler and the node's supervisor would restart the link (or stop just the node), so a run
//! would go on past the first broken invariant, which is what a debug build is there to stop at.

use std::io::Write;

/// Writes `what` (which names the node, the peer or origin, and the invariant) and a backtrace
/// to stderr, then aborts.
#[cold]
pub(crate) fn broken(what: std::fmt::Arguments<'_>) -> ! {
    // Straight to the stderr handle: a test harness's output capture would lose it on abort.
    let backtrace = std::backtrace::Backtrace::force_capture();
    let _ = writeln!(std::io::stderr().lock(), "invariant broken: {what}\n{backtrace}");
    std::process::abort()
}
