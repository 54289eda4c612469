//! Pulling from a registry: the OCI distribution protocol, through
//! oci-client.
//!
//! A pull is: fetch the manifest for the reference (a tag or a digest);
//! if it is an index, pick the entry for the wanted platform and fetch that
//! manifest; fetch the configuration; then fetch the layers the store does
//! not have yet, several at once, and unpack each as soon as it is
//! complete. Every byte is checked against the digest that named it: the
//! manifest against the reference's digest, the configuration and layers
//! against the manifest, the unpacked layers against the configuration's
//! DiffIDs. A layer whose DiffID is already unpacked in the store is not
//! downloaded at all, whichever image it came with.
//!
//! Registries on this machine (`localhost`, `127.*`, `[::1]`) and those
//! named with `--insecure-registry` are spoken to over plain HTTP, as
//! docker does; all others over HTTPS.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::auth::{Credentials, DockerConfig};
use super::config::ConfigFile;
use super::platform::Platform;
use super::reference::{ImageRef, check_digest};
use super::store::{ImageRecord, ImageStore, LayerRecord, sha256_hex};
use super::{Image, ImageError};

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `None`: the host's.
    pub platform: Option<Platform>,
    /// `None`: from docker's config.json.
    pub credentials: Option<Credentials>,
    /// docker's config.json; `None`: `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// Registries (`host:port`) to speak plain HTTP to.
    pub insecure_registries: Vec<String>,
    /// Layers downloaded at once; 0 means 3, docker's default.
    pub concurrency: usize,
}

/// What a pull is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest is known: its digest, how many layers it has and their
    /// total size as stored in the registry.
    Resolved {
        reference: String,
        manifest: String,
        layers: usize,
        size: u64,
    },
    /// This layer is already in the store.
    LayerCached { digest: String, size: u64 },
    /// Bytes of a layer received so far.
    LayerProgress {
        digest: String,
        done: u64,
        total: u64,
    },
    /// The layer is downloaded and verified.
    LayerDownloaded { digest: String, size: u64 },
    /// The layer is unpacked.
    LayerUnpacked { digest: String },
}

/// Manifest and index media types stack understands, best first.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The parts of manifests and indexes stack reads (OCI and Docker v2
/// schema 2 share this shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlatformJson {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestJson {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Present in an index instead of config and layers.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

pub(crate) fn parse_manifest(bytes: &[u8], what: &str) -> Result<ManifestJson, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::BadJson {
        what: what.to_owned(),
        why: e.to_string(),
    })
}

/// Picks the index entry for `wanted` (entries without a platform, such as
/// attestations, never match).
pub(crate) fn choose_platform<'a>(
    entries: &'a [Descriptor],
    wanted: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, ImageError> {
    let candidates: Vec<(usize, Platform)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.platform.as_ref().filter(|p| p.os != "unknown").map(|p| {
                (
                    i,
                    Platform::new(&p.os, &p.architecture, p.variant.as_deref()),
                )
            })
        })
        .collect();
    match wanted.choose(candidates.iter().map(|(_, p)| p)) {
        Some(k) => Ok(&entries[candidates[k].0]),
        None => Err(ImageError::NoPlatform {
            reference: reference.to_owned(),
            platform: wanted.to_string(),
            available: candidates
                .iter()
                .map(|(_, p)| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn registry_error(reference: &ImageRef, e: oci_client::errors::OciDistributionError) -> ImageError {
    use oci_client::errors::OciDistributionError as E;
    match e {
        E::AuthenticationFailure(why) => ImageError::Unauthorized {
            reference: reference.to_string(),
            registry: reference.registry.clone(),
            why,
        },
        E::UnauthorizedError { url } => ImageError::Unauthorized {
            reference: reference.to_string(),
            registry: reference.registry.clone(),
            why: format!("401 Unauthorized for {url}"),
        },
        other => ImageError::Registry {
            reference: reference.to_string(),
            why: with_causes(&other),
        },
    }
}

/// An error and its causes on one line: reqwest's top-level message
/// ("error sending request") says nothing without them.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

impl ImageStore {
    /// Pulls `reference` into the store and returns it. Layers already in
    /// the store are not downloaded again. `progress` is called from the
    /// pull's tasks; keep it quick.
    pub async fn pull(
        &self,
        reference: &ImageRef,
        options: &PullOptions,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<Image, ImageError> {
        let _adding = self.adding()?;
        let credentials = match &options.credentials {
            Some(c) => c.clone(),
            None => match options
                .docker_config
                .clone()
                .or_else(DockerConfig::default_path)
            {
                Some(path) => DockerConfig::load(&path)?.credentials_for(&reference.registry)?,
                None => Credentials::Anonymous,
            },
        };
        let mut plain_http = options.insecure_registries.clone();
        if reference.is_local_registry() {
            plain_http.push(reference.registry.clone());
        }
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            // stack chooses among index entries itself (variants, errors
            // that list what is available).
            platform_resolver: None,
            // An unreachable registry fails instead of hanging a deploy.
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            ..Default::default()
        });
        let auth = credentials.to_oci();
        let oref = reference.to_oci();
        let shown = reference.to_string();

        let (bytes, digest) = client
            .pull_manifest_raw(&oref, &auth, ACCEPT)
            .await
            .map_err(|e| registry_error(reference, e))?;
        check(&bytes, &digest, &format!("the manifest of {shown}"))?;
        let top = parse_manifest(&bytes, &format!("the manifest of {shown}"))?;
        let wanted = options.platform.clone().unwrap_or_else(Platform::host);
        let (index_digest, manifest_bytes, manifest_digest, manifest) = match &top.manifests {
            Some(entries) => {
                let entry = choose_platform(entries, &wanted, &shown)?;
                let at = reference.at_digest(&entry.digest);
                let (mbytes, mdigest) = client
                    .pull_manifest_raw(&at.to_oci(), &auth, ACCEPT)
                    .await
                    .map_err(|e| registry_error(reference, e))?;
                check(
                    &mbytes,
                    &entry.digest,
                    &format!("the {wanted} manifest of {shown}"),
                )?;
                let m = parse_manifest(&mbytes, &format!("the {wanted} manifest of {shown}"))?;
                self.write_blob(Some(&digest), &bytes)?;
                (Some(digest), mbytes, mdigest, m)
            }
            None => (None, bytes, digest, top),
        };
        let config_desc = manifest
            .config
            .clone()
            .ok_or_else(|| ImageError::NotAnImage {
                reference: shown.clone(),
                media_type: manifest
                    .media_type
                    .clone()
                    .unwrap_or_else(|| "manifest without a configuration".into()),
            })?;
        progress(PullEvent::Resolved {
            reference: shown.clone(),
            manifest: manifest_digest.clone(),
            layers: manifest.layers.len(),
            size: manifest
                .layers
                .iter()
                .map(|l| u64::try_from(l.size).unwrap_or(0))
                .sum(),
        });

        let config_bytes = if self.has_blob(&config_desc.digest) {
            self.read_blob(&config_desc.digest)?
        } else {
            let mut out = Vec::new();
            client
                .pull_blob(&oref, config_desc.digest.as_str(), &mut out)
                .await
                .map_err(|e| registry_error(reference, e))?;
            self.write_blob(Some(&config_desc.digest), &out)?;
            out
        };
        let config: ConfigFile =
            serde_json::from_slice(&config_bytes).map_err(|e| ImageError::BadJson {
                what: format!("the configuration of {shown}"),
                why: e.to_string(),
            })?;
        let diff_ids = config.rootfs.diff_ids.clone();
        check_layers(&manifest, &diff_ids, &shown)?;

        let client = Arc::new(client);
        let concurrency = if options.concurrency == 0 {
            3
        } else {
            options.concurrency
        };
        let jobs = manifest
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(layer, diff_id)| {
                let client = Arc::clone(&client);
                let oref = oref.clone();
                async move {
                    self.fetch_layer(&client, &oref, reference, layer, diff_id, progress)
                        .await?;
                    Ok::<_, ImageError>(LayerRecord {
                        blob: layer.digest.clone(),
                        diff_id: diff_id.clone(),
                        size: u64::try_from(layer.size).unwrap_or(0),
                    })
                }
            });
        let layers: Vec<LayerRecord> = futures_util::stream::iter(jobs)
            .buffered(concurrency)
            .try_collect()
            .await?;

        self.write_blob(Some(&manifest_digest), &manifest_bytes)?;
        let repo_digest = format!(
            "{}@{}",
            reference.name(),
            index_digest.as_ref().unwrap_or(&manifest_digest)
        );
        let record = ImageRecord {
            id: config_desc.digest.clone(),
            manifest: manifest_digest,
            index: index_digest,
            repo_digests: vec![repo_digest],
            platform: Platform::new(&config.os, &config.architecture, config.variant.as_deref()),
            layers,
            created: config.created.clone(),
            pulled_at: Some(super::store::now_secs()),
        };
        let tags: Vec<ImageRef> = match &reference.tag {
            Some(_) => vec![ImageRef {
                digest: None,
                ..reference.clone()
            }],
            None => Vec::new(),
        };
        self.register(record, &tags)
    }

    async fn fetch_layer(
        &self,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        reference: &ImageRef,
        layer: &Descriptor,
        diff_id: &str,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<(), ImageError> {
        let total = u64::try_from(layer.size).unwrap_or(0);
        if self.layer_path(diff_id).is_dir() {
            progress(PullEvent::LayerCached {
                digest: layer.digest.clone(),
                size: total,
            });
            return Ok(());
        }
        if !self.has_blob(&layer.digest) {
            let tmp = self.tmp_path("blob");
            let result = self
                .download(client, oref, reference, layer, &tmp, progress)
                .await;
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        progress(PullEvent::LayerDownloaded {
            digest: layer.digest.clone(),
            size: total,
        });
        let store = self.clone();
        let (blob, diff) = (layer.digest.clone(), diff_id.to_owned());
        tokio::task::spawn_blocking(move || store.ensure_layer(&blob, Some(&diff)))
            .await
            .map_err(|e| {
                ImageError::io("unpack", self.layer_path(diff_id))(std::io::Error::other(e))
            })??;
        progress(PullEvent::LayerUnpacked {
            digest: layer.digest.clone(),
        });
        Ok(())
    }

    async fn download(
        &self,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        reference: &ImageRef,
        layer: &Descriptor,
        tmp: &std::path::Path,
        progress: &(dyn Fn(PullEvent) + Send + Sync),
    ) -> Result<(), ImageError> {
        let total = u64::try_from(layer.size).unwrap_or(0);
        let desc = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size,
            ..Default::default()
        };
        let mut stream = client
            .pull_blob_stream(oref, &desc)
            .await
            .map_err(|e| registry_error(reference, e))?;
        let file = tokio::fs::File::create(tmp)
            .await
            .map_err(ImageError::io("create", tmp))?;
        let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut hasher = Sha256::new();
        let (mut done, mut reported) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Registry {
                reference: reference.to_string(),
                why: format!("downloading layer {} failed: {e}", layer.digest),
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(ImageError::io("write", tmp))?;
            done += chunk.len() as u64;
            // One event per MiB is plenty for a display.
            if done - reported >= 1 << 20 {
                reported = done;
                progress(PullEvent::LayerProgress {
                    digest: layer.digest.clone(),
                    done,
                    total,
                });
            }
        }
        file.flush().await.map_err(ImageError::io("write", tmp))?;
        drop(file);
        let actual = format!("sha256:{:x}", hasher.finalize());
        if actual != layer.digest {
            return Err(ImageError::DigestMismatch {
                what: format!("layer {} of {reference}", layer.digest),
                expected: layer.digest.clone(),
                actual,
            });
        }
        let store = self.clone();
        let (tmp, digest) = (tmp.to_owned(), layer.digest.clone());
        tokio::task::spawn_blocking(move || store.publish_blob(&tmp, &digest))
            .await
            .map_err(|e| {
                ImageError::io("store", self.blob_path(&layer.digest))(std::io::Error::other(e))
            })?
    }
}

/// Checks that a manifest and its configuration agree, and that every
/// digest in them is well formed: they become file names in the store.
pub(crate) fn check_layers(
    manifest: &ManifestJson,
    diff_ids: &[String],
    shown: &str,
) -> Result<(), ImageError> {
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::LayerCount {
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let named = manifest.layers.iter().map(|l| &l.digest).chain(diff_ids);
    for digest in named.chain(manifest.config.iter().map(|c| &c.digest)) {
        check_digest(digest).map_err(|why| ImageError::BadJson {
            what: format!("the manifest or configuration of {shown}"),
            why,
        })?;
    }
    Ok(())
}

/// Checks that `bytes` hash to `digest`.
fn check(bytes: &[u8], digest: &str, what: &str) -> Result<(), ImageError> {
    let actual = sha256_hex(bytes);
    if actual == digest {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            expected: digest.to_owned(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_platform_from_an_index_and_lists_the_others() {
        let index = parse_manifest(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,
                 "platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,
                 "platform":{"os":"linux","architecture":"amd64"}},
                {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,
                 "platform":{"os":"unknown","architecture":"unknown"}}]}"#,
            "test",
        )
        .unwrap();
        let entries = index.manifests.unwrap();
        let pick = |p: &str| {
            choose_platform(&entries, &Platform::parse(p).unwrap(), "x").map(|d| d.digest.clone())
        };
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:b");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:a");
        let err = pick("linux/s390x").unwrap_err().to_string();
        assert!(err.contains("linux/arm64, linux/amd64"), "{err}");
    }
}
