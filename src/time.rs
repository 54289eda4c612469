//! Wall-clock times as text, without a date crate.
//!
//! Everything stack writes down (log records, events, image configs, `ps`
//! output) stamps times as RFC 3339 in UTC, and `--since`/`--until` read
//! them back. Converting between seconds since 1970-01-01 and a calendar
//! date is the only hard part, and it is two small pure functions
//! (Howard Hinnant's `civil_from_days` / `days_from_civil`): a proleptic
//! Gregorian calendar counted in 400-year eras of 146 097 days, with the
//! year starting in March so that the leap day falls last. The rest is
//! splitting and padding digits.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `--since`/`--until` value that is none of the forms we read.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a time: give RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a duration back from now such as 10m or 1h30m"
)]
pub struct NotATime(pub String);

/// Days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS{fraction}Z` for `secs` since the epoch.
fn render(secs: i64, fraction: &str) -> String {
    let (y, mo, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-25T21:53:08Z` from milliseconds since the epoch.
pub fn rfc3339(ms: u64) -> String {
    render((ms / 1000) as i64, "")
}

/// `2026-11-25T21:51:21.123Z` from milliseconds since the epoch.
pub fn rfc3339_millis(ms: u64) -> String {
    render((ms / 1000) as i64, &format!(".{:03}", ms % 1000))
}

/// `2025-11-25T19:22:07.123456789Z`: the log records' stamp, which
/// [`parse_rfc3339`] reads back exactly.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    render(d.as_secs() as i64, &format!(".{:09}", d.subsec_nanos()))
}

/// Milliseconds since the epoch (0 for a clock set before 1970).
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 as people and programs write it: `2026-01-02T15:04:05Z`, a
/// space instead of the `T`, fractions down to nanoseconds, an offset
/// (`+01:00`, `-05:30`) or none (UTC), or a bare date (midnight UTC).
/// `None` for anything else or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00Z"));
    let (clock, offset_secs) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        (c, sign * (h * 3600 + m * 60))
    } else {
        (time, 0)
    };
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits beyond nanoseconds are dropped, as the clock has no more.
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    let secs = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// A Go-style duration: `10m`, `1h30m`, `1.5h`, `300ms`, `90s`, plus `d`
/// for days. A bare number is not a duration (it is a Unix time).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += number * unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// `--since`/`--until`: a duration back from `now` (`10m`, `1h30m`, `2d`),
/// a Unix time (`1767366245`, `1767366245.5`), or RFC 3339 as
/// [`parse_rfc3339`] reads it, as docker takes them.
pub fn parse_since(text: &str, now: SystemTime) -> Result<SystemTime, NotATime> {
    let t = text.trim();
    let bad = || NotATime(t.to_string());
    if let Some(d) = parse_duration(t) {
        // Far back is simply the start of the clock: nothing is older.
        return Ok(now.checked_sub(d).unwrap_or(UNIX_EPOCH).max(UNIX_EPOCH));
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(secs));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map(|d| UNIX_EPOCH + d)
            .map_err(|_| bad());
    }
    parse_rfc3339(t).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn formats_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_903_988_000), "2026-11-28T22:13:08Z");
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_764_107_481_123),
            "2025-11-25T21:51:21.123Z"
        );
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn now_has_the_right_shape() {
        let now = rfc3339(millis(SystemTime::now()));
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }

    #[test]
    fn nanosecond_stamps_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_764_098_527, 123_456_789);
        let s = rfc3339_nanos(t);
        assert_eq!(s, "2025-11-25T19:22:07.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn since_takes_rfc3339_unix_and_relative() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(parse_since("10m", now).unwrap(), secs(1_000_000 - 600));
        assert_eq!(parse_since("1970-01-01T00:01:00Z", now).unwrap(), secs(60));
        assert_eq!(
            parse_since("1970-01-01T01:01:00.5+01:00", now).unwrap(),
            at_ms(60_500)
        );
        assert_eq!(parse_since("1970-01-02", now).unwrap(), secs(86_400));
        assert_eq!(parse_since("120.25", now).unwrap(), at_ms(120_250));
        assert!(parse_since("yesterday", now).is_err());
    }

    #[test]
    fn since_takes_what_events_took() {
        let now = at_ms(1_764_107_481_000);
        let ms = |t: &str| millis(parse_since(t, now).unwrap());
        assert_eq!(ms("1764107481"), 1_764_107_481_000);
        assert_eq!(ms("10m"), 1_764_107_481_000 - 600_000);
        assert_eq!(ms("1d"), 1_764_107_481_000 - 86_400_000);
        assert_eq!(ms(" 2025-11-25T21:51:21Z "), 1_764_107_481_000);
        assert_eq!(ms("2025-11-25 21:51:21+00:00"), 1_764_107_481_000);
        assert_eq!(ms("2025-11-25T21:51:21.5Z"), 1_764_107_481_500);
        assert_eq!(
            rfc3339_millis(millis(parse_since("2000-02-29T00:00:00Z", now).unwrap())),
            "2000-02-29T00:00:00.000Z"
        );
        let err = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("`yesterday` is not a time"), "{err}");
    }
}
