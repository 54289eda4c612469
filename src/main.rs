//! The `stack` binary: everything happens in `stack::cli`.

fn main() -> std::process::ExitCode {
    stack::cli::main()
}
