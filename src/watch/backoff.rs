//! Restart backoff and the flap limit: when a restart may happen.
//!
//! A restart policy says whether a container that ended runs again; this
//! says when. A container started again less than [`Policy::reset_after`]
//! after its previous start counts as a quick failure, and the next start
//! of it waits 100 ms, 200 ms, ... up to a minute (the first restart is
//! immediate). After [`Policy::flap_limit`] quick failures in a row it is
//! no longer started (the flap limit): the watcher says so in the
//! project's events and its restart record, and `stack up -d` (a new
//! watcher) starts over. A container that ran [`Policy::reset_after`]
//! (10 s) is well again and its count resets. [`crate::watch::supervise`]
//! applies this to each round's observation.

use std::time::Duration;

/// The numbers of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// A container that ran this long is well again: its count resets.
    pub reset_after: Duration,
    /// Quick failures in a row after which it is not started again
    /// (6: about 1.5 s of a container that fails at once, as systemd's
    /// default start limit of 5 starts in 10 s).
    pub flap_limit: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(60),
            reset_after: Duration::from_secs(10),
            flap_limit: 6,
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
