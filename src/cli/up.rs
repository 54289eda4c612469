//! `stack up`, `stack down`, `stack ps` and the project's watcher.
//!
//! All of them go through the one pipeline ([`crate::planner::apply`])
//! over the Linux host ([`crate::host::LinuxHost`]).
//!
//! **The watcher.** `up -d` leaves one detached process per project
//! behind: `stack` re-executed with the same global flags and the hidden
//! `watch` command. It holds `<root>/run/watch/<project>.lock` (with its pid
//! inside) so there is only one, serves the project's DNS and the
//! userland proxies of ports published on 127.0.0.1, and runs the watch
//! loop ([`crate::watch`]) that restarts containers that died. `up` and
//! `down` stop it first (SIGTERM, then wait for its lock to be released):
//! they change the networks' record it serves from, and the DNS sockets on
//! the gateways are its. A foreground `up` runs the same loop in-process
//! until Ctrl-C, then stops the containers.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{DownArgs, Global, PsArgs, UpArgs};
use crate::host::{HostOptions, LinuxHost};
use crate::planner::apply;
use crate::planner::backend::Runtime as _;
use crate::planner::desired::labels;
use crate::planner::execute::{ExecError, ExecOptions, OpState, Progress};
use crate::planner::plan::{Action, DownOptions, Op, UpOptions};
use crate::spec::{self, Stack};
use crate::state::Store;
use crate::state::events::{Event, EventLog};
use crate::watch;
use crate::watch::backoff::Policy;

/// How often the watcher resyncs.
const RESYNC: Duration = Duration::from_millis(500);

/// Set by SIGTERM/SIGINT in the watcher and a foreground `up`.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn catch_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and replaces no handler anyone else relies on.
        unsafe { sigaction(s, &action) }.context("cannot install a signal handler")?;
    }
    Ok(())
}

fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints each operation as it finishes, one plain line each.
struct Lines;

impl Progress for Lines {
    fn update(&self, op: &Op, state: &OpState) {
        if op.action == Action::Wait && *state == OpState::Running {
            eprintln!("  waiting: {}", op.text());
        }
        match state {
            OpState::Running => {}
            OpState::Done => eprintln!("  done: {}", op.text()),
            OpState::Warning(w) => eprintln!("  warning: {}: {w}", op.text()),
            OpState::Failed(e) => eprintln!("  FAILED: {}: {e}", op.text()),
        }
    }
}

fn up_options(args: &UpArgs) -> UpOptions {
    UpOptions {
        services: args.services.clone(),
        scale: args.scale.iter().cloned().collect(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        no_deps: args.no_deps,
        always_recreate_deps: false,
        remove_orphans: args.remove_orphans,
    }
}

/// Runs `stack up`.
pub fn up(global: &Global, args: &UpArgs) -> ExitCode {
    match up_inner(global, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(super::report(f)),
    }
}

fn up_inner(global: &Global, args: &UpArgs) -> Result<(), Failure> {
    let opts = super::load_options(global, &args.services)?;
    let project = spec::load(&opts)?;
    let stack = &project.stack;
    let store = Store::new(&global.root);
    stop_watcher(&global.root, &stack.name)?;
    let rt = tokio()?;
    let host_opts = HostOptions {
        insecure_registries: args.insecure_registries.clone(),
        ..HostOptions::default()
    };
    let result: Result<(), Failure> = rt.block_on(async {
        let host = LinuxHost::open(
            &global.root,
            &stack.name,
            Some((stack, &project.env)),
            host_opts,
        )
        .await
        .map_err(anyhow::Error::from)?;
        let lock = store.lock(&stack.name).map_err(anyhow::Error::from)?;
        let outcome = apply::up(
            &host,
            &lock,
            stack,
            &up_options(args),
            &Lines,
            &ExecOptions::default(),
        )
        .await;
        drop(lock);
        let result = match outcome {
            Ok((plan, _)) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!("{}: {}.", stack.name, plan.summary);
                Ok(())
            }
            Err(e) => Err(explain_failure(&host, e)),
        };
        host.close().await;
        result
    });
    let has_containers = Store::new(&global.root)
        .read(&stack.name)
        .ok()
        .flatten()
        .is_some_and(|r| !r.containers.is_empty());
    if args.detach {
        if has_containers {
            spawn_watcher(global, args, &stack.name)?;
        }
        return result;
    }
    result?;
    // Foreground: the watch loop here, until Ctrl-C; then stop the containers.
    catch_signals()?;
    eprintln!("{}: running; Ctrl-C stops the stack.", stack.name);
    rt.block_on(watch_loop(global, args, stack, &project.env))?;
    rt.block_on(async {
        let host = LinuxHost::open(&global.root, &stack.name, None, HostOptions::default())
            .await
            .map_err(anyhow::Error::from)?;
        for c in host.list(&stack.name).await.map_err(anyhow::Error::from)? {
            eprintln!("  stopping {}", c.name);
            let _ = host.stop(&c.name, None).await;
        }
        host.close().await;
        Ok::<(), Failure>(())
    })
}

/// The failure of `up`, with the failed container's last log lines.
fn explain_failure(host: &LinuxHost, e: apply::ApplyError) -> Failure {
    let mut text = e.to_string();
    if let apply::ApplyError::Exec(ExecError::Failed { op, .. }) = &e
        && let Some(name) = op.split_whitespace().last()
        && let Ok(entries) = host.runtime().logs(name, None)
        && !entries.is_empty()
    {
        text.push_str(&format!("\nlast log lines of {name}:"));
        for entry in entries.iter().rev().take(10).rev() {
            text.push_str(&format!("\n  | {}", entry.text));
        }
    }
    Failure::Other(anyhow!(text))
}

async fn watch_loop(
    global: &Global,
    args: &UpArgs,
    stack: &Stack,
    env: &crate::spec::env::Environment,
) -> Result<(), Failure> {
    let host = LinuxHost::open(
        &global.root,
        &stack.name,
        Some((stack, env)),
        HostOptions {
            serve_dns: true,
            insecure_registries: args.insecure_registries.clone(),
            ..HostOptions::default()
        },
    )
    .await
    .map_err(anyhow::Error::from)?;
    if let Err(e) = host.republish().await {
        eprintln!("watcher: cannot publish the ports again: {e}");
    }
    let store = Store::new(&global.root);
    let opts = UpOptions {
        remove_orphans: false,
        ..up_options(args)
    };
    let files: Vec<PathBuf> = match (args.watch_file, global.files.is_empty()) {
        (false, _) => Vec::new(),
        (true, false) => global.files.clone(),
        // The file was found by its default name: any of them may change.
        (true, true) => [
            "compose.yaml",
            "compose.yml",
            "docker-compose.yaml",
            "docker-compose.yml",
        ]
        .iter()
        .map(|n| stack.project_dir.join(n))
        .collect(),
    };
    let wake = match watch::wake::spawn(&global.root.join("containers"), &files) {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!(
                "watcher: cannot watch for container exits ({e}); resyncing every {} ms only",
                RESYNC.as_millis()
            );
            None
        }
    };
    let log = EventLog::new(&global.root, &stack.name);
    let _ = log.append(
        &Event::now(&stack.name, "watcher-start").detail(format!("pid {}", std::process::id())),
    );
    let notify = wake.as_ref().map(|w| w.notify.clone());
    let w = watch::Watch {
        host: &host,
        store: &store,
        opts: &opts,
        resync: RESYNC,
        events: Some(log.clone()),
        root: Some(global.root.clone()),
        wake,
        policy: Policy::default(),
    };
    let reload = || -> Result<Stack, String> {
        let opts = super::load_options(global, &args.services).map_err(|e| format!("{e:?}"))?;
        spec::load(&opts)
            .map(|p| p.stack)
            .map_err(|d| d.to_string())
    };
    w.run(
        stack.clone(),
        &STOP,
        |line| eprintln!("watcher: {line}"),
        || host.upkeep(notify.clone()),
        reload,
    )
    .await;
    let _ = log.append(&Event::now(&stack.name, "watcher-stop"));
    host.close().await;
    Ok(())
}

fn watch_dir(root: &Path) -> PathBuf {
    root.join("run").join("watch")
}

/// `stack watch`: the detached watcher (hidden; `up -d` starts it).
pub fn watcher(global: &Global, args: &UpArgs) -> ExitCode {
    let run = || -> Result<(), Failure> {
        let opts = super::load_options(global, &args.services)?;
        let project = spec::load(&opts)?;
        let dir = watch_dir(&global.root);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.lock", project.stack.name));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            // Another watcher serves the project: nothing to do.
            return Ok(());
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        catch_signals()?;
        let result = tokio()?.block_on(watch_loop(global, args, &project.stack, &project.env));
        // Gone before the lock is released: whoever waits for us finds no file.
        let _ = std::fs::remove_file(&path);
        // A failed watcher keeps its log: it is where `up -d` and the user
        // read why it stopped.
        if result.is_ok() {
            let _ = std::fs::remove_file(dir.join(format!("{}.log", project.stack.name)));
            watch::restarts::forget(&global.root, &project.stack.name);
            let _ = std::fs::remove_dir(&dir);
        }
        drop(file);
        result
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(super::report(f)),
    }
}

/// Starts the project's watcher: this executable, detached, same flags.
fn spawn_watcher(global: &Global, args: &UpArgs, project: &str) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find stack's own executable")?;
    let dir = watch_dir(&global.root);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = File::create(dir.join(format!("{project}.log")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root").arg(&global.root);
    for f in &global.files {
        cmd.arg("-f").arg(std::path::absolute(f)?);
    }
    cmd.arg("-p").arg(project);
    if let Some(d) = &global.project_directory {
        cmd.arg("--project-directory").arg(std::path::absolute(d)?);
    }
    for e in &global.env_files {
        cmd.arg("--env-file").arg(std::path::absolute(e)?);
    }
    for p in &global.profiles {
        cmd.arg("--profile").arg(p);
    }
    cmd.arg("watch");
    for (s, n) in &args.scale {
        cmd.arg("--scale").arg(format!("{s}={n}"));
    }
    for r in &args.insecure_registries {
        cmd.arg("--insecure-registry").arg(r);
    }
    if args.watch_file {
        cmd.arg("--watch-file");
    }
    cmd.args(&args.services);
    // Its own process group: a Ctrl-C in the terminal does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // std's spawn forks and immediately execs: safe from a threaded process.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the project's watcher")?;
    // Wait until it holds its lock, so that `down` right after finds it.
    let lock = dir.join(format!("{project}.lock"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !lock_held(&lock) {
        if let Ok(Some(status)) = child.try_wait() {
            let log =
                std::fs::read_to_string(dir.join(format!("{project}.log"))).unwrap_or_default();
            return Err(anyhow!(
                "the watcher of project `{project}` exited at once ({status}): {}; the containers run, but nothing restarts them or serves their DNS until `stack up -d` succeeds",
                log.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("{project}: watcher started (pid {})", child.id());
    Ok(())
}

fn lock_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => f.try_lock_shared().is_err(),
        Err(_) => false,
    }
}

/// Stops the project's watcher, if one runs, and waits until it is gone.
pub fn stop_watcher(root: &Path, project: &str) -> anyhow::Result<()> {
    let path = watch_dir(root).join(format!("{project}.lock"));
    // The record of the watcher that goes: the next one starts afresh.
    watch::restarts::forget(root, project);
    let Ok(mut f) = File::open(&path) else {
        return Ok(());
    };
    if !lock_held(&path) {
        // Left by a watcher that died.
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Err(anyhow!(
            "the watcher of project `{project}` holds {} but wrote no pid; stop it by hand",
            path.display()
        ));
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_held(&path) {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Runs `stack down` (not `--dry-run`): stops the watcher, then the plan
/// towards the empty stack.
pub fn down(
    global: &Global,
    args: &DownArgs,
    stack: Option<&Stack>,
    project: &str,
) -> Result<bool, Failure> {
    stop_watcher(&global.root, project)?;
    let store = Store::new(&global.root);
    let rt = tokio()?;
    rt.block_on(async {
        let env = crate::spec::env::Environment::default();
        let host = LinuxHost::open(
            &global.root,
            project,
            stack.map(|s| (s, &env)),
            HostOptions::default(),
        )
        .await
        .map_err(anyhow::Error::from)?;
        let lock = store.lock(project).map_err(anyhow::Error::from)?;
        let opts = DownOptions {
            remove_orphans: args.remove_orphans,
            volumes: args.volumes,
        };
        let result = apply::down(&host, &lock, stack, &opts, &Lines, &ExecOptions::default()).await;
        drop(lock);
        let result = match result {
            Ok((plan, outcome)) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                let left = &outcome.record;
                if left.containers.is_empty() && left.networks.is_empty() {
                    // Nothing of the project is left: its rules, links and
                    // network record go too (also what a crash left behind).
                    host.networks().down().await.map_err(anyhow::Error::from)?;
                    crate::network::forget(&global.root, project).map_err(anyhow::Error::from)?;
                }
                eprintln!("{project}: {}.", plan.summary);
                Ok(!plan.is_empty())
            }
            Err(e) => Err(explain_failure(&host, e)),
        };
        host.close().await;
        result
    })
}

/// Runs `stack ps`.
pub fn ps(global: &Global, args: &PsArgs) -> ExitCode {
    let run = || -> Result<(), Failure> {
        let project = match &global.project_name {
            Some(p) if global.files.is_empty() => spec::load::normalize_project_name(p),
            _ => {
                let opts = super::load_options(global, &[])?;
                spec::load(&opts)?.stack.name
            }
        };
        let rt = tokio()?;
        rt.block_on(async {
            let host = LinuxHost::open(&global.root, &project, None, HostOptions::default())
                .await
                .map_err(anyhow::Error::from)?;
            let mut rows = Vec::new();
            for c in host.list(&project).await.map_err(anyhow::Error::from)? {
                let service = c.labels.get(labels::SERVICE).cloned().unwrap_or_default();
                if !args.services.is_empty() && !args.services.contains(&service) {
                    continue;
                }
                if !args.all && !c.status.is_running() {
                    continue;
                }
                let ports: Vec<String> = host
                    .networks()
                    .ports(&c.name)
                    .await
                    .iter()
                    .map(|p| {
                        format!(
                            "{}:{}->{}/{}",
                            p.host_ip.map(|i| i.to_string()).unwrap_or("0.0.0.0".into()),
                            p.host_port,
                            p.target,
                            p.protocol
                        )
                    })
                    .collect();
                rows.push([c.name, service, c.status.to_string(), ports.join(", ")]);
            }
            host.close().await;
            let mut out = std::io::stdout().lock();
            if args.quiet {
                for r in rows {
                    writeln!(out, "{}", r[0])?;
                }
                return Ok(());
            }
            let header = ["NAME", "SERVICE", "STATUS", "PORTS"];
            let mut widths = header.map(str::len);
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |cells: [&str; 4]| {
                format!(
                    "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                    cells[0],
                    cells[1],
                    cells[2],
                    cells[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2]
                )
            };
            writeln!(out, "{}", line(header).trim_end())?;
            for r in &rows {
                writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3]]).trim_end())?;
            }
            Ok::<(), Failure>(())
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => ExitCode::from(super::report(f)),
    }
}
