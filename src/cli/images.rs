//! `stack images`: the images the project's containers run.
//!
//! One row per container (compose's columns: container, repository, tag,
//! image ID, size), from the image each container was created from, as the
//! local image store knows it.

use std::io::Write as _;

use serde_json::json;

use super::Failure;
use super::args::{Global, ImagesArgs, ListFormat};
use super::containers;
use super::ps::{image_of, render_table};
use crate::runtime::image::{ImageRef, ImageStore};

/// Runs `stack images`.
pub fn run(global: &Global, args: &ImagesArgs) -> Result<(), Failure> {
    let scope = containers::scope(global)?;
    let rt = containers::tokio()?;
    let list = rt.block_on(async {
        let host = containers::open_host(global, &scope).await?;
        let list = containers::containers(&host, &scope, &args.services, true).await;
        host.close().await;
        list
    })?;
    let store = ImageStore::open(&global.root)?;
    let mut rows = Vec::new();
    for c in &list {
        let reference = image_of(c);
        let image = store.resolve(&reference).ok().flatten();
        let (repository, tag) = match ImageRef::parse(&reference) {
            Ok(r) => {
                let familiar = r.familiar();
                let repo = familiar
                    .rsplit_once(':')
                    .filter(|(_, t)| !t.contains('/'))
                    .map_or(familiar.clone(), |(r, _)| r.to_string());
                (repo, r.tag.clone().unwrap_or_else(|| "latest".into()))
            }
            Err(_) => (reference.clone(), String::new()),
        };
        let id = image.as_ref().map(|i| i.id.clone()).unwrap_or_default();
        let size = image.as_ref().map_or(0, |i| i.size);
        rows.push((c.name.clone(), repository, tag, id, size));
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            if !r.3.is_empty() && seen.insert(r.3.clone()) {
                writeln!(out, "{}", r.3)?;
            }
        }
        return Ok(());
    }
    if args.format == ListFormat::Json {
        let items: Vec<_> = rows
            .iter()
            .map(|(c, repo, tag, id, size)| {
                json!({"ContainerName": c, "Repository": repo, "Tag": tag, "ID": id, "Size": size})
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items))?;
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(c, repo, tag, id, size)| {
            let short = id.trim_start_matches("sha256:").chars().take(12).collect();
            vec![c, repo, tag, short, format!("{:.1}MB", size as f64 / 1e6)]
        })
        .collect();
    write!(
        out,
        "{}",
        render_table(
            &["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
            &table
        )
    )?;
    Ok(())
}
