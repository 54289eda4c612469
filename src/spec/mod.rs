//! The Compose loader: YAML files in, a validated, normalized stack out.

pub mod diagnostic;
pub mod yaml;
