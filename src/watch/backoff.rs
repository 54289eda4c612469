//! Restart backoff and the flap limit, as a wrapper around any [`Host`].
//!
//! The planner plans a start for every container that died and should run;
//! it knows nothing of how often that happened. The watcher runs its rounds
//! through [`Backoff`], which passes everything through except `start`: a
//! container started again less than [`Policy::reset_after`] after its
//! previous start counts as a failure, and the next start of it waits
//! 100 ms, 200 ms, ... up to a minute (the first restart is immediate).
//! After [`Policy::flap_limit`] quick failures in a row it is no longer
//! started: the round reports why, and `stack up -d` (a new watcher)
//! starts over. A start refused here is an error of that round only; the
//! next round tries again, so the resync still converges.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::planner::backend::{
    BackendError, Clock, ContainerSpec, ImageInfo, Images, LiveContainer, LiveObject, NetworkSpec,
    Networks, Runtime, Status, VolumeSpec, Volumes,
};
use crate::spec::model::ServiceNetwork;

/// The numbers of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A container that ran this long is well again: its count resets.
    pub reset_after: Duration,
    /// Quick failures in a row after which it is not started again.
    pub flap_limit: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(60),
            reset_after: Duration::from_secs(10),
            flap_limit: 10,
        }
    }
}

/// One container's restart history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// Quick failures in a row.
    pub failures: u32,
    pub last_start: Option<Duration>,
}

/// What to do with a start at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Start,
    /// Not before this time.
    Wait(Duration),
    /// The flap limit was reached.
    GiveUp,
}

impl Policy {
    /// The wait imposed after `failures` quick failures: none after the
    /// first, then 100 ms, 200 ms, ... up to the maximum.
    fn delay(&self, failures: u32) -> Duration {
        match failures {
            0 => Duration::ZERO,
            n => self
                .first_delay
                .saturating_mul(1u32 << (n - 1).min(20))
                .min(self.max_delay),
        }
    }

    /// Whether the container failed quickly: it ran less than
    /// `reset_after` (the time since its start, less the wait imposed).
    fn quick(&self, history: &History, now: Duration) -> bool {
        history.last_start.is_some_and(|last| {
            now.saturating_sub(last) < self.reset_after + self.delay(history.failures)
        })
    }

    /// Whether a container with `history` may start at `now`.
    pub fn decide(&self, history: &History, now: Duration) -> Decision {
        let Some(last) = history.last_start else {
            return Decision::Start;
        };
        if !self.quick(history, now) {
            return Decision::Start;
        }
        if history.failures + 1 >= self.flap_limit {
            return Decision::GiveUp;
        }
        let delay = self.delay(history.failures);
        if now >= last + delay {
            Decision::Start
        } else {
            Decision::Wait(last + delay)
        }
    }

    /// The history after a start at `now`.
    pub fn started(&self, history: &History, now: Duration) -> History {
        let quick = self.quick(history, now);
        History {
            failures: if quick { history.failures + 1 } else { 0 },
            last_start: Some(now),
        }
    }
}

/// A [`Host`](crate::planner::Host) whose `start` follows a [`Policy`].
pub struct Backoff<H> {
    inner: H,
    policy: Policy,
    history: Mutex<BTreeMap<String, History>>,
}

impl<H> Backoff<H> {
    pub fn new(inner: H, policy: Policy) -> Backoff<H> {
        Backoff {
            inner,
            policy,
            history: Mutex::new(BTreeMap::new()),
        }
    }

    /// The wrapped host.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    pub fn into_inner(self) -> H {
        self.inner
    }

    fn histories(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, History>> {
        // Plain map of plain values: a poisoned lock's data is still whole.
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<H: Images> Images for Backoff<H> {
    async fn inspect_image(&self, reference: &str) -> Result<Option<ImageInfo>, BackendError> {
        self.inner.inspect_image(reference).await
    }
    async fn pull(&self, reference: &str) -> Result<ImageInfo, BackendError> {
        self.inner.pull(reference).await
    }
}

impl<H: Networks> Networks for Backoff<H> {
    async fn inspect_network(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        self.inner.inspect_network(name).await
    }
    async fn create_network(&self, spec: &NetworkSpec) -> Result<(), BackendError> {
        self.inner.create_network(spec).await
    }
    async fn remove_network(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_network(name).await
    }
    async fn connect(
        &self,
        network: &str,
        container: &str,
        attachment: &ServiceNetwork,
    ) -> Result<(), BackendError> {
        self.inner.connect(network, container, attachment).await
    }
    async fn disconnect(&self, network: &str, container: &str) -> Result<(), BackendError> {
        self.inner.disconnect(network, container).await
    }
}

impl<H: Volumes> Volumes for Backoff<H> {
    async fn inspect_volume(&self, name: &str) -> Result<Option<LiveObject>, BackendError> {
        self.inner.inspect_volume(name).await
    }
    async fn create_volume(&self, spec: &VolumeSpec) -> Result<(), BackendError> {
        self.inner.create_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_volume(name).await
    }
}

impl<H: Runtime + Clock> Runtime for Backoff<H> {
    async fn list(&self, project: &str) -> Result<Vec<LiveContainer>, BackendError> {
        self.inner.list(project).await
    }
    async fn status(&self, name: &str) -> Result<Option<Status>, BackendError> {
        self.inner.status(name).await
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, BackendError> {
        self.inner.create_container(spec).await
    }
    async fn start(&self, name: &str) -> Result<(), BackendError> {
        let now = self.inner.now();
        let history = self.histories().get(name).copied().unwrap_or_default();
        match self.policy.decide(&history, now) {
            Decision::Start => {}
            Decision::Wait(at) => {
                return Err(BackendError::failed(format!(
                    "{name} keeps exiting; backing off, next start in {} ms",
                    at.saturating_sub(now).as_millis()
                )));
            }
            Decision::GiveUp => {
                return Err(BackendError::failed(format!(
                    "{name} exited {} times in a row within {} s of starting; it is not restarted any more (flap limit). `stack logs` or `stack runtime logs {name}` shows why; fix it and run `stack up -d`",
                    history.failures + 1,
                    self.policy.reset_after.as_secs()
                )));
            }
        }
        self.inner.start(name).await?;
        let next = self.policy.started(&history, now);
        self.histories().insert(name.to_string(), next);
        Ok(())
    }
    async fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), BackendError> {
        self.inner.stop(name, timeout).await
    }
    async fn remove_container(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_container(name).await
    }
}

impl<H: Clock> Clock for Backoff<H> {
    fn now(&self) -> Duration {
        self.inner.now()
    }
    async fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn restarts_back_off_then_give_up_and_recover_after_a_good_run() {
        let p = Policy::default();
        let mut h = History::default();
        assert_eq!(p.decide(&h, ms(0)), Decision::Start);
        h = p.started(&h, ms(0));
        // Died at once: the first restart is immediate.
        assert_eq!(p.decide(&h, ms(50)), Decision::Start);
        h = p.started(&h, ms(50));
        assert_eq!(h.failures, 1);
        // Then 100 ms, 200 ms, ...
        assert_eq!(p.decide(&h, ms(100)), Decision::Wait(ms(150)));
        assert_eq!(p.decide(&h, ms(150)), Decision::Start);
        h = p.started(&h, ms(150));
        assert_eq!(p.decide(&h, ms(200)), Decision::Wait(ms(350)));
        // A good run resets the count.
        let well = p.started(&h, ms(20_000));
        assert_eq!(well.failures, 0);
        // Quick failures up to the flap limit: given up.
        let mut t = ms(0);
        let mut h = History::default();
        let mut gave_up = false;
        for _ in 0..40 {
            match p.decide(&h, t) {
                Decision::Start => h = p.started(&h, t),
                Decision::Wait(at) => t = at,
                Decision::GiveUp => {
                    gave_up = true;
                    break;
                }
            }
        }
        assert!(gave_up, "{h:?}");
        assert_eq!(h.failures + 1, p.flap_limit);
    }
}
