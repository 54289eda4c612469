//! `stack stats`: CPU, memory and process counts of the containers.
//!
//! Figures come from each container's cgroup (the runtime's [`Usage`]).
//! CPU % is the CPU time used between two samples a second apart, over
//! that second, per cent of one CPU (docker's measure, so two busy CPUs
//! show 200%). The memory limit is the container's, else the host's
//! memory. NET I/O is what crossed the container's interfaces (its network
//! namespace's counters, loopback aside). BLOCK I/O is what its processes
//! read from and wrote to block devices, from the cgroup's blkio (v1) or io
//! (v2) counters: page-cache hits and v1's deferred writeback are not I/O
//! it did. On a terminal the table is redrawn every second until Ctrl-C;
//! `--no-stream` prints one sample and exits.
//!
//! [`Usage`]: crate::runtime::cgroup::Usage

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Failure;
use super::args::{Global, ListFormat, StatsArgs};
use super::containers::{self, Container};
use super::ps::render_table;
use crate::runtime::cgroup::Usage;
use crate::runtime::container::Runtime;

/// Runs `stack stats`.
pub fn run(global: &Global, args: &StatsArgs) -> Result<(), Failure> {
    let (list, runtime) = containers::with_runtime(global, &args.services)?;
    let list: Vec<Container> = list
        .into_iter()
        .filter(|c| args.all || c.status.is_running())
        .collect();
    let host_memory = host_memory();
    let terminal = std::io::stdout().is_terminal();
    let mut previous = sample(&runtime, &list);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let current = sample(&runtime, &list);
        let rows: Vec<Row> = list
            .iter()
            .zip(current.iter().zip(&previous))
            .map(|(c, ((now, t1), (before, t0)))| Row::new(c, now, before, *t1 - *t0, host_memory))
            .collect();
        let mut out = std::io::stdout().lock();
        if terminal && !args.no_stream {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        if args.format == ListFormat::Json {
            let items: Vec<_> = rows.iter().map(Row::json).collect();
            writeln!(out, "{}", serde_json::Value::Array(items))?;
        } else {
            let table: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
            write!(
                out,
                "{}",
                render_table(
                    &[
                        "NAME",
                        "CPU %",
                        "MEM USAGE / LIMIT",
                        "MEM %",
                        "NET I/O",
                        "BLOCK I/O",
                        "PIDS"
                    ],
                    &table
                )
            )?;
        }
        out.flush()?;
        if args.no_stream {
            return Ok(());
        }
        previous = current;
    }
}

fn sample(runtime: &Runtime, list: &[Container]) -> Vec<(Option<Usage>, Instant)> {
    list.iter()
        .map(|c| (runtime.stats(&c.name).ok(), Instant::now()))
        .collect()
}

struct Row {
    name: String,
    cpu: f64,
    memory: u64,
    limit: u64,
    pids: u64,
    /// Bytes received and sent on its interfaces (loopback aside).
    net: Option<(u64, u64)>,
    /// Bytes read from and written to block devices.
    block: (u64, u64),
}

impl Row {
    fn new(
        c: &Container,
        now: &Option<Usage>,
        before: &Option<Usage>,
        elapsed: Duration,
        host_memory: u64,
    ) -> Row {
        let (memory, limit, pids) = now.as_ref().map_or((0, host_memory, 0), |u| {
            (u.memory, u.memory_limit.unwrap_or(host_memory), u.pids)
        });
        let cpu = match (now, before) {
            (Some(n), Some(b)) if elapsed > Duration::ZERO && c.status.is_running() => {
                n.cpu_nanos.saturating_sub(b.cpu_nanos) as f64 / elapsed.as_nanos() as f64 * 100.0
            }
            _ => 0.0,
        };
        Row {
            name: c.name.clone(),
            cpu,
            memory,
            limit: limit.min(host_memory.max(1)),
            pids,
            block: now
                .as_ref()
                .map_or((0, 0), |u| (u.block_read, u.block_write)),
            net: c
                .state
                .as_ref()
                .and_then(|s| s.pid)
                .filter(|_| c.status.is_running())
                .and_then(net_io),
        }
    }

    fn mem_percent(&self) -> f64 {
        if self.limit == 0 {
            0.0
        } else {
            self.memory as f64 / self.limit as f64 * 100.0
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            format!("{:.2}%", self.cpu),
            format!("{} / {}", bytes(self.memory), bytes(self.limit)),
            format!("{:.2}%", self.mem_percent()),
            self.net_text(),
            self.block_text(),
            self.pids.to_string(),
        ]
    }

    fn net_text(&self) -> String {
        self.net.map_or("--".into(), |(rx, tx)| {
            format!("{} / {}", decimal(rx), decimal(tx))
        })
    }

    fn block_text(&self) -> String {
        format!("{} / {}", decimal(self.block.0), decimal(self.block.1))
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "Name": self.name,
            "CPUPerc": format!("{:.2}%", self.cpu),
            "MemUsage": format!("{} / {}", bytes(self.memory), bytes(self.limit)),
            "MemPerc": format!("{:.2}%", self.mem_percent()),
            "MemBytes": self.memory,
            "MemLimitBytes": self.limit,
            "NetIO": self.net_text(),
            "BlockIO": self.block_text(),
            "PIDs": self.pids.to_string(),
        })
    }
}

/// Binary units, as docker prints memory: `1.5MiB`, `7.63GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

/// Decimal units with three significant digits, as docker prints network
/// traffic: `936B`, `1.23kB`, `45.6MB`.
fn decimal(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    match (unit, v) {
        (0, _) => format!("{n}B"),
        (_, v) if v < 10.0 => format!("{v:.2}{}", UNITS[unit]),
        (_, v) if v < 100.0 => format!("{v:.1}{}", UNITS[unit]),
        _ => format!("{v:.0}{}", UNITS[unit]),
    }
}

/// Received and sent bytes of the network namespace of `pid`, from its
/// /proc/<pid>/net/dev, the loopback left out.
fn net_io(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        total.0 += f.first().copied().unwrap_or(0);
        total.1 += f.get(8).copied().unwrap_or(0);
    }
    Some(total)
}

/// The host's memory in bytes (/proc/meminfo's MemTotal).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(super::bytes(512), "512B");
        assert_eq!(super::bytes(1536 * 1024), "1.50MiB");
        assert_eq!(super::decimal(936), "936B");
        assert_eq!(super::decimal(1234), "1.23kB");
        assert_eq!(super::decimal(45_600_000), "45.6MB");
    }
}
