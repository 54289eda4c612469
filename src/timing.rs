//! Phase timings for performance work: with `STACK_TRACE_TIMING=1` in the
//! environment, [`mark`] prints how long after the process started each
//! phase ended, to stderr (`timing 12.3 ms pid 42: observe`). Finding where
//! the time of `up`, `down` or a restart goes starts here; without the
//! variable every call is a cheap check of a cached flag.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    *START.get_or_init(|| {
        std::env::var_os("STACK_TRACE_TIMING")
            .is_some_and(|v| v != "0" && !v.is_empty())
            .then(Instant::now)
    })
}

/// Whether timings are printed.
pub fn enabled() -> bool {
    start().is_some()
}

/// Prints that `what` ended now, when timings are on.
pub fn mark(what: impl FnOnce() -> String) {
    if let Some(t0) = start() {
        eprintln!(
            "timing {:7.1} ms pid {}: {}",
            t0.elapsed().as_secs_f64() * 1000.0,
            std::process::id(),
            what()
        );
    }
}
