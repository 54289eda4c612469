//! What stack created for a project's networks, on disk.
//!
//! `<root>/network/<project>.json`, replaced whole after every change,
//! so that a `down` run by another process (or after a crash) knows the
//! bridges, endpoints and ports to remove, and a restarted watcher can serve
//! DNS for the endpoints that are still there.
//!
//! Several stack processes change one project's record (the watcher
//! restarting a container, `stack run -d` attaching a one-off while the
//! watcher runs), each holding a copy in memory. A change is therefore a
//! read-modify-write under [`lock`]: read the record again, change it, save
//! it, and only then let the next process in; otherwise the last writer's
//! older copy would drop the other's endpoints and address allocations.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NetworkError;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworksRecord {
    pub project: String,
    /// By the network's key in the stack file.
    pub networks: BTreeMap<String, NetworkRecord>,
    /// By `<container>/<network key>`.
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// Published ports, in publication order.
    pub ports: Vec<PortRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The name on the host (`<project>_<key>` or the external name).
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: Ipv4Addr,
    /// Where dynamic addresses come from.
    pub ip_range: String,
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    pub internal: bool,
    /// Used, never created or removed, by this project.
    pub external: bool,
    pub mtu: u32,
    pub labels: BTreeMap<String, String>,
    pub driver_opts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub container: String,
    pub network: String,
    /// The veth's host end.
    pub host_ifname: String,
    /// The name inside the container (`eth0`, ...).
    pub ifname: String,
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Names it answers to in DNS on this network.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub container: String,
    pub protocol: String,
    /// `None`: all addresses.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub target: u16,
    pub dest: Ipv4Addr,
}

pub(crate) fn path(root: &Path, project: &str) -> PathBuf {
    root.join("network").join(format!("{project}.json"))
}

pub(crate) fn load(root: &Path, project: &str) -> Result<NetworksRecord, NetworkError> {
    let p = path(root, project);
    match fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| NetworkError::Corrupt {
            path: p.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NetworksRecord {
            project: project.to_string(),
            ..NetworksRecord::default()
        }),
        Err(e) => Err(NetworkError::io("read", p)(e)),
    }
}

pub(crate) fn save(root: &Path, record: &NetworksRecord) -> Result<(), NetworkError> {
    let p = path(root, &record.project);
    if record.networks.is_empty() && record.endpoints.is_empty() && record.ports.is_empty() {
        // Nothing left: leave no file behind either.
        return match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(NetworkError::io("remove", p)(e))
            }
            _ => Ok(()),
        };
    }
    let dir = root.join("network");
    fs::create_dir_all(&dir).map_err(NetworkError::io("create", &dir))?;
    // Serializing plain data with string keys cannot fail.
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    // Write-temp-and-rename, so a reader never sees half a file, but without
    // fsync: this runs on every attach, where two fsyncs would cost more
    // than the whole attach. Losing the last change in a power cut is
    // harmless: the host objects carry their labels (interface alias, link
    // group, table name), and `down` removes by those too.
    crate::state::replace_file(&p, &bytes).map_err(NetworkError::io("write", &p))
}

/// Holds a project's network-record lock while alive (closing the file
/// releases it, also when the process dies).
pub(crate) struct RecordLock {
    _file: fs::File,
}

/// Takes the lock on a project's network record, waiting for another
/// process's change to finish. The lock file sits beside the project's
/// state lock and, like it, stays.
pub(crate) fn lock(root: &Path, project: &str) -> Result<RecordLock, NetworkError> {
    let dir = root.join("projects").join(project);
    fs::create_dir_all(&dir).map_err(NetworkError::io("create", &dir))?;
    let p = dir.join("network.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(NetworkError::io("open", &p))?;
    file.lock().map_err(NetworkError::io("lock", &p))?;
    Ok(RecordLock { _file: file })
}
