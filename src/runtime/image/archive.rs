//! Images without a registry: `docker save` archives, OCI image layouts,
//! and plain root file systems.
//!
//! A **docker-save archive** is a tar holding `manifest.json` (a list of
//! `{Config, RepoTags, Layers}` naming files inside the archive), the
//! configuration JSON and one tar per layer. An **OCI image layout** is a
//! directory (or a tar of one) with an `oci-layout` marker, an `index.json`
//! listing manifests (named by the annotation
//! `org.opencontainers.image.ref.name`, or containerd's
//! `io.containerd.image.name`), and every blob under `blobs/sha256/`.
//! Docker 25 and later write both in one archive; `manifest.json` wins,
//! because it carries the full tags.
//!
//! An archive is a stranger's tar like any layer, so it is first unpacked
//! with the same confined unpacker into a temporary directory of the store.
//! Every blob is hashed on the way in, and a layer's DiffID is checked
//! against the configuration's.
//!
//! `import` turns a directory or a tar of a root file system into a
//! one-layer image with a configuration built from `--change` lines.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{ConfigFile, ImageConfig, RootFs};
use super::platform::Platform;
use super::pull::{check_layers, choose_platform, parse_manifest};
use super::reference::{ImageRef, check_digest};
use super::store::{ImageRecord, ImageStore, LayerRecord, stage};
use super::{Image, ImageError, unpack};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// An image an archive held, and the names the archive gave it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: Image,
    /// Full references from the archive (none: loaded by ID only).
    pub names: Vec<String>,
}

/// A temporary directory of the store, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl ImageStore {
    /// Loads every image of a docker-save archive or an OCI image layout
    /// (a directory, or a tar of one, possibly compressed).
    pub fn load_archive(&self, path: &Path) -> Result<Vec<Loaded>, ImageError> {
        let _adding = self.adding()?;
        let meta = fs::metadata(path).map_err(ImageError::io("read", path))?;
        if meta.is_dir() {
            return self.load_dir(path, path, false);
        }
        let tmp = TempDir(self.tmp_path("archive"));
        fs::create_dir(&tmp.0).map_err(ImageError::io("create", &tmp.0))?;
        let file = File::open(path).map_err(ImageError::io("open", path))?;
        unpack::unpack_layer(file, &tmp.0)?;
        self.load_dir(&tmp.0, path, true)
    }

    fn load_dir(&self, dir: &Path, shown: &Path, consume: bool) -> Result<Vec<Loaded>, ImageError> {
        if dir.join("manifest.json").is_file() {
            self.load_docker_save(dir, shown, consume)
        } else if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
            self.load_oci_layout(dir, shown, consume)
        } else {
            Err(ImageError::UnknownArchive {
                path: shown.to_owned(),
            })
        }
    }

    /// Resolves a file name from inside an archive, refusing names that
    /// leave it (the archive's tar was confined, its JSON is not).
    fn inside(dir: &Path, name: &str, shown: &Path) -> Result<PathBuf, ImageError> {
        let rel = Path::new(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ImageError::BadArchive {
                path: shown.to_owned(),
                why: format!("it names `{name}`, outside the archive"),
            });
        }
        Ok(dir.join(rel))
    }

    fn load_docker_save(
        &self,
        dir: &Path,
        shown: &Path,
        consume: bool,
    ) -> Result<Vec<Loaded>, ImageError> {
        let bad = |why: String| ImageError::BadArchive {
            path: shown.to_owned(),
            why,
        };
        let text = fs::read(dir.join("manifest.json")).map_err(ImageError::io("read", shown))?;
        let entries: Vec<SaveEntry> = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("its manifest.json is not valid: {e}")))?;
        let mut images = Vec::new();
        for entry in entries {
            let config_path = Self::inside(dir, &entry.config, shown)?;
            let config_bytes =
                fs::read(&config_path).map_err(ImageError::io("read", &config_path))?;
            let config_id = self.write_blob(None, &config_bytes)?;
            let config: ConfigFile =
                serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadJson {
                    what: format!("the configuration {} in {}", entry.config, shown.display()),
                    why: e.to_string(),
                })?;
            if config.rootfs.diff_ids.len() != entry.layers.len() {
                return Err(ImageError::LayerCount {
                    layers: entry.layers.len(),
                    diff_ids: config.rootfs.diff_ids.len(),
                });
            }
            for diff_id in &config.rootfs.diff_ids {
                check_digest(diff_id)
                    .map_err(|why| bad(format!("its configuration lists a bad DiffID: {why}")))?;
            }
            let mut layers = Vec::new();
            let mut descriptors = Vec::new();
            for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
                let file = Self::inside(dir, name, shown)?;
                let (blob, size) = self.add_blob_file(&file, None, consume)?;
                self.ensure_layer(&blob, Some(diff_id))?;
                let media_type = media_type_of(&self.blob_path(&blob))?;
                descriptors.push(
                    serde_json::json!({"mediaType": media_type, "digest": blob, "size": size}),
                );
                layers.push(LayerRecord {
                    blob,
                    diff_id: diff_id.clone(),
                    size,
                });
            }
            // A docker-save archive has no manifest blob: write the OCI
            // manifest it stands for, so every image has one.
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_id, "size": config_bytes.len()},
                "layers": descriptors,
            });
            let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
            let manifest_digest = self.write_blob(None, &manifest_bytes)?;
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| ImageRef::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let names = tags.iter().map(ToString::to_string).collect();
            images.push(Loaded {
                names,
                image: self.register(
                    ImageRecord {
                        id: config_id,
                        manifest: manifest_digest,
                        index: None,
                        repo_digests: Vec::new(),
                        platform: Platform::new(
                            &config.os,
                            &config.architecture,
                            config.variant.as_deref(),
                        ),
                        layers,
                        created: config.created.clone(),
                        pulled_at: None,
                    },
                    &tags,
                )?,
            });
        }
        Ok(images)
    }

    fn load_oci_layout(
        &self,
        dir: &Path,
        shown: &Path,
        consume: bool,
    ) -> Result<Vec<Loaded>, ImageError> {
        let blob_of = |digest: &str| -> Result<PathBuf, ImageError> {
            check_digest(digest).map_err(|why| ImageError::BadArchive {
                path: shown.to_owned(),
                why,
            })?;
            Ok(dir
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")))
        };
        let read_json = |digest: &str| -> Result<Vec<u8>, ImageError> {
            let path = blob_of(digest)?;
            let bytes = fs::read(&path).map_err(ImageError::io("read", &path))?;
            let actual = super::store::sha256_hex(&bytes);
            if actual != digest {
                return Err(ImageError::DigestMismatch {
                    what: path.display().to_string(),
                    expected: digest.to_owned(),
                    actual,
                });
            }
            Ok(bytes)
        };
        let index_path = dir.join("index.json");
        let top = parse_manifest(
            &fs::read(&index_path).map_err(ImageError::io("read", &index_path))?,
            &index_path.display().to_string(),
        )?;
        let mut images = Vec::new();
        for entry in top.manifests.unwrap_or_default() {
            let names = entry.annotations.clone().unwrap_or_default();
            // A full name is a tag; a bare `latest` names nothing we can
            // place in a repository (docker also loads those untagged).
            let tag = names
                .get("io.containerd.image.name")
                .or_else(|| names.get("org.opencontainers.image.ref.name"))
                .filter(|n| n.contains('/') || n.contains(':'))
                .and_then(|n| ImageRef::parse(n).ok());
            let mut manifest_digest = entry.digest.clone();
            let mut bytes = read_json(&manifest_digest)?;
            let mut manifest = parse_manifest(&bytes, &manifest_digest)?;
            let mut index_digest = None;
            if let Some(children) = &manifest.manifests {
                let chosen =
                    choose_platform(children, &Platform::host(), &shown.display().to_string())?
                        .digest
                        .clone();
                self.write_blob(Some(&manifest_digest), &bytes)?;
                index_digest = Some(manifest_digest);
                manifest_digest = chosen;
                bytes = read_json(&manifest_digest)?;
                manifest = parse_manifest(&bytes, &manifest_digest)?;
            }
            let Some(config_desc) = manifest.config.clone() else {
                continue;
            };
            let config_bytes = read_json(&config_desc.digest)?;
            self.write_blob(Some(&config_desc.digest), &config_bytes)?;
            let config: ConfigFile =
                serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadJson {
                    what: format!("the configuration {}", config_desc.digest),
                    why: e.to_string(),
                })?;
            check_layers(
                &manifest,
                &config.rootfs.diff_ids,
                &shown.display().to_string(),
            )?;
            let mut layers = Vec::new();
            for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
                if !self.layer_path(diff_id).is_dir() || !self.has_blob(&layer.digest) {
                    let (blob, _) =
                        self.add_blob_file(&blob_of(&layer.digest)?, Some(&layer.digest), consume)?;
                    self.ensure_layer(&blob, Some(diff_id))?;
                }
                layers.push(LayerRecord {
                    blob: layer.digest.clone(),
                    diff_id: diff_id.clone(),
                    size: u64::try_from(layer.size).unwrap_or(0),
                });
            }
            self.write_blob(Some(&manifest_digest), &bytes)?;
            let tags: Vec<ImageRef> = tag.into_iter().collect();
            let names = tags.iter().map(ToString::to_string).collect();
            images.push(Loaded {
                names,
                image: self.register(
                    ImageRecord {
                        id: config_desc.digest.clone(),
                        manifest: manifest_digest,
                        index: index_digest,
                        repo_digests: Vec::new(),
                        platform: Platform::new(
                            &config.os,
                            &config.architecture,
                            config.variant.as_deref(),
                        ),
                        layers,
                        created: config.created.clone(),
                        pulled_at: None,
                    },
                    &tags,
                )?,
            });
        }
        Ok(images)
    }

    /// Makes a one-layer image of a root file system (a directory, or a
    /// tar, possibly compressed), like `docker import`. `changes` are
    /// Dockerfile lines: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL,
    /// STOPSIGNAL, VOLUME.
    pub fn import_rootfs(
        &self,
        source: &Path,
        name: &ImageRef,
        changes: &[String],
    ) -> Result<Image, ImageError> {
        let mut run = ImageConfig::default();
        for change in changes {
            run.apply_change(change)?;
        }
        let _adding = self.adding()?;
        let meta = fs::metadata(source).map_err(ImageError::io("read", source))?;
        let (tmp, blob, size) = if meta.is_dir() {
            // Build the layer tar into memory-free pipe: a tar builder
            // writing into the staged file.
            let tmp = self.tmp_path("rootfs");
            let file = File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
            let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
            builder.follow_symlinks(false);
            builder.mode(tar::HeaderMode::Complete);
            let result = builder
                .append_dir_all(".", source)
                .and_then(|()| builder.into_inner())
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()));
            if let Err(e) = result {
                let _ = fs::remove_file(&tmp);
                return Err(ImageError::io("archive", source)(e));
            }
            let (digest, size) = {
                let f = File::open(&tmp).map_err(ImageError::io("read", &tmp))?;
                unpack::HashingReader::new(std::io::BufReader::new(f))
                    .finish()
                    .map_err(ImageError::io("read", &tmp))?
            };
            (tmp, digest, size)
        } else {
            let file = File::open(source).map_err(ImageError::io("open", source))?;
            stage(self, file)?
        };
        self.publish_blob(&tmp, &blob)?;
        let diff_id = self.ensure_layer(&blob, None)?;
        let host = Platform::host();
        let config = ConfigFile {
            architecture: host.architecture.clone(),
            os: host.os.clone(),
            variant: host.variant.clone(),
            created: Some(crate::time::rfc3339(super::store::now_secs() * 1000)),
            config: Some(run),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            extra: Default::default(),
        };
        let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::BadJson {
            what: "the new configuration".into(),
            why: e.to_string(),
        })?;
        let config_id = self.write_blob(None, &config_bytes)?;
        let media_type = media_type_of(&self.blob_path(&blob))?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_id, "size": config_bytes.len()},
            "layers": [{"mediaType": media_type, "digest": blob, "size": size}],
        });
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::BadJson {
            what: "the new manifest".into(),
            why: e.to_string(),
        })?;
        let manifest_digest = self.write_blob(None, &manifest_bytes)?;
        let tag = ImageRef {
            digest: None,
            ..name.clone()
        };
        self.register(
            ImageRecord {
                id: config_id,
                manifest: manifest_digest,
                index: None,
                repo_digests: Vec::new(),
                platform: host,
                layers: vec![LayerRecord {
                    blob,
                    diff_id,
                    size,
                }],
                created: config.created.clone(),
                pulled_at: None,
            },
            &[tag],
        )
    }
}

/// The OCI media type of a stored layer blob, from its magic bytes.
fn media_type_of(path: &Path) -> Result<&'static str, ImageError> {
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(ImageError::io("read", path))?;
    let n = std::io::Read::read(&mut file, &mut head).map_err(ImageError::io("read", path))?;
    Ok(match unpack::Compression::sniff(&head[..n]) {
        unpack::Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        unpack::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        unpack::Compression::None => "application/vnd.oci.image.layer.v1.tar",
    })
}
