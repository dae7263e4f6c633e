//! The `mingchu` binary: one node of the federation, and the tools around it.

fn main() -> std::process::ExitCode {
    mingchu::main()
}
