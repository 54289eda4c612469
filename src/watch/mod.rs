//! The watch loop: one per project, keeping it converged.
//!
//! Level-triggered: the loop does not depend on events it might miss; every
//! round runs the same pipeline as `up` ([`apply::up_supervised`]):
//! observe, plan against the stack it was started with, execute. A round
//! runs on a periodic resync (the safety net: it alone converges), and at
//! once when something happens: a container's shim records an exit, a
//! container directory appears or goes, a watched stack file changes
//! ([`wake`]), or a container held back by backoff may start again.
//!
//! What the planner needs beyond the observation comes from the
//! [`supervise::Supervisor`]: restart counts for restart policies
//! (`no`, `always`, `on-failure[:N]`, `unless-stopped`,
//! `deploy.restart_policy`), and which containers to hold back while they
//! back off or after the flap limit ([`backoff`]). Drift is repaired by
//! the same plan: a container killed, stopped by hand or deleted, its
//! network or veth removed, its configuration diverged. Every death,
//! restart, health change and repair is appended to the project's event
//! log ([`crate::state::events`]), and restart counts are kept in the
//! restart record ([`restarts`]) for `stack ps`. Nothing here knows Linux
//! except [`wake`]: the host is a [`Host`].
//!
//! A round skips when another stack process holds the project's lock (an
//! `up` or `down` in progress) and tries again on the next one.

pub mod backoff;
pub mod health;
pub mod restarts;
pub mod supervise;
pub mod wake;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::planner::apply::{self, ApplyError};
use crate::planner::backend::Host;
use crate::planner::execute::{ExecOptions, OpState, Progress};
use crate::planner::plan::{Op, UpOptions};
use crate::spec::Stack;
use crate::state::events::{Event, EventLog};
use crate::state::{StateError, Store};
use supervise::Supervisor;

/// What one round did.
#[derive(Debug)]
pub enum Round {
    /// Another process held the project's lock.
    Skipped,
    /// The operations done, as text ("start container p-web-1").
    Done(Vec<String>),
}

/// Collects each operation's end, for the supervisor.
#[derive(Default)]
struct Finished(Mutex<Vec<(Op, Option<String>)>>);

impl Progress for Finished {
    fn update(&self, op: &Op, state: &OpState) {
        let end = match state {
            OpState::Running => return,
            OpState::Done | OpState::Warning(_) => None,
            OpState::Failed(e) => Some(e.clone()),
        };
        // Plain list: a poisoned lock's data is still whole.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((op.clone(), end));
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs one round under the project's lock: observe, let `sup` read the
/// observation, plan, execute. Returns what was done and the events.
pub async fn round<H: Host>(
    host: &H,
    store: &Store,
    stack: &Stack,
    opts: &UpOptions,
    sup: &mut Supervisor,
) -> (Result<Round, ApplyError>, Vec<Event>) {
    let lock = match store.lock(&stack.name) {
        Ok(l) => l,
        Err(StateError::Locked { .. }) => return (Ok(Round::Skipped), Vec::new()),
        Err(e) => return (Err(e.into()), Vec::new()),
    };
    let exec = ExecOptions::default();
    let finished = Finished::default();
    let mut events = Vec::new();
    let now = host.now();
    let result = apply::up_supervised(host, &lock, stack, opts, &finished, &exec, |observed| {
        let (supervision, e) = sup.observe(stack, observed, now);
        events = e;
        Some(supervision)
    })
    .await;
    drop(lock);
    let finished = finished
        .0
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = host.now();
    for (op, error) in &finished {
        events.extend(sup.done(op, error.as_deref(), now, wall_ms()));
    }
    let result = result.map(|(plan, _)| Round::Done(plan.ops.iter().map(|op| op.text()).collect()));
    (result, events)
}

/// One project's watch loop.
pub struct Watch<'a, H> {
    pub host: &'a H,
    pub store: &'a Store,
    pub opts: &'a UpOptions,
    /// How often it resyncs.
    pub resync: Duration,
    /// Where events go (`None`: nowhere).
    pub events: Option<EventLog>,
    /// The state root, for the restart record (`None`: not kept).
    pub root: Option<PathBuf>,
    /// What wakes it before the resync (`None`: only the resync).
    pub wake: Option<wake::Wake>,
    pub policy: backoff::Policy,
}

impl<H: Host> Watch<'_, H> {
    fn emit(&self, events: &[Event], report: &impl Fn(&str)) {
        for e in events {
            report(&e.human());
            if let Some(log) = &self.events
                && let Err(err) = log.append(e)
            {
                report(&format!("cannot record an event: {err}"));
            }
        }
    }

    /// Runs rounds of `stack` until `stop` is set, reporting each round and
    /// event through `report`, calling `after` after each round (the
    /// host's own upkeep: health probes, /etc/hosts files), and `reload`
    /// when a watched stack file changed.
    pub async fn run<A: std::future::Future<Output = ()>>(
        &self,
        mut stack: Stack,
        stop: &AtomicBool,
        report: impl Fn(&str),
        after: impl Fn() -> A,
        reload: impl Fn() -> Result<Stack, String>,
    ) {
        let mut sup = Supervisor::new(&stack.name, self.policy);
        if let Some(root) = &self.root {
            // A new watcher starts the record afresh.
            let _ = restarts::write(root, &stack.name, &sup.restarts);
        }
        let slice = Duration::from_millis(50);
        while !stop.load(Ordering::Relaxed) {
            if self.wake.as_ref().is_some_and(wake::Wake::take_reload) {
                match reload() {
                    Ok(s) => {
                        stack = s;
                        let e = Event::now(&stack.name, "reload")
                            .detail("the stack file changed; converging to it");
                        self.emit(&[e], &report);
                    }
                    Err(why) => {
                        let e = Event::now(&stack.name, "reload-failed")
                            .detail(format!("the stack file changed but does not load, so the running stack is kept: {why}"));
                        self.emit(&[e], &report);
                    }
                }
            }
            crate::timing::mark(|| "watch round begins".into());
            let (result, events) = round(self.host, self.store, &stack, self.opts, &mut sup).await;
            crate::timing::mark(|| "watch round ends".into());
            self.emit(&events, &report);
            match result {
                Ok(Round::Done(ops)) if !ops.is_empty() => report(&ops.join("; ")),
                Ok(_) => {}
                Err(e) => report(&e.to_string()),
            }
            if sup.take_changed()
                && let Some(root) = &self.root
                && let Err(e) = restarts::write(root, &stack.name, &sup.restarts)
            {
                report(&format!("cannot write the restart record: {e}"));
            }
            after().await;
            // Until the resync, a wake-up, or a held container's time.
            let start = self.host.now();
            let mut deadline = start + self.resync;
            if let Some(at) = sup.next_wake() {
                deadline = deadline.min(at.max(start));
            }
            while !stop.load(Ordering::Relaxed) {
                let now = self.host.now();
                if now >= deadline {
                    break;
                }
                let step = slice.min(deadline - now);
                match &self.wake {
                    Some(w) => {
                        if tokio::time::timeout(step, w.notify.notified())
                            .await
                            .is_ok()
                        {
                            break;
                        }
                    }
                    None => self.host.sleep(step).await,
                }
            }
        }
    }
}
