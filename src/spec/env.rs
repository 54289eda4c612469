//! The variables a project is interpolated with, and where each came from.
//!
//! Compose resolves `${VAR}` from two places: the shell that runs the
//! command, and the project's `.env` file (or the files given with
//! `--env-file`, which replace `.env`). The shell wins. Each value remembers
//! its origin so that `stack config --variables` can say why a value is what
//! it is.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Source, Span};
use super::dotenv;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Shell,
    EnvFile(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Shell => f.write_str("shell"),
            Origin::EnvFile(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, (String, Origin)>,
}

impl Environment {
    /// The shell's environment as given (the process environment in `main`).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Environment {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), (v.into(), Origin::Shell)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|(v, _)| v.as_str())
    }

    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.vars.get(name).map(|(_, o)| o)
    }

    /// Adds the variables of env files under the shell's: a variable set in
    /// the shell keeps its value. Later files override earlier ones, and a
    /// file's substitutions see the shell and the files before it.
    pub fn with_env_files(&self, files: &[PathBuf]) -> Result<Environment, Diagnostic> {
        let mut out = self.clone();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Diagnostic::new(format!("cannot read env file {}: {e}", file.display()))
                    .file(file)
                    .hint("check the path given with --env-file or COMPOSE_ENV_FILES")
            })?;
            let lookup = |name: &str| out.get(name).map(str::to_string);
            let vars = dotenv::parse(&text, &lookup).map_err(|e| env_file_error(file, &text, e))?;
            for (k, v) in vars {
                let shell = matches!(self.vars.get(&k), Some((_, Origin::Shell)));
                if !shell {
                    out.vars.insert(k, (v, Origin::EnvFile(file.clone())));
                }
            }
        }
        Ok(out)
    }

    /// Every variable, for tests and `config --variables`.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}

/// A `.env` error with the line shown.
pub fn env_file_error(file: &Path, text: &str, e: dotenv::DotenvError) -> Diagnostic {
    let line = e.line();
    let source = Source::new(file, text);
    let span = Span::at(
        &source,
        line.max(1),
        1,
        source.line(line).map_or(1, str::len),
    );
    Diagnostic::new(format!("invalid env file: {e}")).at(&span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_beats_env_file_and_later_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        std::fs::write(&a, "X=a\nY=a\nZ=${X}-z\n").unwrap();
        std::fs::write(&b, "Y=b\n").unwrap();
        let shell = Environment::from_pairs([("X", "shell")]);
        let env = shell.with_env_files(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(env.get("X"), Some("shell"));
        assert_eq!(env.get("Y"), Some("b"));
        assert_eq!(env.get("Z"), Some("shell-z"));
        assert_eq!(env.origin("Y"), Some(&Origin::EnvFile(b)));
        assert_eq!(env.origin("X"), Some(&Origin::Shell));
    }

    #[test]
    fn missing_env_file_is_a_clear_error() {
        let err = Environment::default()
            .with_env_files(&[PathBuf::from("/nonexistent/.env")])
            .unwrap_err();
        assert!(err.message.contains("/nonexistent/.env"), "{}", err.message);
    }
}
