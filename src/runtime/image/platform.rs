//! Platforms (`linux/amd64`, `linux/arm64/v8`) and choosing one from an index.
//!
//! A multi-platform image is an *index* (Docker calls it a manifest list)
//! whose entries are one image manifest per platform. Pulling picks the
//! entry for the host, or for the service's `platform:`. Names are
//! normalized first, because the same machine goes by several names
//! (`x86_64` is `amd64`, `aarch64` is `arm64`, and `arm64` means variant
//! `v8` unless said otherwise), as containerd's platform matcher does.

use std::fmt;

use super::ImageError;

/// An operating system, architecture and optional CPU variant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform stack runs on.
    pub fn host() -> Platform {
        Platform::new("linux", std::env::consts::ARCH, None)
    }

    /// A normalized platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let arch = architecture.to_ascii_lowercase();
        let variant = variant
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        let (architecture, variant) = match arch.as_str() {
            "x86_64" | "x86-64" | "amd64" => ("amd64", variant),
            "aarch64" | "arm64" => ("arm64", variant.filter(|v| v != "v8" && v != "8")),
            "armhf" => ("arm", Some("v7".into())),
            "armel" => ("arm", Some("v6".into())),
            "arm" => (
                "arm",
                Some(variant.map_or("v7".into(), |v| {
                    if v.starts_with('v') {
                        v
                    } else {
                        format!("v{v}")
                    }
                })),
            ),
            "i386" | "i686" | "x86" | "386" => ("386", variant),
            "powerpc64" | "ppc64le" => ("ppc64le", variant),
            other => (other, variant),
        };
        Platform {
            os,
            architecture: architecture.to_owned(),
            variant,
        }
    }

    /// Parses `os/arch[/variant]` (compose's `platform:` and `--platform`).
    pub fn parse(text: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(ImageError::BadPlatform(text.to_owned())),
        }
    }

    /// Whether an index entry for `candidate` can run where `self` is asked
    /// for. A request without a variant accepts any variant.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none() || self.variant == candidate.variant)
    }

    /// The index of the best candidate: an exact match (variant included)
    /// before a looser one; the first in index order among equals.
    pub fn choose<'a>(&self, candidates: impl IntoIterator<Item = &'a Platform>) -> Option<usize> {
        let candidates: Vec<&Platform> = candidates.into_iter().collect();
        candidates
            .iter()
            .position(|c| *c == self)
            .or_else(|| candidates.iter().position(|c| self.matches(c)))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(p("linux/x86_64"), p("linux/amd64"));
        assert_eq!(p("linux/aarch64"), p("linux/arm64/v8"));
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("Linux/AMD64").to_string(), "linux/amd64");
        assert!(Platform::parse("amd64").is_err());
        assert!(Platform::parse("linux/").is_err());
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn chooses_the_matching_entry() {
        let index = [
            p("linux/arm/v6"),
            p("linux/arm64"),
            p("linux/amd64"),
            p("linux/arm/v7"),
        ];
        assert_eq!(p("linux/amd64").choose(&index), Some(2));
        assert_eq!(p("linux/arm64/v8").choose(&index), Some(1));
        assert_eq!(p("linux/arm/v7").choose(&index), Some(3));
        assert_eq!(p("linux/arm").choose(&index), Some(3));
        assert_eq!(p("linux/s390x").choose(&index), None);
        assert_eq!(p("windows/amd64").choose(&index), None);
        // Without a variant in the request, any variant will do.
        let loose = Platform {
            variant: None,
            ..p("linux/arm")
        };
        assert_eq!(loose.choose(&index), Some(0));
    }
}
