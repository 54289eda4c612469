//! stack: a declarative multi-container orchestrator that reads Compose files.
//!
//! The folders are the architecture (see DESIGN.md): `spec` turns YAML into a
//! validated [`spec::Stack`]; `planner` derives desired state from it;
//! `network` builds bridges, endpoints, DNS and published ports on the host;
//! `host` implements the planner's traits over the real modules; `watch`
//! keeps a project converged; `cli` only wires commands to those modules and prints.

pub mod cli;
pub mod host;
pub mod network;
pub mod planner;
pub mod runtime;
pub mod spec;
pub mod state;
pub mod time;
pub mod timing;
pub mod volumes;
pub mod watch;
