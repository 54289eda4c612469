//! Diagnostics: what is wrong in a stack file, where, and how to fix it.
//!
//! Every problem the loader finds becomes a [`Diagnostic`]: a sentence saying
//! what is wrong, the place in the source (file, line, column, and the key
//! path such as `services.web.ports[0]`), and a hint. The loader keeps going
//! after a problem where it safely can, so one run reports every error in a
//! file rather than the first one; [`Diagnostics`] carries them together and
//! renders them the way compilers do, with the offending line underlined.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One loaded text file, kept so that errors can quote its lines.
#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
    /// The directory that relative paths written in this file resolve
    /// against: the project directory for the files given with `-f`, the
    /// file's own directory for `extends`, the include's project directory.
    pub base_dir: PathBuf,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Arc<Source> {
        let path = path.into();
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Source::with_base(path, text, base_dir)
    }

    pub fn with_base(
        path: impl Into<PathBuf>,
        text: impl Into<String>,
        base_dir: impl Into<PathBuf>,
    ) -> Arc<Source> {
        Arc::new(Source {
            path: path.into(),
            text: text.into(),
            base_dir: base_dir.into(),
        })
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// A place in a source file: 1-based line and column. Nodes made by the
/// loader itself (defaults, command-line values) have no source.
#[derive(Clone, Default)]
pub struct Span {
    pub source: Option<Arc<Source>>,
    pub line: u32,
    pub col: u32,
    /// How many characters to underline (at least one).
    pub len: u32,
}

impl Span {
    pub fn at(source: &Arc<Source>, line: usize, col: usize, len: usize) -> Span {
        Span {
            source: Some(Arc::clone(source)),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
            len: u32::try_from(len.max(1)).unwrap_or(1),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.source.as_deref().map(|s| s.path.as_path())
    }

    /// Where relative paths written at this place resolve from.
    pub fn base_dir(&self) -> Option<&Path> {
        self.source.as_deref().map(|s| s.base_dir.as_path())
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(p) => write!(f, "{}:{}:{}", p.display(), self.line, self.col),
            None => f.write_str("<none>"),
        }
    }
}

/// Spans never take part in equality: two trees are equal when their data is.
impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

/// One problem in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    /// The key path inside the document, e.g. `services.web.ports[0]`.
    pub path: String,
    pub hint: Option<String>,
    /// Where the file is not the place (an unreadable file, an unknown
    /// service on the command line), the file the problem concerns.
    pub file: Option<PathBuf>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: Span::default(),
            path: String::new(),
            hint: None,
            file: None,
        }
    }

    pub fn at(mut self, span: &Span) -> Diagnostic {
        self.span = span.clone();
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = path.into();
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn file(mut self, file: impl Into<PathBuf>) -> Diagnostic {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let suffix = if self.path.is_empty() {
            String::new()
        } else {
            format!(" (at `{}`)", self.path)
        };
        match &self.span.source {
            Some(source) => {
                writeln!(
                    f,
                    "  --> {}:{}:{}{}",
                    source.path.display(),
                    self.span.line,
                    self.span.col,
                    suffix
                )?;
                if let Some(text) = source.line(self.span.line as usize) {
                    let number = self.span.line.to_string();
                    let pad = " ".repeat(number.len());
                    writeln!(f, "{pad} |")?;
                    writeln!(f, "{number} | {text}")?;
                    let indent: String = text
                        .chars()
                        .take(self.span.col.saturating_sub(1) as usize)
                        .map(|c| if c == '\t' { '\t' } else { ' ' })
                        .collect();
                    writeln!(f, "{pad} | {indent}{}", "^".repeat(self.span.len as usize))?;
                }
            }
            None => {
                if let Some(file) = &self.file {
                    writeln!(f, "  --> {}{}", file.display(), suffix)?;
                } else if !suffix.is_empty() {
                    writeln!(f, "  -->{suffix}")?;
                }
            }
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = help: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, reported together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(value)` when nothing was reported, otherwise every diagnostic.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The nearest of `candidates` to a misspelt `word`, when it is close enough
/// to be a plausible typo (Levenshtein distance at most a third of its length).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let keys = ["environment", "entrypoint", "env_file"];
        assert_eq!(did_you_mean("enviroment", keys), Some("environment"));
        assert_eq!(did_you_mean("env_fil", keys), Some("env_file"));
        assert_eq!(did_you_mean("zzzzzz", keys), None);
    }

    #[test]
    fn renders_file_line_column_and_the_line() {
        let src = Source::new("compose.yaml", "services:\n  web:\n    enviroment: {}\n");
        let d = Diagnostic::new("unknown key `enviroment` in service `web`")
            .at(&Span::at(&src, 3, 5, 10))
            .path("services.web.enviroment")
            .hint("did you mean `environment`?");
        let text = d.to_string();
        assert!(text.contains("compose.yaml:3:5"), "{text}");
        assert!(text.contains("3 |     enviroment: {}"), "{text}");
        assert!(text.contains("  |     ^^^^^^^^^^"), "{text}");
        assert!(text.contains("help: did you mean `environment`?"), "{text}");
    }
}
