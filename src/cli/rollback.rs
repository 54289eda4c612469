//! `stack rollback`, and the restore a failed `up` does on its own.
//!
//! Every `up` that changes something keeps the stack it applied as a
//! revision (`<root>/projects/<name>/revisions/`): the normalized stack as
//! JSON. Going back is therefore another `up`, through the same pipeline,
//! of an older revision's stack: the revision is turned back into a
//! [`Stack`] by the loader itself (the JSON is a valid Compose file once
//! every `$` is escaped, so nothing is interpolated twice), written under
//! `<root>/run/watch/` so the project's watcher keeps that stack rather
//! than the file on disk, and applied; the result is a new revision, so the
//! history only grows and a rollback can itself be rolled back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use serde_json::Value;

use super::Failure;
use super::args::{Global, PlanFormat, RollbackArgs, UpArgs};
use crate::planner::plan::{UpOptions, plan_up};
use crate::spec;
use crate::state::Store;

/// Escapes every `$` in the document's strings, so loading it again
/// interpolates nothing (values were interpolated when first loaded).
pub fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Where the stack of a restored revision is kept for the watcher.
pub fn revision_file(root: &Path, project: &str) -> PathBuf {
    root.join("run")
        .join("watch")
        .join(format!("{project}.stack.json"))
}

/// Loads revision `n` of `project` as a stack, written to
/// [`revision_file`]; relative paths resolve against `project_dir`.
pub fn load_revision(
    root: &Path,
    project: &str,
    n: u64,
    project_dir: &Path,
) -> Result<(spec::Project, PathBuf), Failure> {
    let store = Store::new(root);
    let record = store
        .revision(project, n)
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| {
            anyhow!("project `{project}` has no revision {n}; `stack rollback --dry-run` lists what would change")
        })?;
    let mut doc = record.stack;
    escape_dollars(&mut doc);
    let text = serde_json::to_string(&doc).context("cannot write the revision as JSON")?;
    let path = revision_file(root, project);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let opts = spec::Options {
        files: vec![path.clone()],
        project_name: Some(project.to_string()),
        project_directory: Some(project_dir.to_path_buf()),
        env_files: Vec::new(),
        profiles: vec!["*".into()],
        services: Vec::new(),
        working_dir: project_dir.to_path_buf(),
        environment: HashMap::new(),
        stdin: None,
    };
    let loaded = spec::load(&opts).map_err(|d| {
        anyhow!("revision {n} of project `{project}` no longer loads as a stack:\n{d}")
    })?;
    Ok((loaded, path))
}

/// The revision a rollback returns to: `to`, else the one before the latest.
pub fn target(revisions: &[u64], to: Option<u64>) -> Result<u64, String> {
    let Some(&latest) = revisions.last() else {
        return Err(
            "the project has no applied revision to return to; run `stack up` first".into(),
        );
    };
    match to {
        Some(n) if revisions.contains(&n) => Ok(n),
        Some(n) => Err(format!(
            "there is no revision {n}; the kept revisions are {}",
            revisions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => revisions
            .iter()
            .rev()
            .copied()
            .find(|&r| r < latest)
            .ok_or_else(|| {
                format!("revision {latest} is the only one applied: there is nothing before it")
            }),
    }
}

/// Runs `stack rollback`.
pub fn main(global: &Global, args: &RollbackArgs) -> ExitCode {
    match run(global, args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => ExitCode::from(super::report(f)),
    }
}

fn run(global: &Global, args: &RollbackArgs) -> Result<u8, Failure> {
    // The file, when there is one, gives the name and the directory.
    let (project, dir) = match super::load_options(global, &[]).map(|o| spec::load(&o)) {
        Ok(Ok(p)) => (p.stack.name.clone(), p.stack.project_dir.clone()),
        _ => match &global.project_name {
            Some(p) => (
                spec::load::normalize_project_name(p),
                global
                    .project_directory
                    .clone()
                    .map_or_else(std::env::current_dir, Ok)?,
            ),
            None => {
                return Err(anyhow!(
                    "no stack file here to name the project; give it with -p NAME"
                )
                .into());
            }
        },
    };
    let store = Store::new(&global.root);
    let revisions = store.revisions(&project).map_err(anyhow::Error::from)?;
    let n =
        target(&revisions, args.to).map_err(|e| anyhow!("cannot roll back `{project}`: {e}"))?;
    let (loaded, file) = load_revision(&global.root, &project, n, &dir)?;
    if args.dry_run {
        let observed = super::plan::observe_project(&store, &project, Some(&loaded.stack))?;
        let opts = UpOptions {
            remove_orphans: true,
            ..UpOptions::default()
        };
        let plan = plan_up(&loaded.stack, &observed, &opts).map_err(anyhow::Error::from)?;
        print!(
            "{}",
            super::plan::render(&plan, PlanFormat::Text, &observed, "rollback")
        );
        return Ok(0);
    }
    eprintln!("{project}: rolling back to revision {n}");
    let global = Global {
        files: vec![file],
        project_name: Some(project.clone()),
        project_directory: Some(dir),
        env_files: Vec::new(),
        profiles: vec!["*".into()],
        root: global.root.clone(),
    };
    let up = UpArgs {
        detach: true,
        remove_orphans: true,
        ..UpArgs::default()
    };
    super::up::up_with(&global, &up, loaded, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_escaped_in_values_only() {
        let mut v = serde_json::json!({"a$": ["x$y", {"b": "$$"}], "n": 1});
        escape_dollars(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a$": ["x$$y", {"b": "$$$$"}], "n": 1})
        );
    }

    #[test]
    fn the_target_is_the_revision_before_the_latest_or_the_one_asked() {
        assert_eq!(target(&[1, 2, 3], None), Ok(2));
        assert_eq!(target(&[1, 2, 3], Some(1)), Ok(1));
        assert!(target(&[1, 2, 3], Some(7)).is_err());
        assert!(target(&[1], None).is_err());
        assert!(target(&[], None).is_err());
    }
}
