//! `stack top`: the processes running in each container, `ps -ef` style.
//!
//! A container's processes are those in its cgroup (the exec'd ones too),
//! read from the host's /proc: pids are the host's, as `docker top` shows
//! them. Columns: UID PID PPID C STIME TTY TIME CMD, where C is the share
//! of one CPU the process used over its life, STIME its start (today's as
//! HH:MM, older ones as the date) and TIME its CPU time.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::Failure;
use super::args::{Global, ServicesArgs};
use super::containers;
use super::ps::render_table;

/// Runs `stack top`.
pub fn run(global: &Global, args: &ServicesArgs) -> Result<(), Failure> {
    let (list, runtime) = containers::with_runtime(global, &args.services)?;
    let users = host_users();
    let clock = Clock::read();
    let mut out = std::io::stdout().lock();
    let mut first = true;
    for c in list.iter().filter(|c| c.status.is_running()) {
        let Ok(mut pids) = runtime.processes(&c.name) else {
            continue;
        };
        pids.sort_unstable();
        let rows: Vec<Vec<String>> = pids
            .iter()
            .filter_map(|&pid| process_row(pid, &users, &clock))
            .collect();
        if !first {
            writeln!(out)?;
        }
        first = false;
        writeln!(out, "{}", c.name)?;
        write!(
            out,
            "{}",
            render_table(
                &["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                &rows
            )
        )?;
    }
    Ok(())
}

/// uid to name, from the host's /etc/passwd (as `docker top` shows them).
fn host_users() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// What converting /proc's clock ticks needs.
struct Clock {
    hz: u64,
    /// Boot time, Unix seconds.
    boot: u64,
    /// Seconds since boot.
    uptime: f64,
}

impl Clock {
    fn read() -> Clock {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let boot = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
            .unwrap_or(0);
        let uptime = std::fs::read_to_string("/proc/uptime")
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|u| u.parse().ok())
            .unwrap_or(0.0);
        Clock { hz, boot, uptime }
    }
}

fn process_row(pid: i32, users: &BTreeMap<u32, String>, clock: &Clock) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (ppid, tty, cpu_ticks, start_ticks) = (num(1), num(4), num(11) + num(12), num(19));
    let uid: u32 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let cpu_secs = cpu_ticks / clock.hz;
    let age = clock.uptime - start_ticks as f64 / clock.hz as f64;
    let c = if age > 0.0 {
        (cpu_ticks as f64 / clock.hz as f64 / age * 100.0) as u64
    } else {
        0
    };
    Some(vec![
        users.get(&uid).cloned().unwrap_or_else(|| uid.to_string()),
        pid.to_string(),
        ppid.to_string(),
        c.to_string(),
        start_time(clock.boot + start_ticks / clock.hz),
        tty_name(tty),
        format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs % 3600 / 60,
            cpu_secs % 60
        ),
        cmd,
    ])
}

/// "pts/3", "tty1", or "?" for none (from /proc's tty_nr).
fn tty_name(nr: u64) -> String {
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        0 => "?".into(),
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 => format!("tty{minor}"),
        _ => format!("{major}:{minor}"),
    }
}

/// HH:MM for today, else "Mon DD", in local time, as ps prints STIME.
fn start_time(unix: u64) -> String {
    let local = |t: i64| {
        // SAFETY: libc::tm is plain integers (and a pointer that may be null).
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r reads `t` and writes into the struct we own.
        unsafe { libc::localtime_r(&t, &mut tm) };
        tm
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (then, today) = (local(unix as i64), local(now));
    if then.tm_yday == today.tm_yday && then.tm_year == today.tm_year {
        format!("{:02}:{:02}", then.tm_hour, then.tm_min)
    } else {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = MONTHS.get(then.tm_mon as usize).copied().unwrap_or("?");
        format!("{month}{:02}", then.tm_mday)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminals_are_named_like_ps() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
    }
}
