//! Health checks: when a probe is due, and what its result makes of a
//! container's health.
//!
//! A service's `healthcheck` (or its image's `HEALTHCHECK`) is a command
//! run inside the container every `interval`, killed after `timeout`. A
//! container starts `starting`; one passing probe makes it `healthy`;
//! `retries` failing probes in a row make it `unhealthy`. During the
//! `start_period` after its start, probes run every `start_interval`
//! instead, and failures do not count (a slow start is not a failure),
//! though a pass still makes it healthy. A failure counts at most once per
//! interval, so a caller that asks more often (`up --wait` polls) cannot
//! make a container unhealthy faster than its probes would. Everything
//! here is a pure function of times in milliseconds: the host runs the
//! probes ([`crate::host`]), the watcher acts on the result.

use serde::{Deserialize, Serialize};

/// A probe's timing, from the health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Timing {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u64,
    #[serde(default)]
    pub start_period_ms: u64,
    #[serde(default)]
    pub start_interval_ms: u64,
}

/// Docker's defaults: 30 s interval and timeout, 3 retries, no start
/// period, 5 s start interval.
pub const DEFAULT_INTERVAL_MS: u64 = 30_000;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_RETRIES: u64 = 3;
pub const DEFAULT_START_INTERVAL_MS: u64 = 5_000;

/// A container's health, kept between probes (`health.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// Failures in a row that counted.
    pub failures: u64,
    /// A probe passed since the last failure that counted.
    pub healthy: bool,
    /// When a failure last counted (ms since the epoch).
    #[serde(default)]
    pub counted_at: u64,
    /// When a probe last ran (ms since the epoch; 0: never).
    #[serde(default)]
    pub last_run: u64,
}

/// What the health amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Starting,
    Healthy,
    Unhealthy,
}

impl Timing {
    fn in_start_period(&self, started: u64, now: u64) -> bool {
        now < started.saturating_add(self.start_period_ms)
    }

    /// The time between probes at `now` for a container started at `started`.
    pub fn period(&self, health: &Health, started: u64, now: u64) -> u64 {
        if self.in_start_period(started, now) && !health.healthy {
            if self.start_interval_ms > 0 {
                self.start_interval_ms
            } else {
                DEFAULT_START_INTERVAL_MS.min(self.interval_ms)
            }
        } else {
            self.interval_ms
        }
    }

    /// Whether a probe is due at `now`: never run, or a period since the last.
    pub fn due(&self, health: &Health, started: u64, now: u64) -> bool {
        health.last_run == 0
            || now.saturating_sub(health.last_run) >= self.period(health, started, now)
    }

    /// The health after a probe that passed (`ok`) or failed at `now`.
    pub fn record(&self, health: &Health, ok: bool, started: u64, now: u64) -> Health {
        let mut h = Health {
            last_run: now,
            ..*health
        };
        if ok {
            h.failures = 0;
            h.healthy = true;
            h.counted_at = 0;
        } else if !self.in_start_period(started, now)
            && (h.counted_at == 0
                || now.saturating_sub(h.counted_at) >= self.period(health, started, now))
        {
            h.failures += 1;
            h.counted_at = now;
            if h.failures >= self.retries.max(1) {
                h.healthy = false;
            }
        }
        h
    }

    pub fn verdict(&self, health: &Health) -> Verdict {
        if health.failures >= self.retries.max(1) {
            Verdict::Unhealthy
        } else if health.healthy {
            Verdict::Healthy
        } else {
            Verdict::Starting
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        interval_ms: 1000,
        timeout_ms: 500,
        retries: 2,
        start_period_ms: 3000,
        start_interval_ms: 200,
    };

    #[test]
    fn starting_then_healthy_then_unhealthy_after_retries() {
        let mut h = Health::default();
        assert!(T.due(&h, 0, 0));
        h = T.record(&h, false, 0, 10);
        // In the start period: probes every start_interval, failures not counted.
        assert_eq!((T.verdict(&h), h.failures), (Verdict::Starting, 0));
        assert!(!T.due(&h, 0, 100) && T.due(&h, 0, 210));
        h = T.record(&h, true, 0, 210);
        assert_eq!(T.verdict(&h), Verdict::Healthy);
        // Healthy: every interval, even in the start period.
        assert!(!T.due(&h, 0, 800) && T.due(&h, 0, 1210));
        h = T.record(&h, false, 0, 5000);
        assert_eq!((T.verdict(&h), h.failures), (Verdict::Healthy, 1));
        // A second failure within the interval does not count.
        h = T.record(&h, false, 0, 5100);
        assert_eq!(h.failures, 1);
        h = T.record(&h, false, 0, 6000);
        assert_eq!(T.verdict(&h), Verdict::Unhealthy);
        h = T.record(&h, true, 0, 7000);
        assert_eq!(T.verdict(&h), Verdict::Healthy);
    }

    #[test]
    fn without_a_start_period_failures_count_from_the_start() {
        let t = Timing {
            start_period_ms: 0,
            retries: 1,
            ..T
        };
        let h = t.record(&Health::default(), false, 0, 10);
        assert_eq!(t.verdict(&h), Verdict::Unhealthy);
    }
}
