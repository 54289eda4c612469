//! What the state store records about a project: the objects stack created
//! for it, each with the configuration hash it was created from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub project: String,
    /// The last applied revision; 0 when none was applied yet.
    pub revision: u64,
    /// By the network's key in the stack file.
    pub networks: BTreeMap<String, ObjectRecord>,
    /// By the volume's key in the stack file.
    pub volumes: BTreeMap<String, ObjectRecord>,
    /// By container name, `<project>-<service>-<n>`.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Containers the user removed (`stack rm`): the watcher does not make
    /// them again; `up` does, and forgets them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub removed_by_user: std::collections::BTreeSet<String>,
    /// The stack files it was last applied from (for `stack ls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<std::path::PathBuf>,
}

/// A network or volume stack created (or found, when external).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Its name on the host.
    pub name: String,
    pub config_hash: String,
    pub external: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub name: String,
    pub id: String,
    pub service: String,
    pub replica: u32,
    pub config_hash: String,
    /// The image reference, or its digest once resolved.
    pub image: String,
    pub revision: u64,
    /// Created by `stack run`, not by `up`.
    pub one_off: bool,
    /// Stopped, killed or paused by the user (`stack stop`, `kill`):
    /// the watcher leaves it so; `up` and `start` clear it.
    #[serde(default)]
    pub stopped_by_user: bool,
    pub labels: BTreeMap<String, String>,
}

/// One applied stack, kept for rollback and to explain later changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    pub revision: u64,
    pub hash: String,
    /// The normalized stack as JSON.
    pub stack: serde_json::Value,
    /// Unix seconds.
    pub applied_at: u64,
}
