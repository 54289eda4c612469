//! `stack ls`: every project on this host, from the state store.
//!
//! A project is listed while the store has its record (from its first `up`
//! to its `down`). Its status counts its containers by state, as compose
//! prints it: `running(3), exited(1)`. Without `-a`, only projects with a
//! running container show.

use std::collections::BTreeMap;
use std::io::Write as _;

use serde_json::json;

use super::Failure;
use super::args::{Global, ListFormat, LsArgs};
use super::ps::render_table;
use crate::runtime::container::{Runtime, Status};
use crate::state::Store;

/// Runs `stack ls`.
pub fn run(global: &Global, args: &LsArgs) -> Result<(), Failure> {
    let store = Store::new(&global.root);
    let runtime = Runtime::new(&global.root).map_err(anyhow::Error::from)?;
    let mut rows = Vec::new();
    for project in store.projects().map_err(anyhow::Error::from)? {
        let Some(record) = store.read(&project).map_err(anyhow::Error::from)? else {
            continue;
        };
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in record.containers.keys() {
            let state = match runtime.state(name).map(|s| s.status) {
                Ok(Status::Running) => "running",
                Ok(Status::Paused) => "paused",
                Ok(Status::Created | Status::Creating) => "created",
                Ok(Status::Exited) => "exited",
                Ok(Status::Dead) => "dead",
                Err(_) => continue,
            };
            *counts.entry(state).or_default() += 1;
        }
        if !args.all && !counts.contains_key("running") {
            continue;
        }
        // Running first, as compose does.
        let mut parts: Vec<(&str, usize)> = counts.into_iter().collect();
        parts.sort_by_key(|(s, _)| (*s != "running", *s));
        let status: Vec<String> = parts.iter().map(|(s, n)| format!("{s}({n})")).collect();
        let files: Vec<String> = record
            .config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        rows.push((project, status.join(", "), files.join(",")));
    }
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for r in &rows {
            writeln!(out, "{}", r.0)?;
        }
    } else if args.format == ListFormat::Json {
        let items: Vec<_> = rows
            .iter()
            .map(|(n, s, f)| json!({"Name": n, "Status": s, "ConfigFiles": f}))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(items))?;
    } else {
        let table: Vec<Vec<String>> = rows.into_iter().map(|(n, s, f)| vec![n, s, f]).collect();
        write!(
            out,
            "{}",
            render_table(&["NAME", "STATUS", "CONFIG FILES"], &table)
        )?;
    }
    Ok(())
}
