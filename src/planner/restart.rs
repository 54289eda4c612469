//! Restart policies: whether a container that stopped should run again.
//!
//! A service says when its containers come back after they end, in one of
//! two spellings: Compose's `restart:` (`no`, `always`, `on-failure[:N]`,
//! `unless-stopped`) and Swarm's `deploy.restart_policy` (`condition:
//! none | on-failure | any`, `max_attempts`, `delay`, `window`), which wins
//! when both are given, as in docker compose. [`RestartPolicy::of`] reads
//! either into one value, and [`RestartPolicy::restarts`] answers for one
//! exit: the exit code (a non-zero code is a failure) and how many times
//! the container was already restarted. Timing (the first restart at once,
//! then exponential backoff, a flap limit) is the watcher's business
//! ([`crate::watch::backoff`]); `delay` only lengthens its waits.
//!
//! An unhealthy container is restarted under any policy but `no` (and
//! `on-failure`'s attempts count too), unless the service opts out with
//! the label [`RESTART_ON_UNHEALTHY`]` = "false"`.

use std::time::Duration;

use crate::spec::Service;

/// The service label that turns restarts of unhealthy containers off.
pub const RESTART_ON_UNHEALTHY: &str = "stack.restart-on-unhealthy";

/// When a service's containers run again after they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// Never (`no`, `condition: none`).
    #[default]
    Never,
    /// After a non-zero exit (`on-failure`, `condition: on-failure`).
    OnFailure,
    /// Whatever the exit (`always`, `condition: any`).
    Always,
    /// Like `always`, except after the user stopped it.
    UnlessStopped,
}

/// A service's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestartPolicy {
    pub when: When,
    /// At most this many restarts (`on-failure:N`, `max_attempts`).
    pub max_attempts: Option<u64>,
    /// The least wait before a restart (`deploy.restart_policy.delay`).
    pub delay: Option<Duration>,
    /// How long a restart must run to count as a success and reset the
    /// attempts (`deploy.restart_policy.window`).
    pub window: Option<Duration>,
    /// Restart when the health check fails (see [`RESTART_ON_UNHEALTHY`]).
    pub on_unhealthy: bool,
}

impl RestartPolicy {
    /// The policy of `service`; `deploy.restart_policy` wins over `restart`.
    pub fn of(service: &Service) -> RestartPolicy {
        let mut policy = RestartPolicy::default();
        if let Some(p) = service
            .deploy
            .as_ref()
            .and_then(|d| d.restart_policy.as_ref())
        {
            policy.when = match p.condition.as_deref() {
                Some("none") => When::Never,
                Some("on-failure") => When::OnFailure,
                // Swarm's default condition is `any`.
                _ => When::Always,
            };
            policy.max_attempts = p.max_attempts.filter(|n| *n > 0);
            policy.delay = p.delay.map(|d| d.0);
            policy.window = p.window.map(|d| d.0);
        } else {
            let text = service.restart.as_deref().unwrap_or("no");
            let (name, count) = match text.split_once(':') {
                Some((n, c)) => (n, c.trim().parse::<u64>().ok()),
                None => (text, None),
            };
            policy.when = match name.trim() {
                "always" => When::Always,
                "unless-stopped" => When::UnlessStopped,
                "on-failure" => When::OnFailure,
                _ => When::Never,
            };
            if policy.when == When::OnFailure {
                policy.max_attempts = count.filter(|n| *n > 0);
            }
        }
        policy.on_unhealthy = policy.when != When::Never
            && service
                .labels
                .get(RESTART_ON_UNHEALTHY)
                .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"));
        policy
    }

    /// Whether a container that exited with `code` after `restarts`
    /// restarts of it should run again.
    pub fn restarts(&self, code: i64, restarts: u64) -> bool {
        let wanted = match self.when {
            When::Never => false,
            When::OnFailure => code != 0,
            When::Always | When::UnlessStopped => true,
        };
        wanted && self.max_attempts.is_none_or(|max| restarts < max)
    }

    /// Whether an unhealthy container that was restarted `restarts` times
    /// should be restarted again.
    pub fn restarts_unhealthy(&self, restarts: u64) -> bool {
        self.on_unhealthy && self.max_attempts.is_none_or(|max| restarts < max)
    }

    /// The policy as the user wrote it, for messages.
    pub fn describe(&self) -> String {
        let name = match self.when {
            When::Never => "no",
            When::OnFailure => "on-failure",
            When::Always => "always",
            When::UnlessStopped => "unless-stopped",
        };
        match self.max_attempts {
            Some(n) => format!("{name}:{n}"),
            None => name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{Deploy, RestartPolicy as Swarm};

    fn service(restart: Option<&str>) -> Service {
        Service {
            restart: restart.map(str::to_string),
            ..Service::default()
        }
    }

    #[test]
    fn compose_policies_decide_by_exit_code_and_count() {
        let no = RestartPolicy::of(&service(None));
        assert!(!no.restarts(1, 0) && !no.restarts(0, 0));
        assert!(!RestartPolicy::of(&service(Some("no"))).restarts(137, 0));
        let always = RestartPolicy::of(&service(Some("always")));
        assert!(always.restarts(0, 0) && always.restarts(1, 1000));
        let unless = RestartPolicy::of(&service(Some("unless-stopped")));
        assert_eq!(unless.when, When::UnlessStopped);
        assert!(unless.restarts(0, 5));
        let on_failure = RestartPolicy::of(&service(Some("on-failure")));
        assert!(on_failure.restarts(1, 99) && !on_failure.restarts(0, 0));
        let twice = RestartPolicy::of(&service(Some("on-failure:2")));
        assert_eq!(twice.describe(), "on-failure:2");
        assert!(twice.restarts(1, 0) && twice.restarts(1, 1));
        assert!(!twice.restarts(1, 2));
        assert!(!twice.restarts(0, 0));
    }

    #[test]
    fn deploy_restart_policy_wins_and_defaults_to_any() {
        let mut s = service(Some("no"));
        s.deploy = Some(Deploy {
            restart_policy: Some(Swarm {
                condition: None,
                delay: Some(crate::spec::model::Duration(Duration::from_secs(2))),
                max_attempts: Some(3),
                window: None,
            }),
            ..Deploy::default()
        });
        let p = RestartPolicy::of(&s);
        assert_eq!(p.when, When::Always);
        assert_eq!(p.delay, Some(Duration::from_secs(2)));
        assert!(p.restarts(0, 2) && !p.restarts(0, 3));
        if let Some(d) = s.deploy.as_mut() {
            d.restart_policy = Some(Swarm {
                condition: Some("none".into()),
                ..Swarm::default()
            });
        }
        assert!(!RestartPolicy::of(&s).restarts(1, 0));
    }

    #[test]
    fn unhealthy_restarts_follow_the_policy_and_the_opt_out_label() {
        assert!(!RestartPolicy::of(&service(None)).restarts_unhealthy(0));
        let mut s = service(Some("always"));
        assert!(RestartPolicy::of(&s).restarts_unhealthy(0));
        s.labels.insert(RESTART_ON_UNHEALTHY.into(), "false".into());
        assert!(!RestartPolicy::of(&s).restarts_unhealthy(0));
    }
}
