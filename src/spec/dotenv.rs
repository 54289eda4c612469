//! `.env` files: the `KEY=VALUE` lists behind a project's `.env` and a
//! service's `env_file`.
//!
//! A dotenv file is a list of assignments, one per line, in the dialect docker
//! compose v2 reads (compose-go's `dotenv` package). Each statement is
//! `KEY=VALUE` (or `KEY: VALUE`, the yaml-ish form), optionally prefixed with
//! `export ` so the file can also be `source`d by a shell. How the value is
//! written decides how it is read:
//!
//! - unquoted, `KEY=some value # comment`: the rest of the line, with a
//!   comment starting at ` #` (a space, then `#`) and trailing blanks removed;
//!   `$VAR`/`${VAR...}` references are interpolated. The blanks after `=` go
//!   first, so `KEY= #x` is `#x`, as in compose-go;
//! - single-quoted, `KEY='$literal'`: taken verbatim, across lines if need be;
//!   only `\'` is unescaped;
//! - double-quoted, `KEY="line\n${VAR}"`: may span lines; the escapes `\a \b \f
//!   \n \r \t \v \\ \" \$` and octal `\0ooo` are expanded, then references are
//!   interpolated (`\$` yields a literal `$`).
//!
//! A `KEY` alone on its line takes its value from the outside `lookup` (the
//! OS environment) and is left out when that has none; `KEY=` is the empty
//! string. Blank lines, lines whose first non-blank character is `#`, and a
//! UTF-8 byte-order mark at the very start are ignored. Keys are made of
//! letters, digits, `_`, `.`, `-`, `[` and `]`.
//!
//! References in a value see the outside `lookup` first, then the keys
//! assigned earlier in the same file: with `A=5` in the environment,
//! `A=1` then `B=${A}` gives `A=1`, `B=5` (compose-go's
//! `TestSubstitutionsWithEnvFilePrecedence`). A key's own assignment is never
//! overridden by the lookup.
//!
//! Where compose-go accepts something by accident of its implementation, this
//! parser reports an error with the line number instead:
//!
//! - text after a closing quote other than a `#` comment (compose-go starts a
//!   new statement there, so `A="x"B` silently defines `B`);
//! - an empty key (`=value`, which compose-go stores under the key `""`);
//! - any blank inside a key (compose-go rejects only the space character).
//!
//! And two of its accidents are smoothed over: a `KEY` alone on the file's
//! last line without a line break is looked up like any other (compose-go
//! makes it the value of an empty key), and `export` followed only by blanks
//! is the key `export` rather than an empty statement.
//!
//! [`parse_raw`] reads the `format: raw` flavour, which docker compose
//! delegates to `docker run --env-file`'s parser: every line after its
//! leading blanks is `KEY=VALUE` taken literally, trailing blanks included.

use std::collections::HashMap;

use crate::spec::interpolate::{self, InterpolateError, Lookup};

/// Why a dotenv file could not be read. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    /// A line that is not a statement: bad key, unterminated quote, ...
    #[error("line {line}: {message}")]
    InvalidLine {
        line: usize,
        column: usize,
        message: String,
    },
    /// A value whose `$` references could not be interpolated. `line` is
    /// where its statement starts; the `source`'s offset, if any, counts from
    /// the start of the value (after escape processing, for double quotes).
    #[error("line {line}: in the value of `{key}`: {source}")]
    Interpolation {
        line: usize,
        key: String,
        source: InterpolateError,
    },
}

impl DotenvError {
    /// The 1-based line the error is on.
    pub fn line(&self) -> usize {
        match self {
            DotenvError::InvalidLine { line, .. } | DotenvError::Interpolation { line, .. } => {
                *line
            }
        }
    }
}

/// Parses dotenv text; `lookup` supplies the variables from outside the file
/// (the caller passes the OS environment) for bare keys and references.
///
/// Returns the `(key, value)` pairs in file order. A key assigned more than
/// once appears once, at its first assignment, with its last value, the way
/// an insertion-ordered map keeps it.
///
/// Fails on the first invalid line or failed interpolation.
pub fn parse(input: &str, lookup: Lookup) -> Result<Vec<(String, String)>, DotenvError> {
    let src = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut parser = Parser {
        src,
        pos: 0,
        lookup,
        vars: Vars::default(),
    };
    while parser.statement()? {}
    Ok(parser.vars.entries)
}

/// Parses a `format: raw` env file: `KEY=VALUE` lines taken literally, with no
/// quote processing or substitution; comments and blank lines are skipped.
/// Duplicates are handled as in [`parse`].
///
/// A `KEY` without `=` is skipped: with no environment to take it from, it
/// has no value (see [`parse_raw_with_lookup`]).
pub fn parse_raw(input: &str) -> Result<Vec<(String, String)>, DotenvError> {
    parse_raw_with_lookup(input, &|_| None)
}

/// [`parse_raw`] where a `KEY` without `=` takes its value from `lookup`, and
/// is skipped when that has none, as `docker run --env-file` does.
pub fn parse_raw_with_lookup(
    input: &str,
    lookup: Lookup,
) -> Result<Vec<(String, String)>, DotenvError> {
    let src = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut vars = Vars::default();
    for (index, raw_line) in src.split('\n').enumerate() {
        let line_number = index + 1;
        let raw_line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let line = raw_line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let column = raw_line[..raw_line.len() - line.len()].chars().count() + 1;
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(DotenvError::InvalidLine {
                line: line_number,
                column,
                message: "missing the variable name before `=`; write `NAME=value`".to_owned(),
            });
        }
        // docker's parser refuses exactly spaces and tabs in a raw key.
        if key.contains([' ', '\t']) {
            return Err(DotenvError::InvalidLine {
                line: line_number,
                column,
                message: format!(
                    "variable name `{}` contains blanks; a raw env file takes `NAME=value` with \
                     nothing around the `=` and no `export`",
                    key.trim_end()
                ),
            });
        }
        match value {
            Some(value) => vars.set(key.to_owned(), value.to_owned()),
            None => {
                if let Some(value) = lookup(key) {
                    vars.set(key.to_owned(), value);
                }
            }
        }
    }
    Ok(vars.entries)
}

/// The assignments so far: in first-assignment order, with an index so a
/// later assignment or a reference finds its key in constant time.
#[derive(Default)]
struct Vars {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Vars {
    fn set(&mut self, key: String, value: String) {
        match self.index.get(&key).and_then(|&i| self.entries.get_mut(i)) {
            Some(entry) => entry.1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        let &i = self.index.get(key)?;
        self.entries.get(i).map(|(_, value)| value.as_str())
    }
}

struct Parser<'s, 'l> {
    src: &'s str,
    pos: usize,
    lookup: Lookup<'l>,
    vars: Vars,
}

impl Parser<'_, '_> {
    /// Parses the next statement; `false` at the end of the input.
    fn statement(&mut self) -> Result<bool, DotenvError> {
        self.skip_blank_lines_and_comments();
        if self.pos >= self.src.len() {
            return Ok(false);
        }
        let statement_start = self.pos;
        let key_start = self.after_export(statement_start);
        let (key, separator) = self.key(key_start)?;
        match separator {
            Separator::LineEnd(next) => {
                // A bare `KEY` passes a variable through from the environment.
                if let Some(value) = (self.lookup)(&key) {
                    self.vars.set(key, value);
                }
                self.pos = next;
            }
            Separator::Assign(value_start) => {
                let value = self.value(value_start, statement_start, &key)?;
                self.vars.set(key, value);
            }
        }
        Ok(true)
    }

    /// Skips whitespace, line breaks included, and whole comment lines.
    fn skip_blank_lines_and_comments(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if !trimmed.starts_with('#') {
                return;
            }
            self.pos = line_end(self.src, self.pos);
        }
    }

    /// Where the key starts once an `export ` prefix is dropped.
    fn after_export(&self, start: usize) -> usize {
        let Some(rest) = self.src[start..].strip_prefix("export") else {
            return start;
        };
        let key = rest.trim_start_matches(is_blank);
        // `export` followed by nothing on its line is a key named `export`.
        if key.len() == rest.len() || key.is_empty() || key.starts_with('\n') {
            return start;
        }
        self.src.len() - key.len()
    }

    /// Reads the key at `start` up to its `=`, `:` or line end.
    fn key(&self, start: usize) -> Result<(String, Separator), DotenvError> {
        let rest = &self.src[start..];
        let mut separator = Separator::LineEnd(self.src.len());
        let mut key_end = self.src.len();
        for (offset, c) in rest.char_indices() {
            let at = start + offset;
            match c {
                '=' | ':' => {
                    key_end = at;
                    separator = Separator::Assign(at + 1);
                    break;
                }
                '\n' => {
                    key_end = at;
                    separator = Separator::LineEnd(at + 1);
                    break;
                }
                c if is_key_char(c) || c.is_whitespace() => {}
                c => {
                    let line = rest.split('\n').next().unwrap_or_default().trim_end();
                    return Err(self.invalid(
                        at,
                        format!(
                            "unexpected character `{c}` in variable name `{line}`: names may \
                             contain only letters, digits, `_`, `.`, `-`, `[` and `]`"
                        ),
                    ));
                }
            }
        }
        let key = self.src[start..key_end].trim_end();
        if key.is_empty() {
            return Err(self.invalid(
                start,
                "missing the variable name before the value; write `NAME=value`".to_owned(),
            ));
        }
        if key.contains(char::is_whitespace) {
            return Err(self.invalid(
                start,
                format!(
                    "variable name `{key}` contains blanks; write a single word like `{}`, \
                     followed by `=value`",
                    key.split_whitespace().collect::<Vec<_>>().join("_")
                ),
            ));
        }
        Ok((key.to_owned(), separator))
    }

    /// Reads the value starting after the separator at `after_separator`.
    fn value(
        &mut self,
        after_separator: usize,
        statement_start: usize,
        key: &str,
    ) -> Result<String, DotenvError> {
        let rest = &self.src[after_separator..];
        let start = after_separator + (rest.len() - rest.trim_start_matches(is_blank).len());
        match self.src.as_bytes().get(start) {
            Some(&quote @ (b'"' | b'\'')) => {
                let (raw, close) = self.quoted(start, quote)?;
                self.pos = self.after_closing_quote(close + 1)?;
                if quote == b'\'' {
                    return Ok(raw);
                }
                self.interpolate(&expand_escapes(&raw), statement_start, key)
            }
            _ => {
                let end = line_end(self.src, start);
                self.pos = end;
                let line = &self.src[start..end];
                let value = line.split_once(" #").map_or(line, |(value, _)| value);
                self.interpolate(value.trim_end(), statement_start, key)
            }
        }
    }

    /// Reads the quoted text whose opening quote is at `open`: returns it with
    /// escaped quotes unescaped, and the offset of the closing quote.
    fn quoted(&self, open: usize, quote: u8) -> Result<(String, usize), DotenvError> {
        let bytes = self.src.as_bytes();
        let mut raw = String::new();
        let mut copied = open + 1;
        let mut i = open + 1;
        while let Some(&b) = bytes.get(i) {
            if b == quote {
                raw.push_str(&self.src[copied..i]);
                return Ok((raw, i));
            }
            if b == b'\\' {
                match bytes.get(i + 1) {
                    // Only the quote loses its backslash; `\\` is kept whole
                    // (for the escape pass) so `\\"` still ends the value.
                    Some(&next) if next == quote => {
                        raw.push_str(&self.src[copied..i]);
                        copied = i + 1;
                        i += 2;
                        continue;
                    }
                    Some(b'\\') => {
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        let kind = if quote == b'"' { "double" } else { "single" };
        let quote = char::from(quote);
        Err(self.invalid(
            open,
            format!(
                "unterminated {kind}-quoted value: add the closing `{quote}` (a quoted value may \
                 span lines, so the rest of the file was read as part of it)"
            ),
        ))
    }

    /// Checks that only blanks or a comment follow a closing quote on its
    /// line; returns where the next statement may start.
    fn after_closing_quote(&self, from: usize) -> Result<usize, DotenvError> {
        let end = line_end(self.src, from);
        let tail = self.src[from..end].trim_start_matches(is_blank);
        if tail.is_empty() || tail.starts_with('#') {
            return Ok(end);
        }
        Err(self.invalid(
            end - tail.len(),
            format!(
                "unexpected `{}` after the closing quote: put a `#` before a comment, or quote \
                 the whole value",
                tail.trim_end()
            ),
        ))
    }

    fn interpolate(
        &self,
        value: &str,
        statement_start: usize,
        key: &str,
    ) -> Result<String, DotenvError> {
        if !interpolate::needs_interpolation(value) {
            return Ok(value.to_owned());
        }
        let vars = &self.vars;
        let outside = self.lookup;
        let resolve = |name: &str| outside(name).or_else(|| vars.get(name).map(str::to_owned));
        interpolate::interpolate(value, &resolve).map_err(|source| DotenvError::Interpolation {
            line: position(self.src, statement_start).0,
            key: key.to_owned(),
            source,
        })
    }

    fn invalid(&self, at: usize, message: String) -> DotenvError {
        let (line, column) = position(self.src, at);
        DotenvError::InvalidLine {
            line,
            column,
            message,
        }
    }
}

enum Separator {
    /// `=` or `:`; the value starts at this offset.
    Assign(usize),
    /// A bare key; the next statement starts at this offset.
    LineEnd(usize),
}

/// Blanks inside a line: whitespace other than the line break.
fn is_blank(c: char) -> bool {
    c != '\n' && c.is_whitespace()
}

fn is_key_char(c: char) -> bool {
    matches!(c, '_' | '.' | '-' | '[' | ']') || c.is_alphanumeric()
}

/// The offset of the line break ending the line at `from`, or the input's end.
fn line_end(src: &str, from: usize) -> usize {
    src[from..].find('\n').map_or(src.len(), |i| from + i)
}

/// The 1-based line and column (in characters) of a byte offset.
fn position(src: &str, at: usize) -> (usize, usize) {
    let before = src.get(..at).unwrap_or(src);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// Expands the escapes of a double-quoted value the way compose-go does: the
/// XSI `echo` set, with `\$` turned into the `$$` that interpolation reads as
/// a literal `$`. Anything else after a backslash is left as written, except
/// that a `\0` not followed by three octal digits worth at most 0o377 loses
/// its `0` (`\012` becomes `\12`): compose-go rewrites the prefix before it
/// finds the sequence invalid, and this keeps the same values.
fn expand_escapes(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(backslash) = raw[i..].find('\\').map(|j| i + j) {
        let replacement: Option<&str> = match bytes.get(backslash + 1) {
            Some(b'a') => Some("\x07"),
            Some(b'b') => Some("\x08"),
            Some(b'f') => Some("\x0c"),
            Some(b'n') => Some("\n"),
            Some(b'r') => Some("\r"),
            Some(b't') => Some("\t"),
            Some(b'v') => Some("\x0b"),
            Some(b'\\') => Some("\\"),
            Some(b'"') => Some("\""),
            Some(b'$') => Some("$$"),
            Some(b'0') => {
                out.push_str(&raw[copied..backslash]);
                let digits_start = backslash + 2;
                let digits = bytes
                    .get(digits_start..)
                    .unwrap_or_default()
                    .iter()
                    .take(3)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let digits_text = &raw[digits_start..digits_start + digits];
                match octal_byte(digits_text) {
                    Some(byte) => out.push(char::from(byte)),
                    // compose-go drops the `0` and keeps the rest as written.
                    None => {
                        out.push('\\');
                        out.push_str(digits_text);
                    }
                }
                i = digits_start + digits;
                copied = i;
                continue;
            }
            _ => None,
        };
        match replacement {
            Some(text) => {
                out.push_str(&raw[copied..backslash]);
                out.push_str(text);
                i = backslash + 2;
                copied = i;
            }
            None => i = backslash + 1,
        }
    }
    out.push_str(&raw[copied..]);
    out
}

/// Three octal digits worth at most 0o377, as `\0ooo` requires.
fn octal_byte(digits: &str) -> Option<u8> {
    if digits.len() != 3 {
        return None;
    }
    u8::from_str_radix(digits, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// compose-go's own .env fixtures, from the shared corpus.
    fn fixtures() -> Option<std::path::PathBuf> {
        Some(crate::spec::test_corpus()?.join("compose-go/dotenv/fixtures"))
    }

    fn unset(_: &str) -> Option<String> {
        None
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse_ok(input: &str) -> Vec<(String, String)> {
        match parse(input, &unset) {
            Ok(vars) => vars,
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    /// The value of the only key in `input`.
    fn value_of(input: &str) -> String {
        let vars = parse_ok(input);
        assert_eq!(vars.len(), 1, "{input:?} gave {vars:?}");
        vars.into_iter().map(|(_, v)| v).next().unwrap_or_default()
    }

    fn error_line(input: &str) -> usize {
        match parse(input, &unset) {
            Err(e) => e.line(),
            Ok(vars) => panic!("{input:?} should fail, gave {vars:?}"),
        }
    }

    fn message(input: &str) -> String {
        match parse(input, &unset) {
            Err(e) => e.to_string(),
            Ok(vars) => panic!("{input:?} should fail, gave {vars:?}"),
        }
    }

    /// Reads a compose-go fixture, or `None` when the corpus is not there.
    fn fixture(name: &str) -> Option<String> {
        let dir = fixtures()?;
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Some(text),
            Err(e) => panic!("cannot read fixture {name}: {e}"),
        }
    }

    fn parse_fixture(name: &str, lookup: Lookup) -> Option<Vec<(String, String)>> {
        let text = fixture(name)?;
        match parse(&text, lookup) {
            Ok(vars) => Some(vars),
            Err(e) => panic!("fixture {name} failed: {e}"),
        }
    }

    #[test]
    fn fixture_plain() {
        let Some(vars) = parse_fixture("plain.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", "3"),
                ("OPTION_D", "4"),
                ("OPTION_E", "5"),
                // compose-go's parser keeps it; only its `Read` helper drops
                // keys starting with a digit.
                ("456", "ABC"),
                ("OPTION_F", ""),
                ("OPTION_G", ""),
                ("OPTION_H", "my string"),
            ])
        );
    }

    #[test]
    fn fixture_utf8_bom() {
        let Some(text) = fixture("utf8-bom.env") else {
            return;
        };
        assert!(text.starts_with('\u{feff}'), "fixture lost its BOM");
        let Some(vars) = parse_fixture("utf8-bom.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", "3"),
                ("OPTION_D", "4"),
                ("OPTION_E", "5"),
                ("456", "ABC"),
                ("OPTION_F", ""),
                ("OPTION_G", ""),
                ("OPTION_H", "my string"),
            ])
        );
    }

    #[test]
    fn fixture_quoted() {
        let Some(vars) = parse_fixture("quoted.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "2"),
                ("OPTION_C", ""),
                ("OPTION_D", "\\n"),
                ("OPTION_E", "1"),
                ("OPTION_F", "2"),
                ("OPTION_G", ""),
                ("OPTION_H", "\n"),
                ("OPTION_I", "echo 'asd'"),
                ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
                ("OPTION_K", "Let's go!"),
                ("OPTION_Z", "last value"),
            ])
        );
    }

    #[test]
    fn fixture_unquoted() {
        let Some(vars) = parse_fixture("unquoted.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "some quoted phrase"),
                ("OPTION_B", "first one with an unquoted phrase"),
                ("OPTION_C", "then another one with an unquoted phrase"),
                (
                    "OPTION_D",
                    "then another one with an unquoted phrase special è char"
                ),
                ("OPTION_E", "then another one quoted phrase"),
            ])
        );
    }

    #[test]
    fn fixture_exported() {
        let Some(vars) = parse_fixture("exported.env", &unset) else {
            return;
        };
        assert_eq!(vars, pairs(&[("OPTION_A", "2"), ("OPTION_B", "\\n")]));
    }

    #[test]
    fn fixture_equals() {
        let Some(vars) = parse_fixture("equals.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[(
                "OPTION_A",
                "postgres://localhost:5432/database?sslmode=disable"
            )])
        );
    }

    #[test]
    fn fixture_special_key_characters() {
        let Some(vars) = parse_fixture("special.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("VAR.WITH.DOTS", "dots"),
                ("VAR_WITH_UNDERSCORES", "underscores"),
                ("VAR-WITH-DASHES", "dashes"),
            ])
        );
    }

    #[test]
    fn fixture_custom_format_is_yaml_ish() {
        let Some(vars) = parse_fixture("custom.format", &unset) else {
            return;
        };
        assert_eq!(vars, pairs(&[("FOO", "BAR"), ("ZOT", "QIX")]));
    }

    #[test]
    fn fixture_substitutions() {
        let Some(vars) = parse_fixture("substitutions.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "1"),
                ("OPTION_C", "1"),
                ("OPTION_D", "1_1"),
                ("OPTION_E", ""),
            ])
        );
    }

    fn option_a_is_5(name: &str) -> Option<String> {
        (name == "OPTION_A").then(|| "5".to_owned())
    }

    #[test]
    fn fixture_substitutions_lookup_wins_over_earlier_keys() {
        let Some(vars) = parse_fixture("substitutions.env", &option_a_is_5) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "5"),
                ("OPTION_C", "5"),
                ("OPTION_D", "5_5"),
                ("OPTION_E", ""),
            ])
        );
    }

    #[test]
    fn fixture_substitutions_default() {
        let Some(vars) = parse_fixture("substitutions-default.env", &unset) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "1"),
                ("OPTION_B", "1"),
                ("OPTION_C", "1"),
                ("OPTION_D", "1_1"),
                ("OPTION_E", ""),
            ])
        );
        let Some(vars) = parse_fixture("substitutions-default.env", &option_a_is_5) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("OPTION_A", "5"),
                ("OPTION_B", "5"),
                ("OPTION_C", "5"),
                ("OPTION_D", "5_5"),
                ("OPTION_E", ""),
            ])
        );
    }

    fn os_var(name: &str) -> Option<String> {
        (name == "VAR_TO_BE_LOADED_FROM_OS_ENV").then(|| "SOME_RANDOM_VALUE".to_owned())
    }

    #[test]
    fn fixture_inherited() {
        let Some(vars) = parse_fixture("inherited-multi-var.env", &os_var) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[
                ("foo", "bar"),
                ("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE"),
                ("bar", "baz"),
            ])
        );
        let Some(vars) = parse_fixture("inherited-single-var.env", &os_var) else {
            return;
        };
        assert_eq!(
            vars,
            pairs(&[("VAR_TO_BE_LOADED_FROM_OS_ENV", "SOME_RANDOM_VALUE")])
        );
        let Some(vars) = parse_fixture("inherited-not-found.env", &os_var) else {
            return;
        };
        assert_eq!(vars, vec![]);
    }

    #[test]
    fn fixture_invalid_reports_line_7() {
        let Some(text) = fixture("invalid1.env") else {
            return;
        };
        let err = parse(&text, &unset).unwrap_err();
        assert_eq!(
            err,
            DotenvError::InvalidLine {
                line: 7,
                column: 1,
                message: "variable name `INVALID LINE` contains blanks; write a single word \
                          like `INVALID_LINE`, followed by `=value`"
                    .to_owned(),
            }
        );
        assert!(err.to_string().starts_with("line 7: "), "{err}");
    }

    #[test]
    fn every_fixture_parses_as_raw_without_panicking() {
        let Some(dir) = fixtures() else { return };
        let entries = std::fs::read_dir(&dir).expect("the fixture directory is readable");
        let mut seen = 0;
        for entry in entries.flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                let _ = parse_raw(&text);
                seen += 1;
            }
        }
        assert!(seen >= 14, "only {seen} fixtures found");
    }

    #[test]
    fn fixture_plain_as_raw_keeps_text_literally() {
        let Some(text) = fixture("plain.env") else {
            return;
        };
        // `OPTION_D =4` has a blank in its key, which the raw format refuses.
        let err = parse_raw(&text).unwrap_err();
        assert_eq!(err.line(), 4);
        let Some(text) = fixture("quoted.env") else {
            return;
        };
        let head: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            parse_raw(&head),
            Ok(pairs(&[
                ("OPTION_A", "'1'"),
                ("OPTION_B", "'2'"),
                ("OPTION_C", "''"),
                ("OPTION_D", "'\\n'"),
                ("OPTION_E", "\"1\""),
                ("OPTION_F", "\"2\""),
                ("OPTION_G", "\"\""),
                ("OPTION_H", "\"\\n\""),
            ]))
        );
    }

    #[test]
    fn basic_assignments() {
        assert_eq!(
            parse_ok("ONE=1\nTWO='2'\nTHREE = \"3\""),
            pairs(&[("ONE", "1"), ("TWO", "2"), ("THREE", "3")])
        );
        assert_eq!(value_of("FOO=bar"), "bar");
        assert_eq!(value_of("FOO =bar"), "bar");
        assert_eq!(value_of("FOO= bar"), "bar");
        assert_eq!(value_of("FOO=bar "), "bar");
        assert_eq!(value_of("FOO=foobar="), "foobar=");
        assert_eq!(value_of("FOO.BAR=foobar"), "foobar");
        assert_eq!(value_of("OPTION_A=1:B"), "1:B");
    }

    #[test]
    fn empty_values() {
        assert_eq!(value_of("FOO="), "");
        assert_eq!(value_of("FOO=   "), "");
        assert_eq!(parse_ok("A=\nB=2"), pairs(&[("A", ""), ("B", "2")]));
        assert_eq!(value_of("FOO=''"), "");
        assert_eq!(value_of("FOO=\"\""), "");
    }

    #[test]
    fn yaml_ish_colon_form() {
        assert_eq!(value_of("OPTION_A: 1"), "1");
        assert_eq!(value_of("OPTION_A: Foo=bar"), "Foo=bar");
        assert_eq!(value_of("OPTION_A:'quoted'"), "quoted");
    }

    #[test]
    fn export_prefix() {
        let cases = [
            ("export OPTION_A=2", "OPTION_A", "2"),
            ("export OPTION_B='\\n'", "OPTION_B", "\\n"),
            ("export exportFoo=2", "exportFoo", "2"),
            ("exportFOO=2", "exportFOO", "2"),
            ("export_FOO =2", "export_FOO", "2"),
            ("export.FOO= 2", "export.FOO", "2"),
            ("export\tOPTION_A=2", "OPTION_A", "2"),
            ("  export OPTION_A=2", "OPTION_A", "2"),
            ("\texport OPTION_A=2", "OPTION_A", "2"),
            ("export OPTION_A=\"export A\"", "OPTION_A", "export A"),
            ("export=1", "export", "1"),
        ];
        for (input, key, value) in cases {
            assert_eq!(parse_ok(input), pairs(&[(key, value)]), "{input}");
        }
    }

    #[test]
    fn bare_export_is_a_key() {
        let lookup = |name: &str| (name == "export").then(|| "x".to_owned());
        assert_eq!(
            parse("export\nA=1", &lookup),
            Ok(pairs(&[("export", "x"), ("A", "1")]))
        );
        assert_eq!(parse("export  \n", &lookup), Ok(pairs(&[("export", "x")])));
        let lookup = |name: &str| (name == "A").then(|| "a".to_owned());
        assert_eq!(parse("export A", &lookup), Ok(pairs(&[("A", "a")])));
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        for input in [
            "",
            "\n",
            "\r\n",
            "\t\t ",
            "# Comment",
            "\t # comment",
            "#\n#\n",
        ] {
            assert_eq!(parse_ok(input), vec![], "{input:?}");
        }
        assert_eq!(
            parse_ok("# header\n\nA=1\n  # indented\n\n\nB=2\n# trailer"),
            pairs(&[("A", "1"), ("B", "2")])
        );
    }

    #[test]
    fn inline_comments() {
        assert_eq!(value_of("FOO=bar # this is foo"), "bar");
        assert_eq!(value_of("FOO=bar #this is foo"), "bar");
        assert_eq!(value_of("FOO=bar #"), "bar");
        assert_eq!(
            value_of("FOO=123#not-an-inline-comment"),
            "123#not-an-inline-comment"
        );
        assert_eq!(
            value_of("FOO=bar\t#tab is not a comment"),
            "bar\t#tab is not a comment"
        );
        // The value's leading blanks go first, so this `#` starts the value.
        assert_eq!(value_of("FOO= #x"), "#x");
        assert_eq!(value_of("FOO=\"bar#baz\""), "bar#baz");
        assert_eq!(value_of("FOO=\"bar#baz\"#"), "bar#baz");
        assert_eq!(value_of("FOO=\"bar#baz\" # comment"), "bar#baz");
        assert_eq!(value_of("FOO='bar#baz' # comment"), "bar#baz");
        assert_eq!(value_of("FOO=\"bar#baz#bang\" # comment"), "bar#baz#bang");
        assert_eq!(value_of("FOO=\"ba#r\""), "ba#r");
        assert_eq!(value_of("FOO='ba#r'"), "ba#r");
    }

    #[test]
    fn leading_whitespace_is_ignored() {
        assert_eq!(parse_ok(" KEY =value"), pairs(&[("KEY", "value")]));
        assert_eq!(parse_ok("   KEY=value"), pairs(&[("KEY", "value")]));
        assert_eq!(parse_ok("\tKEY=value"), pairs(&[("KEY", "value")]));
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            parse_ok("A=1\r\nB='2'\r\nC=\"3\"\r\n# c\r\n\r\nD=\r\n"),
            pairs(&[("A", "1"), ("B", "2"), ("C", "3"), ("D", "")])
        );
        let lookup = |name: &str| (name == "E").then(|| "e".to_owned());
        assert_eq!(parse("E\r\n", &lookup), Ok(pairs(&[("E", "e")])));
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(value_of("BAR='quote $FOO'"), "quote $FOO");
        assert_eq!(value_of("BAR='${FOO:?x}'"), "${FOO:?x}");
        assert_eq!(value_of("FOO='a\\tb\\n'"), "a\\tb\\n");
        assert_eq!(value_of("OPTION_K='Let\\'s go!'"), "Let's go!");
        assert_eq!(value_of("FOO='\"d\"'"), "\"d\"");
        assert_eq!(value_of("FOO='a\\\\'"), "a\\\\");
    }

    #[test]
    fn double_quotes_expand_escapes() {
        assert_eq!(value_of(r#"FOO="escaped\"bar""#), "escaped\"bar");
        assert_eq!(value_of(r#"FOO="\"quoted\"""#), "\"quoted\"");
        assert_eq!(value_of(r#"FOO="'d'""#), "'d'");
        assert_eq!(value_of(r#"FOO="bar\nbaz""#), "bar\nbaz");
        assert_eq!(value_of(r#"FOO="a\tb""#), "a\tb");
        assert_eq!(
            value_of(r#"KEY="Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\Z\0123Z""#),
            "Z\x07Z\x08Z\x0cZ\nZ\rZ\tZ\x0bZ\\ZSZ"
        );
        assert_eq!(value_of(r#"FOO="bar\n\ b\az""#), "bar\n\\ b\x07z");
        assert_eq!(value_of(r#"FOO="bar\\\n\ b\az""#), "bar\\\n\\ b\x07z");
        assert_eq!(value_of(r#"FOO="bar\\r\ b\az""#), "bar\\r\\ b\x07z");
        assert_eq!(value_of(r#"FOO="bar\nbaz\\""#), "bar\nbaz\\");
    }

    #[test]
    fn unknown_escapes_are_kept() {
        assert_eq!(value_of(r#"KEY="\x07""#), "\\x07");
        assert_eq!(value_of(r#"KEY="\u12e4""#), "\\u12e4");
        assert_eq!(value_of(r#"KEY="\U00101234""#), "\\U00101234");
        assert_eq!(value_of(r#"KEY="\c\é\ x""#), "\\c\\é\\ x");
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(value_of(r#"KEY="\0123""#), "S");
        assert_eq!(value_of(r#"KEY="\0101\0102""#), "AB");
        assert_eq!(value_of(r#"KEY="\0377""#), "\u{ff}");
        // Not three octal digits up to 0o377: compose-go drops the `0`.
        assert_eq!(value_of(r#"KEY="\0""#), "\\");
        assert_eq!(value_of(r#"KEY="\012""#), "\\12");
        assert_eq!(value_of(r#"KEY="\0777""#), "\\777");
        assert_eq!(value_of(r#"KEY="\0128""#), "\\128");
        assert_eq!(value_of(r#"KEY="\01234""#), "S4");
    }

    #[test]
    fn unquoted_values_keep_backslashes() {
        assert_eq!(value_of(r"FOO=a\tb"), r"a\tb");
        assert_eq!(value_of(r"FOO=C:\path\n"), r"C:\path\n");
    }

    #[test]
    fn quotes_inside_unquoted_values_are_literal() {
        assert_eq!(value_of("FOO=a\"b'c"), "a\"b'c");
        assert_eq!(value_of("FOO=it's"), "it's");
    }

    #[test]
    fn multi_line_quoted_values() {
        assert_eq!(
            parse_ok("TEST_URLS=\"stratum+tcp://a:3333\nstratum+tcp://b:443\"\nNEXT=1"),
            pairs(&[
                ("TEST_URLS", "stratum+tcp://a:3333\nstratum+tcp://b:443"),
                ("NEXT", "1"),
            ])
        );
        assert_eq!(value_of("J='{\n  \"a\": 1\n}'"), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn substitution_in_unquoted_and_double_quoted_values() {
        let cases = [
            ("FOO=test\nBAR=$FOO", "test"),
            ("FOO=test\nBAR=${FOO}bar", "testbar"),
            ("FOO=test\nBAR=\"quote $FOO\"", "quote test"),
            ("FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"", "foo${FOO} test"),
            ("FOO=test\nBAR=${FOO:+alt}", "alt"),
            ("FOO=\nBAR=${FOO-unset}", ""),
            ("FOO=\nBAR=${FOO:-empty}", "empty"),
        ];
        for (input, expected) in cases {
            let vars = parse_ok(input);
            assert_eq!(
                vars.last().map(|(_, v)| v.as_str()),
                Some(expected),
                "{input}"
            );
        }
        assert_eq!(value_of("BAR=$FOO"), "");
        assert_eq!(value_of(r#"FOO="foo\$BAR""#), "foo$BAR");
        assert_eq!(value_of(r#"FOO="foo\${BAR}""#), "foo${BAR}");
        assert_eq!(value_of("FOO=foo$$BAR"), "foo$BAR");
        assert_eq!(value_of("FOO=price: 5$"), "price: 5$");
    }

    #[test]
    fn every_operator_works_in_values() {
        let lookup = |name: &str| match name {
            "SET" => Some("s".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let cases = [
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${SET:-d}", "s"),
            ("${UNSET-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${SET?e}", "s"),
            ("${EMPTY?e}", ""),
            ("${SET:?e}", "s"),
            ("${UNSET:+a}", ""),
            ("${EMPTY:+a}", ""),
            ("${SET:+a}", "a"),
            ("${EMPTY+a}", "a"),
            ("${UNSET:-${SET}}", "s"),
        ];
        for (template, expected) in cases {
            let input = format!("V={template}");
            assert_eq!(
                parse(&input, &lookup),
                Ok(pairs(&[("V", expected)])),
                "{input}"
            );
            let input = format!("V=\"{template}\"");
            assert_eq!(
                parse(&input, &lookup),
                Ok(pairs(&[("V", expected)])),
                "{input}"
            );
        }
    }

    #[test]
    fn earlier_keys_are_visible_later_ones_are_not() {
        assert_eq!(
            parse_ok("A=${B:-none}\nB=b\nC=$B"),
            pairs(&[("A", "none"), ("B", "b"), ("C", "b")])
        );
        // A redefinition is seen by the references after it.
        assert_eq!(
            parse_ok("A=1\nB=$A\nA=2\nC=$A"),
            pairs(&[("A", "2"), ("B", "1"), ("C", "2")])
        );
        // A key may build on its own earlier value.
        assert_eq!(
            parse_ok("PATH_X=a\nPATH_X=${PATH_X}:b"),
            pairs(&[("PATH_X", "a:b")])
        );
    }

    #[test]
    fn lookup_wins_over_earlier_keys_but_not_over_assignments() {
        let lookup = |name: &str| (name == "A").then(|| "env".to_owned());
        assert_eq!(
            parse("A=file\nB=$A", &lookup),
            Ok(pairs(&[("A", "file"), ("B", "env")]))
        );
    }

    #[test]
    fn bare_keys_come_from_the_lookup() {
        let lookup = |name: &str| match name {
            "HOME" => Some("/root".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            parse("HOME\nMISSING\nEMPTY\nLAST", &lookup),
            Ok(pairs(&[("HOME", "/root"), ("EMPTY", "")]))
        );
        // Without a trailing line break too.
        assert_eq!(parse("HOME", &lookup), Ok(pairs(&[("HOME", "/root")])));
        assert_eq!(
            parse("  HOME  \n", &lookup),
            Ok(pairs(&[("HOME", "/root")]))
        );
        // A bare key that the lookup lacks leaves an earlier value alone.
        assert_eq!(parse("X=1\nX", &lookup), Ok(pairs(&[("X", "1")])));
        assert_eq!(
            parse("HOME=mine\nHOME", &lookup),
            Ok(pairs(&[("HOME", "/root")]))
        );
    }

    #[test]
    fn duplicates_keep_first_position_and_last_value() {
        assert_eq!(parse_ok("A=1\nB=2\nA=3"), pairs(&[("A", "3"), ("B", "2")]));
    }

    #[test]
    fn unicode_keys_and_brackets() {
        assert_eq!(
            parse_ok(concat!(
                "a=b\na[1]=c\na.propertyKey=d\n",
                "árvíztűrő-TÜKÖRFÚRÓGÉP=ÁRVÍZTŰRŐ-tükörfúrógép\n"
            )),
            pairs(&[
                ("a", "b"),
                ("a[1]", "c"),
                ("a.propertyKey", "d"),
                ("árvíztűrő-TÜKÖRFÚRÓGÉP", "ÁRVÍZTŰRŐ-tükörfúrógép"),
            ])
        );
    }

    #[test]
    fn bom_only_at_the_start() {
        assert_eq!(parse_ok("\u{feff}A=1"), pairs(&[("A", "1")]));
        assert_eq!(error_line("A=1\n\u{feff}B=2"), 2);
    }

    #[test]
    fn key_with_space_is_an_error() {
        assert_eq!(error_line("INVALID LINE\n"), 1);
        assert_eq!(error_line("A=1\nMY KEY=value"), 2);
        assert_eq!(error_line("A=1\nMY\tKEY=value"), 2);
        assert!(message("MY KEY=value").contains("`MY_KEY`"));
    }

    #[test]
    fn bad_key_character_is_an_error() {
        let err = parse("%!(EXTRA string)=foo", &unset).unwrap_err();
        assert_eq!(
            err,
            DotenvError::InvalidLine {
                line: 1,
                column: 1,
                message: "unexpected character `%` in variable name `%!(EXTRA string)=foo`: \
                          names may contain only letters, digits, `_`, `.`, `-`, `[` and `]`"
                    .to_owned(),
            }
        );
        assert_eq!(error_line("lol$wut"), 1);
        assert_eq!(error_line("A=1\n\n  \"KEY\"=1"), 3);
        match parse("ok=1\nab$c=1", &unset) {
            Err(DotenvError::InvalidLine { line, column, .. }) => {
                assert_eq!((line, column), (2, 3));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_key_is_an_error() {
        assert_eq!(error_line("=\"value\""), 1);
        assert_eq!(error_line("A=1\n  = x"), 2);
        assert_eq!(error_line(": x"), 1);
        assert_eq!(error_line("export =1"), 1);
        assert!(message("=x").contains("NAME=value"));
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        let cases = [
            r#"KEY=""#,
            r#"KEY="value"#,
            r#"KEY="value\""#,
            r#"KEY="value'"#,
            "KEY='",
            "KEY='value",
            r"KEY='value\'",
            r#"KEY='value""#,
        ];
        for input in cases {
            let text = message(input);
            assert!(text.starts_with("line 1: unterminated"), "{input}: {text}");
        }
        // The line is where the quote opens, not where the file ends.
        assert_eq!(error_line("A=1\nB=\"open\nmore\nlines"), 2);
        assert!(message("B='x").contains("closing `'`"));
        assert!(message("B=\"x").contains("closing `\"`"));
    }

    #[test]
    fn escaped_backslash_before_quote_closes_the_value() {
        assert_eq!(
            parse_ok("A=\"x\\\\\"\nB=2"),
            pairs(&[("A", "x\\"), ("B", "2")])
        );
        assert_eq!(
            parse_ok("A='x\\\\'\nB=2"),
            pairs(&[("A", "x\\\\"), ("B", "2")])
        );
    }

    #[test]
    fn text_after_closing_quote_is_an_error() {
        assert_eq!(error_line("A=\"x\"B"), 1);
        assert_eq!(error_line("A=1\nB='x' C=2"), 2);
        assert!(message("A=\"x\" y").contains("after the closing quote"));
        assert_eq!(value_of("A=\"x\"   \t"), "x");
    }

    #[test]
    fn interpolation_errors_name_key_and_line() {
        let err = parse("A=1\nB=${A", &unset).unwrap_err();
        match &err {
            DotenvError::Interpolation { line, key, source } => {
                assert_eq!((*line, key.as_str()), (2, "B"));
                assert!(matches!(
                    source,
                    InterpolateError::Invalid { offset: 0, .. }
                ));
            }
            other => panic!("{other:?}"),
        }
        let err = parse("\n\nSECRET=${TOKEN:?set TOKEN first}", &unset).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: in the value of `SECRET`: required variable `TOKEN` is missing a value: \
             set TOKEN first"
        );
        assert_eq!(error_line("A=\"\n${\""), 1);
        // Single-quoted values are never interpolated, so never fail.
        assert_eq!(value_of("A='${'"), "${");
    }

    #[test]
    fn raw_format_takes_lines_literally() {
        assert_eq!(
            parse_raw("A=1\nB='2'\nC=\"$X ${Y}\"\nD=a # not a comment\nE=\n"),
            Ok(pairs(&[
                ("A", "1"),
                ("B", "'2'"),
                ("C", "\"$X ${Y}\""),
                ("D", "a # not a comment"),
                ("E", ""),
            ]))
        );
        // Leading blanks go, trailing ones are part of the value.
        assert_eq!(parse_raw("  A=1  \r\n"), Ok(pairs(&[("A", "1  ")])));
        assert_eq!(parse_raw("A=b=c"), Ok(pairs(&[("A", "b=c")])));
        assert_eq!(parse_raw("A= x"), Ok(pairs(&[("A", " x")])));
    }

    #[test]
    fn raw_format_skips_comments_blank_lines_and_bom() {
        assert_eq!(
            parse_raw("\u{feff}# c\n\n   \n\t# indented\nA=1\n"),
            Ok(pairs(&[("A", "1")]))
        );
        assert_eq!(parse_raw(""), Ok(vec![]));
    }

    #[test]
    fn raw_format_bare_keys() {
        assert_eq!(parse_raw("A\nB=2"), Ok(pairs(&[("B", "2")])));
        let lookup = |name: &str| (name == "A").then(|| "from env".to_owned());
        assert_eq!(
            parse_raw_with_lookup("A\nB=2\nC", &lookup),
            Ok(pairs(&[("A", "from env"), ("B", "2")]))
        );
    }

    #[test]
    fn raw_format_errors() {
        assert_eq!(
            parse_raw("A=1\n=2"),
            Err(DotenvError::InvalidLine {
                line: 2,
                column: 1,
                message: "missing the variable name before `=`; write `NAME=value`".to_owned(),
            })
        );
        assert_eq!(
            parse_raw("A=1\n\n  export B=2").map_err(|e| e.line()),
            Err(3)
        );
        assert_eq!(parse_raw("A =1").map_err(|e| e.line()), Err(1));
        assert_eq!(parse_raw("A\t=1").map_err(|e| e.line()), Err(1));
        match parse_raw("  A B=1") {
            Err(DotenvError::InvalidLine { column, .. }) => assert_eq!(column, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn raw_format_duplicates_keep_last() {
        assert_eq!(
            parse_raw("A=1\nB=2\nA=3"),
            Ok(pairs(&[("A", "3"), ("B", "2")]))
        );
    }

    #[test]
    fn large_file_is_linear() {
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("KEY_{i}=\"value ${{KEY_{}:-x}}\" # c\n", i / 2));
        }
        let vars = parse_ok(&text);
        assert_eq!(vars.len(), 20_000);
        // KEY_3 -> KEY_1 -> KEY_0, which is not yet set when it refers to itself.
        assert_eq!(
            vars[3],
            ("KEY_3".to_owned(), "value value value x".to_owned())
        );
    }

    /// Strings rich in the characters the grammar cares about.
    fn dotenv_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z_=:#$\\{\\}\"' \t\r\n\\\\0-9.é-]{0,60}",
            "((export )?[AB]{1,2}[ ]?[=:]?[ ]?(\"[^\"]{0,6}\"?|'[^']{0,6}'?|[^\n]{0,8})\n?){0,6}",
            any::<String>(),
        ]
    }

    fn lookup_a(name: &str) -> Option<String> {
        (name == "A").then(|| "a".to_owned())
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in dotenv_text()) {
            let _ = parse(&input, &lookup_a);
        }

        #[test]
        fn parse_raw_never_panics(input in dotenv_text()) {
            let _ = parse_raw(&input);
            let _ = parse_raw_with_lookup(&input, &lookup_a);
        }

        #[test]
        fn error_lines_exist(input in dotenv_text()) {
            let lines = input.split('\n').count();
            if let Err(e) = parse(&input, &lookup_a) {
                prop_assert!(e.line() >= 1 && e.line() <= lines, "{e} for {} lines", lines);
            }
            if let Err(e) = parse_raw(&input) {
                prop_assert!(e.line() >= 1 && e.line() <= lines, "{e} for {} lines", lines);
            }
        }

        #[test]
        fn keys_are_unique(input in dotenv_text()) {
            if let Ok(vars) = parse(&input, &lookup_a) {
                let mut keys: Vec<_> = vars.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(keys.len(), vars.len());
            }
        }

        #[test]
        fn single_quoted_values_round_trip(value in "[^'\\\\]{0,40}") {
            let input = format!("K='{value}'");
            prop_assert_eq!(parse(&input, &lookup_a), Ok(vec![("K".to_owned(), value)]));
        }

        #[test]
        fn raw_values_round_trip(value in "[^\n\r]{0,40}") {
            let input = format!("K={value}\n");
            prop_assert_eq!(parse_raw(&input), Ok(vec![("K".to_owned(), value)]));
        }
    }
}
