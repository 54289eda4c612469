//! The `stack` binary: everything happens in `stack::cli`.

fn main() -> std::process::ExitCode {
    // The container shim and exec helper must run while the process is
    // still single-threaded: dispatch them before anything else.
    if let Some(code) = stack::runtime::shim::dispatch() {
        return std::process::ExitCode::from(code);
    }
    stack::timing::mark(|| "main".into());
    stack::cli::main()
}
