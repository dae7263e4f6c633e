//! The `mingchu` binary: one node of the federation, and the tools around it.

/// mimalloc rather than glibc's malloc: a node (and the simulator, with every node of a province
/// in one process) makes many small, short-lived allocations — messages, frames, decoded events.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mingchu::main()
}
