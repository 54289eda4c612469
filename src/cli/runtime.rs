//! `stack runtime ...`: hidden, low-level access to the container runtime,
//! for tests, benchmarks and debugging. The user-facing commands (`ps`,
//! `logs`, `exec`, ...) work on Compose services and come with the planner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::runtime::Runtime;
use crate::runtime::container::build::{self, BuildContext, ImageConfig, NetworkMode};
use crate::runtime::shim::exec::ExecRequest;
use crate::spec::Service;
use crate::spec::model::Bytes;

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Create and start a container from root filesystem directories.
    Run(RunArgs),
    /// Stop a container (its stop signal, then SIGKILL after the grace period).
    Stop {
        id: String,
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10.0)]
        time: f64,
    },
    /// Send a signal to a container.
    Kill {
        id: String,
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Wait for a container to exit; exits with its code.
    Wait { id: String },
    /// Remove a container.
    Rm {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Run a command in a running container; exits with its code.
    Exec {
        id: String,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        #[arg(short, long = "env")]
        env: Vec<String>,
        /// Allocate a terminal.
        #[arg(short, long)]
        tty: bool,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
    /// Print a container's log records.
    Logs { id: String },
    /// Print a container's resource usage as JSON.
    Stats { id: String },
    /// Freeze a container.
    Pause { id: String },
    /// Thaw a container.
    Resume { id: String },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container id.
    #[arg(long)]
    pub id: String,
    /// A read-only layer directory (repeat; lowest first).
    #[arg(long = "rootfs", required = true)]
    pub layers: Vec<PathBuf>,
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Memory limit in bytes (suffixes k, m, g).
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// new (empty namespace), none, host, or a namespace path to join.
    #[arg(long, default_value = "none")]
    pub network: String,
    #[arg(long)]
    pub init: bool,
    #[arg(long)]
    pub read_only: bool,
    #[arg(long)]
    pub cap_add: Vec<String>,
    #[arg(long)]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Return once the container runs, printing its pid.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container after it exits (foreground only).
    #[arg(long)]
    pub rm: bool,
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<String>,
}

fn size(s: &str) -> Result<i64> {
    let lower = s.to_ascii_lowercase();
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    Ok(digits.parse::<i64>().context("a size such as 64m")? * mult)
}

/// Runs a `stack runtime` command; returns the process exit code.
pub fn run(root: &Path, cmd: &RuntimeCommand) -> Result<u8> {
    let rt = Runtime::new(root)?;
    match cmd {
        RuntimeCommand::Run(a) => run_container(&rt, a),
        RuntimeCommand::Stop { id, time } => {
            let exit = rt.stop(id, Some(Duration::from_secs_f64(*time)))?;
            println!("{}", serde_json::to_string(&exit)?);
            Ok(0)
        }
        RuntimeCommand::Kill { id, signal } => {
            rt.kill(id, build::parse_signal(signal)?)?;
            Ok(0)
        }
        RuntimeCommand::State { id } => {
            println!("{}", serde_json::to_string_pretty(&rt.state(id)?)?);
            Ok(0)
        }
        RuntimeCommand::Wait { id } => Ok(rt.wait(id)?.code as u8),
        RuntimeCommand::Rm { id, force } => {
            rt.remove(id, *force)?;
            Ok(0)
        }
        RuntimeCommand::Exec {
            id,
            user,
            workdir,
            env,
            tty,
            command,
        } => {
            let req = ExecRequest {
                args: command.clone(),
                env: env.clone(),
                user: user.clone(),
                workdir: workdir.clone(),
                tty: *tty,
            };
            let status = rt.exec_command(id, &req)?.status()?;
            Ok(status.code().unwrap_or(1) as u8)
        }
        RuntimeCommand::Logs { id } => {
            for e in rt.logs(id, None)? {
                println!("{}", e.text);
            }
            Ok(0)
        }
        RuntimeCommand::Stats { id } => {
            println!("{}", serde_json::to_string(&rt.stats(id)?)?);
            Ok(0)
        }
        RuntimeCommand::Pause { id } => {
            rt.pause(id)?;
            Ok(0)
        }
        RuntimeCommand::Resume { id } => {
            rt.resume(id)?;
            Ok(0)
        }
    }
}

fn run_container(rt: &Runtime, a: &RunArgs) -> Result<u8> {
    let service = Service {
        name: a.id.clone(),
        command: Some(a.command.clone()),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        mem_limit: a.memory.as_deref().map(size).transpose()?.map(Bytes),
        pids_limit: a.pids_limit,
        init: a.init.then_some(true),
        read_only: a.read_only,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        security_opt: a.security_opt.clone(),
        ..Service::default()
    };
    let network = match a.network.as_str() {
        "new" => NetworkMode::New,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        path => NetworkMode::Join(PathBuf::from(path)),
    };
    let ctx = BuildContext {
        id: a.id.clone(),
        project: a.project.clone(),
        layers: a
            .layers
            .iter()
            .map(std::path::absolute)
            .collect::<Result<_, _>>()?,
        network,
        hosts: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into(),
        resolv_conf: String::new(),
        binds: vec![],
        project_dir: std::env::current_dir()?,
        joins: Default::default(),
    };
    let config = build::container_config(&service, &ImageConfig::default(), &ctx, rt.root())?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    let created = rt.run(&a.id, &config)?;
    if a.detach {
        println!("{}", created.pid);
        return Ok(0);
    }
    // Foreground: show the output as it is logged.
    let mut follower = rt.follow_logs(&a.id, true)?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let printer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let print = |entries: Vec<crate::runtime::container::logs::LogEntry>| {
                for e in entries {
                    match e.stream {
                        crate::runtime::container::logs::Stream::Stdout => println!("{}", e.text),
                        crate::runtime::container::logs::Stream::Stderr => eprintln!("{}", e.text),
                    }
                }
            };
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                print(follower.poll().unwrap_or_default());
                if finished {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let exit = rt.wait(&a.id);
    done.store(true, std::sync::atomic::Ordering::Release);
    let _ = printer.join();
    let exit = exit?;
    if a.rm {
        rt.remove(&a.id, true)?;
    }
    Ok(exit.code as u8)
}
