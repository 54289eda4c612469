//! Registry credentials, read from docker's `config.json`.
//!
//! `docker login` writes credentials to `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`): under `auths`, keyed by registry, either
//! `auth` (base64 of `user:password`) or `username`/`password`, or
//! `registrytoken` (a bearer token). A `credsStore` or `credHelpers` entry
//! names a helper program `docker-credential-NAME` that prints them
//! instead. stack reads the same file, so a user who logged in with docker
//! (or podman with a docker config) can pull with stack.
//!
//! The registry then decides how they are used: a `WWW-Authenticate:
//! Bearer` challenge means they are exchanged at the token service for a
//! bearer token (anonymous pulls from Docker Hub get a token too), `Basic`
//! means they are sent as they are. The registry client handles both.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use super::ImageError;
use super::reference::DOCKER_HUB;

/// What to present to a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach logs or error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth;
        match self {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        }
    }
}

/// The parts of docker's `config.json` that hold credentials.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl DockerConfig {
    /// Where docker keeps its configuration: `$DOCKER_CONFIG/config.json`,
    /// else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
    }

    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig, ImageError> {
        match std::fs::read(path) {
            Ok(bytes) => DockerConfig::parse(&bytes).map_err(|e| ImageError::DockerConfig {
                path: path.to_owned(),
                why: e,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(ImageError::io("read", path)(e)),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<DockerConfig, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    /// The credentials for `registry` (as in a normalized reference:
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn credentials_for(&self, registry: &str) -> Result<Credentials, ImageError> {
        let wanted = registry_key(registry);
        let helper = self
            .cred_helpers
            .iter()
            .find(|(k, _)| registry_key(k) == wanted)
            .map(|(_, v)| v)
            .or(self.creds_store.as_ref());
        if let Some(entry) = self
            .auths
            .iter()
            .find(|(k, _)| registry_key(k) == wanted)
            .map(|(_, v)| v)
        {
            if let Some(token) = &entry.registrytoken {
                return Ok(Credentials::Bearer(token.clone()));
            }
            if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
                return Ok(Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                });
            }
            if let Some(auth) = &entry.auth {
                return decode_auth(auth).ok_or_else(|| ImageError::BadCredentials {
                    registry: registry.to_owned(),
                });
            }
        }
        match helper {
            Some(helper) => run_helper(helper, registry),
            None => Ok(Credentials::Anonymous),
        }
    }
}

/// Normalizes the keys docker writes (`https://index.docker.io/v1/`,
/// `docker.io`, `http://host:5000/v2/`) to a bare registry host.
fn registry_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_owned(),
        other => other.to_owned(),
    }
}

fn decode_auth(auth: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// Asks `docker-credential-NAME get` (the credential-helper protocol: the
/// server on standard input, JSON on standard output).
fn run_helper(helper: &str, registry: &str) -> Result<Credentials, ImageError> {
    let program = format!("docker-credential-{helper}");
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let failed = |why: String| ImageError::CredentialHelper {
        program: program.clone(),
        registry: registry.to_owned(),
        why,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        // The protocol's way of saying "nothing stored for this server".
        if text.contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| failed(e.to_string()))?;
    Ok(if answer.username == "<token>" {
        Credentials::Bearer(answer.secret)
    } else {
        Credentials::Basic {
            username: answer.username,
            password: answer.secret,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_docker_writes() {
        let config = DockerConfig::parse(
            br#"{
              "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                "127.0.0.1:5000": {"username": "u", "password": "p"},
                "http://reg.example:8080/v2/": {"registrytoken": "tok"},
                "broken.example": {"auth": "***"}
              },
              "HttpHeaders": {"User-Agent": "x"}
            }"#,
        )
        .unwrap();
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            config.credentials_for("docker.io").unwrap(),
            basic("user", "pa:ss")
        );
        assert_eq!(
            config.credentials_for("127.0.0.1:5000").unwrap(),
            basic("u", "p")
        );
        assert_eq!(
            config.credentials_for("reg.example:8080").unwrap(),
            Credentials::Bearer("tok".into())
        );
        assert_eq!(
            config.credentials_for("ghcr.io").unwrap(),
            Credentials::Anonymous
        );
        let err = config
            .credentials_for("broken.example")
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker login"), "{err}");
        assert!(!format!("{:?}", basic("u", "secret")).contains("secret"));
    }

    #[test]
    fn a_missing_file_is_anonymous_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(
            config.credentials_for("docker.io").unwrap(),
            Credentials::Anonymous
        );
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{").unwrap();
        let err = DockerConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn a_missing_helper_says_which() {
        let config =
            DockerConfig::parse(br#"{"credHelpers": {"ghcr.io": "stack-test-nonexistent"}}"#)
                .unwrap();
        let err = config.credentials_for("ghcr.io").unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-stack-test-nonexistent"),
            "{err}"
        );
        assert_eq!(
            config.credentials_for("docker.io").unwrap(),
            Credentials::Anonymous
        );
    }
}
