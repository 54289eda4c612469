//! `stack run`: a one-off command in a new container of a service.
//!
//! The container is the service's (image, environment, networks, volumes,
//! limits), named `<project>-<service>-run-<id>`, with the overrides of the
//! command line; as in compose, the service's own ports are published only
//! with `--service-ports`, and `-p` publishes others. First the pipeline
//! ([`apply::up`]) brings up what it needs: its dependencies (unless
//! `--no-deps`) and its image, networks and volumes, leaving the service's
//! own containers as they are. The container is labelled and recorded as a
//! one-off, so the planner never takes it for a replica, the watcher never
//! restarts it, and `down` removes it.
//!
//! In the foreground the container is created, attached to (the shim's
//! attach channel, [`super::attach`]) and only then started, so no output
//! is lost; its exit code is `run`'s. With a terminal (`-t`, the default
//! when our stdin is one) the user's terminal drives the container's.
//! `--rm` removes the container once it exited; `-d` prints its name and
//! leaves it running. With both, nobody waits on it, so its shim removes
//! it once it exited, as docker's daemon does: the shim starts
//! `stack auto-remove` ([`auto_remove`]). It is also labelled
//! `stack.auto-remove`, so that should that fail (the shim killed), the
//! plan removes it: the watcher's next round, or the next `up`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use super::Failure;
use super::args::{Global, RunArgs};
use super::containers;
use crate::planner::apply;
use crate::planner::backend::{Images as _, Runtime as _};
use crate::planner::desired::{Desired, labels};
use crate::planner::execute::ExecOptions;
use crate::planner::plan::UpOptions;
use crate::spec::syntax::{parse_port, parse_volume};
use crate::state::ContainerRecord;
use crate::state::events::{Event, EventLog};

/// Runs `stack run` and returns the container's exit code.
pub fn main(global: &Global, args: &RunArgs) -> ExitCode {
    match run(global, args) {
        Ok(code) => ExitCode::from(code),
        Err(f) => ExitCode::from(super::report(f)),
    }
}

/// `stack -p PROJECT auto-remove NAME` (hidden): what the shim of a
/// `run --rm -d` container starts once the container exited. Removes it as
/// the watcher would (network endpoints, files, the record's entry) and
/// says so in the project's events; a container already gone, started
/// again, or not an auto-remove one-off of this project is left alone.
pub fn auto_remove(global: &Global, name: &str) -> Result<(), Failure> {
    containers::with_locked_host(global, async |host, scope, lock| {
        let runtime = host.runtime();
        let Ok(config) = runtime.config(name) else {
            return Ok(());
        };
        let label = |k: &str| config.labels.get(k).map(String::as_str);
        let exited = runtime
            .state(name)
            .is_ok_and(|s| s.status == crate::runtime::container::Status::Exited);
        if label(labels::AUTO_REMOVE) != Some("true")
            || label(labels::PROJECT) != Some(scope.project.as_str())
            || !exited
        {
            return Ok(());
        }
        host.remove_container(name)
            .await
            .map_err(|e| anyhow!("cannot remove {name}: {e}"))?;
        let mut record = lock.read().map_err(anyhow::Error::from)?;
        if record.containers.remove(name).is_some() {
            lock.write(&record).map_err(anyhow::Error::from)?;
        }
        let event = Event::now(&scope.project, "remove")
            .container(label(labels::SERVICE).unwrap_or_default(), name)
            .detail("exited; started with `run --rm -d`");
        let _ = EventLog::new(&global.root, &scope.project).append(&event);
        Ok(())
    })
}

/// Twelve random hex digits, as compose names one-off containers.
fn short_id() -> String {
    let mut bytes = [0u8; 6];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        // No /dev/urandom: time and pid are unique enough on one host.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mix = t ^ (u64::from(std::process::id()) << 32);
        bytes.copy_from_slice(&mix.to_be_bytes()[2..]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(global: &Global, args: &RunArgs) -> Result<u8, Failure> {
    let scope = containers::scope(global)?;
    let Some(stack) = scope.stack.as_ref() else {
        return Err(anyhow!(
            "`stack run` needs the stack file; run it where the file is, or pass -f"
        )
        .into());
    };
    let Some(service) = stack.services.get(&args.service) else {
        return Err(anyhow!(
            "no such service: `{}`; `stack config --services` lists the services",
            args.service
        )
        .into());
    };
    let tty = !args.detach && super::exec::want_tty(&args.stdin);
    let interactive = !args.detach && args.stdin.interactive;

    // The service as this run wants it.
    let mut definition = service.clone();
    if !args.command.is_empty() {
        definition.command = Some(args.command.clone());
    }
    if let Some(e) = &args.entrypoint {
        definition.entrypoint = Some(e.split_whitespace().map(str::to_string).collect());
    }
    for kv in &args.env {
        match kv.split_once('=') {
            Some((k, v)) => definition.environment.insert(k.into(), Some(v.into())),
            // `-e NAME`: from our environment, as compose does.
            None => definition
                .environment
                .insert(kv.clone(), std::env::var(kv).ok()),
        };
    }
    for kv in &args.labels {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        definition.labels.insert(k.into(), v.into());
    }
    if !args.service_ports {
        definition.ports.clear();
    }
    for p in &args.publish {
        definition
            .ports
            .extend(parse_port(p).map_err(|e| anyhow!("--publish {p}: {e}"))?);
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    for v in &args.volumes {
        let mount = parse_volume(v, &stack.project_dir, home.as_deref())
            .map_err(|e| anyhow!("--volume {v}: {e}"))?;
        definition.volumes.retain(|m| m.target != mount.target);
        definition.volumes.push(mount);
    }
    if args.user.is_some() {
        definition.user = args.user.clone();
    }
    if args.workdir.is_some() {
        definition.working_dir = args.workdir.clone();
    }
    definition.tty = tty;
    definition.stdin_open = interactive;
    definition.restart = None;
    definition.container_name = None;
    let short = short_id();
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{short}", scope.project, args.service));
    // Docker's hostname for a container: its short id.
    if definition.hostname.is_none() {
        definition.hostname = Some(short);
    }

    let rt = containers::tokio()?;
    let host = rt.block_on(containers::open_host(global, &scope))?;
    let prepared = rt.block_on(async {
        let lock = containers::lock(&global.root, &scope.project)?;
        // Dependencies up (unless --no-deps), and the service's image,
        // networks and volumes.
        let opts = UpOptions {
            services: vec![args.service.clone()],
            no_deps: args.no_deps,
            prepare_only: BTreeSet::from([args.service.clone()]),
            ..UpOptions::default()
        };
        let (_, outcome) = apply::up(&host, &lock, stack, &opts, &(), &ExecOptions::default())
            .await
            .map_err(|e| anyhow!("cannot bring up what `{}` needs: {e}", args.service))?;
        let desired = Desired::new(stack, &BTreeMap::new()).map_err(anyhow::Error::from)?;
        let ds = desired
            .services
            .get(&args.service)
            .ok_or_else(|| anyhow!("service `{}` has no desired state", args.service))?;
        let digest = host
            .inspect_image(&ds.image)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.digest);
        let revision = outcome.record.revision;
        let mut spec = desired.container(ds, 1, revision, digest.clone());
        spec.name = name.clone();
        spec.definition = Arc::new(definition);
        spec.labels.insert(labels::ONE_OFF.into(), "true".into());
        if args.rm && args.detach {
            spec.labels
                .insert(labels::AUTO_REMOVE.into(), "true".into());
        }
        let id = host
            .create_container(&spec)
            .await
            .map_err(|e| anyhow!("cannot create the container: {e}"))?;
        let mut record = lock.read().map_err(anyhow::Error::from)?;
        record.containers.insert(
            name.clone(),
            ContainerRecord {
                name: name.clone(),
                id,
                service: args.service.clone(),
                replica: 1,
                config_hash: spec.config_hash.clone(),
                image: digest.unwrap_or(spec.image.clone()),
                revision,
                one_off: true,
                stopped_by_user: false,
                labels: spec.labels.clone(),
            },
        );
        lock.write(&record).map_err(anyhow::Error::from)?;
        Ok::<(), Failure>(())
    });
    if let Err(e) = prepared {
        rt.block_on(host.close());
        return Err(e);
    }

    let runtime = host.runtime().clone();
    let result = if args.detach {
        // Its published ports outlive us only in the watcher's proxies.
        let publishes = !rt.block_on(host.networks().ports(&name)).is_empty();
        let watcher = if publishes {
            containers::suspend_watcher(&global.root, &scope.project)?
        } else {
            None
        };
        let started = rt
            .block_on(host.start(&name))
            .map_err(|e| anyhow!("cannot start {name}: {e}"))
            .map(|()| {
                println!("{name}");
                0
            });
        if let Some(w) = watcher {
            rt.block_on(host.close());
            w.resume()?;
            return Ok(started?);
        }
        started
    } else {
        foreground(&runtime, &name, interactive, tty)
    };
    if args.rm && !args.detach {
        let removed = rt.block_on(async {
            let lock = containers::lock(&global.root, &scope.project)?;
            host.remove_container(&name)
                .await
                .map_err(|e| anyhow!("cannot remove {name}: {e}"))?;
            let mut record = lock.read().map_err(anyhow::Error::from)?;
            if record.containers.remove(&name).is_some() {
                lock.write(&record).map_err(anyhow::Error::from)?;
            }
            Ok::<(), Failure>(())
        });
        if let Err(e) = removed {
            super::report(e);
        }
    }
    rt.block_on(host.close());
    Ok(result?)
}

/// Attaches, starts, relays until the container exits; its exit code.
fn foreground(
    runtime: &crate::runtime::container::Runtime,
    name: &str,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<u8> {
    let sock = runtime
        .attach(name)
        .with_context(|| format!("cannot attach to {name}"))?;
    runtime
        .start(name)
        .with_context(|| format!("cannot start {name}"))?;
    let exit = super::attach::relay(sock, runtime, name, interactive, tty)
        .with_context(|| format!("lost the connection to {name}"))?;
    let exit = match exit {
        Some(e) => e,
        None => runtime
            .wait(name)
            .with_context(|| format!("cannot learn how {name} ended"))?,
    };
    Ok(exit.code as u8)
}
