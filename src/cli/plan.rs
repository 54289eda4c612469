//! `stack plan`: what `up` would do, and why, without doing it.
//!
//! It runs the pipeline up to the plan: load the stack, read the project's
//! record (without locking, so it works while a watcher holds the lock),
//! observe, plan, and print each operation in run order with its reason
//! and field-level changes, then a summary line. `--format json` prints
//! the plan for machines; `--detailed-exitcode` exits 0 when nothing would
//! change, 2 when something would, and 1 on any error.
//!
//! It observes the live host ([`LinuxHost`]): the containers the runtime
//! has, the networks, volumes and images that exist. A recorded object that
//! is gone is planned again.
//!
//! Field-level diffs need the revision a container was created at; kept
//! revisions are read without the lock (they are written once, atomically),
//! so `plan` explains changes field by field even while a watcher runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use super::Failure;
use super::args::{Global, PlanArgs, PlanFormat};
use crate::host::{HostOptions, LinuxHost};
use crate::planner::plan::{Action, Plan, UpOptions, plan_up};
use crate::planner::{Observed, observe};
use crate::spec::{self, Stack};
use crate::state::{ProjectRecord, Store};

/// Exit code for "something would change" under `--detailed-exitcode`.
pub const EXIT_CHANGES: u8 = 2;

/// Runs `stack plan` and returns the process's exit code.
pub fn main(global: &Global, args: &PlanArgs) -> ExitCode {
    let result = run(global, args);
    finish(result, args.detailed_exitcode)
}

/// The exit code for a plan command: `--detailed-exitcode` makes every error 1.
pub fn finish(result: Result<bool, Failure>, detailed: bool) -> ExitCode {
    match result {
        Ok(true) if detailed => ExitCode::from(EXIT_CHANGES),
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            let code = super::report(failure);
            ExitCode::from(if detailed { super::EXIT_FAILURE } else { code })
        }
    }
}

/// Prints the plan; `Ok(true)` when it would change something.
fn run(global: &Global, args: &PlanArgs) -> Result<bool, Failure> {
    let opts = super::load_options(global, &args.services)?;
    let project = spec::load(&opts)?;
    let stack = &project.stack;
    let up = UpOptions {
        services: args.services.clone(),
        scale: args.scale.iter().cloned().collect(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        no_deps: args.no_deps,
        always_recreate_deps: args.always_recreate_deps,
        remove_orphans: args.remove_orphans,
        ..UpOptions::default()
    };
    let store = Store::new(&global.root);
    let observed = observe_project(&store, &stack.name, Some(stack))?;
    let plan = plan_up(stack, &observed, &up).map_err(anyhow::Error::from)?;
    print!("{}", render(&plan, args.format, &observed, "up"));
    Ok(!plan.is_empty())
}

/// Observes a project on the live host.
pub fn observe_project(
    store: &Store,
    project: &str,
    stack: Option<&Stack>,
) -> Result<Observed, Failure> {
    let record = store
        .read(project)
        .with_context(|| format!("cannot read the state of project `{project}`"))?;
    let history = match &record {
        Some(record) => history(store, record),
        None => BTreeMap::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let env = crate::spec::env::Environment::default();
    let observed = runtime.block_on(async {
        let host = LinuxHost::open(
            store.root(),
            project,
            stack.map(|s| (s, &env)),
            HostOptions::default(),
        )
        .await
        .map_err(anyhow::Error::from)?;
        let observed = observe(&host, project, stack, record.as_ref(), history).await;
        host.close().await;
        observed.map_err(anyhow::Error::from)
    })?;
    Ok(observed)
}

/// The applied stacks the record's containers were created from.
fn history(store: &Store, record: &ProjectRecord) -> BTreeMap<u64, Value> {
    let mut wanted: BTreeSet<u64> = record.containers.values().map(|c| c.revision).collect();
    wanted.insert(record.revision);
    wanted.remove(&0);
    // The latest revision too: the plan applies the one after it.
    if let Some(&latest) = store
        .revisions(&record.project)
        .ok()
        .and_then(|r| r.last().copied())
        .as_ref()
    {
        wanted.insert(latest);
    }
    wanted
        .into_iter()
        .filter_map(|n| Some((n, store.revision(&record.project, n).ok()??.stack)))
        .collect()
}

/// The plan for humans (in run order, with reasons and changes) or as JSON.
pub fn render(plan: &Plan, format: PlanFormat, observed: &Observed, command: &str) -> String {
    if format == PlanFormat::Json {
        // A plan has only string keys and plain values: serializing cannot fail.
        let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("changes".into(), Value::Bool(!plan.is_empty()));
            map.insert("command".into(), Value::String(command.into()));
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let mut out = String::new();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "No changes: project {} already matches {}.",
            plan.project,
            if command == "down" {
                "an empty stack"
            } else {
                "the stack file"
            }
        );
    } else {
        let revision = if plan.revision != observed.revision {
            format!(" (revision {} → {})", observed.revision, plan.revision)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "`stack {command}` would do this in project {}{revision}, in this order:\n",
            plan.project
        );
        let targets: Vec<String> = plan
            .ops
            .iter()
            .map(|op| {
                let mut t = op.text();
                if let Some(w) = op.wait {
                    let _ = write!(t, " until {}", w.until);
                }
                t
            })
            .collect();
        let width = targets.iter().map(|t| t.chars().count()).max().unwrap_or(0);
        let number_width = plan.ops.len().to_string().len();
        for (op, target) in plan.ops.iter().zip(&targets) {
            let mark = match op.action {
                Action::Pull | Action::Create | Action::Connect => '+',
                Action::Recreate => '~',
                Action::Remove | Action::Disconnect => '-',
                Action::Start => '>',
                Action::Stop => '<',
                Action::Wait => '.',
            };
            let after = if op.after.is_empty() {
                String::new()
            } else {
                let ids: Vec<String> = op.after.iter().map(|a| format!("#{}", a + 1)).collect();
                format!("  [after {}]", ids.join(" "))
            };
            let _ = writeln!(
                out,
                "{:>nw$}  {mark} {target:<width$}  {}{after}",
                format!("#{}", op.id + 1),
                op.reason,
                nw = number_width + 1,
            );
            for change in &op.changes {
                let _ = writeln!(out, "{:>nw$}      {change}", "", nw = number_width + 1);
            }
        }
        out.push('\n');
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "Plan: {}.", plan.summary);
    out
}
