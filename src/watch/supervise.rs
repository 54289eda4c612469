//! The watcher's memory between rounds: restarts, backoff, and events.
//!
//! Each round is level-triggered and starts from what is observed, but a
//! few things need memory: how often a container was restarted (for
//! `on-failure:N` and `max_attempts`), when (for backoff and the flap
//! limit), and what it was doing last round (to say it died, or turned
//! unhealthy). The [`Supervisor`] keeps that. Before planning it reads the
//! observation ([`Supervisor::observe`]): it notes deaths and health
//! changes as events, and gives the planner a
//! [`Supervision`]: the restart counts its restart policies decide with,
//! and the containers to hold back, because they back off or hit the flap
//! limit. After each operation ([`Supervisor::done`]) it counts restarts
//! and names drift repairs. Time is given, never read, so all of this is
//! tested with a fake clock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::backoff::{Decision, History, Policy};
use super::restarts::{ContainerRestarts, Restarts};
use crate::planner::backend::Status;
use crate::planner::observe::{Observed, Supervision};
use crate::planner::plan::{Action, Op, Target};
use crate::planner::restart::RestartPolicy;
use crate::spec::Stack;
use crate::state::events::Event;

/// The watcher's memory of one project.
#[derive(Debug)]
pub struct Supervisor {
    project: String,
    policy: Policy,
    history: BTreeMap<String, History>,
    /// What `stack ps` and users read.
    pub restarts: Restarts,
    /// Each container's status last round.
    seen: BTreeMap<String, Status>,
    /// When each exited container was first seen exited.
    exited_at: BTreeMap<String, Duration>,
    /// Containers whose next start is a restart (exited or unhealthy at
    /// the last observation).
    restarting: BTreeSet<String>,
    /// Recorded containers found deleted, and networks found removed.
    deleted: BTreeSet<String>,
    removed_networks: BTreeSet<String>,
    /// When a held container may start.
    next: Option<Duration>,
    first: bool,
    changed: bool,
}

/// Why a container exited, in words.
fn exit_words(code: i64) -> String {
    match code {
        137 => "killed (SIGKILL, exit code 137)".into(),
        143 => "stopped (SIGTERM, exit code 143)".into(),
        -1 => "gone (its processes vanished, as after a reboot)".into(),
        c => format!("exited with code {c}"),
    }
}

fn health_word(s: Status) -> Option<&'static str> {
    match s {
        Status::Starting => Some("starting"),
        Status::Healthy => Some("healthy"),
        Status::Unhealthy => Some("unhealthy"),
        _ => None,
    }
}

impl Supervisor {
    pub fn new(project: &str, policy: Policy) -> Supervisor {
        Supervisor {
            project: project.to_string(),
            policy,
            history: BTreeMap::new(),
            restarts: Restarts::default(),
            seen: BTreeMap::new(),
            exited_at: BTreeMap::new(),
            restarting: BTreeSet::new(),
            deleted: BTreeSet::new(),
            removed_networks: BTreeSet::new(),
            next: None,
            first: true,
            changed: false,
        }
    }

    /// When a held container may start (the watcher wakes then).
    pub fn next_wake(&self) -> Option<Duration> {
        self.next
    }

    /// Whether the restart record changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn event(&self, action: &str, service: &str, container: &str) -> Event {
        Event::now(&self.project, action).container(service, container)
    }

    /// Reads what was observed at `now`: events for what changed since the
    /// last round, and what the planner needs to apply restart policies.
    pub fn observe(
        &mut self,
        stack: &Stack,
        observed: &Observed,
        now: Duration,
    ) -> (Supervision, Vec<Event>) {
        let mut events = Vec::new();
        let mut sup = Supervision::default();
        self.restarting.clear();
        self.next = None;
        let first = std::mem::take(&mut self.first);
        let mut seen = BTreeMap::new();
        let mut waiting = BTreeSet::new();
        for c in observed.containers.values().filter(|c| !c.record.one_off) {
            let name = c.name();
            let service = c.service();
            let before = self.seen.get(name).copied();
            seen.insert(name.to_string(), c.status);
            if first && c.status.is_running() {
                events.push(self.event("adopt", service, name).detail(format!(
                    "running before this watcher started; kept as it is ({})",
                    c.status
                )));
            }
            if let Status::Exited { code } = c.status {
                if before.is_none_or(|b| b.is_running()) && !first {
                    // docker's order: the OOM kill, then the death.
                    if c.oom_killed {
                        events.push(self.event("oom", service, name).detail(
                            "the kernel's OOM killer killed its process: it used more memory than its limit (mem_limit) allows",
                        ));
                    }
                    events.push(
                        self.event("die", service, name)
                            .exit_code(code)
                            .detail(exit_words(code)),
                    );
                }
                self.exited_at.entry(name.to_string()).or_insert(now);
            } else {
                self.exited_at.remove(name);
            }
            if let Some(h) = health_word(c.status)
                && before.and_then(health_word) != Some(h)
                && c.status != Status::Starting
            {
                events.push(self.event("health_status", service, name).detail(h));
            }
            let Some(definition) = stack.services.get(service) else {
                continue;
            };
            let policy = RestartPolicy::of(definition);
            // `deploy.restart_policy.window`: a restart that ran this long
            // succeeded, and the attempts count again from zero.
            if let (Some(window), Status::Exited { .. }, Some(started)) = (
                policy.window,
                c.status,
                self.history.get(name).and_then(|h| h.last_start),
            ) && before.is_none_or(|b| b.is_running())
                && now.saturating_sub(started) >= window
                && let Some(r) = self.restarts.containers.get_mut(name)
                && r.count > 0
            {
                r.count = 0;
                self.changed = true;
            }
            let entry = self.restarts.containers.get(name);
            let count = entry.map(|r| r.count).unwrap_or(0);
            sup.restarts.insert(name.to_string(), count);
            let wanted = match c.status {
                Status::Exited { code } => policy.restarts(code, count),
                Status::Unhealthy => policy.restarts_unhealthy(count),
                _ => false,
            };
            if let Status::Exited { code } = c.status
                && !wanted
                && before.is_none_or(|b| b.is_running())
            {
                events.push(self.event("no-restart", service, name).detail(format!(
                    "{}; restart policy `{}` leaves it stopped{}",
                    exit_words(code),
                    policy.describe(),
                    if count > 0 {
                        format!(" after {count} restarts")
                    } else {
                        String::new()
                    }
                )));
            }
            if !wanted {
                continue;
            }
            if entry.is_some_and(|r| r.gave_up) {
                sup.hold.insert(name.to_string());
                continue;
            }
            let history = self.history.get(name).copied().unwrap_or_default();
            let mut decision = self.policy.decide(&history, now);
            // `deploy.restart_policy.delay`: at least this long after the exit.
            if let (Some(delay), Some(exited)) = (policy.delay, self.exited_at.get(name))
                && decision == Decision::Start
                && now < *exited + delay
            {
                decision = Decision::Wait(*exited + delay);
            }
            match decision {
                Decision::Start => {
                    self.restarting.insert(name.to_string());
                }
                Decision::Wait(at) => {
                    sup.hold.insert(name.to_string());
                    if matches!(c.status, Status::Exited { .. }) {
                        waiting.insert(name.to_string());
                    }
                    self.next = Some(self.next.map_or(at, |n| n.min(at)));
                }
                Decision::GiveUp => {
                    sup.hold.insert(name.to_string());
                    let r = self
                        .restarts
                        .containers
                        .entry(name.to_string())
                        .or_default();
                    r.gave_up = true;
                    self.changed = true;
                    events.push(self.event("flap-limit", service, name).detail(format!(
                        "it failed {} times in a row within {} s of starting; it is not restarted any more. `stack logs {service}` shows why; fix it and run `stack up -d`",
                        history.failures + 1,
                        self.policy.reset_after.as_secs()
                    )));
                }
            }
        }
        self.seen = seen;
        // Which exited containers wait out their backoff, for `stack ps`.
        for name in observed.containers.keys() {
            let now_waiting = waiting.contains(name);
            let entry = self.restarts.containers.get(name);
            if entry.is_some_and(|r| r.waiting) != now_waiting {
                self.restarts
                    .containers
                    .entry(name.clone())
                    .or_default()
                    .waiting = now_waiting;
                self.changed = true;
            }
        }
        self.deleted = observed.stale.containers.iter().cloned().collect();
        self.removed_networks = observed.stale.networks.iter().cloned().collect();
        // Containers gone for good leave the record.
        let before = self.restarts.containers.len();
        self.restarts
            .containers
            .retain(|n, _| observed.containers.contains_key(n) || self.deleted.contains(n));
        self.changed |= before != self.restarts.containers.len();
        (sup, events)
    }

    /// Notes an operation that finished (`error`: it failed) at `now`
    /// (`wall`: milliseconds since the Unix epoch) and returns its events.
    pub fn done(&mut self, op: &Op, error: Option<&str>, now: Duration, wall: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let failed = |e: Event| match error {
            Some(why) => Event {
                action: format!("{}-failed", e.action),
                detail: format!("{}: {why}", e.detail),
                ..e
            },
            None => e,
        };
        match (&op.target, op.action) {
            (Target::Container { name, service, .. }, Action::Start) => {
                let restart = self.restarting.contains(name)
                    || self.seen.get(name).is_some_and(|s| s.is_running());
                if !restart {
                    events.push(failed(
                        self.event("start", service, name).detail(&op.reason),
                    ));
                    return events;
                }
                let history = self.history.get(name).copied().unwrap_or_default();
                self.history
                    .insert(name.clone(), self.policy.started(&history, now));
                let r = self.restarts.containers.entry(name.clone()).or_default();
                if error.is_none() {
                    *r = ContainerRestarts {
                        count: r.count + 1,
                        last_restart: Some(wall),
                        reason: op.reason.clone(),
                        gave_up: false,
                        waiting: false,
                    };
                    self.changed = true;
                }
                let why = match self.seen.get(name) {
                    Some(Status::Exited { code }) => {
                        // The planner's reason names the code too: say it once, in words.
                        let policy = op.reason.find(" (restart").map_or("", |i| &op.reason[i..]);
                        format!("{}{policy}", exit_words(*code))
                    }
                    _ => op.reason.clone(),
                };
                if error.is_none() {
                    // It runs now: its next exit is a death.
                    self.seen.insert(name.clone(), Status::Running);
                }
                events.push(failed(self.event("restart", service, name).detail(why)));
            }
            (Target::Container { name, service, .. }, Action::Create) => {
                let e = if self.deleted.contains(name) {
                    self.event("drift-repair", service, name)
                        .detail("the container was deleted; created again")
                } else {
                    self.event("create", service, name).detail(&op.reason)
                };
                events.push(failed(e));
            }
            (Target::Container { name, service, .. }, Action::Recreate) => {
                events.push(failed(self.event("drift-repair", service, name).detail(
                    format!(
                        "its configuration no longer matches the file ({}); recreated",
                        op.reason
                    ),
                )));
            }
            (Target::Network { key, name }, Action::Create) => {
                let mut e = Event::now(&self.project, "drift-repair");
                e.container = Some(name.clone());
                e.detail = if self.removed_networks.contains(key) {
                    format!("network `{name}` (its bridge) was removed; created again")
                } else {
                    format!("network `{name}` created: {}", op.reason)
                };
                events.push(failed(e));
            }
            (Target::Attachment { network, container }, Action::Connect) => {
                let mut e = Event::now(&self.project, "drift-repair");
                e.container = Some(container.clone());
                e.detail = match op.reason.strip_prefix("reattach: ") {
                    Some(why) => format!("{why}; attached again"),
                    None => format!("attached to network `{network}` again: {}", op.reason),
                };
                events.push(failed(e));
            }
            (Target::Container { name, service, .. }, Action::Remove) => {
                events.push(failed(
                    self.event("remove", service, name).detail(&op.reason),
                ));
            }
            _ => {}
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::observe::ObservedContainer;
    use crate::state::ContainerRecord;

    fn stack(restart: &str) -> Stack {
        let yaml =
            format!("name: p\nservices:\n  web:\n    image: busybox\n    restart: \"{restart}\"\n");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(&file, yaml).unwrap();
        let opts = crate::spec::Options {
            files: vec![file],
            project_name: Some("p".into()),
            working_dir: dir.path().to_path_buf(),
            ..crate::spec::Options::default()
        };
        match crate::spec::load(&opts) {
            Ok(p) => p.stack,
            Err(d) => panic!("{d}"),
        }
    }

    fn observed(status: Status) -> Observed {
        let mut o = Observed::default();
        o.containers.insert(
            "p-web-1".into(),
            ObservedContainer {
                record: ContainerRecord {
                    name: "p-web-1".into(),
                    service: "web".into(),
                    replica: 1,
                    ..ContainerRecord::default()
                },
                status,
                recorded: true,
                detached: Vec::new(),
                oom_killed: false,
                stray_namespace: None,
            },
        );
        o
    }

    fn start_op() -> Op {
        Op {
            id: 0,
            action: Action::Start,
            target: Target::Container {
                name: "p-web-1".into(),
                service: "web".into(),
                replica: 1,
            },
            reason: "exited with code 1 (restart: always)".into(),
            changes: Vec::new(),
            after: Vec::new(),
            wait: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_death_is_an_event_and_a_counted_restart() {
        let s = stack("always");
        let mut sup = Supervisor::new("p", Policy::default());
        let (_, events) = sup.observe(&s, &observed(Status::Running), ms(0));
        assert_eq!(events[0].action, "adopt");
        let (plan_input, events) = sup.observe(&s, &observed(Status::Exited { code: 137 }), ms(10));
        assert_eq!(events[0].action, "die");
        assert_eq!(events[0].exit_code, Some(137));
        assert!(plan_input.hold.is_empty());
        let events = sup.done(&start_op(), None, ms(11), 1000);
        assert_eq!(events[0].action, "restart");
        assert!(events[0].detail.contains("killed"), "{:?}", events[0]);
        assert_eq!(sup.restarts.containers["p-web-1"].count, 1);
        assert!(sup.take_changed());
        let (plan_input, _) = sup.observe(&s, &observed(Status::Running), ms(12));
        assert_eq!(plan_input.restarts["p-web-1"], 1);
    }

    #[test]
    fn a_crash_loop_backs_off_then_hits_the_flap_limit_once() {
        let s = stack("always");
        let policy = Policy::default();
        let mut sup = Supervisor::new("p", policy);
        sup.observe(&s, &observed(Status::Running), ms(0));
        let mut t = ms(1);
        let mut flap_events = 0;
        let mut restarts = 0;
        for _ in 0..200 {
            let (input, events) = sup.observe(&s, &observed(Status::Exited { code: 1 }), t);
            flap_events += events.iter().filter(|e| e.action == "flap-limit").count();
            if input.hold.is_empty() {
                sup.done(&start_op(), None, t, 0);
                restarts += 1;
                t += ms(5);
                sup.observe(&s, &observed(Status::Running), t);
            } else if let Some(at) = sup.next_wake() {
                assert!(at > t, "waits for a time to come");
                // `stack ps` reads "Restarting" meanwhile.
                assert!(sup.restarts.containers["p-web-1"].waiting);
                t = at;
            } else {
                break;
            }
            t += ms(5);
        }
        assert_eq!(flap_events, 1);
        assert_eq!(restarts, policy.flap_limit);
        assert!(sup.restarts.containers["p-web-1"].gave_up);
    }

    #[test]
    fn an_oom_kill_is_an_event_before_the_death() {
        let s = stack("no");
        let mut sup = Supervisor::new("p", Policy::default());
        sup.observe(&s, &observed(Status::Running), ms(0));
        let mut o = observed(Status::Exited { code: 137 });
        if let Some(c) = o.containers.get_mut("p-web-1") {
            c.oom_killed = true;
        }
        let (_, events) = sup.observe(&s, &o, ms(10));
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions[..2], ["oom", "die"]);
        // Not waiting: its policy leaves it stopped.
        assert!(
            sup.restarts
                .containers
                .get("p-web-1")
                .is_none_or(|r| !r.waiting)
        );
    }

    #[test]
    fn on_failure_counts_attempts_and_the_planner_gets_them() {
        let s = stack("on-failure:2");
        let mut sup = Supervisor::new("p", Policy::default());
        sup.observe(&s, &observed(Status::Running), ms(0));
        for i in 0..2 {
            let t = ms(20_000 * (i + 1));
            let (input, _) = sup.observe(&s, &observed(Status::Exited { code: 1 }), t);
            assert!(input.hold.is_empty());
            assert_eq!(input.restarts["p-web-1"], i);
            sup.done(&start_op(), None, t, 0);
            sup.observe(&s, &observed(Status::Running), t + ms(1));
        }
        let (input, events) = sup.observe(&s, &observed(Status::Exited { code: 1 }), ms(90_000));
        // The policy says no (two restarts done): not held, the planner keeps it exited.
        assert!(input.hold.is_empty());
        assert_eq!(input.restarts["p-web-1"], 2);
        assert!(events.iter().all(|e| e.action != "flap-limit"));
        assert!(!RestartPolicy::of(&s.services["web"]).restarts(1, input.restarts["p-web-1"]));
    }

    #[test]
    fn health_changes_are_events() {
        let s = stack("always");
        let mut sup = Supervisor::new("p", Policy::default());
        sup.observe(&s, &observed(Status::Starting), ms(0));
        let (_, e) = sup.observe(&s, &observed(Status::Healthy), ms(1));
        assert_eq!(
            (e[0].action.as_str(), e[0].detail.as_str()),
            ("health_status", "healthy")
        );
        let (_, e) = sup.observe(&s, &observed(Status::Healthy), ms(2));
        assert!(e.is_empty());
        let (_, e) = sup.observe(&s, &observed(Status::Unhealthy), ms(3));
        assert_eq!(e[0].detail, "unhealthy");
    }
}
