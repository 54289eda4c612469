//! `stack version`: which stack this is, as `docker compose version` says it.

use std::io::Write as _;

use super::Failure;
use super::args::{VersionArgs, VersionFormat};

/// Runs `stack version`.
pub fn run(args: &VersionArgs) -> Result<(), Failure> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = std::io::stdout().lock();
    if args.short {
        writeln!(out, "{version}")?;
    } else if args.format == VersionFormat::Json {
        writeln!(out, "{}", serde_json::json!({ "version": version }))?;
    } else {
        writeln!(out, "stack version {version}")?;
    }
    Ok(())
}
