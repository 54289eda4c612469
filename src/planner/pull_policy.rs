//! When to pull: compose's `pull_policy`, decided without side effects.
//!
//! The planner asks [`decide`] for each image, with what the store has and
//! when the image was last pulled; the answer depends on nothing else, so it
//! is unit-tested here and the plan shows it as a reason. When several
//! services share an image, the strictest policy wins ([`PullPolicy::merge`]).
//!
//! | policy | pulls when |
//! |---|---|
//! | `missing` (default), `if_not_present` | the image is not in the store |
//! | `always` | every time |
//! | `never` | never; a missing image is an error |
//! | `build` | never: the image is built (not supported yet) |
//! | `daily`, `weekly`, `every_<duration>` | missing, or last pulled longer ago than that |
//! | `refresh` + `pull_refresh_after` | like `every_<duration>` |

use std::time::{Duration, SystemTime};

/// A `pull_policy` compose does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a pull_policy (use always, missing, never, build, daily, weekly, every_<duration> such as every_12h, or refresh with pull_refresh_after)"
)]
pub struct BadPullPolicy(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
    Build,
    /// Pull when the last pull is older than this.
    Every(Duration),
}

/// What `up` should do about a service's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullDecision {
    /// Pull it now.
    Pull,
    /// Use the image the store has.
    UseLocal,
    /// The policy forbids pulling and the store does not have it.
    MissingNeverPull,
    /// The image is to be built from `build:`.
    Build,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl PullPolicy {
    /// Parses the service's `pull_policy` (absent: `missing`), with
    /// `pull_refresh_after` for `refresh`.
    pub fn parse(
        policy: Option<&str>,
        refresh_after: Option<&str>,
    ) -> Result<PullPolicy, BadPullPolicy> {
        let bad = || BadPullPolicy(policy.unwrap_or_default().to_owned());
        Ok(match policy.unwrap_or("missing") {
            "missing" | "if_not_present" => PullPolicy::Missing,
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            "daily" => PullPolicy::Every(DAY),
            "weekly" => PullPolicy::Every(7 * DAY),
            "refresh" => {
                PullPolicy::Every(parse_period(refresh_after.ok_or_else(bad)?).ok_or_else(bad)?)
            }
            other => match other.strip_prefix("every_").and_then(parse_period) {
                Some(period) => PullPolicy::Every(period),
                None => return Err(bad()),
            },
        })
    }
}

impl PullPolicy {
    /// The policy for an image that several services share: `never` and
    /// `build` (the user's explicit word) beat `always`, which beats a
    /// refresh period (the shortest wins), which beats `missing`.
    pub fn merge(self, other: PullPolicy) -> PullPolicy {
        use PullPolicy::*;
        match (self, other) {
            (Never, _) | (_, Never) => Never,
            (Build, _) | (_, Build) => Build,
            (Always, _) | (_, Always) => Always,
            (Every(a), Every(b)) => Every(a.min(b)),
            (Every(a), Missing) | (Missing, Every(a)) => Every(a),
            (Missing, Missing) => Missing,
        }
    }
}

/// `1w2d`, `12h`, `30m`, `90s`: compose's refresh periods.
fn parse_period(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'w' => 7 * 24 * 3600,
            'd' => 24 * 3600,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

/// Decides whether to pull. `last_pull` is when the store last pulled the
/// image (`None` if never, e.g. loaded from a file).
pub fn decide(
    policy: PullPolicy,
    present: bool,
    last_pull: Option<SystemTime>,
    now: SystemTime,
) -> PullDecision {
    match policy {
        PullPolicy::Always => PullDecision::Pull,
        PullPolicy::Build => PullDecision::Build,
        PullPolicy::Never if present => PullDecision::UseLocal,
        PullPolicy::Never => PullDecision::MissingNeverPull,
        PullPolicy::Missing if present => PullDecision::UseLocal,
        PullPolicy::Missing => PullDecision::Pull,
        PullPolicy::Every(_) if !present => PullDecision::Pull,
        PullPolicy::Every(period) => match last_pull {
            // Loaded or imported, never pulled: the user put it there on
            // purpose, and there may be no registry to refresh it from.
            None => PullDecision::UseLocal,
            // A clock that went backwards counts as "just pulled".
            Some(at) => match now.duration_since(at) {
                Ok(age) if age >= period => PullDecision::Pull,
                _ => PullDecision::UseLocal,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PullDecision::*;

    fn parse(p: &str) -> PullPolicy {
        PullPolicy::parse(Some(p), None).unwrap()
    }

    #[test]
    fn parses_every_compose_spelling() {
        assert_eq!(PullPolicy::parse(None, None).unwrap(), PullPolicy::Missing);
        assert_eq!(parse("if_not_present"), PullPolicy::Missing);
        assert_eq!(parse("daily"), PullPolicy::Every(DAY));
        assert_eq!(parse("weekly"), PullPolicy::Every(7 * DAY));
        assert_eq!(
            parse("every_12h"),
            PullPolicy::Every(Duration::from_secs(12 * 3600))
        );
        assert_eq!(parse("every_1w2d"), PullPolicy::Every(9 * DAY));
        assert_eq!(
            parse("every_90s"),
            PullPolicy::Every(Duration::from_secs(90))
        );
        assert_eq!(
            PullPolicy::parse(Some("refresh"), Some("30m")).unwrap(),
            PullPolicy::Every(Duration::from_secs(1800))
        );
        for bad in [
            "sometimes",
            "every_",
            "every_12",
            "every_h",
            "every_0s",
            "refresh",
        ] {
            let err = PullPolicy::parse(Some(bad), None).unwrap_err().to_string();
            assert!(err.contains("pull_policy"), "{bad}: {err}");
        }
    }

    #[test]
    fn decides_from_policy_presence_and_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour_ago = Some(now - Duration::from_secs(3600));
        let two_days_ago = Some(now - 2 * DAY);
        let every_day = PullPolicy::Every(DAY);
        assert_eq!(decide(PullPolicy::Missing, false, None, now), Pull);
        assert_eq!(decide(PullPolicy::Missing, true, None, now), UseLocal);
        assert_eq!(decide(PullPolicy::Always, true, hour_ago, now), Pull);
        assert_eq!(decide(PullPolicy::Never, true, None, now), UseLocal);
        assert_eq!(
            decide(PullPolicy::Never, false, None, now),
            MissingNeverPull
        );
        assert_eq!(decide(PullPolicy::Build, false, None, now), Build);
        assert_eq!(decide(every_day, false, None, now), Pull);
        assert_eq!(decide(every_day, true, hour_ago, now), UseLocal);
        assert_eq!(decide(every_day, true, two_days_ago, now), Pull);
        assert_eq!(decide(every_day, true, None, now), UseLocal);
        let future = Some(now + DAY);
        assert_eq!(decide(every_day, true, future, now), UseLocal);
    }
}
