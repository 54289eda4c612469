//! The image configuration: what a container of this image runs, and how.
//!
//! The configuration blob is JSON in the shape docker defined and OCI
//! adopted: `architecture`, `os`, `rootfs.diff_ids` (the layers'
//! uncompressed digests, bottom first), `created`, and under `config` the
//! run defaults in docker's capitalized keys (`Env`, `Cmd`, `Entrypoint`,
//! `WorkingDir`, `User`, `ExposedPorts`, `Volumes`, `Labels`,
//! `StopSignal`, and docker's `Healthcheck`, which OCI omits). The planner
//! and the runtime read [`ImageConfig`]; the service's own settings win
//! over it. Unknown keys are kept, so a configuration written back (by
//! `import`) loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ImageError;

/// The configuration blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// The run defaults of an image (docker's and OCI's `config` object).
/// Absent and `null` are the same: the image does not say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=value` strings, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `80/tcp` → `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `/data` → `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Docker's image healthcheck; durations are nanoseconds, 0 = default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ImageConfig {
    /// Exposed ports as written (`80/tcp`), sorted.
    pub fn exposed_ports(&self) -> Vec<String> {
        self.exposed_ports
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect()
    }

    /// Volume paths, sorted.
    pub fn volumes(&self) -> Vec<String> {
        self.volumes
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect()
    }

    /// Applies one `docker import --change` instruction (Dockerfile syntax).
    pub fn apply_change(&mut self, change: &str) -> Result<(), ImageError> {
        let bad = || ImageError::BadChange(change.to_owned());
        let (word, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(bad)?;
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "CMD" => self.cmd = Some(command_form(rest)),
            "ENTRYPOINT" => self.entrypoint = Some(command_form(rest)),
            "ENV" => {
                let env = self.env.get_or_insert_with(Vec::new);
                for (k, v) in key_values(rest).ok_or_else(bad)? {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = self.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(key_values(rest).ok_or_else(bad)?);
            }
            "WORKDIR" => self.working_dir = Some(rest.to_owned()),
            "USER" => self.user = Some(rest.to_owned()),
            "STOPSIGNAL" => self.stop_signal = Some(rest.to_owned()),
            "EXPOSE" => {
                let ports = self.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_owned()
                    } else {
                        format!("{p}/tcp")
                    };
                    ports.insert(p, serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let volumes = self.volumes.get_or_insert_with(BTreeMap::new);
                let paths = serde_json::from_str::<Vec<String>>(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
                for v in paths {
                    volumes.insert(v, serde_json::json!({}));
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// `["a", "b"]` (exec form) or `a b` (shell form, run by /bin/sh -c).
fn command_form(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
}

/// `K=V K2="V 2"` or the old single form `K V`.
fn key_values(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let words = crate::spec::syntax::shell_split(rest).ok()?;
    words
        .into_iter()
        .map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_and_oci_configurations() {
        let file: ConfigFile = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
               "config":{"Env":["PATH=/bin"],"Cmd":null,"Entrypoint":["/bin/sh"],"User":"nobody",
                 "WorkingDir":"/w","ExposedPorts":{"80/tcp":{}},"Volumes":{"/data":{}},
                 "Labels":{"a":"b"},"StopSignal":"SIGQUIT","ArgsEscaped":true,
                 "Healthcheck":{"Test":["CMD","true"],"Interval":30000000000,"Retries":3}},
               "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[]}"#,
        )
        .unwrap();
        let c = file.config.clone().unwrap();
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint.as_deref(), Some(&["/bin/sh".to_owned()][..]));
        assert_eq!(c.exposed_ports(), ["80/tcp"]);
        assert_eq!(c.volumes(), ["/data"]);
        let h = c.healthcheck.unwrap();
        assert_eq!((h.interval, h.retries), (30_000_000_000, 3));
        assert_eq!(file.rootfs.diff_ids, ["sha256:aa"]);
        // Unknown keys survive a round trip.
        let back = serde_json::to_value(&file).unwrap();
        assert_eq!(back["config"]["ArgsEscaped"], true);
        assert!(back.get("history").is_some());
    }

    #[test]
    fn import_changes_follow_dockerfile_syntax() {
        let mut c = ImageConfig::default();
        for change in [
            r#"CMD ["/bin/echo", "hi"]"#,
            "ENTRYPOINT /bin/sh -x",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
        ] {
            c.apply_change(change).unwrap();
        }
        assert_eq!(c.cmd.unwrap(), ["/bin/echo", "hi"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "/bin/sh -x"]);
        assert_eq!(c.env.unwrap(), ["B=two words", "A=3"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            c.exposed_ports
                .map(|p| p.into_keys().collect::<Vec<_>>())
                .unwrap(),
            ["53/udp", "80/tcp"]
        );
        assert_eq!(c.labels.unwrap()["k"], "v");
        let err = ImageConfig::default()
            .apply_change("RUN rm -rf /")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
