//! The pipeline in one call: observe, plan, execute, keep the revision.
//!
//! `stack up`, `stack down`, the watch loop and `sync` all run the same
//! steps (DESIGN.md: never a second code path), under the project's lock:
//! read the record and the revision history the plan needs, observe the
//! host, plan, execute while saving the record through the lock, and,
//! when something changed, keep the applied stack as the next revision
//! (the number the plan already gave the new containers). `down` forgets
//! the record once nothing of the project is left.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::PlanError;
use super::backend::{BackendError, ContainerSpec, Host};
use super::execute::{ExecError, ExecOptions, Outcome, Progress, execute};
use super::hash::{digest, revision_document};
use super::observe::{Observed, Supervision, observe};
use super::plan::{DownOptions, Plan, UpOptions, plan_down, plan_up};
use crate::spec::Stack;
use crate::state::{ProjectLock, ProjectRecord, StateError};

/// Why the pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The host refused the plan before anything ran.
    #[error("{0}")]
    Refused(BackendError),
}

/// Observes the project held by `lock`, with the history a plan needs.
pub async fn observe_locked<H: Host>(
    host: &H,
    lock: &ProjectLock,
    stack: Option<&Stack>,
) -> Result<(ProjectRecord, Observed), ApplyError> {
    let record = lock.read()?;
    let mut wanted: BTreeSet<u64> = record.containers.values().map(|c| c.revision).collect();
    wanted.insert(record.revision);
    // The plan applies the revision after the latest, whatever the record says.
    wanted.extend(lock.revisions()?.last());
    wanted.remove(&0);
    let mut history: BTreeMap<u64, Value> = BTreeMap::new();
    for n in wanted {
        if let Some(r) = lock.revision(n)? {
            history.insert(n, r.stack);
        }
    }
    let observed = observe(host, lock.project(), stack, Some(&record), history).await?;
    Ok((record, observed))
}

/// `up`: brings the project to `stack`. Returns the plan and what was done.
pub async fn up<H: Host>(
    host: &H,
    lock: &ProjectLock,
    stack: &Stack,
    opts: &UpOptions,
    progress: &dyn Progress,
    exec: &ExecOptions,
) -> Result<(Plan, Outcome), ApplyError> {
    up_supervised(host, lock, stack, opts, progress, exec, |_| None).await
}

/// `up` as the watcher runs it: `supervise` sees what was observed and
/// gives the restart history that restart policies decide with.
pub async fn up_supervised<H: Host>(
    host: &H,
    lock: &ProjectLock,
    stack: &Stack,
    opts: &UpOptions,
    progress: &dyn Progress,
    exec: &ExecOptions,
    supervise: impl FnOnce(&Observed) -> Option<Supervision>,
) -> Result<(Plan, Outcome), ApplyError> {
    let (record, mut observed) = observe_locked(host, lock, Some(stack)).await?;
    crate::timing::mark(|| "observed".into());
    observed.supervision = supervise(&observed);
    let plan = plan_up(stack, &observed, opts)?;
    crate::timing::mark(|| format!("planned {} operations", plan.ops.len()));
    let made: Vec<&ContainerSpec> = plan.specs.containers.values().collect();
    host.prepare(&made).await.map_err(ApplyError::Refused)?;
    let mut outcome = execute(&plan, host, record, lock, progress, exec).await?;
    crate::timing::mark(|| "executed".into());
    if !stack.files.is_empty() && outcome.record.config_files != stack.files {
        outcome.record.config_files = stack.files.clone();
        lock.write(&outcome.record)?;
    }
    // A plan that only starts or stops containers applies no new revision.
    if !plan.is_empty() && plan.revision > observed.revision {
        let doc = revision_document(stack);
        lock.push_revision(&doc, &digest(&doc))?;
    }
    Ok((plan, outcome))
}

/// `down`: removes the project (volumes only with `opts.volumes`), and
/// forgets its record when nothing of it is left.
pub async fn down<H: Host>(
    host: &H,
    lock: &ProjectLock,
    stack: Option<&Stack>,
    opts: &DownOptions,
    progress: &dyn Progress,
    exec: &ExecOptions,
) -> Result<(Plan, Outcome), ApplyError> {
    let (record, observed) = observe_locked(host, lock, stack).await?;
    crate::timing::mark(|| "observed".into());
    let plan = plan_down(stack, &observed, opts)?;
    crate::timing::mark(|| format!("planned {} operations", plan.ops.len()));
    let outcome = execute(&plan, host, record, lock, progress, exec).await?;
    crate::timing::mark(|| "executed".into());
    let left = &outcome.record;
    if left.containers.is_empty() && left.networks.is_empty() && left.volumes.is_empty() {
        lock.forget()?;
    }
    Ok((plan, outcome))
}
