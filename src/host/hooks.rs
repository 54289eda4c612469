//! Lifecycle hooks: `post_start` and `pre_stop` (compose 2.30).
//!
//! A hook is a command run inside a container, through the same path as
//! `stack exec`: `post_start` hooks right after the container started
//! (every start, the watcher's restarts included, since stack's watcher is
//! what docker's daemon is to compose), `pre_stop` hooks right before stack
//! stops a running container. A hook may run as another user, in another
//! directory, with more environment. A failing `post_start` hook fails the
//! start (the container keeps running, as with compose, and `up` reports
//! it); a failing `pre_stop` hook is told, and the stop goes on. The hooks
//! are read from the service when the container is made and kept in its
//! `host.json`, so a stop without the stack file still runs them.

use serde::{Deserialize, Serialize};

use crate::runtime::container::Runtime;
use crate::runtime::shim::exec::ExecRequest;
use crate::spec::model::Service;

/// One hook, ready to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub args: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// `NAME=value`, over the container's own environment.
    pub env: Vec<String>,
}

/// The hooks of `key` (`post_start` or `pre_stop`) in `service`, and the
/// warnings for what of them stack cannot do.
pub fn parse(service: &Service, key: &str) -> Result<(Vec<Hook>, Vec<String>), String> {
    let Some(list) = service.extra.get(key) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut hooks = Vec::new();
    let mut warnings = Vec::new();
    for (i, entry) in list.as_array().into_iter().flatten().enumerate() {
        let text = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let args = match entry.get("command") {
            Some(serde_json::Value::String(s)) => crate::spec::syntax::shell_split(s)
                .map_err(|e| format!("{key}[{i}].command: {e}"))?,
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{key}[{i}].command: a list of strings, please"))?,
            _ => Vec::new(),
        };
        if args.is_empty() {
            return Err(format!("{key}[{i}] needs a `command` to run"));
        }
        if entry.get("privileged").and_then(|v| v.as_bool()) == Some(true) {
            warnings.push(format!(
                "{key}[{i}]: `privileged` is not applied; the hook runs with the container's own privileges"
            ));
        }
        let env = match entry.get("environment") {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    serde_json::Value::Null => k.clone(),
                    other => format!("{k}={other}"),
                })
                .collect(),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        hooks.push(Hook {
            args,
            user: text("user"),
            workdir: text("working_dir"),
            env,
        });
    }
    Ok((hooks, warnings))
}

/// Runs `hooks` in container `id`, in order, and stops at the first that
/// fails: why, with what it printed.
pub fn run(runtime: &Runtime, id: &str, key: &str, hooks: &[Hook]) -> Result<(), String> {
    for hook in hooks {
        let req = ExecRequest {
            args: hook.args.clone(),
            env: hook.env.clone(),
            user: hook.user.clone(),
            workdir: hook.workdir.clone(),
            tty: false,
        };
        let out = runtime.exec(id, &req).map_err(|e| e.to_string())?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "its {key} hook `{}` exited with code {}{}",
                hook.args.join(" "),
                out.status.code().unwrap_or(-1),
                if said.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", said.trim())
                }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_parse_both_command_forms_and_environments() {
        let mut s = Service::default();
        s.extra.insert(
            "post_start".into(),
            serde_json::json!([
                {"command": "sh -c 'echo hi'", "user": "root", "working_dir": "/tmp",
                 "environment": {"A": "1", "B": null}},
                {"command": ["touch", "/x"], "environment": ["C=3"], "privileged": true}
            ]),
        );
        let (hooks, warnings) = parse(&s, "post_start").unwrap();
        assert_eq!(hooks[0].args, ["sh", "-c", "echo hi"]);
        assert_eq!(hooks[0].user.as_deref(), Some("root"));
        assert_eq!(hooks[0].workdir.as_deref(), Some("/tmp"));
        assert_eq!(hooks[0].env, ["A=1", "B"]);
        assert_eq!(hooks[1].args, ["touch", "/x"]);
        assert_eq!(hooks[1].env, ["C=3"]);
        assert_eq!(warnings.len(), 1);
        assert!(parse(&s, "pre_stop").unwrap().0.is_empty());
        s.extra
            .insert("pre_stop".into(), serde_json::json!([{"user": "root"}]));
        assert!(
            parse(&s, "pre_stop")
                .unwrap_err()
                .contains("needs a `command`")
        );
    }
}
