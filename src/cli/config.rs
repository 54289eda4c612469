//! `stack config`: load, validate, and print the normalized stack.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::Failure;
use super::args::{ConfigArgs, Format, Global};
use super::render;
use crate::planner::hash::config_hash;
use crate::spec::{self, Diagnostic, Project, Stack};

pub fn run(global: &Global, args: &ConfigArgs) -> Result<(), Failure> {
    let opts = super::load_options(global, &args.services)?;
    let project = spec::load(&opts)?;
    let selected = selected_services(&project.stack, &args.services)?;
    if args.quiet {
        return Ok(());
    }
    let text = render_output(&project, args, &selected)?;
    match &args.output {
        Some(path) => std::fs::write(path, text)?,
        None => print!("{text}"),
    }
    Ok(())
}

/// The services named on the command line and what they depend on; all when none are named.
fn selected_services(stack: &Stack, names: &[String]) -> Result<BTreeSet<String>, Failure> {
    if names.is_empty() {
        return Ok(stack.services.keys().cloned().collect());
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = names.to_vec();
    while let Some(name) = todo.pop() {
        let Some(service) = stack.services.get(&name) else {
            let d = Diagnostic::new(format!("no such service: `{name}`"));
            let d = match spec::diagnostic::did_you_mean(
                &name,
                stack.services.keys().map(String::as_str),
            ) {
                Some(near) => d.hint(format!("did you mean `{near}`?")),
                None => d.hint("`stack config --services` lists the services"),
            };
            return Err(Failure::Invalid(d.into()));
        };
        if out.insert(name.clone()) {
            todo.extend(
                service
                    .dependencies()
                    .into_iter()
                    .filter(|(d, _)| stack.services.contains_key(*d))
                    .map(|(d, _)| d.to_string()),
            );
        }
    }
    Ok(out)
}

fn render_output(
    project: &Project,
    args: &ConfigArgs,
    selected: &BTreeSet<String>,
) -> Result<String, Failure> {
    let stack = &project.stack;
    let mut out = String::new();
    let lines =
        |items: &mut dyn Iterator<Item = String>| -> String { items.map(|s| s + "\n").collect() };
    if args.list_services {
        return Ok(lines(&mut selected.iter().cloned()));
    }
    if args.volumes {
        return Ok(lines(&mut stack.volumes.keys().cloned()));
    }
    if args.networks {
        return Ok(lines(&mut stack.networks.keys().cloned()));
    }
    if args.list_profiles {
        return Ok(lines(&mut project.profiles.iter().cloned()));
    }
    if args.images {
        return Ok(lines(&mut selected.iter().map(|name| {
            let s = &stack.services[name];
            s.image
                .clone()
                .unwrap_or_else(|| format!("{}-{name}", stack.name))
        })));
    }
    if let Some(which) = &args.hash {
        let names: Vec<String> = if which == "*" {
            selected.iter().cloned().collect()
        } else {
            which.split(',').map(str::to_string).collect()
        };
        for name in names {
            let Some(service) = stack.services.get(&name) else {
                return Err(Failure::Invalid(
                    Diagnostic::new(format!("no such service: `{name}`"))
                        .hint("`stack config --services` lists the services")
                        .into(),
                ));
            };
            let _ = writeln!(out, "{name} {}", config_hash(stack, service));
        }
        return Ok(out);
    }
    if args.variables {
        return Ok(variables(project, args.format));
    }
    Ok(render::stack(stack, Some(selected), args.format))
}

/// Each variable the files use: its value, where it came from, and how the file uses it.
fn variables(project: &Project, format: Format) -> String {
    let rows: Vec<(String, Value)> = project
        .variables
        .iter()
        .map(|(name, var)| {
            let (value, origin) = match project.env.get(name) {
                Some(v) => (
                    Some(v.to_string()),
                    project.env.origin(name).map(ToString::to_string),
                ),
                None if var.default.is_some() => (var.default.clone(), Some("default".to_string())),
                None => (None, Some("unset".to_string())),
            };
            let row = serde_json::json!({
                "value": value,
                "source": origin,
                "required": var.required,
                "default": var.default,
                "alternate": var.alternate,
            });
            (name.clone(), row)
        })
        .collect();
    if format == Format::Json {
        return render::json(&Value::Object(rows.into_iter().collect()));
    }
    let mut table = vec![[
        "NAME".to_string(),
        "VALUE".to_string(),
        "SOURCE".to_string(),
        "REQUIRED".to_string(),
        "DEFAULT".to_string(),
    ]];
    for (name, row) in rows {
        let text = |k: &str| row[k].as_str().unwrap_or("").to_string();
        table.push([
            name,
            text("value"),
            text("source"),
            if row["required"] == Value::Bool(true) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            text("default"),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}
