//! The content-addressed image store under `<root>/images` (see the module
//! docs of [`super`] for the layout and the locking).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ImageError;
use super::config::{ConfigFile, ImageConfig};
use super::platform::Platform;
use super::reference::ImageRef;
use super::unpack;

/// An image in the store, ready for the planner and the runtime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Image {
    /// `sha256:<hex>` of the configuration: docker's image ID.
    pub id: String,
    /// The digest of the manifest that was pulled or loaded.
    pub manifest_digest: String,
    /// Full references (`docker.io/library/busybox:latest`) naming it.
    pub tags: Vec<String>,
    /// `name@sha256:…` references it was pulled by (the index digest for
    /// multi-platform images, as docker reports them).
    pub repo_digests: Vec<String>,
    pub platform: Platform,
    pub created: Option<String>,
    /// Run defaults: env, cmd, entrypoint, user, working dir, ports, volumes, healthcheck, labels, stop signal.
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom first: overlayfs wants them
    /// reversed in `lowerdir=` (top first). Shared; never write into them.
    pub layers: Vec<PathBuf>,
    /// The layers' DiffIDs, bottom first.
    pub diff_ids: Vec<String>,
    /// Bytes of the layer blobs as stored (compressed when pulled).
    pub size: u64,
    /// When it was last pulled from a registry; `None` if loaded or imported.
    /// Shown as Unix seconds.
    #[serde(serialize_with = "unix_seconds")]
    pub pulled_at: Option<SystemTime>,
}

fn unix_seconds<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .serialize(s)
}

/// What [`ImageStore::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoveReport {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
}

/// What [`ImageStore::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    pub images: Vec<String>,
    pub blobs: usize,
    pub layers: usize,
    /// Bytes of blobs removed (unpacked layers not counted).
    pub bytes: u64,
}

/// `index.json`: the store's only mutable file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    /// Full reference → image ID.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Image ID → what the store knows of it.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: String,
    pub manifest: String,
    /// The index (manifest list) it was chosen from, if any.
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub platform: Platform,
    pub layers: Vec<LayerRecord>,
    #[serde(default)]
    pub created: Option<String>,
    /// Unix seconds of the last pull.
    #[serde(default)]
    pub pulled_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    /// The blob as stored (compressed or not).
    pub blob: String,
    pub diff_id: String,
    pub size: u64,
}

/// The image store. Cheap to clone; every method re-reads the index, so
/// several processes can share one store.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// `sha256:<hex>` → `<hex>`, for file names. Digests are validated before
/// they reach here, but a name with a `/` must never become a path.
fn hex(digest: &str) -> &str {
    let h = digest.strip_prefix("sha256:").unwrap_or(digest);
    if h.contains('/') || h.starts_with('.') {
        "invalid"
    } else {
        h
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ImageStore {
    /// Opens (creating if needed) the store under `<root>/images`.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let dir = root.join("images");
        for sub in ["blobs/sha256", "layers", "tmp"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(ImageError::io("create", &path))?;
        }
        Ok(ImageStore { dir })
    }

    /// `<root>/images`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex(digest))
    }

    /// Where the layer with this DiffID is unpacked (whether or not it is).
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.dir.join("layers").join(hex(diff_id))
    }

    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.dir
            .join("tmp")
            .join(format!("{what}-{}-{n}-{nanos}", std::process::id()))
    }

    fn lock(&self, name: &str, shared: bool) -> Result<File, ImageError> {
        let path = self.dir.join(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io("open the lock", &path))?;
        if shared {
            file.lock_shared()
        } else {
            file.lock()
        }
        .map_err(ImageError::io("lock", &path))?;
        Ok(file)
    }

    /// Held (shared) while blobs are being added, so that a GC (exclusive)
    /// never deletes a blob an unfinished pull or load has just written.
    pub(crate) fn adding(&self) -> Result<File, ImageError> {
        self.lock("gc.lock", true)
    }

    pub(crate) fn read_index(&self) -> Result<Index, ImageError> {
        let path = self.dir.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
                what: path.display().to_string(),
                why: format!("{e}; move it away and pull again"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io("read", &path)(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| ImageError::BadJson {
            what: "the store index".into(),
            why: e.to_string(),
        })?;
        crate::state::write_atomic(&self.dir.join("index.json"), &bytes)?;
        Ok(())
    }

    /// Changes the index under its lock.
    fn update_index<T>(
        &self,
        change: impl FnOnce(&mut Index) -> Result<T, ImageError>,
    ) -> Result<T, ImageError> {
        let _lock = self.lock("index.lock", false)?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores `bytes` as a blob, checking them against `expected` when
    /// given. Returns the digest.
    pub(crate) fn write_blob(
        &self,
        expected: Option<&str>,
        bytes: &[u8],
    ) -> Result<String, ImageError> {
        let digest = sha256_hex(bytes);
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ImageError::DigestMismatch {
                what: "a blob".into(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let path = self.blob_path(&digest);
        if !path.is_file() {
            crate::state::write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Hashes a file and moves (or, for a file that is not ours, copies)
    /// it into the blobs. Returns its digest and size.
    pub(crate) fn add_blob_file(
        &self,
        file: &Path,
        expected: Option<&str>,
        consume: bool,
    ) -> Result<(String, u64), ImageError> {
        let (digest, size) = {
            let f = File::open(file).map_err(ImageError::io("open", file))?;
            unpack::HashingReader::new(io::BufReader::with_capacity(256 * 1024, f))
                .finish()
                .map_err(ImageError::io("read", file))?
        };
        if let Some(expected) = expected
            && expected != digest
        {
            return Err(ImageError::DigestMismatch {
                what: file.display().to_string(),
                expected: expected.to_owned(),
                actual: digest,
            });
        }
        let dest = self.blob_path(&digest);
        if dest.is_file() {
            if consume {
                let _ = fs::remove_file(file);
            }
            return Ok((digest, size));
        }
        let staged = if consume {
            file.to_owned()
        } else {
            let tmp = self.tmp_path("blob");
            fs::copy(file, &tmp).map_err(ImageError::io("copy", file))?;
            tmp
        };
        self.publish_blob(&staged, &digest)?;
        Ok((digest, size))
    }

    /// Moves a verified temporary file to its digest's name, durably.
    pub(crate) fn publish_blob(&self, tmp: &Path, digest: &str) -> Result<(), ImageError> {
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(ImageError::io("flush", tmp))?;
        let dest = self.blob_path(digest);
        fs::rename(tmp, &dest).map_err(ImageError::io("store the blob", &dest))?;
        Ok(())
    }

    /// Reads a stored blob (configurations, manifests: small ones).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(ImageError::io("read the blob", &path))
    }

    /// Unpacks a stored layer blob, unless a layer with `expected` DiffID
    /// is already there. Returns the DiffID, checked against `expected`.
    pub(crate) fn ensure_layer(
        &self,
        blob: &str,
        expected: Option<&str>,
    ) -> Result<String, ImageError> {
        if let Some(d) = expected
            && self.layer_path(d).is_dir()
        {
            return Ok(d.to_owned());
        }
        let tmp = self.tmp_path("layer");
        fs::create_dir(&tmp).map_err(ImageError::io("create", &tmp))?;
        let result = (|| {
            let path = self.blob_path(blob);
            let file = File::open(&path).map_err(ImageError::io("open the layer blob", &path))?;
            let unpacked = unpack::unpack_layer(file, &tmp)?;
            if let Some(expected) = expected
                && expected != unpacked.diff_id
            {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {blob} unpacked"),
                    expected: expected.to_owned(),
                    actual: unpacked.diff_id,
                });
            }
            // Durable before it is published: a crash must not leave a
            // half-written layer under its final name.
            let fd = File::open(&tmp).map_err(ImageError::io("open", &tmp))?;
            rustix::fs::syncfs(&fd).map_err(|e| ImageError::io("flush", &tmp)(e.into()))?;
            Ok(unpacked.diff_id)
        })();
        let diff_id = match result {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dest = self.layer_path(&diff_id);
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_dir_all(&tmp);
            // Another process published the same layer first: same bytes.
            if !dest.is_dir() {
                return Err(ImageError::io("store the layer", &dest)(e));
            }
        }
        Ok(diff_id)
    }

    /// Records an image and points `tags` at it (moving them from any image
    /// they named before). Returns the image as stored.
    pub(crate) fn register(
        &self,
        record: ImageRecord,
        tags: &[ImageRef],
    ) -> Result<Image, ImageError> {
        let id = record.id.clone();
        self.update_index(|index| {
            let merged = match index.images.remove(&id) {
                Some(mut old) => {
                    for d in record.repo_digests.iter() {
                        if !old.repo_digests.contains(d) {
                            old.repo_digests.push(d.clone());
                        }
                    }
                    ImageRecord {
                        repo_digests: old.repo_digests,
                        pulled_at: record.pulled_at.or(old.pulled_at),
                        ..record
                    }
                }
                None => record,
            };
            index.images.insert(id.clone(), merged);
            for tag in tags {
                index.tags.insert(tag.to_string(), id.clone());
            }
            Ok(())
        })?;
        self.get(&id)
    }

    fn image_of(&self, index: &Index, record: &ImageRecord) -> Result<Image, ImageError> {
        let bytes = self.read_blob(&record.id)?;
        let file: ConfigFile = serde_json::from_slice(&bytes).map_err(|e| ImageError::BadJson {
            what: format!("the configuration of image {}", record.id),
            why: e.to_string(),
        })?;
        Ok(Image {
            id: record.id.clone(),
            manifest_digest: record.manifest.clone(),
            tags: index
                .tags
                .iter()
                .filter(|(_, id)| **id == record.id)
                .map(|(t, _)| t.clone())
                .collect(),
            repo_digests: record.repo_digests.clone(),
            platform: record.platform.clone(),
            created: record.created.clone(),
            config: file.config.unwrap_or_default(),
            layers: record
                .layers
                .iter()
                .map(|l| self.layer_path(&l.diff_id))
                .collect(),
            diff_ids: record.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size: record.layers.iter().map(|l| l.size).sum(),
            pulled_at: record
                .pulled_at
                .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        })
    }

    /// Writes the image's merged file system (every layer, whiteouts
    /// applied) into `dest`, an existing empty directory: for copying an
    /// image's content without mounting it. Uses the layer blobs, through
    /// the same confined unpacker.
    pub fn flatten(&self, image: &Image, dest: &Path) -> Result<(), ImageError> {
        let index = self.read_index()?;
        let record = index
            .images
            .get(&image.id)
            .ok_or_else(|| ImageError::NotFound(image.id.clone()))?;
        for layer in &record.layers {
            let path = self.blob_path(&layer.blob);
            let file = File::open(&path).map_err(ImageError::io(
                "open the layer blob (pull the image again if it is missing)",
                &path,
            ))?;
            let unpacked = unpack::unpack_layer_with(file, dest, unpack::Whiteouts::Apply)?;
            if unpacked.diff_id != layer.diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {}", layer.blob),
                    expected: layer.diff_id.clone(),
                    actual: unpacked.diff_id,
                });
            }
        }
        Ok(())
    }

    /// Every image, newest first by creation, then by ID.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let index = self.read_index()?;
        let mut out = index
            .images
            .values()
            .map(|r| self.image_of(&index, r))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Finds an image by reference (`busybox`, `app:1`, `name@sha256:…`),
    /// by ID (`sha256:…`), or by a unique ID prefix (at least 4 hex digits).
    pub fn resolve(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let index = self.read_index()?;
        // A tag pointing at an unknown ID (an index edited by hand) is
        // treated as absent rather than trusted.
        match find(&index, reference)?.and_then(|id| index.images.get(&id)) {
            Some(record) => Ok(Some(self.image_of(&index, record)?)),
            None => Ok(None),
        }
    }

    /// Like [`resolve`](Self::resolve), with a helpful error when absent.
    pub fn get(&self, reference: &str) -> Result<Image, ImageError> {
        self.resolve(reference)?
            .ok_or_else(|| ImageError::NotFound(reference.to_owned()))
    }

    /// Image IDs of the references containers use (unknown ones skipped):
    /// what `prune` and `remove` must keep.
    pub fn ids_of<'a>(
        &self,
        references: impl IntoIterator<Item = &'a str>,
    ) -> Result<BTreeSet<String>, ImageError> {
        let index = self.read_index()?;
        let mut out = BTreeSet::new();
        for r in references {
            if let Ok(Some(id)) = find(&index, r) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Removes a tag, or an image by ID. Removing the last tag of an image
    /// removes the image; its blobs and layers go unless another image
    /// shares them. `in_use`: IDs containers use; such an image is refused,
    /// or with `force` only untagged.
    pub fn remove(
        &self,
        reference: &str,
        in_use: &BTreeSet<String>,
        force: bool,
    ) -> Result<RemoveReport, ImageError> {
        let _gc = self.lock("gc.lock", false)?;
        let report = self.update_index(|index| {
            let id = find(index, reference)?
                .ok_or_else(|| ImageError::NotFound(reference.to_owned()))?;
            let tags: Vec<String> = index
                .tags
                .iter()
                .filter(|(_, v)| **v == id)
                .map(|(k, _)| k.clone())
                .collect();
            let by_tag = ImageRef::parse(reference)
                .ok()
                .map(|r| r.to_string())
                .filter(|t| tags.contains(t));
            let mut report = RemoveReport::default();
            let untag: Vec<String> = match by_tag {
                Some(t) => vec![t],
                None if tags.len() > 1 && !force => {
                    return Err(ImageError::MultipleTags {
                        id,
                        tags: tags.join(", "),
                    });
                }
                None => tags.clone(),
            };
            let last = untag.len() == tags.len();
            let used = in_use.contains(&id);
            if last && used && !force {
                return Err(ImageError::InUse {
                    image: reference.to_owned(),
                });
            }
            for t in untag {
                index.tags.remove(&t);
                report.untagged.push(t);
            }
            // Forced on an image a container uses: only the names go. Its
            // layers are that container's overlay lower directories, and
            // removing them under a mount would break it; `prune` removes
            // the image once no container uses it.
            if last && !used {
                index.images.remove(&id);
                report.deleted.push(id);
            }
            Ok(report)
        })?;
        self.collect_garbage(&self.read_index()?)?;
        Ok(report)
    }

    /// Removes every image no container uses (`in_use`: their IDs), then
    /// every blob and layer no remaining image needs, and stale temporary
    /// files.
    pub fn prune(&self, in_use: &BTreeSet<String>) -> Result<PruneReport, ImageError> {
        let _gc = self.lock("gc.lock", false)?;
        let removed = self.update_index(|index| {
            let gone: Vec<String> = index
                .images
                .keys()
                .filter(|id| !in_use.contains(*id))
                .cloned()
                .collect();
            for id in &gone {
                index.images.remove(id);
            }
            index.tags.retain(|_, id| !gone.contains(id));
            Ok(gone)
        })?;
        let mut report = self.collect_garbage(&self.read_index()?)?;
        report.images = removed;
        Ok(report)
    }

    /// Deletes blobs and layers `index` does not reference. Called with the
    /// GC lock held exclusively, so no pull is adding blobs meanwhile.
    fn collect_garbage(&self, index: &Index) -> Result<PruneReport, ImageError> {
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for r in index.images.values() {
            blobs.insert(hex(&r.id).to_owned());
            blobs.insert(hex(&r.manifest).to_owned());
            if let Some(i) = &r.index {
                blobs.insert(hex(i).to_owned());
            }
            for l in &r.layers {
                blobs.insert(hex(&l.blob).to_owned());
                layers.insert(hex(&l.diff_id).to_owned());
            }
        }
        let mut report = PruneReport::default();
        let blob_dir = self.dir.join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir)
            .map_err(ImageError::io("list", &blob_dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                report.bytes += entry.metadata().map_or(0, |m| m.len());
                fs::remove_file(entry.path()).map_err(ImageError::io("remove", entry.path()))?;
                report.blobs += 1;
            }
        }
        let layer_dir = self.dir.join("layers");
        for entry in fs::read_dir(&layer_dir)
            .map_err(ImageError::io("list", &layer_dir))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !layers.contains(&name) {
                // std's remove_dir_all never follows symlinks.
                fs::remove_dir_all(entry.path()).map_err(ImageError::io("remove", entry.path()))?;
                report.layers += 1;
            }
        }
        // Leftovers of interrupted pulls: nobody is adding (we hold the lock).
        let tmp = self.dir.join("tmp");
        for entry in fs::read_dir(&tmp)
            .map_err(ImageError::io("list", &tmp))?
            .flatten()
        {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
        Ok(report)
    }
}

/// The ID `reference` names in `index`.
fn find(index: &Index, reference: &str) -> Result<Option<String>, ImageError> {
    if let Ok(r) = ImageRef::parse(reference) {
        if let Some(d) = &r.digest {
            let wanted = format!("{}@{d}", r.name());
            if let Some(rec) = index
                .images
                .values()
                .find(|i| i.repo_digests.contains(&wanted))
            {
                return Ok(Some(rec.id.clone()));
            }
        } else if let Some(id) = index.tags.get(&r.to_string()) {
            return Ok(Some(id.clone()));
        }
    }
    let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hits: Vec<&String> = index
        .images
        .keys()
        .filter(|id| hex(id).starts_with(prefix))
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(ImageError::Ambiguous {
            reference: reference.to_owned(),
            ids: many
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Copies `reader` into a new temporary file of the store, hashing it.
pub(crate) fn stage(
    store: &ImageStore,
    mut reader: impl Read,
) -> Result<(PathBuf, String, u64), ImageError> {
    let tmp = store.tmp_path("blob");
    let mut file = File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(ImageError::io("read the input for", &tmp)(e));
            }
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Err(e) = file.write_all(&buf[..n]) {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::io("write", &tmp)(e));
        }
    }
    Ok((tmp, format!("sha256:{:x}", hasher.finalize()), size))
}
