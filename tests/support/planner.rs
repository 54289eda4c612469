//! Helpers for the planner tests that run against the in-memory host
//! (`stack::planner::fake`): an image digest to publish, and loading a
//! Compose file as project `p` from a directory, as `stack -p p` would.

#![allow(dead_code)]

use std::path::Path;

use stack::spec::{self, Stack};

/// The digest the tests publish busybox under.
pub const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Loads `yaml` as project `p` from `dir`.
pub fn load_in(dir: &Path, yaml: &str) -> Stack {
    std::fs::write(dir.join("compose.yaml"), yaml).unwrap();
    let opts = spec::Options {
        files: vec![dir.join("compose.yaml")],
        project_name: Some("p".into()),
        working_dir: dir.to_path_buf(),
        ..spec::Options::default()
    };
    match spec::load(&opts) {
        Ok(project) => project.stack,
        Err(d) => panic!("{d}"),
    }
}

/// Loads `yaml` as project `p` from a temporary directory.
pub fn load(yaml: &str) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    load_in(dir.path(), yaml)
}
