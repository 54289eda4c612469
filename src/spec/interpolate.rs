//! Variable interpolation: how `${VAR:-default}` in a Compose value becomes text.
//!
//! Before a Compose file means anything, every string in it is *interpolated*:
//! `$NAME` and `${NAME}` are replaced by the value of the variable `NAME`
//! (looked up in the shell environment and the project's `.env` file), and a
//! braced reference may carry an operator that says what to do when the
//! variable is missing. "Unset" means the lookup found nothing; "empty" means
//! it found the empty string. With `V` the variable and `arg` the text after
//! the operator:
//!
//! | form           | V unset       | V empty       | V set, non-empty |
//! |----------------|---------------|---------------|------------------|
//! | `${V}`, `$V`   | `""`          | `""`          | value            |
//! | `${V:-arg}`    | arg           | arg           | value            |
//! | `${V-arg}`     | arg           | `""`          | value            |
//! | `${V:?arg}`    | error `arg`   | error `arg`   | value            |
//! | `${V?arg}`     | error `arg`   | `""`          | value            |
//! | `${V:+arg}`    | `""`          | `""`          | arg              |
//! | `${V+arg}`     | `""`          | arg           | arg              |
//!
//! `arg` is itself interpolated, so references nest (`${A:-${B:-x}}`), and it
//! is interpolated only when it is used: `${SET:-${OTHER:?boom}}` never fails
//! while `SET` has a value. `$$` is a literal `$`.
//!
//! The semantics follow docker compose v2 (compose-go's `template` package),
//! implemented here as a single left-to-right scan instead of compose-go's
//! regular expression: a value costs one pass, nested arguments included, and
//! a value without `$` is merely copied. Where compose-go's behaviour is a
//! quirk of that regular expression, this module chooses as follows:
//!
//! - A `$` that starts nothing (`$1`, `$ `, `$-`, `$}`, a trailing `$`) is kept
//!   as a literal `$`, exactly as compose-go does: `"^REGEX$"` is unchanged.
//! - `${` must be followed by a valid braced reference: `${`, `${}`, `${ x}`,
//!   `${x }`, `${x!}` and a missing `}` are [`InterpolateError::Invalid`], as in
//!   compose-go. Names are ASCII: a letter or `_`, then letters, digits, `_`.
//! - The argument of an operator ends at the first `}` that closes it, counting
//!   `{`/`}` pairs inside it, so `${J:-{"a":1}}` defaults to `{"a":1}` and a
//!   surplus `}` after the reference is literal text. A reference may not span
//!   a line break (compose-go's pattern cannot match one either).
//! - Syntax is checked everywhere, also inside an argument that is not used:
//!   compose-go would let a malformed reference in an untaken default pass; a
//!   file that is only valid while some variable happens to be set is reported
//!   at once instead. Two more corner cases differ for the same reason: an
//!   argument whose braces do not balance (`${A:-{}`) is an error, where
//!   compose-go stretches the argument to the last `}` of the line, and a bare
//!   `{}` in an argument counts as a balanced pair, where compose-go's brace
//!   counter skips the character after each `{`.
//! - References nest at most [`MAX_DEPTH`] deep, so hostile input cannot
//!   exhaust the stack.
//! - compose-go logs a warning for an unset variable without operator; this
//!   module has no side effects: callers that want the warning can ask
//!   [`references`] which names a string uses.

/// How a variable name resolves: `Some(value)` when set (possibly empty),
/// `None` when unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How deep `${A:-${B:-...}}` references may nest.
pub const MAX_DEPTH: usize = 64;

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${VAR:?msg}` with `VAR` unset or empty, or `${VAR?msg}` with `VAR`
    /// unset. `message` is the interpolated `msg`, possibly empty.
    #[error("required variable `{name}` is missing a value: {message}")]
    Required { name: String, message: String },
    /// A malformed reference such as `${FOO` or `${}`. `offset` is the byte
    /// offset of its `$` in the input, `fragment` the text from there to the
    /// end of the line (shortened), `hint` what is wrong and how to fix it.
    #[error("invalid interpolation format at `{fragment}`: {hint}")]
    Invalid {
        offset: usize,
        fragment: String,
        hint: String,
    },
}

/// The operator of a braced reference, named after what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `:-`
    DefaultIfUnsetOrEmpty,
    /// `-`
    DefaultIfUnset,
    /// `:?`
    ErrorIfUnsetOrEmpty,
    /// `?`
    ErrorIfUnset,
    /// `:+`
    AltIfSetNonEmpty,
    /// `+`
    AltIfSet,
}

/// One variable reference found in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub operator: Option<Operator>,
    /// The raw text after the operator, before interpolation.
    pub argument: Option<String>,
}

/// Interpolates every reference in `input`, resolving names with `lookup`.
///
/// Fails on the first malformed reference or unsatisfied `?`/`:?` in
/// left-to-right order.
pub fn interpolate(input: &str, lookup: Lookup) -> Result<String, InterpolateError> {
    if !needs_interpolation(input) {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    Scanner::new(input, lookup).text(&mut Sink::Eval(&mut out), None)?;
    Ok(out)
}

/// Whether interpolation could change `input`, i.e. whether it holds a `$`.
///
/// A cheap pre-check: when it is `false`, [`interpolate`] returns the input
/// unchanged and [`references`] finds nothing.
pub fn needs_interpolation(input: &str) -> bool {
    input.as_bytes().contains(&b'$')
}

/// Every variable `input` refers to, in order of appearance, including those
/// nested in an operator's argument (an outer reference comes before the ones
/// inside its argument).
///
/// `$$` is not a reference. Fails on malformed syntax only: nothing is looked
/// up, so `:?` never fails here.
pub fn references(input: &str) -> Result<Vec<Reference>, InterpolateError> {
    let mut refs = Vec::new();
    if needs_interpolation(input) {
        let unset = |_: &str| None;
        Scanner::new(input, &unset).text(&mut Sink::Collect(&mut refs), None)?;
    }
    Ok(refs)
}

const UNCLOSED_ON_LINE: &str =
    "missing the closing `}` on this line (a `${...}` reference cannot span lines)";

/// What the scanner does with the text it walks over.
enum Sink<'o> {
    /// Append the interpolated text here.
    Eval(&'o mut String),
    /// Only check the syntax: an argument whose operator did not select it.
    Skip,
    /// Record each reference.
    Collect(&'o mut Vec<Reference>),
}

struct Scanner<'s, 'l> {
    src: &'s str,
    pos: usize,
    depth: usize,
    lookup: Lookup<'l>,
}

impl<'s, 'l> Scanner<'s, 'l> {
    fn new(src: &'s str, lookup: Lookup<'l>) -> Self {
        Scanner {
            src,
            pos: 0,
            depth: 0,
            lookup,
        }
    }

    /// Walks literal text and references from `self.pos`. At top level
    /// (`open` is `None`) that is the rest of the input; inside an argument
    /// (`open` is the offset of its `${`) it stops after the `}` closing the
    /// argument, which is consumed and not emitted.
    fn text(&mut self, sink: &mut Sink, open: Option<usize>) -> Result<(), InterpolateError> {
        let bytes = self.src.as_bytes();
        let mut literal = self.pos;
        // Braces inside an argument pair up, so JSON-ish defaults keep their `}`.
        let mut braces = 0usize;
        while let Some(&b) = bytes.get(self.pos) {
            match (b, open) {
                (b'$', _) => {
                    emit(sink, &self.src[literal..self.pos]);
                    self.dollar(sink)?;
                    literal = self.pos;
                }
                (b'{', Some(_)) => {
                    braces += 1;
                    self.pos += 1;
                }
                (b'}', Some(_)) if braces > 0 => {
                    braces -= 1;
                    self.pos += 1;
                }
                (b'}', Some(_)) => {
                    emit(sink, &self.src[literal..self.pos]);
                    self.pos += 1;
                    return Ok(());
                }
                (b'\n', Some(start)) => return Err(self.invalid(start, UNCLOSED_ON_LINE)),
                _ => self.pos += 1,
            }
        }
        match open {
            Some(start) => Err(self.invalid(start, "missing the closing `}`")),
            None => {
                emit(sink, &self.src[literal..]);
                Ok(())
            }
        }
    }

    /// Handles the `$` at `self.pos` and whatever it introduces.
    fn dollar(&mut self, sink: &mut Sink) -> Result<(), InterpolateError> {
        let start = self.pos;
        let src = self.src;
        let bytes = src.as_bytes();
        match bytes.get(start + 1) {
            Some(b'$') => {
                emit(sink, "$");
                self.pos = start + 2;
            }
            Some(b'{') => self.braced(start, sink)?,
            Some(&c) if is_name_start(c) => {
                let end = name_end(bytes, start + 1);
                self.pos = end;
                self.plain(&src[start + 1..end], sink);
            }
            // compose-go leaves a `$` that starts no reference as it is.
            _ => {
                emit(sink, "$");
                self.pos = start + 1;
            }
        }
        Ok(())
    }

    /// A reference without operator: `$NAME` or `${NAME}`.
    fn plain(&self, name: &str, sink: &mut Sink) {
        match sink {
            Sink::Eval(out) => {
                if let Some(value) = (self.lookup)(name) {
                    out.push_str(&value);
                }
            }
            Sink::Skip => {}
            Sink::Collect(refs) => refs.push(Reference {
                name: name.to_owned(),
                operator: None,
                argument: None,
            }),
        }
    }

    /// Handles `${...}` whose `$` is at `start`.
    fn braced(&mut self, start: usize, sink: &mut Sink) -> Result<(), InterpolateError> {
        let src = self.src;
        let bytes = src.as_bytes();
        let name_start = start + 2;
        let first = bytes.get(name_start).copied();
        if !first.is_some_and(is_name_start) {
            let hint = match first {
                None => "missing a variable name and the closing `}`",
                Some(b'}') => "`${}` names no variable; write `$$` for a literal `$`",
                _ => {
                    "a variable name must start with a letter or `_` (write `$$` for a literal `$`)"
                }
            };
            return Err(self.invalid(start, hint));
        }
        let after = name_end(bytes, name_start);
        let name = &src[name_start..after];
        let (operator, len) = match (bytes.get(after), bytes.get(after + 1)) {
            (Some(b'}'), _) => {
                self.pos = after + 1;
                self.plain(name, sink);
                return Ok(());
            }
            (Some(b':'), Some(b'-')) => (Operator::DefaultIfUnsetOrEmpty, 2),
            (Some(b':'), Some(b'?')) => (Operator::ErrorIfUnsetOrEmpty, 2),
            (Some(b':'), Some(b'+')) => (Operator::AltIfSetNonEmpty, 2),
            (Some(b'-'), _) => (Operator::DefaultIfUnset, 1),
            (Some(b'?'), _) => (Operator::ErrorIfUnset, 1),
            (Some(b'+'), _) => (Operator::AltIfSet, 1),
            (None, _) => return Err(self.invalid(start, "missing the closing `}`")),
            (Some(b'\n'), _) => return Err(self.invalid(start, UNCLOSED_ON_LINE)),
            (Some(_), _) => {
                let found = src[after..].chars().next().unwrap_or(' ');
                return Err(self.invalid(
                    start,
                    &format!(
                        "unexpected `{found}` after the variable name `{name}`: expected `}}` or \
                         one of the operators `:-`, `-`, `:?`, `?`, `:+`, `+`"
                    ),
                ));
            }
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.invalid(
                start,
                &format!("references are nested more than {MAX_DEPTH} deep"),
            ));
        }
        let arg_start = after + len;
        self.pos = arg_start;
        self.depth += 1;
        let result = self.operand(start, name, operator, arg_start, sink);
        self.depth -= 1;
        result
    }

    /// Applies `operator` to `name`; the argument starts at `self.pos` and is
    /// interpolated only if the operator selects it.
    fn operand(
        &mut self,
        start: usize,
        name: &str,
        operator: Operator,
        arg_start: usize,
        sink: &mut Sink,
    ) -> Result<(), InterpolateError> {
        let out = match sink {
            Sink::Eval(out) => out,
            Sink::Skip => return self.text(&mut Sink::Skip, Some(start)),
            Sink::Collect(refs) => {
                // The outer reference is listed before the ones in its argument.
                let index = refs.len();
                refs.push(Reference {
                    name: name.to_owned(),
                    operator: Some(operator),
                    argument: None,
                });
                self.text(&mut Sink::Collect(refs), Some(start))?;
                let argument = self.src.get(arg_start..self.pos.saturating_sub(1));
                if let Some(reference) = refs.get_mut(index) {
                    reference.argument = argument.map(str::to_owned);
                }
                return Ok(());
            }
        };
        let value = (self.lookup)(name);
        let value = value.as_deref();
        let use_argument = match operator {
            Operator::DefaultIfUnsetOrEmpty | Operator::ErrorIfUnsetOrEmpty => {
                value.is_none_or(str::is_empty)
            }
            Operator::DefaultIfUnset | Operator::ErrorIfUnset => value.is_none(),
            Operator::AltIfSetNonEmpty => value.is_some_and(|v| !v.is_empty()),
            Operator::AltIfSet => value.is_some(),
        };
        if !use_argument {
            // The variable's own value stands; for `:+`/`+` that is the empty
            // or unset value, as in compose-go.
            out.push_str(value.unwrap_or_default());
            return self.text(&mut Sink::Skip, Some(start));
        }
        let is_error = matches!(
            operator,
            Operator::ErrorIfUnsetOrEmpty | Operator::ErrorIfUnset
        );
        if !is_error {
            return self.text(&mut Sink::Eval(out), Some(start));
        }
        let mut message = String::new();
        self.text(&mut Sink::Eval(&mut message), Some(start))?;
        Err(InterpolateError::Required {
            name: name.to_owned(),
            message,
        })
    }

    fn invalid(&self, offset: usize, hint: &str) -> InterpolateError {
        InterpolateError::Invalid {
            offset,
            fragment: fragment(self.src, offset),
            hint: hint.to_owned(),
        }
    }
}

fn emit(sink: &mut Sink, text: &str) {
    if let Sink::Eval(out) = sink {
        out.push_str(text);
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// The end of the name whose first byte is at `from`.
fn name_end(bytes: &[u8], from: usize) -> usize {
    let len = bytes
        .get(from..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    from + len
}

/// The text quoted by an error: from the offending `$` to the end of its
/// line, shortened so a long value does not drown the message.
fn fragment(src: &str, offset: usize) -> String {
    const MAX_CHARS: usize = 40;
    let rest = src.get(offset..).unwrap_or_default();
    let line = rest.split('\n').next().unwrap_or_default();
    match line.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The variables of compose-go's own template tests, plus a few more.
    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("first".to_owned()),
            "BAR" => Some(String::new()),
            "NUM" => Some("42".to_owned()),
            "DOLLAR" => Some("$HOME".to_owned()),
            _ => None,
        }
    }

    fn interp(input: &str) -> Result<String, InterpolateError> {
        interpolate(input, &env)
    }

    fn ok(input: &str) -> String {
        match interp(input) {
            Ok(s) => s,
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    fn invalid_offset(input: &str) -> usize {
        match interp(input) {
            Err(InterpolateError::Invalid { offset, .. }) => offset,
            other => panic!("{input:?} should be invalid, got {other:?}"),
        }
    }

    fn required(input: &str) -> (String, String) {
        match interp(input) {
            Err(InterpolateError::Required { name, message }) => (name, message),
            other => panic!("{input:?} should fail as required, got {other:?}"),
        }
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(ok(""), "");
        assert_eq!(ok("foo"), "foo");
        assert_eq!(ok("{}{{}}"), "{}{{}}");
        assert_eq!(ok("héllo wörld ✓"), "héllo wörld ✓");
    }

    #[test]
    fn unbraced_and_braced_references() {
        assert_eq!(ok("This $FOO var"), "This first var");
        assert_eq!(ok("This ${FOO} var"), "This first var");
        assert_eq!(ok("$FOO$NUM"), "first42");
        assert_eq!(ok("${FOO}${NUM}"), "first42");
        assert_eq!(ok("a$FOO.b"), "afirst.b");
        // compose issue 8601: the name of `$FOO-bar` stops at `-`.
        assert_eq!(ok("$FOO-bar"), "first-bar");
        assert_eq!(ok("$FOO}"), "first}");
        assert_eq!(ok("${_x1}"), "");
    }

    #[test]
    fn unset_and_empty_become_empty() {
        assert_eq!(ok("This ${missing} var"), "This  var");
        assert_eq!(ok("This ${BAR} var"), "This  var");
        assert_eq!(ok("This $missing var"), "This  var");
        assert_eq!(ok("This $BAR var"), "This  var");
    }

    #[test]
    fn names_are_case_sensitive_for_lookup() {
        assert_eq!(ok("${foo}"), "");
        assert_eq!(ok("${Foo}"), "");
    }

    #[test]
    fn values_are_not_reinterpolated() {
        assert_eq!(ok("${DOLLAR}"), "$HOME");
        assert_eq!(ok("${missing:-$DOLLAR}"), "$HOME");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(ok("$${foo}"), "${foo}");
        assert_eq!(ok("$$FOO"), "$FOO");
        assert_eq!(ok("$$"), "$");
        assert_eq!(ok("$$$FOO"), "$first");
        assert_eq!(ok("$$$$"), "$$");
        assert_eq!(ok("a$$b"), "a$b");
    }

    #[test]
    fn dollar_starting_nothing_is_kept() {
        for s in [
            "a $ string",
            "^REGEX$",
            "$}",
            "$",
            "$1",
            "$-x",
            "cost: 5$",
            "$ {x}",
        ] {
            assert_eq!(ok(s), s);
        }
        assert_eq!(ok("$1$FOO"), "$1first");
        assert_eq!(ok("$é"), "$é");
    }

    #[test]
    fn default_if_unset_or_empty() {
        assert_eq!(ok("ok ${missing:-def}"), "ok def");
        assert_eq!(ok("ok ${BAR:-def}"), "ok def");
        assert_eq!(ok("ok ${FOO:-def}"), "ok first");
        assert_eq!(ok("${missing:-}"), "");
    }

    #[test]
    fn default_if_unset() {
        assert_eq!(ok("ok ${missing-def}"), "ok def");
        assert_eq!(ok("ok ${BAR-def}"), "ok ");
        assert_eq!(ok("ok ${FOO-def}"), "ok first");
        assert_eq!(ok("${missing-}"), "");
    }

    #[test]
    fn error_if_unset_or_empty() {
        assert_eq!(
            required("not ok ${UNSET_VAR:?Mandatory Variable Unset}"),
            (
                "UNSET_VAR".to_owned(),
                "Mandatory Variable Unset".to_owned()
            )
        );
        assert_eq!(
            required("not ok ${BAR:?Mandatory Variable Empty}"),
            ("BAR".to_owned(), "Mandatory Variable Empty".to_owned())
        );
        assert_eq!(
            required("${UNSET_VAR:?}"),
            ("UNSET_VAR".to_owned(), String::new())
        );
        assert_eq!(ok("ok ${FOO:?err}"), "ok first");
    }

    #[test]
    fn error_if_unset() {
        assert_eq!(
            required("${UNSET_VAR?Mandatory Variable Unset}"),
            (
                "UNSET_VAR".to_owned(),
                "Mandatory Variable Unset".to_owned()
            )
        );
        assert_eq!(required("${UNSET_VAR?}").1, "");
        assert_eq!(ok("ok ${FOO?err}"), "ok first");
        assert_eq!(ok("ok ${BAR?err}"), "ok ");
    }

    #[test]
    fn alternative_if_set_non_empty() {
        assert_eq!(ok("ok ${UNSET_VAR:+presence}"), "ok ");
        assert_eq!(ok("ok ${BAR:+presence}"), "ok ");
        assert_eq!(ok("ok ${FOO:+presence}"), "ok presence");
    }

    #[test]
    fn alternative_if_set() {
        assert_eq!(ok("ok ${UNSET_VAR+presence}"), "ok ");
        assert_eq!(ok("ok ${BAR+presence}"), "ok presence");
        assert_eq!(ok("ok ${FOO+presence}"), "ok presence");
    }

    #[test]
    fn required_error_message_reads_well() {
        let err = interp("${DB_PASSWORD:?set it in .env}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "required variable `DB_PASSWORD` is missing a value: set it in .env"
        );
    }

    #[test]
    fn operator_is_the_one_right_after_the_name() {
        // compose-go's TestPrecedence and TestSubstitutionFunctionChoice.
        assert_eq!(
            required("${UNSET_VAR?bar-baz}"),
            ("UNSET_VAR".to_owned(), "bar-baz".to_owned())
        );
        assert_eq!(ok("${UNSET_VAR-myerror?msg}"), "myerror?msg");
        assert_eq!(ok("${FOO?bar-baz}"), "first");
        assert_eq!(ok("ok ${BAR:-/non:-alphanumeric}"), "ok /non:-alphanumeric");
        assert_eq!(ok("${missing-va:-lu:?e}"), "va:-lu:?e");
        assert_eq!(ok("${FOO:+va:?lu:-e}"), "va:?lu:-e");
        assert_eq!(ok("${FOO+va:+lue}"), "va:+lue");
    }

    #[test]
    fn surrounding_text_does_not_change_the_operator() {
        // compose-go's TestInterpolationExternalInterference.
        let cases = [
            ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
            ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
            ("-ok ${FOO:-defaultValue}", "-ok first"),
            (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
            (":-ok ${BAR-defaultValue}", ":-ok "),
            (":?ok ${BAR-defaultValue}", ":?ok "),
            (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
            (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
            ("+ok ${BAR-defaultValue}", "+ok "),
            ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
        ];
        for (input, expected) in cases {
            assert_eq!(ok(input), expected, "{input}");
        }
    }

    #[test]
    fn nested_references_in_arguments() {
        // compose-go's TestDefaultsWithNestedExpansion.
        let cases = [
            ("ok ${UNSET_VAR-$FOO}", "ok first"),
            ("ok ${UNSET_VAR-${FOO}}", "ok first"),
            ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR:-$FOO}", "ok first"),
            ("ok ${BAR:-${FOO}}", "ok first"),
            ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR+$FOO}", "ok first"),
            ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
            ("${A:-${B:-x}}", "x"),
            ("${A:-${B:-${C:-${FOO}}}}", "first"),
            ("${A:-${FOO:-x}}", "first"),
            ("${FOO:-${A:-x}}", "first"),
            ("${A:-pre-${FOO}-post}", "pre-first-post"),
        ];
        for (input, expected) in cases {
            assert_eq!(ok(input), expected, "{input}");
        }
    }

    #[test]
    fn arguments_may_hold_double_dollar() {
        assert_eq!(ok("${A:-$$}"), "$");
        assert_eq!(ok("${A:-a$$b}"), "a$b");
        assert_eq!(ok("${A:-$${FOO}}"), "${FOO}");
        assert_eq!(ok("${A:-$$$FOO}"), "$first");
        assert_eq!(ok("${A:-cost 5$}"), "cost 5$");
    }

    #[test]
    fn required_message_is_interpolated() {
        assert_eq!(
            required("not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}"),
            (
                "UNSET_VAR".to_owned(),
                "Mandatory Variable first".to_owned()
            )
        );
        assert_eq!(
            required("not ok ${UNSET_VAR?Mandatory Variable ${FOO}}").1,
            "Mandatory Variable first"
        );
        assert_eq!(required("${A:?costs $$5}").1, "costs $5");
    }

    #[test]
    fn nested_required_error_surfaces() {
        assert_eq!(
            required("${A:-${B:?need B}}"),
            ("B".to_owned(), "need B".to_owned())
        );
        assert_eq!(
            required("${A:?${B:?inner}}"),
            ("B".to_owned(), "inner".to_owned())
        );
    }

    #[test]
    fn unused_arguments_are_not_evaluated() {
        assert_eq!(ok("${FOO:-${UNSET:?boom}}"), "first");
        assert_eq!(ok("${FOO?${UNSET:?boom}}"), "first");
        assert_eq!(ok("${UNSET:+${UNSET:?boom}}"), "");
        assert_eq!(ok("${BAR-${UNSET:?boom}}"), "");
    }

    #[test]
    fn first_error_wins() {
        assert_eq!(required("${A:?first} ${B:?second}").0, "A");
        assert_eq!(invalid_offset("${} ${A:?x}"), 0);
        assert_eq!(required("${A:?x} ${}").0, "A");
    }

    #[test]
    fn braces_in_arguments_pair_up() {
        assert_eq!(ok(r#"${J:-{"a":1}}"#), r#"{"a":1}"#);
        assert_eq!(ok("${J:-{{x}}}"), "{{x}}");
        assert_eq!(ok("${J:-{}}"), "{}");
        assert_eq!(ok("${FOO:-{x}}"), "first");
        assert_eq!(ok("${A:-x}}"), "x}");
        assert_eq!(ok("${A:-x} and ${FOO}"), "x and first");
        assert_eq!(ok("${FOO:-x}}"), "first}");
    }

    #[test]
    fn invalid_templates() {
        // compose-go's TestInvalid, each with the offset of the bad `${`.
        for input in ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}"] {
            assert_eq!(invalid_offset(input), 0, "{input}");
        }
        assert_eq!(invalid_offset("${FOO"), 0);
        assert_eq!(invalid_offset("abc ${FOO"), 4);
        assert_eq!(invalid_offset("${1}"), 0);
        assert_eq!(invalid_offset("${FOO:x}"), 0);
        assert_eq!(invalid_offset("${FOO:}"), 0);
        assert_eq!(invalid_offset("${FOO:-x"), 0);
        assert_eq!(invalid_offset("${FOO:-{x}"), 0);
        assert_eq!(invalid_offset("ok ${A:-${}}"), 8);
        assert_eq!(invalid_offset("ok ${A:-${B:-x}"), 3);
        assert_eq!(invalid_offset("${A:-${B"), 5);
        assert_eq!(invalid_offset("héllo ${"), 7);
    }

    #[test]
    fn malformed_untaken_argument_is_still_an_error() {
        assert_eq!(invalid_offset("${FOO:-${}}"), 7);
    }

    #[test]
    fn references_do_not_span_lines() {
        assert_eq!(invalid_offset("${A:-x\ny}"), 0);
        assert_eq!(invalid_offset("${A\n}"), 0);
        assert_eq!(ok("${FOO}\n${FOO}"), "first\nfirst");
        assert_eq!(ok("$FOO\n"), "first\n");
    }

    #[test]
    fn invalid_error_names_fragment_and_fix() {
        let err = interp("image: ${TAG").unwrap_err();
        assert_eq!(
            err,
            InterpolateError::Invalid {
                offset: 7,
                fragment: "${TAG".to_owned(),
                hint: "missing the closing `}`".to_owned(),
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid interpolation format at `${TAG`: missing the closing `}`"
        );
        let err = interp("${}").unwrap_err();
        assert!(err.to_string().contains("`$$`"), "{err}");
        let err = interp("${foo!}").unwrap_err();
        assert!(err.to_string().contains("unexpected `!`"), "{err}");
    }

    #[test]
    fn fragment_stops_at_line_end_and_is_bounded() {
        let err = interp("${A\nmore").unwrap_err();
        assert!(matches!(err, InterpolateError::Invalid { ref fragment, .. } if fragment == "${A"));
        let long = format!("${{{}", "x".repeat(100));
        match interp(&long) {
            Err(InterpolateError::Invalid { fragment, .. }) => {
                assert_eq!(fragment.chars().count(), 41);
                assert!(fragment.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok_depth = format!("{}x{}", "${A:-".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(ok(&ok_depth), "x");
        let too_deep = format!(
            "{}x{}",
            "${A:-".repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(invalid_offset(&too_deep), 5 * MAX_DEPTH);
        let hostile = "${A:-".repeat(100_000);
        assert!(interp(&hostile).is_err());
        assert!(references(&hostile).is_err());
    }

    #[test]
    fn needs_interpolation_detects_dollar() {
        assert!(!needs_interpolation(""));
        assert!(!needs_interpolation("plain {text}"));
        assert!(needs_interpolation("$"));
        assert!(needs_interpolation("a $$ b"));
    }

    fn reference(name: &str, operator: Option<Operator>, argument: Option<&str>) -> Reference {
        Reference {
            name: name.to_owned(),
            operator,
            argument: argument.map(str::to_owned),
        }
    }

    #[test]
    fn references_lists_every_form() {
        assert_eq!(references("no refs"), Ok(vec![]));
        assert_eq!(references("$$A $1 $"), Ok(vec![]));
        assert_eq!(
            references("$A ${B} ${C:-c} ${D-d} ${E:?e} ${F?f} ${G:+g} ${H+h}"),
            Ok(vec![
                reference("A", None, None),
                reference("B", None, None),
                reference("C", Some(Operator::DefaultIfUnsetOrEmpty), Some("c")),
                reference("D", Some(Operator::DefaultIfUnset), Some("d")),
                reference("E", Some(Operator::ErrorIfUnsetOrEmpty), Some("e")),
                reference("F", Some(Operator::ErrorIfUnset), Some("f")),
                reference("G", Some(Operator::AltIfSetNonEmpty), Some("g")),
                reference("H", Some(Operator::AltIfSet), Some("h")),
            ])
        );
    }

    #[test]
    fn references_include_nested_in_order() {
        assert_eq!(
            references("${A:-${B:-x} $C} ${D}"),
            Ok(vec![
                reference(
                    "A",
                    Some(Operator::DefaultIfUnsetOrEmpty),
                    Some("${B:-x} $C")
                ),
                reference("B", Some(Operator::DefaultIfUnsetOrEmpty), Some("x")),
                reference("C", None, None),
                reference("D", None, None),
            ])
        );
        assert_eq!(
            references("${A:?need ${B}}"),
            Ok(vec![
                reference("A", Some(Operator::ErrorIfUnsetOrEmpty), Some("need ${B}")),
                reference("B", None, None),
            ])
        );
        assert_eq!(
            references("${A:-}"),
            Ok(vec![reference(
                "A",
                Some(Operator::DefaultIfUnsetOrEmpty),
                Some("")
            )])
        );
        assert_eq!(
            references(r#"${J:-{"a":$$1}}"#),
            Ok(vec![reference(
                "J",
                Some(Operator::DefaultIfUnsetOrEmpty),
                Some(r#"{"a":$$1}"#)
            )])
        );
    }

    #[test]
    fn references_report_syntax_errors() {
        assert!(matches!(
            references("${A:-${}}"),
            Err(InterpolateError::Invalid { offset: 5, .. })
        ));
        assert!(matches!(
            references("x ${A"),
            Err(InterpolateError::Invalid { offset: 2, .. })
        ));
    }

    #[test]
    fn references_never_fail_on_required() {
        assert_eq!(references("${A:?x}").map(|r| r.len()), Ok(1));
    }

    /// Strings rich in the characters the grammar cares about.
    fn template_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[${}:?+\\-ABab_1 \n\"'\\\\é]{0,40}",
            "(\\$\\{[AB]{0,2}(:?[-?+])?|\\}|\\$[AB$]?|[x ]){0,12}",
            any::<String>(),
        ]
    }

    fn lookup_ab(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".to_owned()),
            "B" => Some(String::new()),
            _ => None,
        }
    }

    proptest! {
        #[test]
        fn interpolate_never_panics(input in template_text()) {
            let _ = interpolate(&input, &lookup_ab);
        }

        #[test]
        fn references_never_panics(input in template_text()) {
            let _ = references(&input);
        }

        #[test]
        fn text_without_dollar_is_unchanged(input in any::<String>()) {
            let input = input.replace('$', "");
            prop_assert_eq!(interpolate(&input, &lookup_ab), Ok(input.clone()));
            prop_assert_eq!(references(&input), Ok(vec![]));
        }

        #[test]
        fn escaped_text_round_trips(input in any::<String>()) {
            // Doubling every `$` is how a caller quotes arbitrary text.
            let quoted = input.replace('$', "$$");
            prop_assert_eq!(interpolate(&quoted, &lookup_ab), Ok(input));
        }

        #[test]
        fn syntax_errors_agree(input in template_text()) {
            // A string is malformed for interpolate exactly when it is for references.
            let everything_set = |_: &str| Some("v".to_owned());
            let interpolated = interpolate(&input, &everything_set);
            let invalid = matches!(interpolated, Err(InterpolateError::Invalid { .. }));
            prop_assert_eq!(invalid, references(&input).is_err());
        }

        #[test]
        fn invalid_offset_points_at_a_dollar(input in template_text()) {
            if let Err(InterpolateError::Invalid { offset, .. }) = interpolate(&input, &lookup_ab) {
                prop_assert_eq!(input.as_bytes().get(offset), Some(&b'$'));
            }
        }
    }
}
