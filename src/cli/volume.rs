//! `stack volume ls|inspect|rm|prune`.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use super::Failure;
use super::args::{Format, Global, VolumeCommand};
use crate::state::Store;
use crate::volumes::{VolumeInfo, VolumeStore};

pub fn run(global: &Global, command: &VolumeCommand) -> Result<(), Failure> {
    let volumes = VolumeStore::new(&global.root);
    match command {
        VolumeCommand::Ls { quiet, format } => {
            let list = volumes.list().context("cannot list volumes")?;
            if *quiet {
                for v in &list {
                    println!("{}", v.name);
                }
            } else if *format == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).context("cannot print volumes")?
                );
            } else {
                println!("{:<8}  VOLUME NAME", "DRIVER");
                for v in &list {
                    println!("{:<8}  {}", v.driver, v.name);
                }
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut found = Vec::new();
            for name in names {
                match volumes.get(name).context("cannot read the volume")? {
                    Some(v) => found.push(v),
                    None => return Err(anyhow::anyhow!("no such volume: `{name}`").into()),
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&found).context("cannot print volumes")?
            );
        }
        VolumeCommand::Rm { names } => {
            let users = users(global)?;
            for name in names {
                let who = users.get(name).cloned().unwrap_or_default();
                volumes.remove(name, &who).map_err(anyhow::Error::from)?;
                println!("{name}");
            }
        }
        VolumeCommand::Prune { all, force } => {
            let users = users(global)?;
            let unused: Vec<VolumeInfo> = volumes
                .list()
                .context("cannot list volumes")?
                .into_iter()
                .filter(|v| (*all || v.anonymous) && !users.contains_key(&v.name))
                .collect();
            if unused.is_empty() {
                println!("no unused volumes");
                return Ok(());
            }
            if !force && !confirm(&unused)? {
                return Ok(());
            }
            for v in unused {
                volumes.remove(&v.name, &[]).map_err(anyhow::Error::from)?;
                println!("{}", v.name);
            }
        }
    }
    Ok(())
}

/// Volume name → the containers that use it, from every project's record:
/// a project's volumes are in use while it has containers.
fn users(global: &Global) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let store = Store::new(&global.root);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for project in store.projects()? {
        let Some(record) = store.read(&project)? else {
            continue;
        };
        let containers: Vec<String> = record.containers.keys().cloned().collect();
        if containers.is_empty() {
            continue;
        }
        for volume in record.volumes.values() {
            out.entry(volume.name.clone())
                .or_default()
                .extend(containers.iter().cloned());
        }
    }
    Ok(out)
}

fn confirm(unused: &[VolumeInfo]) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "`stack volume prune` would remove {} volume(s); run it with --force to do so",
            unused.len()
        );
    }
    let mut out = std::io::stdout();
    writeln!(out, "This removes these volumes and all their data:")?;
    for v in unused {
        writeln!(out, "  {}", v.name)?;
    }
    write!(out, "Are you sure? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
