//! `stack pull`: pull the images of the stack's services.
//!
//! Services with `pull_policy: build` (built, not pulled) and `never` are
//! skipped, as docker compose does; the others are pulled whatever their
//! policy, because asking to pull is the point of the command. Every
//! distinct image is pulled at once; a failure names the services that
//! wanted the image.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Mutex;

use anyhow::Context as _;

use super::Failure;
use super::args::{Global, PullArgs, RegistryArgs};
use crate::runtime::image::{ImageRef, ImageStore, Platform, PullEvent, PullOptions, PullPolicy};
use crate::spec;

pub fn run(global: &Global, args: &PullArgs) -> Result<(), Failure> {
    let opts = super::load_options(global, &args.services)?;
    let project = spec::load(&opts)?;
    let store = ImageStore::open(&global.root)?;
    // What to pull: each (image, platform) once, with the services using it.
    let mut wanted: BTreeMap<(String, Option<String>), Vec<String>> = BTreeMap::new();
    for (name, service) in &project.stack.services {
        if !args.services.is_empty() && !args.services.contains(name) {
            continue;
        }
        let Some(image) = &service.image else {
            continue;
        };
        let policy = PullPolicy::parse(service.pull_policy.as_deref(), None)
            .with_context(|| format!("service `{name}`"))?;
        if matches!(policy, PullPolicy::Build | PullPolicy::Never) {
            continue;
        }
        wanted
            .entry((image.clone(), service.platform.clone()))
            .or_default()
            .push(name.clone());
    }
    let progress = printer(args.quiet);
    let pull_one = |image: &str, platform: Option<&str>| {
        let store = &store;
        let progress = &progress;
        let parsed = ImageRef::parse(image).and_then(|r| {
            let platform = platform.map(Platform::parse).transpose()?;
            Ok((r, options(platform, &args.registry)))
        });
        async move {
            let (reference, options) = parsed?;
            store.pull(&reference, &options, progress).await
        }
    };
    // All images at once, as docker compose does; each pull also fetches
    // its layers concurrently.
    let results = runtime()?.block_on(futures_util::future::join_all(
        wanted
            .keys()
            .map(|(image, platform)| pull_one(image, platform.as_deref())),
    ));
    let mut failures = 0;
    for (((image, _), services), result) in wanted.iter().zip(results) {
        match result {
            Ok(pulled) if !args.quiet => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: pulled {image} ({})",
                    services.join(", "),
                    pulled.id
                );
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let _ = writeln!(
                    std::io::stderr(),
                    "error: service `{}`: cannot pull {image}: {e}",
                    services.join("`, `")
                );
            }
        }
    }
    if failures > 0 && !args.ignore_pull_failures {
        return Err(Failure::Other(anyhow::anyhow!(
            "{failures} image(s) could not be pulled; pass --ignore-pull-failures to go on without them"
        )));
    }
    Ok(())
}

/// Pull options from the command line.
pub(super) fn options(platform: Option<Platform>, registry: &RegistryArgs) -> PullOptions {
    PullOptions {
        platform,
        insecure_registries: registry.insecure_registries.clone(),
        ..PullOptions::default()
    }
}

/// A multi-threaded runtime for the registry client (the CLI is otherwise
/// synchronous).
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Progress on standard error: a line per layer step and, on a terminal,
/// a running byte count per image that rewrites itself.
pub(super) fn printer(quiet: bool) -> impl Fn(PullEvent) + Send + Sync {
    use std::io::IsTerminal as _;
    let tty = std::io::stderr().is_terminal();
    // Bytes received per layer, and the sizes announced per image; pulls
    // of several images report through the same printer.
    let state: Mutex<(BTreeMap<String, u64>, u64)> = Mutex::new((BTreeMap::new(), 0));
    move |event| {
        if quiet {
            return;
        }
        let short = |d: &str| {
            d.trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect::<String>()
        };
        let mb = |n: u64| n as f64 / 1e6;
        let mut state = state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = match event {
            PullEvent::Resolved {
                reference,
                manifest,
                layers,
                size,
            } => {
                state.1 += size;
                format!(
                    "{reference}: manifest {} ({layers} layers, {:.1} MB)",
                    short(&manifest),
                    mb(size)
                )
            }
            PullEvent::LayerCached { digest, size } => {
                state.0.insert(digest.clone(), size);
                format!("  {}: already present", short(&digest))
            }
            PullEvent::LayerDownloaded { digest, size } => {
                state.0.insert(digest.clone(), size);
                format!("  {}: downloaded {:.1} MB", short(&digest), mb(size))
            }
            PullEvent::LayerUnpacked { digest } => format!("  {}: unpacked", short(&digest)),
            PullEvent::LayerProgress { digest, done, .. } => {
                state.0.insert(digest, done);
                if tty {
                    let done: u64 = state.0.values().sum();
                    let _ = write!(
                        std::io::stderr(),
                        "\r\x1b[K  {:.1} / {:.1} MB",
                        mb(done),
                        mb(state.1)
                    );
                }
                return;
            }
        };
        let clear = if tty { "\r\x1b[K" } else { "" };
        let _ = writeln!(std::io::stderr(), "{clear}{line}");
    }
}
