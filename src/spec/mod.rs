//! The Compose loader: YAML files in, a validated, normalized [`Stack`] out.
//!
//! [`load`] runs the whole pipeline (see `load.rs` for its order). The
//! modules below it each own one rule of the Compose specification, as
//! docker compose applies it, and are pure except for reading files.

pub mod diagnostic;
pub mod dotenv;
pub mod env;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod schema;
pub mod syntax;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use load::{Options, Project, load};
pub use model::{Service, Stack};

/// The shared Compose corpus for unit tests: `$STACK_CORPUS`, else
/// `../shared/corpus` beside the repository. Missing, it says so loudly and
/// fails on CI, where it must be present.
#[cfg(test)]
pub(crate) fn test_corpus() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("STACK_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
        });
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "\n*** COMPOSE CORPUS MISSING at {}: this test checked nothing ***\n",
        dir.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "the Compose corpus is missing on CI"
    );
    None
}
