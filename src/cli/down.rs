//! `stack down`: the plan towards the empty stack.
//!
//! `down --dry-run` prints what `down` would remove, dependents first,
//! then networks, and volumes only with `--volumes`, observed through the
//! same state-record bridge as `stack plan` (see `plan.rs`). Carrying it
//! out needs stack's own runtime, which lands with a later issue; until
//! then `down` without `--dry-run` says so and changes nothing.
//!
//! The stack file is optional: with `-p NAME` and no file, `down` works
//! from the record alone (the containers' labels give the order), and
//! every container of the project goes, since none can be told an orphan.

use std::process::ExitCode;

use super::Failure;
use super::args::{DownArgs, Global};
use super::plan::{finish, observe_project, render};
use crate::planner::plan::{DownOptions, plan_down};
use crate::spec;
use crate::state::Store;

/// Runs `stack down` and returns the process's exit code.
pub fn main(global: &Global, args: &DownArgs) -> ExitCode {
    let result = if args.dry_run {
        run(global, args)
    } else {
        Err(Failure::Other(anyhow::anyhow!(
            "`stack down` needs stack's container runtime, which is not built yet (it lands with a later issue); \
             `stack down --dry-run` prints what it would remove"
        )))
    };
    finish(result, args.detailed_exitcode)
}

fn run(global: &Global, args: &DownArgs) -> Result<bool, Failure> {
    let opts = super::load_options(global, &[])?;
    let (stack, project) = match spec::load(&opts) {
        Ok(p) => {
            let name = p.stack.name.clone();
            (Some(p.stack), name)
        }
        // No file at all, but the project is named: down from the record alone.
        Err(diags) if no_file(&diags) && global.project_name.is_some() => {
            let name = global.project_name.clone().unwrap_or_default();
            (None, spec::load::normalize_project_name(&name))
        }
        Err(diags) => return Err(diags.into()),
    };
    let store = Store::new(&global.root);
    let observed = observe_project(&store, &project, stack.as_ref())?;
    let down = DownOptions {
        remove_orphans: args.remove_orphans,
        volumes: args.volumes,
    };
    let plan = plan_down(stack.as_ref(), &observed, &down).map_err(anyhow::Error::from)?;
    print!("{}", render(&plan, args.format, &observed, "down"));
    Ok(!plan.is_empty())
}

/// Whether loading failed only because there is no stack file.
fn no_file(diags: &spec::Diagnostics) -> bool {
    // The loader's lookup reports exactly one diagnostic with this message.
    diags.0.len() == 1 && diags.0[0].message.starts_with("no stack file found")
}
