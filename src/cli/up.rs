//! `stack up`, `stack down` and the project's watcher.
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

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{DownArgs, Global, PullFlag, Rmi, UpArgs};
use super::foreground;
use super::logs::Filter;
use super::progress::{self, Settings};
use crate::host::{HostOptions, LinuxHost};
use crate::planner::apply;
use crate::planner::backend::{Runtime as _, Status};
use crate::planner::desired::labels;
use crate::planner::execute::{ExecError, ExecOptions, Progress};
use crate::planner::plan::{DownOptions, UpOptions};
use crate::planner::pull_policy::PullPolicy;
use crate::runtime::container;
use crate::spec::{self, Stack};
use crate::state::Store;
use crate::state::events::{Event, EventLog};
use crate::watch;
use crate::watch::backoff::Policy;

/// How often the watcher resyncs.
const RESYNC: Duration = Duration::from_millis(500);

/// Set by SIGTERM/SIGINT in the watcher, a foreground `up` and `logs -f`.
pub(super) static STOP: AtomicBool = AtomicBool::new(false);

/// How many of those signals arrived: a foreground `up` kills on the second.
pub(super) static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// The write end of the watcher's wake-up pipe (-1: none): a signal writes
/// a byte there, so the watcher stops at once instead of at its next look
/// at [`STOP`] (up to 50 ms later, which `down` and `up` would wait for).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    // Only atomic operations and write(2): async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
    SIGNALS.fetch_add(1, Ordering::Relaxed);
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one live
        // byte on this stack; the descriptor stays open for the life of
        // the process once published (see `wake_on_signal`).
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

/// Makes SIGTERM and SIGINT also wake `notify` (the watcher's wait), through
/// a pipe that a thread reads: a signal handler may not touch a `Notify`.
fn wake_on_signal(notify: std::sync::Arc<tokio::sync::Notify>) -> anyhow::Result<()> {
    // Close-on-exec: the shims the watcher starts must not inherit it.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("cannot make the watcher's wake-up pipe")?;
    std::thread::Builder::new()
        .name("signal-wake".into())
        .spawn(move || {
            let mut f = File::from(read);
            let mut byte = [0u8; 1];
            while matches!(f.read(&mut byte), Ok(1)) {
                notify.notify_one();
            }
        })
        .context("cannot start the watcher's signal thread")?;
    // Kept open until the process exits: the handler may write at any time.
    let fd = std::os::fd::IntoRawFd::into_raw_fd(write);
    WAKE_FD.store(fd, Ordering::Relaxed);
    Ok(())
}

pub(super) fn catch_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only does atomic operations, which are
        // async-signal-safe, and replaces no handler anyone else relies on.
        unsafe { sigaction(s, &action) }.context("cannot install a signal handler")?;
    }
    Ok(())
}

pub(crate) fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn up_options(args: &UpArgs) -> UpOptions {
    UpOptions {
        services: args.services.clone(),
        scale: args.scale.iter().cloned().collect(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        no_deps: args.no_deps,
        always_recreate_deps: args.always_recreate_deps,
        remove_orphans: args.remove_orphans,
        no_start: args.no_start,
        pull: match args.pull {
            PullFlag::Always => Some(PullPolicy::Always),
            PullFlag::Missing => Some(PullPolicy::Missing),
            PullFlag::Never => Some(PullPolicy::Never),
            PullFlag::Policy => None,
        },
        ..UpOptions::default()
    }
}

fn exec_options(args: &UpArgs) -> ExecOptions {
    let defaults = ExecOptions::default();
    ExecOptions {
        stop_timeout: args.timeout.map(Duration::from_secs),
        wait_timeout: args
            .wait_timeout
            .map_or(defaults.wait_timeout, Duration::from_secs),
        ..defaults
    }
}

/// Runs `stack up`.
pub fn up(global: &Global, args: &UpArgs) -> ExitCode {
    let run = || -> Result<u8, Failure> {
        let opts = super::load_options(global, &args.services)?;
        let project = spec::load(&opts)?;
        up_with(global, args, project, true)
    };
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(f) => ExitCode::from(super::report(f)),
    }
}

/// Why `up` did not finish, and whether the host changed (then the
/// previous revision is restored).
struct UpFailure {
    text: String,
    changed: bool,
}

/// `up` of a loaded project: apply, then wait, detach or stay in the
/// foreground. With `restore`, a failure after the host changed brings the
/// previous revision back. Returns the process's exit code.
pub(super) fn up_with(
    global: &Global,
    args: &UpArgs,
    project: spec::Project,
    restore: bool,
) -> Result<u8, Failure> {
    let stack = &project.stack;
    for name in args
        .attach
        .iter()
        .chain(&args.no_attach)
        .chain(&args.exit_code_from)
    {
        if !stack.services.contains_key(name) {
            return Err(anyhow!("no service `{name}` in the stack (given to --attach, --no-attach or --exit-code-from)").into());
        }
    }
    let detach = args.detach || args.wait;
    let store = Store::new(&global.root);
    let rt = tokio()?;
    // Names keep resolving while the watcher is replaced: this process
    // serves the project's DNS from the recorded names meanwhile (beside
    // the old watcher, then the new one: the sockets are shared).
    let keeper = if detach && watcher_runs(&global.root, &stack.name) {
        rt.block_on(dns_keeper(&global.root, &stack.name))
    } else {
        None
    };
    stop_watcher(&global.root, &stack.name)?;
    crate::timing::mark(|| "watcher stopped".into());
    // The revision running now: brought back if this update fails.
    let previous = if restore {
        store
            .revisions(&stack.name)
            .map_err(anyhow::Error::from)?
            .last()
            .copied()
    } else {
        None
    };
    let progress = progress::pick(Settings {
        quiet_pull: args.quiet_pull,
    });
    let exec = exec_options(args);
    let started = SystemTime::now();
    let mut watcher_global = global.clone();
    let mut watcher_args = args.clone();
    let result: Result<(), Failure> = rt.block_on(async {
        let host = LinuxHost::open(
            &global.root,
            &stack.name,
            Some((stack, &project.env)),
            HostOptions {
                insecure_registries: args.insecure_registries.clone(),
                ..HostOptions::default()
            },
        )
        .await
        .map_err(anyhow::Error::from)?;
        crate::timing::mark(|| "host opened".into());
        let outcome = apply_and_wait(&host, &store, stack, args, &*progress, &exec).await;
        let result = match outcome {
            Ok(plan) => {
                for w in &plan.warnings {
                    eprintln!("warning: {w}");
                }
                eprintln!("{}: {}.", stack.name, plan.summary);
                Ok(())
            }
            Err(UpFailure { text, changed }) => {
                let mut text = text;
                if let Some(n) = previous.filter(|_| changed) {
                    eprintln!("{}: restoring revision {n}", stack.name);
                    match restore_revision(&host, &store, global, stack, n, &*progress, &exec)
                        .await
                    {
                        Ok(file) => {
                            text.push_str(&format!(
                                "\nThe previous revision ({n}) was restored and runs; fix the file and run `stack up` again."
                            ));
                            watcher_global.files = vec![file];
                            watcher_global.project_directory = Some(stack.project_dir.clone());
                            watcher_global.env_files = Vec::new();
                            watcher_global.profiles = vec!["*".into()];
                            watcher_args = UpArgs::default();
                        }
                        Err(e) => text.push_str(&format!(
                            "\nRestoring the previous revision ({n}) failed too: {e}"
                        )),
                    }
                }
                Err(Failure::Other(anyhow!(text)))
            }
        };
        host.close().await;
        crate::timing::mark(|| "host closed".into());
        result
    });
    let has_containers = Store::new(&global.root)
        .read(&stack.name)
        .ok()
        .flatten()
        .is_some_and(|r| !r.containers.is_empty());
    if let Some(k) = &keeper {
        // The names of the containers this `up` made, too.
        rt.block_on(k.resync_dns());
    }
    if detach || result.is_err() {
        let spawned = if (detach || previous.is_some()) && has_containers && !args.no_start {
            spawn_watcher(&watcher_global, &watcher_args, &stack.name)
        } else {
            Ok(())
        };
        // The new watcher serves (or there is none to wait for): hand over.
        if let Some(k) = keeper {
            rt.block_on(k.close());
        }
        spawned?;
        return result.map(|()| 0);
    }
    if let Some(k) = keeper {
        rt.block_on(k.close());
    }
    if args.no_start {
        return Ok(0);
    }
    foreground(global, args, &project, started, &rt)
}

/// Applies the stack, then with `--wait` waits for every service.
async fn apply_and_wait(
    host: &LinuxHost,
    store: &Store,
    stack: &Stack,
    args: &UpArgs,
    progress: &dyn Progress,
    exec: &ExecOptions,
) -> Result<crate::planner::Plan, UpFailure> {
    let lock = store.lock(&stack.name).map_err(|e| UpFailure {
        text: e.to_string(),
        changed: false,
    })?;
    let outcome = apply::up(host, &lock, stack, &up_options(args), progress, exec).await;
    drop(lock);
    let plan = match outcome {
        Ok((plan, _)) => plan,
        Err(e) => {
            let changed = matches!(e, apply::ApplyError::Exec(_));
            return Err(UpFailure {
                text: explain_failure(host, e),
                changed,
            });
        }
    };
    if args.wait {
        let services = selected_services(stack, args);
        wait_ready(host, &stack.name, &services, exec.wait_timeout)
            .await
            .map_err(|text| UpFailure {
                text,
                changed: !plan.is_empty(),
            })?;
    }
    Ok(plan)
}

/// Brings revision `n` back through the pipeline; returns the file the
/// watcher should keep.
async fn restore_revision(
    host: &LinuxHost,
    store: &Store,
    global: &Global,
    stack: &Stack,
    n: u64,
    progress: &dyn Progress,
    exec: &ExecOptions,
) -> anyhow::Result<PathBuf> {
    let (old, file) =
        super::rollback::load_revision(&global.root, &stack.name, n, &stack.project_dir).map_err(
            |f| match f {
                Failure::Other(e) => e,
                Failure::Invalid(d) => anyhow!("{d}"),
            },
        )?;
    let lock = store.lock(&stack.name)?;
    let opts = UpOptions {
        remove_orphans: true,
        ..UpOptions::default()
    };
    let outcome = apply::up(host, &lock, &old.stack, &opts, progress, exec).await;
    drop(lock);
    outcome.map_err(|e| anyhow!(explain_failure(host, e)))?;
    Ok(file)
}

/// The services `up` brings up: those named with their dependencies
/// (unless --no-deps), or all.
fn selected_services(stack: &Stack, args: &UpArgs) -> BTreeSet<String> {
    if args.services.is_empty() {
        return stack.services.keys().cloned().collect();
    }
    let named: BTreeSet<String> = args.services.iter().cloned().collect();
    if args.no_deps {
        return named;
    }
    match crate::planner::Graph::new(stack) {
        Ok(g) => g.with_dependencies(&named),
        Err(_) => named,
    }
}

/// `--wait`: every container of `services` running (and healthy when it
/// has a health check), or exited 0 (a one-shot); an error naming the
/// service otherwise, or when `timeout` passes first.
async fn wait_ready(
    host: &LinuxHost,
    project: &str,
    services: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = host.list(project).await.map_err(|e| e.to_string())?;
        let mut pending: Option<(String, String, Status)> = None;
        for c in list {
            let Some(service) = c.labels.get(labels::SERVICE).cloned() else {
                continue;
            };
            if !services.contains(&service) {
                continue;
            }
            let status = host
                .status(&c.name)
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or(c.status);
            let bad = match status {
                Status::Running | Status::Healthy | Status::Exited { code: 0 } => continue,
                Status::Exited { code } => format!("exited with code {code}"),
                Status::Unhealthy => "is unhealthy (its health check fails)".to_string(),
                Status::Starting | Status::Created => {
                    pending.get_or_insert((service, c.name, status));
                    continue;
                }
            };
            return Err(format!(
                "service `{service}` is not ready: container {} {bad}{}",
                c.name,
                last_lines(host, &c.name)
            ));
        }
        let Some((service, name, status)) = pending else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "service `{service}` did not become ready within {}s: container {name} is still {status}{}",
                timeout.as_secs(),
                last_lines(host, &name)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The container's last log lines, indented, for an error message.
fn last_lines(host: &LinuxHost, name: &str) -> String {
    let Ok(entries) = host.runtime().logs(name, None) else {
        return String::new();
    };
    let lines = super::logs::tail(super::logs::join(entries), Some(10));
    if lines.is_empty() {
        return String::new();
    }
    let mut text = format!("\nlast log lines of {name}:");
    for e in lines {
        text.push_str(&format!("\n  | {}", e.text));
    }
    text
}

/// The failure of `up`: which service, why, and its container's last log lines.
fn explain_failure(host: &LinuxHost, e: apply::ApplyError) -> String {
    let mut text = e.to_string();
    if let apply::ApplyError::Exec(ExecError::Failed { op, .. }) = &e
        && let Some(name) = op.split_whitespace().last()
    {
        if let Some(service) = host
            .runtime()
            .config(name)
            .ok()
            .and_then(|c| c.labels.get(labels::SERVICE).cloned())
        {
            text = format!("service `{service}` failed: {text}");
        }
        text.push_str(&last_lines(host, name));
    }
    text
}

/// The foreground after `up` applied: logs until Ctrl-C (or a container's
/// exit with --abort-on-container-exit), then the stack stopped in order.
fn foreground(
    global: &Global,
    args: &UpArgs,
    project: &spec::Project,
    started: SystemTime,
    rt: &tokio::runtime::Runtime,
) -> Result<u8, Failure> {
    let stack = &project.stack;
    catch_signals()?;
    let done = Arc::new(AtomicBool::new(false));
    // `attach: false` keeps a service's logs out, unless `--attach` names it.
    let mut exclude = args.no_attach.clone();
    exclude.extend(
        stack
            .services
            .iter()
            .filter(|(name, s)| {
                s.extra.get("attach").and_then(|v| v.as_bool()) == Some(false)
                    && !args.attach.contains(name)
            })
            .map(|(name, _)| name.clone()),
    );
    let attach = Filter {
        services: args.attach.clone(),
        exclude,
        index: None,
    };
    let style = super::logs::Style {
        color: super::logs::colors_wanted(args.log.no_color),
        prefix: !args.log.no_log_prefix,
        timestamps: args.log.timestamps,
    };
    let logger = foreground::log_thread(
        container::Runtime::new(&global.root).map_err(anyhow::Error::from)?,
        stack.name.clone(),
        attach.clone(),
        style,
        started,
        done.clone(),
    );
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    eprintln!(
        "{}: running; Ctrl-C stops the stack (a second Ctrl-C kills it).",
        stack.name
    );
    let exited = if abort {
        rt.block_on(async {
            let host = LinuxHost::open(
                &global.root,
                &stack.name,
                Some((stack, &project.env)),
                HostOptions {
                    serve_dns: true,
                    ..HostOptions::default()
                },
            )
            .await
            .map_err(anyhow::Error::from)?;
            if let Err(e) = host.republish().await {
                eprintln!("cannot publish the ports again: {e}");
            }
            let exited =
                foreground::until_exit(&host, &stack.name, &Filter::default(), &STOP).await;
            host.close().await;
            Ok::<_, Failure>(exited)
        })?
    } else {
        rt.block_on(watch_loop(global, args, stack, &project.env))?;
        None
    };
    if let Some((name, code)) = &exited {
        eprintln!("{name} exited with code {code}; aborting on container exit");
    }
    eprintln!("{}: stopping (Ctrl-C again kills)", stack.name);
    let timeout = args.timeout.map(Duration::from_secs);
    let code = rt.block_on(async {
        let host = LinuxHost::open(&global.root, &stack.name, None, HostOptions::default())
            .await
            .map_err(anyhow::Error::from)?;
        foreground::stop_in_order(&host, stack, timeout, &SIGNALS).await;
        let mut code = exited
            .as_ref()
            .map_or(0, |(_, c)| foreground::exit_status(*c));
        if let Some(service) = &args.exit_code_from {
            code = 0;
            for c in host.list(&stack.name).await.map_err(anyhow::Error::from)? {
                if c.labels.get(labels::SERVICE) == Some(service)
                    && let Status::Exited { code: c } = c.status
                {
                    code = foreground::exit_status(c);
                    break;
                }
            }
        }
        host.close().await;
        Ok::<u8, Failure>(code)
    })?;
    done.store(true, Ordering::Relaxed);
    let _ = logger.join();
    Ok(code)
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
    // `up` waits for this to stop its own DNS (see `spawn_watcher`).
    let _ = std::fs::write(
        serving_file(&global.root, &stack.name),
        std::process::id().to_string(),
    );
    let store = Store::new(&global.root);
    let opts = UpOptions {
        remove_orphans: false,
        // What the user stopped stays stopped: not drift.
        keep_user_stopped: true,
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
    if let Some(n) = &notify
        && let Err(e) = wake_on_signal(n.clone())
    {
        eprintln!("watcher: {e:#}; it may take up to 50 ms to stop");
    }
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
    // DNS drift first, so /etc/hosts files (upkeep) follow the repair.
    let after = || {
        let (host, log, notify) = (&host, &log, notify.clone());
        async move {
            for (who, what) in host.networks().resync_dns().await {
                let mut e = Event::now(&stack.name, "drift-repair").detail(what);
                e.container = Some(who);
                eprintln!("watcher: {}", e.human());
                let _ = log.append(&e);
            }
            host.upkeep(notify).await;
        }
    };
    w.run(
        stack.clone(),
        &STOP,
        |line| eprintln!("watcher: {line}"),
        after,
        reload,
    )
    .await;
    crate::timing::mark(|| "watcher loop ended".into());
    let _ = log.append(&Event::now(&stack.name, "watcher-stop"));
    host.close().await;
    crate::timing::mark(|| "watcher closed".into());
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
        let _ = std::fs::remove_file(serving_file(&global.root, &project.stack.name));
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

/// Whether the project's watcher runs.
fn watcher_runs(root: &Path, project: &str) -> bool {
    lock_held(&watch_dir(root).join(format!("{project}.lock")))
}

/// The project's DNS, served from its network record by this process
/// while `up` replaces the watcher (`None` when it cannot: then names
/// resolve through /etc/hosts meanwhile, as before).
async fn dns_keeper(root: &Path, project: &str) -> Option<crate::network::Networks> {
    let options = crate::network::Options {
        serve_dns: true,
        ..crate::network::Options::default()
    };
    crate::network::Networks::open(project, root, options)
        .await
        .ok()
}

/// Where a watcher says it serves (its pid, once its DNS and proxies are up).
fn serving_file(root: &Path, project: &str) -> PathBuf {
    watch_dir(root).join(format!("{project}.serving"))
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
    // Wait until it holds its lock, so that `down` right after finds it,
    // and serves (DNS, ports), so that whoever served meanwhile may stop.
    let lock = dir.join(format!("{project}.lock"));
    let serving = serving_file(&global.root, project);
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !(lock_held(&lock) && std::fs::read_to_string(&serving).is_ok_and(|t| t.trim() == pid))
    {
        if let Ok(Some(status)) = child.try_wait() {
            let log =
                std::fs::read_to_string(dir.join(format!("{project}.log"))).unwrap_or_default();
            return Err(anyhow!(
                "the watcher of project `{project}` exited at once ({status}): {}; the containers run, but nothing restarts them or serves their DNS until `stack up -d` succeeds",
                log.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    crate::timing::mark(|| "watcher started".into());
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
        std::thread::sleep(Duration::from_millis(2));
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
    crate::timing::mark(|| "watcher stopped".into());
    let store = Store::new(&global.root);
    let rt = tokio()?;
    // The images to remove with --rmi, known before the containers go.
    let images = match args.rmi {
        Some(kind) => images_to_remove(&store, project, stack, kind),
        None => Vec::new(),
    };
    let progress = progress::pick(Settings::default());
    let exec = ExecOptions {
        stop_timeout: args.timeout.map(Duration::from_secs),
        ..ExecOptions::default()
    };
    let changed = rt.block_on(async {
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
        let result = apply::down(&host, &lock, stack, &opts, &*progress, &exec).await;
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
                    crate::timing::mark(|| "networks down".into());
                    crate::network::forget(&global.root, project).map_err(anyhow::Error::from)?;
                    let _ =
                        std::fs::remove_file(super::rollback::revision_file(&global.root, project));
                }
                eprintln!("{project}: {}.", plan.summary);
                Ok(!plan.is_empty())
            }
            Err(e) => Err(Failure::Other(anyhow!(explain_failure(&host, e)))),
        };
        host.close().await;
        result
    })?;
    let removed = remove_images(&global.root, &images)?;
    Ok(changed || removed)
}

/// `down --rmi`: the images the project's services use (`local`: only
/// those of services without an `image:` name, which compose builds).
fn images_to_remove(store: &Store, project: &str, stack: Option<&Stack>, kind: Rmi) -> Vec<String> {
    let mut refs = BTreeSet::new();
    if let Some(stack) = stack {
        for (name, s) in &stack.services {
            match (&s.image, kind) {
                (Some(image), Rmi::All) => {
                    refs.insert(image.clone());
                }
                (Some(_), Rmi::Local) => {}
                (None, _) => {
                    refs.insert(format!("{project}-{name}"));
                }
            }
        }
    } else if kind == Rmi::All
        && let Ok(Some(record)) = store.read(project)
    {
        // Without the file, the record says what the containers ran.
        refs.extend(record.containers.into_values().map(|c| c.image));
    }
    refs.into_iter().collect()
}

/// Removes images no container of any project uses any more.
fn remove_images(root: &Path, refs: &[String]) -> Result<bool, Failure> {
    if refs.is_empty() {
        return Ok(false);
    }
    let images = crate::runtime::image::ImageStore::open(root)?;
    let state = Store::new(root);
    let mut used = Vec::new();
    for p in state.projects().map_err(anyhow::Error::from)? {
        if let Ok(Some(record)) = state.read(&p) {
            used.extend(record.containers.into_values().map(|c| c.image));
        }
    }
    let in_use = images.ids_of(used.iter().map(String::as_str))?;
    let mut removed = false;
    for r in refs {
        match images.remove(r, &in_use, false) {
            Ok(report) => {
                for t in report.untagged {
                    eprintln!("  untagged image {t}");
                }
                for d in report.deleted {
                    eprintln!("  deleted image {d}");
                }
                removed = true;
            }
            Err(crate::runtime::image::ImageError::NotFound(_)) => {}
            Err(e) => eprintln!("warning: image {r} kept: {e}"),
        }
    }
    Ok(removed)
}
