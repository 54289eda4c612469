//! The watch loop: one per project, keeping it converged.
//!
//! Level-triggered: the loop does not react to events it might miss; on
//! every resync it runs the same pipeline as `up` ([`apply::up`]): observe,
//! plan against the stack it was started with, execute. A container that
//! died shows up as exited; the planner restarts it when its restart
//! policy says so (`always`, `unless-stopped`; one-shots are left alone),
//! and the executor's `start` makes it again from its recorded
//! configuration. Whatever else drifted (a removed container, a network
//! gone) is repaired the same way. Nothing here knows Linux: the host is a
//! [`Host`].
//!
//! A round skips when another stack process holds the project's lock (an
//! `up` or `down` in progress) and tries again on the next one.
//!
//! The watcher's host is wrapped in [`backoff::Backoff`], so a container that keeps
//! dying is restarted with exponential backoff and, past a flap limit, no
//! longer.
//!
//! Still to come (issue 7): health-driven restarts, events, and watches as
//! shortcuts to the resync.

pub mod backoff;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::planner::apply::{self, ApplyError};
use crate::planner::backend::Host;
use crate::planner::execute::ExecOptions;
use crate::planner::plan::UpOptions;
use crate::spec::Stack;
use crate::state::{StateError, Store};

/// What one round did.
#[derive(Debug)]
pub enum Round {
    /// Another process held the project's lock.
    Skipped,
    /// The operations done, as text ("start container p-web-1").
    Done(Vec<String>),
}

/// Runs one round: observe, plan, execute, under the project's lock.
pub async fn round<H: Host>(
    host: &H,
    store: &Store,
    stack: &Stack,
    opts: &UpOptions,
) -> Result<Round, ApplyError> {
    let lock = match store.lock(&stack.name) {
        Ok(l) => l,
        Err(StateError::Locked { .. }) => return Ok(Round::Skipped),
        Err(e) => return Err(e.into()),
    };
    let exec = ExecOptions::default();
    let (plan, _) = apply::up(host, &lock, stack, opts, &(), &exec).await?;
    Ok(Round::Done(plan.ops.iter().map(|op| op.text()).collect()))
}

/// One project's watch loop.
pub struct Watch<'a, H> {
    pub host: &'a H,
    pub store: &'a Store,
    /// The stack it keeps the project converged to.
    pub stack: &'a Stack,
    pub opts: &'a UpOptions,
    /// How often it resyncs.
    pub resync: Duration,
}

impl<H: Host> Watch<'_, H> {
    /// Runs rounds every `resync` until `stop` is set, reporting each round
    /// through `report`, and calling `after` after each round (the host's
    /// own upkeep, such as /etc/hosts files).
    pub async fn run<A: std::future::Future<Output = ()>>(
        &self,
        stop: &AtomicBool,
        report: impl Fn(Result<Round, ApplyError>),
        after: impl Fn() -> A,
    ) {
        let slice = Duration::from_millis(50);
        while !stop.load(Ordering::Relaxed) {
            report(round(self.host, self.store, self.stack, self.opts).await);
            after().await;
            let mut waited = Duration::ZERO;
            while waited < self.resync && !stop.load(Ordering::Relaxed) {
                self.host.sleep(slice).await;
                waited += slice;
            }
        }
    }
}
