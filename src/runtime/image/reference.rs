//! Image references, normalized the way docker does.
//!
//! Users write `busybox`, `nginx:1.27`, `ghcr.io/org/app@sha256:…` or
//! `localhost:5000/app`. Docker's rules turn each into a full reference:
//! the first component is a registry only if it contains a `.` or a `:` or
//! is `localhost`; otherwise the image lives on Docker Hub (`docker.io`),
//! and a single-component name there is an official image under
//! `library/`. A reference without a tag or digest means `:latest`. So
//! `busybox` is `docker.io/library/busybox:latest`. The store keys tags by
//! this full form, so `busybox` and `docker.io/library/busybox` are the
//! same image.

use std::fmt;
use std::str::FromStr;

use super::ImageError;

/// A normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`, …
    pub registry: String,
    /// `library/busybox`, `org/app`, …
    pub repository: String,
    /// `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

pub const DOCKER_HUB: &str = "docker.io";

impl ImageRef {
    /// Parses and normalizes a reference as docker does.
    pub fn parse(text: &str) -> Result<ImageRef, ImageError> {
        let bad = |why: &str| ImageError::BadReference {
            reference: text.to_owned(),
            why: why.to_owned(),
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|why| bad(&why))?;
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag is after the last `:` that follows the last `/` (a `:`
        // before a `/` is a registry port).
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !ok {
                return Err(bad(
                    "its tag may hold only letters, digits, `_`, `.` and `-` (at most 128)",
                ));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(bad(
                "its registry must be a host name or address with an optional numeric port",
            ));
        }
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        if path.is_empty()
            || path.split('/').any(|c| {
                c.is_empty()
                    || !c.chars().all(|ch| {
                        ch.is_ascii_lowercase()
                            || ch.is_ascii_digit()
                            || matches!(ch, '.' | '_' | '-')
                    })
                    || !c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            })
        {
            return Err(bad(
                "its repository name may hold only lowercase letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form docker prints: `busybox:latest` for Docker Hub's
    /// official images, `user/app:1` for other Hub images.
    pub fn familiar(&self) -> String {
        let full = self.to_string();
        full.strip_prefix("docker.io/library/")
            .or_else(|| full.strip_prefix("docker.io/"))
            .map_or(full.clone(), str::to_owned)
    }

    /// The reference the registry client understands.
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (None, tag) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }

    /// The same repository at another digest (a platform's manifest).
    pub fn at_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// Is the registry on this machine, so plain HTTP is expected?
    pub fn is_local_registry(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// `host`, `host:port`, `[v6]:port`: docker's domain grammar.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, Some(p)),
        _ => (registry, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// Checks `sha256:<64 lowercase hex>` (the only algorithm registries use).
pub fn check_digest(digest: &str) -> Result<(), String> {
    match digest.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{digest}` is not a digest of the form sha256:<64 hex digits>"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            full("index.docker.io/library/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(full("ghcr.io/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(full("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(full("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            full(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            full(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
        assert_eq!(
            ImageRef::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            ImageRef::parse("user/app:2").unwrap().familiar(),
            "user/app:2"
        );
        assert_eq!(
            ImageRef::parse("ghcr.io/a/b").unwrap().familiar(),
            "ghcr.io/a/b:latest"
        );
    }

    #[test]
    fn rejects_bad_references_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:abc",
            "a//b",
            "busybox:bad/tag",
            "-x",
        ] {
            let err = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid image reference"), "{bad}: {err}");
        }
    }

    #[test]
    fn local_registries_are_recognised() {
        assert!(
            ImageRef::parse("127.0.0.1:5000/a")
                .unwrap()
                .is_local_registry()
        );
        assert!(
            ImageRef::parse("localhost:5000/a")
                .unwrap()
                .is_local_registry()
        );
        assert!(!ImageRef::parse("ghcr.io/a").unwrap().is_local_registry());
        assert!(!ImageRef::parse("busybox").unwrap().is_local_registry());
    }
}
