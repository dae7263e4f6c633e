//! The `mingchu` program, built inside the test package so `cargo test` compiles the node crate
//! once for both the tests and the processes they start.

fn main() -> std::process::ExitCode {
    mingchu::main()
}
