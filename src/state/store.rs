//! The store and its per-project lock.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::records::{ProjectRecord, RevisionRecord};
use super::{StateError, write_atomic};

/// The state root (`--root`, `STACK_ROOT`, default `/var/lib/stack`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Exclusive ownership of one project's record while it is held.
#[derive(Debug)]
pub struct ProjectLock {
    project: String,
    dir: PathBuf,
    // Held open for its lock; closing the file releases it, also on a crash.
    _file: File,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn project_dir(&self, project: &str) -> Result<PathBuf, StateError> {
        // Project names are already validated by the loader; this guards the
        // filesystem against any other caller.
        let valid = !project.is_empty()
            && project
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
            && !project.starts_with(['-', '_']);
        if !valid {
            return Err(StateError::BadName(project.to_string()));
        }
        Ok(self.root.join("projects").join(project))
    }

    /// Takes the project's exclusive lock, or says which process holds it.
    pub fn lock(&self, project: &str) -> Result<ProjectLock, StateError> {
        let dir = self.project_dir(project)?;
        fs::create_dir_all(&dir).map_err(StateError::io("create", &dir))?;
        let path = dir.join("lock");
        // Not truncated on open: the holder's pid must survive a contender's open.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StateError::io("open", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StateError::Locked {
                    project: project.to_string(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(StateError::Io {
                    action: "lock",
                    path,
                    source: e,
                });
            }
        }
        // The watcher takes the lock every resync: its pid, already there,
        // is not written again.
        let pid = std::process::id().to_string();
        let mut held = String::new();
        let _ = file.read_to_string(&mut held);
        if held.trim() != pid {
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| writeln!(file, "{pid}"))
                .map_err(StateError::io("write", &path))?;
        }
        Ok(ProjectLock {
            project: project.to_string(),
            dir,
            _file: file,
        })
    }

    /// The project's record, without locking (for `plan`, `ps`, `ls`).
    pub fn read(&self, project: &str) -> Result<Option<ProjectRecord>, StateError> {
        read_record(&self.project_dir(project)?.join("state.json"))
    }

    /// A kept revision, read without locking: revisions are written once,
    /// atomically, and never changed, so a reader cannot see half of one.
    pub fn revision(&self, project: &str, n: u64) -> Result<Option<RevisionRecord>, StateError> {
        read_json(&revision_path(&self.project_dir(project)?, n))
    }

    /// The project's revision numbers, ascending, read without locking.
    pub fn revisions(&self, project: &str) -> Result<Vec<u64>, StateError> {
        revision_numbers(&self.project_dir(project)?)
    }

    /// Every project with a record, sorted.
    pub fn projects(&self) -> Result<Vec<String>, StateError> {
        let entries = list_dir(&self.root.join("projects"))?;
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

fn read_record(path: &Path) -> Result<Option<ProjectRecord>, StateError> {
    read_json(path)
}

/// A JSON file's content, `None` when the file does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// A directory's entries; none when it does not exist yet.
fn list_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, StateError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StateError::Io {
            action: "list",
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain records (string keys, no floats) cannot fail.
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl ProjectLock {
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The record, or an empty one for a project never applied.
    pub fn read(&self) -> Result<ProjectRecord, StateError> {
        Ok(
            read_record(&self.dir.join("state.json"))?.unwrap_or_else(|| ProjectRecord {
                project: self.project.clone(),
                ..ProjectRecord::default()
            }),
        )
    }

    pub fn write(&self, record: &ProjectRecord) -> Result<(), StateError> {
        write_atomic(&self.dir.join("state.json"), &to_json(record))
    }

    /// Removes the project's record (after `down`); its revision history stays for rollback.
    pub fn forget(&self) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io {
                action: "remove",
                path,
                source: e,
            }),
        }
    }

    /// Keeps an applied stack as the next revision and returns its number.
    pub fn push_revision(&self, stack: &serde_json::Value, hash: &str) -> Result<u64, StateError> {
        let next = self.revisions()?.last().copied().unwrap_or(0) + 1;
        let applied_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let record = RevisionRecord {
            revision: next,
            hash: hash.to_string(),
            stack: stack.clone(),
            applied_at,
        };
        write_atomic(&self.revision_path(next), &to_json(&record))?;
        Ok(next)
    }

    fn revision_path(&self, n: u64) -> PathBuf {
        revision_path(&self.dir, n)
    }

    pub fn revision(&self, n: u64) -> Result<Option<RevisionRecord>, StateError> {
        read_json(&self.revision_path(n))
    }

    /// Revision numbers, ascending.
    pub fn revisions(&self) -> Result<Vec<u64>, StateError> {
        revision_numbers(&self.dir)
    }
}

fn revision_path(project_dir: &Path, n: u64) -> PathBuf {
    project_dir.join("revisions").join(format!("{n}.json"))
}

fn revision_numbers(project_dir: &Path) -> Result<Vec<u64>, StateError> {
    let entries = list_dir(&project_dir.join("revisions"))?;
    let mut numbers: Vec<u64> = entries
        .into_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ContainerRecord;

    #[test]
    fn records_round_trip_and_list_projects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.read("web").unwrap(), None);
        let lock = store.lock("web").unwrap();
        let mut record = lock.read().unwrap();
        assert_eq!(record.project, "web");
        record.containers.insert(
            "web-app-1".into(),
            ContainerRecord {
                name: "web-app-1".into(),
                service: "app".into(),
                replica: 1,
                ..ContainerRecord::default()
            },
        );
        lock.write(&record).unwrap();
        assert_eq!(store.read("web").unwrap(), Some(record));
        assert_eq!(store.projects().unwrap(), ["web"]);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let held = store.lock("p").unwrap();
        let err = store.lock("p").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(held);
        assert!(store.lock("p").is_ok());
    }

    #[test]
    fn revisions_are_numbered_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Store::new(dir.path()).lock("p").unwrap();
        assert_eq!(
            lock.push_revision(&serde_json::json!({"a": 1}), "h1")
                .unwrap(),
            1
        );
        assert_eq!(
            lock.push_revision(&serde_json::json!({"a": 2}), "h2")
                .unwrap(),
            2
        );
        assert_eq!(lock.revisions().unwrap(), [1, 2]);
        let r = lock.revision(1).unwrap().unwrap();
        assert_eq!((r.hash.as_str(), r.stack["a"].as_i64()), ("h1", Some(1)));
        assert_eq!(lock.revision(9).unwrap(), None);
        // Readers need no lock, even while a writer holds it.
        let store = Store::new(dir.path());
        assert_eq!(store.revisions("p").unwrap(), [1, 2]);
        assert_eq!(store.revision("p", 2).unwrap().unwrap().hash, "h2");
    }

    #[test]
    fn a_damaged_record_is_a_clear_error_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let p = dir.path().join("projects/p");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("state.json"), "{not json").unwrap();
        assert!(store.read("p").unwrap_err().to_string().contains("damaged"));
        assert!(matches!(store.lock("../x"), Err(StateError::BadName(_))));
    }
}
