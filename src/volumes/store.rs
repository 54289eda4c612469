//! Named and anonymous volumes under `<root>/volumes/`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::VolumeError;
use super::copy::copy_tree;
use crate::state::write_atomic;

/// What a stack file asks of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSpec {
    /// The name on the host (`<project>_<key>` for a project's volume).
    pub name: String,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Anonymous volumes belong to one container and go with it.
    pub anonymous: bool,
}

/// A volume as it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub name: String,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub anonymous: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Whether the image's content was copied in (done once, when new).
    pub populated: bool,
    /// Where the data is: `<root>/volumes/<name>/_data`.
    #[serde(skip_deserializing)]
    pub mountpoint: PathBuf,
}

#[derive(Debug, Clone)]
pub struct VolumeStore {
    dir: PathBuf,
}

/// Docker's rule for volume names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl VolumeStore {
    /// The store under a state root.
    pub fn new(root: &Path) -> VolumeStore {
        VolumeStore {
            dir: root.join("volumes"),
        }
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf, VolumeError> {
        if !valid_name(name) {
            return Err(VolumeError::BadName(name.to_string()));
        }
        Ok(self.dir.join(name))
    }

    /// Creates the volume, or returns it when it exists with the same
    /// driver, options and labels. A volume that differs is never replaced:
    /// it is an error that says how to proceed.
    pub fn create(&self, spec: &VolumeSpec) -> Result<VolumeInfo, VolumeError> {
        let dir = self.volume_dir(&spec.name)?;
        let driver = spec.driver.clone().unwrap_or_else(|| "local".into());
        if driver != "local" {
            return Err(VolumeError::BadOption(format!(
                "driver `{driver}` of volume `{}` is not supported; stack has the `local` driver only",
                spec.name
            )));
        }
        parse_options(&spec.driver_opts)?;
        if let Some(existing) = self.get(&spec.name)? {
            let what = if existing.driver_opts != spec.driver_opts {
                Some("driver options")
            } else if existing.labels != spec.labels {
                Some("labels")
            } else {
                None
            };
            return match what {
                Some(what) => Err(VolumeError::Diverged {
                    name: spec.name.clone(),
                    what: what.into(),
                }),
                None => Ok(existing),
            };
        }
        let data = dir.join("_data");
        fs::create_dir_all(&data).map_err(VolumeError::io("create", &data))?;
        let info = VolumeInfo {
            name: spec.name.clone(),
            driver,
            driver_opts: spec.driver_opts.clone(),
            labels: spec.labels.clone(),
            anonymous: spec.anonymous,
            created_at: now(),
            populated: false,
            mountpoint: data,
        };
        self.write_meta(&info)?;
        Ok(info)
    }

    fn write_meta(&self, info: &VolumeInfo) -> Result<(), VolumeError> {
        let dir = self.volume_dir(&info.name)?;
        // Plain data with string keys: serializing it cannot fail.
        let json = serde_json::to_vec_pretty(info).unwrap_or_default();
        Ok(write_atomic(&dir.join("meta.json"), &json)?)
    }

    pub fn get(&self, name: &str) -> Result<Option<VolumeInfo>, VolumeError> {
        let dir = self.volume_dir(name)?;
        let path = dir.join("meta.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VolumeError::io("read", &path)(e)),
        };
        let mut info: VolumeInfo = serde_json::from_slice(&bytes).map_err(|e| {
            VolumeError::io("parse", &path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        info.mountpoint = dir.join("_data");
        Ok(Some(info))
    }

    /// Every volume, sorted by name.
    pub fn list(&self) -> Result<Vec<VolumeInfo>, VolumeError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(VolumeError::io("list", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(Some(info)) = self.get(&name) {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume and its data. `users` are the containers that still
    /// use it: while there are any, nothing is removed.
    pub fn remove(&self, name: &str, users: &[String]) -> Result<(), VolumeError> {
        let dir = self.volume_dir(name)?;
        if self.get(name)?.is_none() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users: users.join(", "),
            });
        }
        self.deactivate(name)?;
        fs::remove_dir_all(&dir).map_err(VolumeError::io("remove", &dir))
    }

    /// Makes the volume's data directory ready to mount into a container:
    /// for the local driver's `type`/`device`/`o` options, mounts that
    /// filesystem on `_data` (once). Returns the directory.
    pub fn activate(&self, info: &VolumeInfo) -> Result<PathBuf, VolumeError> {
        let Some(local) = parse_options(&info.driver_opts)? else {
            return Ok(info.mountpoint.clone());
        };
        if is_mount_point(&info.mountpoint) {
            return Ok(info.mountpoint.clone());
        }
        use rustix::mount::{MountFlags, mount, mount_bind};
        let data = std::ffi::CString::new(local.data.clone())
            .map_err(|_| VolumeError::BadOption("`o` must not contain a NUL character".into()))?;
        let result = if local.bind {
            mount_bind(Path::new(&local.device), &info.mountpoint)
        } else {
            mount(
                local.device.as_str(),
                &info.mountpoint,
                local.fstype.as_str(),
                MountFlags::empty(),
                Some(data.as_c_str()),
            )
        };
        result.map_err(|e| VolumeError::io("mount the volume on", &info.mountpoint)(e.into()))?;
        Ok(info.mountpoint.clone())
    }

    /// Unmounts what [`activate`](Self::activate) mounted, if anything.
    pub fn deactivate(&self, name: &str) -> Result<(), VolumeError> {
        let data = self.volume_dir(name)?.join("_data");
        if is_mount_point(&data) {
            rustix::mount::unmount(&data, rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| VolumeError::io("unmount", &data)(e.into()))?;
        }
        Ok(())
    }

    /// Copies `source` (the image's content at the mount path) into the
    /// volume the first time it is used, when it is still empty; never again.
    pub fn populate(&self, info: &mut VolumeInfo, source: &Path) -> Result<(), VolumeError> {
        if info.populated {
            return Ok(());
        }
        let empty = fs::read_dir(&info.mountpoint)
            .map_err(VolumeError::io("read", &info.mountpoint))?
            .next()
            .is_none();
        if empty && source.is_dir() {
            copy_tree(source, &info.mountpoint)?;
        }
        info.populated = true;
        self.write_meta(info)
    }
}

/// The local driver's mount, from `type`, `device` and `o`.
#[derive(Debug, PartialEq, Eq)]
struct LocalMount {
    fstype: String,
    device: String,
    bind: bool,
    /// `o` without the words that are flags rather than filesystem data.
    data: String,
}

fn parse_options(opts: &BTreeMap<String, String>) -> Result<Option<LocalMount>, VolumeError> {
    if opts.is_empty() {
        return Ok(None);
    }
    for key in opts.keys() {
        if !matches!(key.as_str(), "type" | "device" | "o") {
            return Err(VolumeError::BadOption(format!(
                "`{key}` is unknown (the local driver takes `type`, `device` and `o`)"
            )));
        }
    }
    let o = opts.get("o").cloned().unwrap_or_default();
    let words: Vec<&str> = o.split(',').filter(|w| !w.is_empty()).collect();
    let bind = words.iter().any(|w| matches!(*w, "bind" | "rbind"));
    let fstype = opts.get("type").cloned().unwrap_or_else(|| "none".into());
    let device = match opts.get("device") {
        Some(d) => d.clone(),
        None if fstype == "tmpfs" => "tmpfs".into(),
        None => {
            return Err(VolumeError::BadOption(
                "`device` is required unless `type` is tmpfs".into(),
            ));
        }
    };
    if bind && !Path::new(&device).is_absolute() {
        return Err(VolumeError::BadOption(format!(
            "`device: {device}` must be an absolute path for a bind volume"
        )));
    }
    if !bind && fstype == "none" {
        return Err(VolumeError::BadOption(
            "`type` is required unless `o` contains `bind`".into(),
        ));
    }
    let data = words
        .iter()
        .filter(|w| !matches!(**w, "bind" | "rbind"))
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    Ok(Some(LocalMount {
        fstype,
        device,
        bind,
        data,
    }))
}

/// Whether `path` is the mount point of something, from /proc/self/mountinfo.
fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mountinfo(mp) == wanted)
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> VolumeSpec {
        VolumeSpec {
            name: name.into(),
            labels: BTreeMap::from([("stack.project".into(), "p".into())]),
            ..VolumeSpec::default()
        }
    }

    #[test]
    fn create_is_idempotent_and_divergence_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(root.path());
        let a = store.create(&spec("p_data")).unwrap();
        assert!(a.mountpoint.ends_with("volumes/p_data/_data"));
        assert!(a.mountpoint.is_dir());
        fs::write(a.mountpoint.join("keep"), "x").unwrap();
        let again = store.create(&spec("p_data")).unwrap();
        assert_eq!(again.created_at, a.created_at);
        assert_eq!(fs::read_to_string(a.mountpoint.join("keep")).unwrap(), "x");

        let mut other = spec("p_data");
        other.labels.insert("extra".into(), "1".into());
        let err = store.create(&other).unwrap_err().to_string();
        assert!(
            err.contains("different labels") && err.contains("stack volume rm p_data"),
            "{err}"
        );
        // The data is untouched by the refused change.
        assert_eq!(fs::read_to_string(a.mountpoint.join("keep")).unwrap(), "x");
    }

    #[test]
    fn list_remove_and_in_use() {
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(root.path());
        store.create(&spec("b")).unwrap();
        store.create(&spec("a")).unwrap();
        let names: Vec<_> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["a", "b"]);
        let err = store
            .remove("a", &["p-web-1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by p-web-1"), "{err}");
        assert!(store.get("a").unwrap().is_some());
        store.remove("a", &[]).unwrap();
        assert!(store.get("a").unwrap().is_none());
        assert!(!root.path().join("volumes/a").exists());
        assert!(matches!(
            store.remove("a", &[]),
            Err(VolumeError::NotFound(_))
        ));
        assert!(matches!(
            store.create(&spec("../x")),
            Err(VolumeError::BadName(_))
        ));
    }

    #[test]
    fn populate_copies_once_into_an_empty_volume() {
        let root = tempfile::tempdir().unwrap();
        let image = tempfile::tempdir().unwrap();
        fs::create_dir_all(image.path().join("sub")).unwrap();
        fs::write(image.path().join("sub/file"), "from image").unwrap();
        let store = VolumeStore::new(root.path());
        let mut v = store.create(&spec("v")).unwrap();
        store.populate(&mut v, image.path()).unwrap();
        assert_eq!(
            fs::read_to_string(v.mountpoint.join("sub/file")).unwrap(),
            "from image"
        );
        fs::remove_file(v.mountpoint.join("sub/file")).unwrap();
        let mut v = store.get("v").unwrap().unwrap();
        assert!(v.populated);
        store.populate(&mut v, image.path()).unwrap();
        assert!(
            !v.mountpoint.join("sub/file").exists(),
            "copied a second time"
        );
    }

    #[test]
    fn local_driver_options() {
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let m = parse_options(&opts(&[("type", "tmpfs"), ("o", "size=1m,uid=1000")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                m.fstype.as_str(),
                m.device.as_str(),
                m.bind,
                m.data.as_str()
            ),
            ("tmpfs", "tmpfs", false, "size=1m,uid=1000")
        );
        let m = parse_options(&opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/srv/x"),
        ]))
        .unwrap()
        .unwrap();
        assert!(m.bind);
        assert!(parse_options(&opts(&[("o", "bind"), ("device", "rel")])).is_err());
        assert!(parse_options(&opts(&[("colour", "red")])).is_err());
        assert_eq!(parse_options(&BTreeMap::new()).unwrap(), None);
    }

    /// Root only: a tmpfs volume is a real mount while active, and gone after.
    #[test]
    fn tmpfs_volume_is_mounted_and_unmounted() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("*** not root: the tmpfs volume mount was not checked ***");
            assert!(std::env::var_os("CI").is_none(), "CI runs as root");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(root.path());
        let mut s = spec("tmpvol");
        s.driver_opts = BTreeMap::from([
            ("type".to_string(), "tmpfs".to_string()),
            ("o".to_string(), "size=1m".to_string()),
        ]);
        let info = store.create(&s).unwrap();
        let path = store.activate(&info).unwrap();
        assert!(is_mount_point(&path));
        store.activate(&info).unwrap();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let count = mounts
            .lines()
            .filter(|l| l.contains(&*path.to_string_lossy()))
            .count();
        assert_eq!(count, 1, "mounted twice");
        store.remove("tmpvol", &[]).unwrap();
        assert!(!is_mount_point(&path));
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*path.to_string_lossy()));
    }
}
