//! Images: the store, registry pulls, archives, and safe layer unpacking.
//!
//! An OCI image is three kinds of JSON plus tarballs, all addressed by the
//! SHA-256 of their bytes (their *digest*): an optional **index** listing
//! one manifest per platform, a **manifest** naming one configuration blob
//! and the layer blobs in order, the **configuration** (what to run: env,
//! cmd, entrypoint, user, working dir, exposed ports, volumes, healthcheck,
//! labels, stop signal; and the DiffIDs, the digests of the *uncompressed*
//! layers), and the **layers**, tar archives of file-system changes, bottom
//! first. The image's ID is its configuration's digest, as in docker.
//!
//! [`ImageStore`] keeps them under `<root>/images`:
//!
//! ```text
//! images/blobs/sha256/<hex>    every blob, its name is its digest: verified before it is renamed into place
//! images/layers/<hex>/         each layer unpacked once (named by DiffID), shared read-only by every container
//! images/index.json            tags -> image IDs, and per image its manifest, layers and pull time
//! images/tmp/                  downloads and unpacks in progress (same file system, so a rename publishes them)
//! images/index.lock, gc.lock   writers of index.json serialize on the first; pulls share the second, GC takes it alone
//! ```
//!
//! Blobs and layers are immutable once in place and named by content, so
//! two processes pulling the same image at once can only write the same
//! bytes; the one that renames second discards its copy. An interrupted
//! pull leaves verified blobs that the next pull reuses and that `prune`
//! removes if nothing comes to need them.
//!
//! Where images come from: [`ImageStore::pull`] (any OCI distribution
//! registry, Docker Hub included), [`ImageStore::load_archive`] (`docker
//! save` archives and OCI layouts) and [`ImageStore::import_rootfs`] (a plain
//! root file system, like `docker import`). When to pull is
//! [`decide`]'s business, a pure function.

pub mod archive;
pub mod auth;
pub mod config;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod store;
pub mod unpack;

pub use crate::planner::pull_policy::{PullDecision, PullPolicy, decide};
pub use archive::Loaded;
pub use auth::{Credentials, DockerConfig};
pub use config::{HealthConfig, ImageConfig};
pub use platform::Platform;
pub use pull::{PullEvent, PullOptions};
pub use reference::ImageRef;
pub use store::{Image, ImageStore, PruneReport, RemoveReport};
pub use unpack::UnpackError;

use std::path::PathBuf;

/// Why an image operation failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("`{reference}` is not a valid image reference: {why}")]
    BadReference { reference: String, why: String },
    #[error(
        "`{0}` is not a platform; write os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"
    )]
    BadPlatform(String),
    #[error(
        "image `{0}` is not in the store; pull it (`stack pull`) or load it (`stack image load`)"
    )]
    NotFound(String),
    #[error("`{reference}` matches several images ({ids}); use more of the ID")]
    Ambiguous { reference: String, ids: String },
    #[error("image {image} is used by a container; stop it first, or pass --force")]
    InUse { image: String },
    #[error("image {id} is tagged {tags}; remove it by tag, or pass --force to remove every tag")]
    MultipleTags { id: String, tags: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{what} has digest {actual}, not the {expected} it was announced with; the download or file is corrupt: pull or load again"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{what} is not valid JSON for an image ({why}); the image is damaged or not an OCI/Docker image"
    )]
    BadJson { what: String, why: String },
    #[error(
        "the image has {layers} layers but its configuration lists {diff_ids} DiffIDs; the image is damaged"
    )]
    LayerCount { layers: usize, diff_ids: usize },
    #[error(
        "`{reference}` has no image for {platform} (it has: {available}); set `platform:` or --platform to one of those"
    )]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("`{reference}` is a {media_type}, not a container image")]
    NotAnImage {
        reference: String,
        media_type: String,
    },
    #[error(
        "registry error for `{reference}`: {why}; check the name, that the registry is reachable, and your credentials"
    )]
    Registry { reference: String, why: String },
    #[error(
        "the registry refused the credentials for `{reference}` ({why}); check them with `docker login {registry}`"
    )]
    Unauthorized {
        reference: String,
        registry: String,
        why: String,
    },
    #[error(
        "the credentials for {registry} in docker's config.json cannot be decoded; run `docker login {registry}` again"
    )]
    BadCredentials { registry: String },
    #[error("{} is not a valid docker config file ({why}); fix or move it", path.display())]
    DockerConfig { path: PathBuf, why: String },
    #[error(
        "the credential helper {program} failed for {registry}: {why}; check that it is installed and logged in"
    )]
    CredentialHelper {
        program: String,
        registry: String,
        why: String,
    },
    #[error("{} is neither a docker-save archive (manifest.json) nor an OCI image layout (oci-layout, index.json)", path.display())]
    UnknownArchive { path: PathBuf },
    #[error("the archive {} is damaged: {why}", path.display())]
    BadArchive { path: PathBuf, why: String },
    #[error(
        "`--change {0}` is not supported; use CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL or VOLUME"
    )]
    BadChange(String),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("cannot record the image store's index: {0}")]
    State(#[from] crate::state::StateError),
}

impl ImageError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path,
            source,
        }
    }
}
