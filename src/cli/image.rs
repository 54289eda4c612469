//! `stack image ...`: the image store from the command line.

use std::collections::BTreeSet;
use std::io::Write as _;

use super::Failure;
use super::args::{Global, ImageCommand, ListFormat};
use crate::runtime::image::{Image, ImageRef, ImageStore, Platform};

pub fn run(global: &Global, command: &ImageCommand) -> Result<(), Failure> {
    let store = ImageStore::open(&global.root)?;
    let mut out = std::io::stdout().lock();
    match command {
        ImageCommand::Ls { quiet, format } => {
            let images = store.list()?;
            if *quiet {
                for i in &images {
                    writeln!(out, "{}", i.id)?;
                }
            } else if *format == ListFormat::Json {
                writeln!(
                    out,
                    "{}",
                    json(&serde_json::to_value(&images).map_err(anyhow::Error::from)?)
                )?;
            } else {
                writeln!(
                    out,
                    "{:<40} {:<12} {:>10}  PLATFORM",
                    "REPOSITORY:TAG", "IMAGE ID", "SIZE"
                )?;
                for i in &images {
                    let id =
                        i.id.trim_start_matches("sha256:")
                            .get(..12)
                            .unwrap_or(&i.id);
                    let size = format!("{:.1}MB", i.size as f64 / 1e6);
                    let names: Vec<String> = if i.tags.is_empty() {
                        vec!["<none>".into()]
                    } else {
                        i.tags
                            .iter()
                            .map(|t| ImageRef::parse(t).map_or(t.clone(), |r| r.familiar()))
                            .collect()
                    };
                    for name in names {
                        writeln!(out, "{name:<40} {id:<12} {size:>10}  {}", i.platform)?;
                    }
                }
            }
        }
        ImageCommand::Inspect { images } => {
            let found = images
                .iter()
                .map(|r| store.get(r))
                .collect::<Result<Vec<Image>, _>>()?;
            writeln!(
                out,
                "{}",
                json(&serde_json::to_value(&found).map_err(anyhow::Error::from)?)
            )?;
        }
        ImageCommand::Pull {
            reference,
            platform,
            quiet,
            registry,
        } => {
            let reference = ImageRef::parse(reference)?;
            let platform = platform.as_deref().map(Platform::parse).transpose()?;
            let options = super::pull::options(platform, registry);
            let progress = super::pull::printer(*quiet);
            let image =
                super::pull::runtime()?.block_on(store.pull(&reference, &options, &progress))?;
            writeln!(out, "{}", image.id)?;
        }
        ImageCommand::Rm { images, force } => {
            let in_use = in_use(global, &store)?;
            for r in images {
                let report = store.remove(r, &in_use, *force)?;
                for t in report.untagged {
                    writeln!(out, "Untagged: {t}")?;
                }
                for d in report.deleted {
                    writeln!(out, "Deleted: {d}")?;
                }
            }
        }
        ImageCommand::Prune { force: _ } => {
            let report = store.prune(&in_use(global, &store)?)?;
            for id in &report.images {
                writeln!(out, "Deleted: {id}")?;
            }
            writeln!(
                out,
                "Removed {} image(s), {} blob(s), {} layer(s); reclaimed {:.1} MB",
                report.images.len(),
                report.blobs,
                report.layers,
                report.bytes as f64 / 1e6
            )?;
        }
        ImageCommand::Load { input, quiet } => {
            for loaded in store.load_archive(input)? {
                if *quiet || loaded.names.is_empty() {
                    writeln!(out, "Loaded image ID: {}", loaded.image.id)?;
                } else {
                    for t in &loaded.names {
                        let t = ImageRef::parse(t).map_or(t.clone(), |r| r.familiar());
                        writeln!(out, "Loaded image: {t}")?;
                    }
                }
            }
        }
        ImageCommand::Import {
            source,
            reference,
            changes,
        } => {
            let name = ImageRef::parse(reference)?;
            let image = store.import_rootfs(source, &name, changes)?;
            writeln!(out, "{}", image.id)?;
        }
    }
    Ok(())
}

/// IDs of the images containers in the state store use: never pruned, and
/// removed only with --force.
fn in_use(global: &Global, store: &ImageStore) -> anyhow::Result<BTreeSet<String>> {
    let state = crate::state::Store::new(&global.root);
    let mut references = Vec::new();
    for project in state.projects()? {
        if let Some(record) = state.read(&project)? {
            references.extend(record.containers.into_values().map(|c| c.image));
        }
    }
    Ok(store.ids_of(references.iter().map(String::as_str))?)
}

fn json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
