//! The loading pipeline: from command-line options to a validated [`Stack`].
//!
//! The order is docker compose's, and it matters:
//! 1. pick the files (`-f`, `COMPOSE_FILE`, or the first of `compose.yaml`,
//!    `compose.yml`, `docker-compose.yaml`, `docker-compose.yml`, `stack.yml`
//!    found in the current directory or a parent, plus its `.override` file),
//!    the project directory, and the environment (shell over `.env`);
//! 2. for each file: parse, interpolate `${VAR}` in every value, check the
//!    result against the Compose schema (casting interpolated numbers and
//!    booleans), then resolve `include` and `extends` inside it;
//! 3. merge the files in order, apply `!reset` / `!override`;
//! 4. decide the project name, normalize to the typed model, apply profiles,
//!    and check the rules that span the whole project (unknown references,
//!    cycles, clashing ports).
//!
//! Every step collects diagnostics instead of stopping, as long as the next
//! step can still say something useful.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Diagnostics, Source};
use super::env::Environment;
use super::interpolate::{self, Operator};
use super::merge;
use super::model::Stack;
use super::normalize::{self, text};
use super::schema::Schema;
use super::validate;
use super::yaml::{self, Entry, Kind, Node, ScalarType};

/// The files docker compose looks for, in order, then stack's own name.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "stack.yml",
    "stack.yaml",
];

/// What the command line (and its environment variables) asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files; empty means `COMPOSE_FILE`, then the default lookup. `-` is standard input.
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    /// `--env-file`s; empty means `COMPOSE_ENV_FILES`, then `<project dir>/.env`.
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are switched on.
    pub services: Vec<String>,
    /// Where relative `-f` paths and the default lookup start.
    pub working_dir: PathBuf,
    /// The shell's environment.
    pub environment: HashMap<String, String>,
    /// Standard input's content, for `-f -`.
    pub stdin: Option<String>,
}

/// How a variable is used by the files, for `config --variables`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variable {
    pub required: bool,
    pub default: Option<String>,
    pub alternate: Option<String>,
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub stack: Stack,
    pub env: Environment,
    pub variables: BTreeMap<String, Variable>,
    /// Every profile any service names.
    pub profiles: BTreeSet<String>,
}

/// Loads, merges, normalizes and validates a project.
pub fn load(opts: &Options) -> Result<Project, Diagnostics> {
    let shell = Environment::from_pairs(opts.environment.clone());
    let files = find_files(opts, &shell)?;
    let first = files.first().cloned().unwrap_or_default();
    let project_dir = match &opts.project_directory {
        Some(d) => absolute(&opts.working_dir, d),
        None => first
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.working_dir.clone()),
    };
    let env_files = env_files(opts, &shell, &project_dir);
    let env = shell.with_env_files(&env_files)?;

    let mut loader = Loader {
        variables: BTreeMap::new(),
        diags: Diagnostics::default(),
        including: Vec::new(),
        extends_cache: HashMap::new(),
        stdin: opts.stdin.clone(),
    };
    let mut merged: Option<Node> = None;
    for file in &files {
        if let Some(doc) = loader.file(file, &project_dir, &env) {
            merged = Some(match merged {
                Some(base) => merge::merge_documents(base, doc),
                None => doc,
            });
        }
    }
    let mut doc = merged.unwrap_or_else(|| Node::map(Default::default(), Default::default()));
    merge::strip_tags(&mut doc);
    if !loader.diags.is_empty() {
        return Err(loader.diags);
    }

    let name = project_name(opts, &env, &doc, &project_dir)?;
    let mut stack = normalize::normalize(&doc, &name, &env)?;
    stack.project_dir = project_dir;
    stack.files = files;
    let profiles = apply_profiles(&mut stack, opts, &env);
    validate::check(&stack, &doc)?;
    Ok(Project {
        stack,
        env,
        variables: loader.variables,
        profiles,
    })
}

/// `-f`, else `COMPOSE_FILE`, else the default names in the working
/// directory and its parents (with the matching `.override` file).
fn find_files(opts: &Options, shell: &Environment) -> Result<Vec<PathBuf>, Diagnostics> {
    if !opts.files.is_empty() {
        return Ok(opts
            .files
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    f.clone()
                } else {
                    absolute(&opts.working_dir, f)
                }
            })
            .collect());
    }
    if let Some(list) = shell.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = shell.get("COMPOSE_PATH_SEPARATOR").unwrap_or(":");
        return Ok(list
            .split(sep)
            .filter(|s| !s.is_empty())
            .map(|f| absolute(&opts.working_dir, Path::new(f)))
            .collect());
    }
    let mut dir = Some(opts.working_dir.as_path());
    while let Some(d) = dir {
        for name in DEFAULT_FILES {
            let candidate = d.join(name);
            if candidate.is_file() {
                let mut files = vec![candidate];
                let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "yaml"));
                let over = d.join(format!("{stem}.override.{ext}"));
                if over.is_file() {
                    files.push(over);
                }
                return Ok(files);
            }
        }
        dir = d.parent();
    }
    Err(Diagnostic::new(format!(
        "no stack file found in {} or any parent directory",
        opts.working_dir.display()
    ))
    .hint(format!(
        "create one of {} or name one with -f FILE",
        DEFAULT_FILES.join(", ")
    ))
    .into())
}

fn env_files(opts: &Options, shell: &Environment, project_dir: &Path) -> Vec<PathBuf> {
    if !opts.env_files.is_empty() {
        return opts
            .env_files
            .iter()
            .map(|f| absolute(&opts.working_dir, f))
            .collect();
    }
    if let Some(list) = shell.get("COMPOSE_ENV_FILES").filter(|s| !s.is_empty()) {
        return list
            .split(',')
            .map(|f| absolute(&opts.working_dir, Path::new(f.trim())))
            .collect();
    }
    let dotenv = project_dir.join(".env");
    if dotenv.is_file() {
        vec![dotenv]
    } else {
        Vec::new()
    }
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    super::syntax::clean(&base.join(path))
}

/// `-p`, `COMPOSE_PROJECT_NAME`, the top-level `name`, then the project
/// directory's name, normalized as docker compose does.
fn project_name(
    opts: &Options,
    env: &Environment,
    doc: &Node,
    project_dir: &Path,
) -> Result<String, Diagnostic> {
    let explicit = opts
        .project_name
        .clone()
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").map(str::to_string))
        .filter(|s| !s.is_empty());
    if let Some(name) = explicit {
        return if is_valid_project_name(&name) {
            Ok(name)
        } else {
            Err(Diagnostic::new(format!("`{name}` is not a valid project name"))
                .hint("a project name holds only lowercase letters, digits, `_` and `-`, and starts with a letter or digit"))
        };
    }
    if let Some(node) = doc.get("name")
        && let Some(name) = node.as_str()
    {
        return if is_valid_project_name(name) {
            Ok(name.to_string())
        } else {
            Err(Diagnostic::new(format!("`{name}` is not a valid project name"))
                .at(&node.span)
                .path("name")
                .hint("a project name holds only lowercase letters, digits, `_` and `-`, and starts with a letter or digit"))
        };
    }
    let base = project_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = normalize_project_name(&base);
    if name.is_empty() {
        return Err(Diagnostic::new(format!(
            "cannot derive a project name from the directory {}",
            project_dir.display()
        ))
        .hint("give one with -p NAME or a top-level `name:`"));
    }
    Ok(name)
}

pub fn is_valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Lowercase, drop what is not `[a-z0-9_-]`, drop leading `_` and `-`.
pub fn normalize_project_name(name: &str) -> String {
    let lower: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

/// Moves services whose profiles are all off to `stack.disabled`. Returns every profile named.
fn apply_profiles(stack: &mut Stack, opts: &Options, env: &Environment) -> BTreeSet<String> {
    let mut active: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if active.is_empty()
        && let Some(list) = env.get("COMPOSE_PROFILES")
    {
        active.extend(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    // A service named on the command line switches its profiles on.
    for name in &opts.services {
        if let Some(s) = stack.services.get(name) {
            active.extend(s.profiles.iter().cloned());
        }
    }
    let all = active.contains("*");
    let named: BTreeSet<String> = stack
        .services
        .values()
        .flat_map(|s| s.profiles.iter().cloned())
        .collect();
    let off: Vec<String> = stack
        .services
        .iter()
        .filter(|(_, s)| {
            !s.profiles.is_empty() && !all && !s.profiles.iter().any(|p| active.contains(p))
        })
        .map(|(n, _)| n.clone())
        .collect();
    for name in off {
        if let Some(s) = stack.services.remove(&name) {
            stack.disabled.insert(name, s);
        }
    }
    named
}

struct Loader {
    variables: BTreeMap<String, Variable>,
    diags: Diagnostics,
    /// The include chain being loaded, to name a cycle.
    including: Vec<PathBuf>,
    /// Files read for `extends: {file: ...}`, interpolated and checked.
    extends_cache: HashMap<PathBuf, Option<Node>>,
    stdin: Option<String>,
}

impl Loader {
    fn read(&mut self, path: &Path, base_dir: &Path) -> Option<Arc<Source>> {
        if path.as_os_str() == "-" {
            let text = self.stdin.clone().unwrap_or_default();
            return Some(Source::with_base("<stdin>", text, base_dir));
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Some(Source::with_base(path, text, base_dir)),
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(format!("cannot read {}: {e}", path.display()))
                        .file(path)
                        .hint("check the path given with -f, COMPOSE_FILE, include or extends"),
                );
                None
            }
        }
    }

    /// One file, parsed, interpolated, checked, with its includes and
    /// extends resolved. Several YAML documents in one file merge in order.
    fn file(&mut self, path: &Path, base_dir: &Path, env: &Environment) -> Option<Node> {
        let mut doc = self.document(path, base_dir, env)?;
        self.includes(&mut doc, path, env);
        self.extends(&mut doc, path, env);
        Some(doc)
    }

    /// Parse, interpolate and validate, without include or extends.
    fn document(&mut self, path: &Path, base_dir: &Path, env: &Environment) -> Option<Node> {
        let source = self.read(path, base_dir)?;
        let docs = match yaml::parse(&source) {
            Ok(d) => d,
            Err(e) => {
                self.diags.push(e);
                return None;
            }
        };
        let mut merged: Option<Node> = None;
        for mut doc in docs {
            if doc.is_null() {
                continue;
            }
            if doc.as_map().is_none() {
                self.diags.push(
                    Diagnostic::new(format!(
                        "a stack file must be a mapping at the top, not {}",
                        doc.kind_name()
                    ))
                    .at(&doc.span)
                    .hint("start with `services:`"),
                );
                continue;
            }
            self.interpolate(&mut doc, &mut String::new(), env);
            let problems = Schema::compose().validate(&mut doc);
            let clean = problems.is_empty();
            self.diags.0.extend(problems);
            if !clean {
                continue;
            }
            merged = Some(match merged {
                Some(base) => merge::merge_documents(base, doc),
                None => doc,
            });
        }
        Some(
            merged.unwrap_or_else(|| {
                Node::map(Default::default(), super::diagnostic::Span::default())
            }),
        )
    }

    /// Interpolates every value (not keys) of the tree in place.
    fn interpolate(&mut self, node: &mut Node, path: &mut String, env: &Environment) {
        match &mut node.kind {
            Kind::Scalar(s) => {
                if !interpolate::needs_interpolation(&s.text) {
                    return;
                }
                self.record(&s.text);
                let lookup = |name: &str| env.get(name).map(str::to_string);
                match interpolate::interpolate(&s.text, &lookup) {
                    Ok(value) => {
                        s.text = value;
                        s.ty = ScalarType::Str { template: true };
                    }
                    Err(e) => {
                        let hint = match &e {
                            interpolate::InterpolateError::Required { name, .. } => {
                                format!("set {name} in the shell or in the project's .env file")
                            }
                            interpolate::InterpolateError::Invalid { .. } => {
                                "write `$$` for a literal `$`".to_string()
                            }
                        };
                        self.diags.push(
                            Diagnostic::new(e.to_string())
                                .at(&node.span)
                                .path(path.clone())
                                .hint(hint),
                        );
                    }
                }
            }
            Kind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.interpolate(item, path, env);
                    path.truncate(len);
                }
            }
            Kind::Map(map) => {
                for (key, entry) in map.iter_mut() {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                    self.interpolate(&mut entry.value, path, env);
                    path.truncate(len);
                }
            }
        }
    }

    fn record(&mut self, template: &str) {
        let Ok(refs) = interpolate::references(template) else {
            return;
        };
        for r in refs {
            let v = self.variables.entry(r.name).or_default();
            match r.operator {
                Some(Operator::ErrorIfUnset | Operator::ErrorIfUnsetOrEmpty) => v.required = true,
                Some(Operator::DefaultIfUnset | Operator::DefaultIfUnsetOrEmpty) => {
                    v.default = r.argument
                }
                Some(Operator::AltIfSet | Operator::AltIfSetNonEmpty) => v.alternate = r.argument,
                None => {}
            }
        }
    }

    /// `include:` entries are loaded as projects of their own and their
    /// resources added; a resource defined on both sides is an error.
    fn includes(&mut self, doc: &mut Node, path: &Path, env: &Environment) {
        let Some(map) = doc.as_map_mut() else { return };
        let Some(entry) = map.shift_remove("include") else {
            return;
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.including.push(canonical);
        for item in entry.value.as_seq().unwrap_or_default() {
            let (paths, project_dir, env_files) = match &item.kind {
                Kind::Scalar(_) => (vec![text(item).unwrap_or_default()], None, Vec::new()),
                _ => (
                    item.get("path").map(normalize::strings).unwrap_or_default(),
                    item.get("project_directory").and_then(text),
                    item.get("env_file")
                        .map(normalize::strings)
                        .unwrap_or_default(),
                ),
            };
            let paths: Vec<PathBuf> = paths.iter().map(|p| absolute(&dir, Path::new(p))).collect();
            let Some(first) = paths.first() else { continue };
            let project_dir = match project_dir {
                Some(d) => absolute(&dir, Path::new(&d)),
                None => first.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            let cycle = paths.iter().find_map(|p| {
                let c = p.canonicalize().unwrap_or_else(|_| p.clone());
                self.including.contains(&c).then_some(c)
            });
            if let Some(again) = cycle {
                let chain: Vec<String> = self
                    .including
                    .iter()
                    .chain(std::iter::once(&again))
                    .map(|p| p.display().to_string())
                    .collect();
                self.diags.push(
                    Diagnostic::new(format!("include cycle: {}", chain.join(" → ")))
                        .at(&item.span)
                        .path("include")
                        .hint("remove one of these includes"),
                );
                continue;
            }
            // The included project sees the shell and its own env files.
            let env_files: Vec<PathBuf> = if env_files.is_empty() {
                let dotenv = project_dir.join(".env");
                if dotenv.is_file() {
                    vec![dotenv]
                } else {
                    Vec::new()
                }
            } else {
                env_files
                    .iter()
                    .map(|f| absolute(&dir, Path::new(f)))
                    .collect()
            };
            let shell_only = Environment::from_pairs(
                env.names()
                    .filter(|n| env.origin(n) == Some(&super::env::Origin::Shell))
                    .filter_map(|n| Some((n.to_string(), env.get(n)?.to_string()))),
            );
            let sub_env = match shell_only.with_env_files(&env_files) {
                Ok(e) => e,
                Err(d) => {
                    self.diags.push(d);
                    continue;
                }
            };
            let mut included: Option<Node> = None;
            for p in &paths {
                if let Some(d) = self.file(p, &project_dir, &sub_env) {
                    included = Some(match included {
                        Some(base) => merge::merge_documents(base, d),
                        None => d,
                    });
                }
            }
            if let Some(mut inc) = included {
                merge::strip_tags(&mut inc);
                self.add_included(doc, inc, first);
            }
        }
        self.including.pop();
    }

    fn add_included(&mut self, doc: &mut Node, included: Node, from: &Path) {
        let Some(target) = doc.as_map_mut() else {
            return;
        };
        let Kind::Map(sections) = included.kind else {
            return;
        };
        for (section, entry) in sections {
            if !matches!(
                section.as_str(),
                "services" | "networks" | "volumes" | "secrets" | "configs"
            ) {
                continue;
            }
            let Kind::Map(items) = entry.value.kind else {
                continue;
            };
            let dest = target.entry(section.clone()).or_insert_with(|| Entry {
                key_span: entry.key_span.clone(),
                value: Node::map(Default::default(), entry.value.span.clone()),
            });
            let Some(dest) = dest.value.as_map_mut() else {
                continue;
            };
            for (name, item) in items {
                match dest.get(&name) {
                    Some(existing) if existing.value.to_json() != item.value.to_json() => {
                        let kind = section.trim_end_matches('s');
                        self.diags.push(
                            Diagnostic::new(format!(
                                "{kind} `{name}` is defined here and also by the included file {}",
                                from.display()
                            ))
                            .at(&existing.key_span)
                            .path(format!("{section}.{name}"))
                            .hint("rename one of them, or customize the included one with an override file listed in the include's `path`"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        dest.insert(name, item);
                    }
                }
            }
        }
    }

    /// Replaces every service that `extends` another with the merge of the two.
    fn extends(&mut self, doc: &mut Node, path: &Path, env: &Environment) {
        let names: Vec<String> = doc
            .get("services")
            .and_then(Node::as_map)
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.value.get("extends").is_some())
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() {
            return;
        }
        let snapshot = doc.clone();
        for name in names {
            let mut chain = Vec::new();
            if let Some(resolved) = self.resolve_service(&snapshot, path, &name, env, &mut chain)
                && let Some(slot) = doc.get_mut("services").and_then(|s| s.get_mut(&name))
            {
                *slot = resolved;
            }
        }
    }

    /// A service of `doc` (read from `file`) with its `extends` chain applied.
    fn resolve_service(
        &mut self,
        doc: &Node,
        file: &Path,
        name: &str,
        env: &Environment,
        chain: &mut Vec<(PathBuf, String)>,
    ) -> Option<Node> {
        let service = doc.get("services")?.get(name)?.clone();
        let Some(ext) = service.get("extends").cloned() else {
            return Some(service);
        };
        let (base_name, base_file) = match &ext.kind {
            Kind::Scalar(_) => (text(&ext)?, None),
            _ => (
                ext.get("service").and_then(text)?,
                ext.get("file").and_then(text),
            ),
        };
        let here = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_path = base_file
            .map(|f| absolute(&here, Path::new(&f)))
            .unwrap_or_else(|| file.to_path_buf());
        chain.push((file.to_path_buf(), name.to_string()));
        if chain
            .iter()
            .any(|(f, n)| f == &base_path && n == &base_name)
        {
            let names: Vec<String> = chain
                .iter()
                .map(|(_, n)| n.clone())
                .chain(std::iter::once(base_name.clone()))
                .collect();
            self.diags.push(
                Diagnostic::new(format!("extends cycle: {}", names.join(" → ")))
                    .at(&ext.span)
                    .path(format!("services.{name}.extends"))
                    .hint("a service cannot extend itself, directly or through others"),
            );
            return None;
        }
        let base_doc = if base_path == file {
            doc.clone()
        } else {
            let cached = match self.extends_cache.get(&base_path) {
                Some(d) => d.clone(),
                None => {
                    // Relative paths in an extended file resolve from that file's directory.
                    let dir = base_path
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    let d = self.document(&base_path, &dir, env);
                    self.extends_cache.insert(base_path.clone(), d.clone());
                    d
                }
            };
            cached?
        };
        if base_doc
            .get("services")
            .and_then(|s| s.get(&base_name))
            .is_none()
        {
            self.diags.push(
                Diagnostic::new(format!(
                    "service `{name}` extends `{base_name}`, which is not defined in {}",
                    base_path.display()
                ))
                .at(&ext.span)
                .path(format!("services.{name}.extends"))
                .hint("check the service name and the `file` of `extends`"),
            );
            return None;
        }
        let base = self.resolve_service(&base_doc, &base_path, &base_name, env, chain)?;
        let mut over = service;
        if let Some(m) = over.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut merged = merge::merge_service(base, over);
        merge::strip_tags(&mut merged);
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn opts(dir: &Path) -> Options {
        Options {
            working_dir: dir.to_path_buf(),
            environment: HashMap::from([("HOME".to_string(), "/root".to_string())]),
            ..Options::default()
        }
    }

    #[test]
    fn default_lookup_walks_up_and_takes_the_override_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "compose.yaml",
            "services:\n  web:\n    image: a\n",
        );
        write(
            dir.path(),
            "compose.override.yaml",
            "services:\n  web:\n    image: b\n",
        );
        let sub = dir.path().join("deep/er");
        std::fs::create_dir_all(&sub).unwrap();
        let p = load(&opts(&sub)).unwrap();
        assert_eq!(p.stack.services["web"].image.as_deref(), Some("b"));
        assert_eq!(p.stack.files.len(), 2);
        let expected = normalize_project_name(&dir.path().file_name().unwrap().to_string_lossy());
        assert_eq!(p.stack.name, expected);
    }

    #[test]
    fn interpolation_uses_shell_over_dotenv_and_casts_numbers() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".env", "TAG=fromenv\nPORT=8080\nN=3\n");
        write(
            dir.path(),
            "compose.yaml",
            "name: ${NAME:-demo}\nservices:\n  web:\n    image: busybox:${TAG}\n    ports: ['${PORT}:80']\n    environment:\n      LIT: $$HOME\n  worker:\n    image: x\n    scale: ${N}",
        );
        let mut o = opts(dir.path());
        o.environment.insert("TAG".into(), "fromshell".into());
        let p = load(&o).unwrap();
        let web = &p.stack.services["web"];
        assert_eq!(p.stack.name, "demo");
        assert_eq!(web.image.as_deref(), Some("busybox:fromshell"));
        assert_eq!(web.ports[0].published.as_deref(), Some("8080"));
        assert_eq!(p.stack.services["worker"].scale, Some(3));
        assert_eq!(web.environment["LIT"].as_deref(), Some("$HOME"));
        assert_eq!(p.variables["NAME"].default.as_deref(), Some("demo"));
    }

    #[test]
    fn required_variable_error_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "compose.yaml",
            "services:\n  web:\n    image: ${IMG:?set the image}\n",
        );
        let err = load(&opts(dir.path())).unwrap_err();
        let d = &err.0[0];
        assert!(d.message.contains("IMG"), "{err}");
        assert_eq!((d.span.line, d.span.col), (3, 12));
        assert_eq!(d.path, "services.web.image");
    }

    #[test]
    fn extends_same_file_other_file_and_cycles() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "common/base.yaml",
            "services:\n  base:\n    image: busybox\n    volumes: ['./data:/data']\n    environment: {A: '1'}\n",
        );
        write(
            dir.path(),
            "compose.yaml",
            "services:\n  mid:\n    extends: {file: common/base.yaml, service: base}\n    environment: {B: '2'}\n  web:\n    extends: mid\n    command: [sh]\n",
        );
        let p = load(&opts(dir.path())).unwrap();
        let web = &p.stack.services["web"];
        assert_eq!(web.image.as_deref(), Some("busybox"));
        assert_eq!(web.environment.len(), 2);
        let src = dir.path().join("common/data").display().to_string();
        assert_eq!(web.volumes[0].source.as_deref(), Some(src.as_str()));

        write(
            dir.path(),
            "compose.yaml",
            "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n",
        );
        let err = load(&opts(dir.path())).unwrap_err();
        assert!(err.to_string().contains("extends cycle"), "{err}");
    }

    #[test]
    fn include_adds_resources_and_detects_cycles_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "db/compose.yaml",
            "services:\n  db:\n    image: postgres:${V}\n    volumes: ['./init:/init']\n",
        );
        write(dir.path(), "db/.env", "V=16\n");
        write(
            dir.path(),
            "compose.yaml",
            "include:\n  - db/compose.yaml\nservices:\n  web:\n    image: x\n    depends_on: [db]\n",
        );
        let p = load(&opts(dir.path())).unwrap();
        assert_eq!(p.stack.services["db"].image.as_deref(), Some("postgres:16"));
        let init = dir.path().join("db/init").display().to_string();
        assert_eq!(
            p.stack.services["db"].volumes[0].source.as_deref(),
            Some(init.as_str())
        );

        write(
            dir.path(),
            "compose.yaml",
            "include:\n  - db/compose.yaml\nservices:\n  db:\n    image: other\n",
        );
        let err = load(&opts(dir.path())).unwrap_err();
        assert!(
            err.to_string().contains("also by the included file"),
            "{err}"
        );

        write(
            dir.path(),
            "a.yaml",
            "include: [b.yaml]\nservices: {a: {image: x}}\n",
        );
        write(
            dir.path(),
            "b.yaml",
            "include: [a.yaml]\nservices: {b: {image: x}}\n",
        );
        let mut o = opts(dir.path());
        o.files = vec!["a.yaml".into()];
        let err = load(&o).unwrap_err();
        assert!(err.to_string().contains("include cycle"), "{err}");
    }

    #[test]
    fn profiles_enable_and_disable_services() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "compose.yaml",
            "services:\n  web: {image: x}\n  debug: {image: x, profiles: [dbg]}\n  tools: {image: x, profiles: [ops]}\n",
        );
        let p = load(&opts(dir.path())).unwrap();
        assert_eq!(p.stack.services.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(p.profiles.len(), 2);
        let mut o = opts(dir.path());
        o.profiles = vec!["dbg".into()];
        assert_eq!(load(&o).unwrap().stack.services.len(), 2);
        o.profiles = vec!["*".into()];
        assert_eq!(load(&o).unwrap().stack.services.len(), 3);
        let mut o = opts(dir.path());
        o.services = vec!["tools".into()];
        assert!(load(&o).unwrap().stack.services.contains_key("tools"));
        let mut o = opts(dir.path());
        o.environment
            .insert("COMPOSE_PROFILES".into(), "ops,dbg".into());
        assert_eq!(load(&o).unwrap().stack.services.len(), 3);
    }

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_x"), "x");
        assert!(is_valid_project_name("a_b-1"));
        assert!(!is_valid_project_name("-a"));
        assert!(!is_valid_project_name("A"));
    }
}
