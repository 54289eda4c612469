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
