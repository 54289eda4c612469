//! Checking a Compose file against the Compose JSON Schema.
//!
//! A JSON Schema describes a document with rules attached to places in it:
//! this value must be a mapping, it may have these keys and no others, that
//! key holds one of these strings, this list must not repeat itself. The
//! Compose specification publishes such a schema (`compose-spec.json`, draft
//! 2020-12), and checking a file against it is how Compose catches misspelt
//! keys and misplaced values before it interprets anything. Stack implements
//! only the part of JSON Schema that this schema uses: `$ref` (to `#` or
//! `#/$defs/...`), `type`, `properties`, `patternProperties`,
//! `additionalProperties`, `required`, `oneOf`, `enum`, `items`,
//! `uniqueItems`, `minimum`, `maximum` and `pattern`. Annotations such as
//! `description` are ignored, and any other keyword is refused when the
//! schema is compiled, so that a newer schema cannot be silently half-checked.
//! Compiling turns the JSON into a flat table of rules, with every `$ref`
//! resolved to an index and every regular expression built once; validating
//! then walks the YAML [`Node`] tree and that table together, reports every
//! problem with the line it comes from, and keeps going after the first one.
//! One rule is Compose's own rather than JSON Schema's: a string produced by
//! `${VAR}` interpolation is cast to an integer, number or boolean where the
//! schema wants one of those and not a string: interpolation can only
//! produce text, so `use_api_socket: ${ON}` could otherwise never be valid.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use indexmap::IndexMap;
use regex::Regex;
use serde_json::Value;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::yaml::{
    Entry, Kind, Map, Node, Scalar, ScalarType, parse_bool, parse_float, parse_int, resolve_plain,
};

/// JSON types as bits, so that a `type` list is one byte and a test is an AND.
type Types = u8;
const NULL: Types = 1;
const BOOLEAN: Types = 1 << 1;
const INTEGER: Types = 1 << 2;
const NUMBER: Types = 1 << 3;
const STRING: Types = 1 << 4;
const ARRAY: Types = 1 << 5;
const OBJECT: Types = 1 << 6;
const ANY: Types = (1 << 7) - 1;

/// Keywords that carry no rule and are skipped when compiling.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "deprecated",
    "examples",
    "readOnly",
    "writeOnly",
    "format",
];

/// A compiled schema: a table of rules; rule 0 applies to the document.
/// Rules refer to each other by index into the table; only the compiler
/// makes those indices, as it pushes the rules, so indexing cannot fail.
#[derive(Debug)]
pub struct Schema {
    rules: Vec<Rule>,
}

/// One schema object of the JSON, with its references turned into indices.
#[derive(Debug, Default)]
struct Rule {
    /// The `false` schema: nothing is valid here.
    never: bool,
    types: Option<Types>,
    reference: Option<usize>,
    one_of: Vec<usize>,
    enumeration: Option<Vec<Value>>,
    pattern: Option<Pattern>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    properties: IndexMap<String, usize>,
    pattern_properties: Vec<(Pattern, usize)>,
    additional: Additional,
    required: Vec<String>,
    items: Option<usize>,
    unique_items: bool,
    /// The types this rule can accept at its own place, following `$ref` and
    /// `oneOf`: lets `oneOf` skip branches that cannot match without running them.
    accepts: Types,
    /// `patternProperties` has `^x-`: extension keys are welcome here, which
    /// the hint for an unknown key says.
    extensions: bool,
}

#[derive(Debug)]
struct Pattern {
    source: String,
    regex: Regex,
}

#[derive(Debug, Default)]
enum Additional {
    #[default]
    Allowed,
    Forbidden,
    Rule(usize),
}

impl Schema {
    /// The Compose schema, compiled once from the copy embedded in the binary.
    pub fn compose() -> &'static Schema {
        static COMPOSE: OnceLock<Schema> = OnceLock::new();
        COMPOSE.get_or_init(|| {
            let compiled = serde_json::from_str(include_str!("compose-spec.json"))
                .map_err(|e| e.to_string())
                .and_then(|json| Schema::compile(&json));
            match compiled {
                Ok(schema) => schema,
                // The schema is a constant of the build, and the test
                // `embedded_compose_schema_compiles` compiles this very text:
                // a build that passes its tests cannot get here.
                Err(e) => panic!("the embedded Compose schema does not compile: {e}"),
            }
        })
    }

    /// Compiles a schema written in the subset of JSON Schema described in
    /// the module documentation; anything outside it is an error.
    pub fn compile(json: &Value) -> Result<Schema, String> {
        let mut compiler = Compiler {
            rules: vec![Rule::default()],
            defs: HashMap::new(),
        };
        // Every definition gets its index before any is compiled, so that
        // references (recursive ones included) resolve as they are met.
        let defs = match json.get("$defs") {
            None => None,
            Some(Value::Object(defs)) => Some(defs),
            Some(_) => return Err("`$defs` must be an object".to_string()),
        };
        // Definition `i` (in the map's order) is rule `1 + i`.
        for (i, name) in defs.into_iter().flat_map(|d| d.keys()).enumerate() {
            compiler.defs.insert(name.clone(), 1 + i);
            compiler.rules.push(Rule::default());
        }
        for (i, (name, def)) in defs.into_iter().flatten().enumerate() {
            compiler.rules[1 + i] = compiler.rule(def, &format!("#/$defs/{name}"))?;
        }
        compiler.rules[0] = compiler.rule(json, "#")?;
        let mut rules = compiler.rules;
        refuse_cycles(&rules)?;
        let mut accepts = vec![None; rules.len()];
        for index in 0..rules.len() {
            let mask = accepted_types(&rules, index, &mut accepts);
            rules[index].accepts = mask;
        }
        Ok(Schema { rules })
    }

    /// Validates `root`, returning every problem found. Strings that came
    /// from interpolation are cast in place where the schema asks for an
    /// integer, number or boolean and not a string, and their text reads as one.
    pub fn validate(&self, root: &mut Node) -> Vec<Diagnostic> {
        let mut out = Outcome::default();
        Walker {
            schema: self,
            path: Vec::new(),
        }
        .check(0, root, None, &mut out);
        // The walk only reads the tree (its path borrows the keys): the casts
        // it decided on are applied afterwards.
        for (steps, ty) in &out.casts {
            cast(root, steps, *ty);
        }
        out.errors
    }
}

struct Compiler {
    rules: Vec<Rule>,
    defs: HashMap<String, usize>,
}

impl Compiler {
    fn child(&mut self, json: &Value, at: &str) -> Result<usize, String> {
        let rule = self.rule(json, at)?;
        self.rules.push(rule);
        Ok(self.rules.len() - 1)
    }

    fn rule(&mut self, json: &Value, at: &str) -> Result<Rule, String> {
        let object = match json {
            Value::Bool(true) => return Ok(Rule::default()),
            Value::Bool(false) => {
                return Ok(Rule {
                    never: true,
                    ..Rule::default()
                });
            }
            Value::Object(object) => object,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        let mut rule = Rule::default();
        for (keyword, value) in object {
            let here = format!("{at}/{keyword}");
            match keyword.as_str() {
                "type" => rule.types = Some(types(value, &here)?),
                "$ref" => rule.reference = Some(self.reference(value, &here)?),
                "oneOf" => {
                    let branches = value
                        .as_array()
                        .filter(|b| !b.is_empty())
                        .ok_or_else(|| format!("{here}: must be a non-empty array"))?;
                    for (i, branch) in branches.iter().enumerate() {
                        let index = self.child(branch, &format!("{here}/{i}"))?;
                        rule.one_of.push(index);
                    }
                }
                "enum" => {
                    let values = value
                        .as_array()
                        .ok_or_else(|| format!("{here}: must be an array"))?;
                    rule.enumeration = Some(values.clone());
                }
                "pattern" => rule.pattern = Some(pattern(value, &here)?),
                "minimum" => rule.minimum = Some(number(value, &here)?),
                "maximum" => rule.maximum = Some(number(value, &here)?),
                "properties" => {
                    for (name, schema) in members(value, &here)? {
                        let index = self.child(schema, &format!("{here}/{name}"))?;
                        rule.properties.insert(name.clone(), index);
                    }
                }
                "patternProperties" => {
                    for (source, schema) in members(value, &here)? {
                        let regex = pattern(&Value::String(source.clone()), &here)?;
                        rule.extensions |= source == "^x-";
                        let index = self.child(schema, &format!("{here}/{source}"))?;
                        rule.pattern_properties.push((regex, index));
                    }
                }
                "additionalProperties" => {
                    rule.additional = match value {
                        Value::Bool(true) => Additional::Allowed,
                        Value::Bool(false) => Additional::Forbidden,
                        schema => Additional::Rule(self.child(schema, &here)?),
                    }
                }
                "required" => {
                    let names = value
                        .as_array()
                        .ok_or_else(|| format!("{here}: must be an array"))?;
                    for name in names {
                        let name = name
                            .as_str()
                            .ok_or_else(|| format!("{here}: must list strings"))?;
                        rule.required.push(name.to_string());
                    }
                }
                "items" => rule.items = Some(self.child(value, &here)?),
                "uniqueItems" => {
                    rule.unique_items = value
                        .as_bool()
                        .ok_or_else(|| format!("{here}: must be a boolean"))?;
                }
                // Only the document's own `$defs` are read (by `compile`).
                "$defs" if at == "#" => {}
                _ if ANNOTATIONS.contains(&keyword.as_str()) => {}
                _ => {
                    return Err(format!(
                        "{here}: the keyword `{keyword}` is outside the supported subset of JSON Schema"
                    ));
                }
            }
        }
        Ok(rule)
    }

    fn reference(&self, value: &Value, at: &str) -> Result<usize, String> {
        let target = value
            .as_str()
            .ok_or_else(|| format!("{at}: must be a string"))?;
        if target == "#" {
            return Ok(0);
        }
        target
            .strip_prefix("#/$defs/")
            .and_then(|name| self.defs.get(name).copied())
            .ok_or_else(|| {
                format!("{at}: `{target}` is not a definition of this schema (`#/$defs/...`)")
            })
    }
}

fn types(value: &Value, at: &str) -> Result<Types, String> {
    let one = |name: &Value| match name.as_str() {
        Some("null") => Ok(NULL),
        Some("boolean") => Ok(BOOLEAN),
        Some("integer") => Ok(INTEGER),
        Some("number") => Ok(NUMBER),
        Some("string") => Ok(STRING),
        Some("array") => Ok(ARRAY),
        Some("object") => Ok(OBJECT),
        _ => Err(format!("{at}: `{name}` is not a JSON Schema type")),
    };
    match value {
        Value::Array(names) => names.iter().try_fold(0, |mask, name| Ok(mask | one(name)?)),
        name => one(name),
    }
}

fn pattern(value: &Value, at: &str) -> Result<Pattern, String> {
    let source = value
        .as_str()
        .ok_or_else(|| format!("{at}: a pattern must be a string"))?;
    let regex = Regex::new(source).map_err(|e| format!("{at}: bad pattern `{source}`: {e}"))?;
    Ok(Pattern {
        source: source.to_string(),
        regex,
    })
}

fn number(value: &Value, at: &str) -> Result<f64, String> {
    value
        .as_f64()
        .ok_or_else(|| format!("{at}: must be a number"))
}

fn members<'j>(value: &'j Value, at: &str) -> Result<&'j serde_json::Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{at}: must be an object"))
}

/// `$ref` and `oneOf` apply more rules to the same value; a loop among them
/// (`a` refers to `b`, which refers to `a`) would never reach a child value
/// and so would never end. Loops through `properties` or `items` are fine.
fn refuse_cycles(rules: &[Rule]) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(rules: &[Rule], index: usize, marks: &mut [Mark]) -> Result<(), String> {
        match marks[index] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                return Err(
                    "a `$ref` refers back to itself without descending into a value".to_string(),
                );
            }
            Mark::New => {}
        }
        marks[index] = Mark::Open;
        let rule = &rules[index];
        for &next in rule.reference.iter().chain(&rule.one_of) {
            visit(rules, next, marks)?;
        }
        marks[index] = Mark::Done;
        Ok(())
    }
    let mut marks = vec![Mark::New; rules.len()];
    (0..rules.len()).try_for_each(|index| visit(rules, index, &mut marks))
}

/// The types a rule accepts at its own place. Terminates because
/// `refuse_cycles` has ruled out loops along `$ref` and `oneOf`.
fn accepted_types(rules: &[Rule], index: usize, memo: &mut [Option<Types>]) -> Types {
    if let Some(mask) = memo[index] {
        return mask;
    }
    let rule = &rules[index];
    let mut mask = if rule.never {
        0
    } else {
        rule.types.unwrap_or(ANY)
    };
    if let Some(reference) = rule.reference {
        mask &= accepted_types(rules, reference, memo);
    }
    if !rule.one_of.is_empty() {
        let branches = rule
            .one_of
            .iter()
            .fold(0, |acc, &b| acc | accepted_types(rules, b, memo));
        mask &= branches;
    }
    memo[index] = Some(mask);
    mask
}

/// What a walk found: the problems, and the casts to apply (as positions
/// from the root: the index of a mapping entry or of a sequence item).
#[derive(Default)]
struct Outcome {
    errors: Vec<Diagnostic>,
    casts: Vec<(Vec<usize>, ScalarType)>,
}

/// One step of the path from the root to the value being checked.
#[derive(Clone, Copy)]
enum Step<'n> {
    Key(&'n str, usize),
    Item(usize),
}

/// The result of checking a value's type.
enum Fit {
    Yes,
    /// An interpolated string that reads as an accepted type.
    Cast(ScalarType),
    No,
}

struct Walker<'s, 'n> {
    schema: &'s Schema,
    path: Vec<Step<'n>>,
}

impl<'s, 'n> Walker<'s, 'n> {
    /// Checks `node` against rule `index`. `given` is the node's type as
    /// already cast by an enclosing rule at the same place.
    fn check(
        &mut self,
        index: usize,
        node: &'n Node,
        given: Option<ScalarType>,
        out: &mut Outcome,
    ) {
        let schema = self.schema;
        let rule = &schema.rules[index];
        if rule.never {
            out.errors.push(self.not_allowed(node));
            return;
        }
        let mut ty = given;
        if let Some(types) = rule.types {
            match fit(node, given, types) {
                Fit::Yes => {}
                Fit::Cast(cast) => {
                    out.casts.push((self.steps(), cast));
                    ty = Some(cast);
                }
                Fit::No => {
                    // The other keywords would only add noise about a value
                    // that has the wrong shape anyway.
                    out.errors.push(self.type_error(node, ty, types));
                    return;
                }
            }
        }
        if let Some(reference) = rule.reference {
            self.check(reference, node, ty, out);
        }
        if !rule.one_of.is_empty() {
            self.one_of(rule, node, ty, out);
        }
        if let Some(values) = &rule.enumeration
            && !values.iter().any(|v| equals_json(node, ty, v))
        {
            out.errors.push(self.enum_error(node, values));
        }
        match &node.kind {
            Kind::Map(map) => self.object(rule, node, map, out),
            Kind::Seq(items) => self.array(rule, items, out),
            Kind::Scalar(scalar) => self.scalar(rule, node, scalar, ty.unwrap_or(scalar.ty), out),
        }
    }

    /// `oneOf`. The Compose schema only uses it for alternative forms of
    /// different types (a string or a mapping, a list or a mapping), so
    /// "exactly one" and "at least one" coincide; the one way two branches
    /// can both match is an interpolated string that one branch takes as a
    /// string and another would cast, and then the string wins.
    fn one_of(
        &mut self,
        rule: &'s Rule,
        node: &'n Node,
        ty: Option<ScalarType>,
        out: &mut Outcome,
    ) {
        let have = possible_types(node, ty);
        let mut cast_match: Option<Outcome> = None;
        let mut closest: Option<Outcome> = None;
        let mut union = 0;
        for &branch in &rule.one_of {
            let accepts = self.schema.rules[branch].accepts;
            union |= accepts;
            if accepts & have == 0 {
                continue;
            }
            let mut trial = Outcome::default();
            self.check(branch, node, ty, &mut trial);
            if trial.errors.is_empty() {
                if trial.casts.is_empty() {
                    return;
                }
                cast_match.get_or_insert(trial);
            } else if closest
                .as_ref()
                .is_none_or(|c| trial.errors.len() < c.errors.len())
            {
                closest = Some(trial);
            }
        }
        if let Some(matched) = cast_match {
            out.casts.extend(matched.casts);
        } else if let Some(closest) = closest {
            // The branch for the value's own type explains the problem far
            // better than "matches none of the alternatives".
            out.errors.extend(closest.errors);
        } else {
            out.errors.push(self.type_error(node, ty, union));
        }
    }

    fn object(&mut self, rule: &'s Rule, node: &'n Node, map: &'n Map, out: &mut Outcome) {
        for name in &rule.required {
            if !map.contains_key(name) {
                out.errors.push(self.missing(node, name));
            }
        }
        if rule.properties.is_empty()
            && rule.pattern_properties.is_empty()
            && matches!(rule.additional, Additional::Allowed)
        {
            return;
        }
        for (i, (key, entry)) in map.iter().enumerate() {
            self.path.push(Step::Key(key, i));
            let mut known = false;
            if let Some(&property) = rule.properties.get(key.as_str()) {
                known = true;
                self.check(property, &entry.value, None, out);
            }
            for (pattern, property) in &rule.pattern_properties {
                if pattern.regex.is_match(key) {
                    known = true;
                    self.check(*property, &entry.value, None, out);
                }
            }
            if !known {
                match rule.additional {
                    Additional::Allowed => {}
                    Additional::Forbidden => out.errors.push(self.unknown_key(rule, key, entry)),
                    Additional::Rule(other) => self.check(other, &entry.value, None, out),
                }
            }
            self.path.pop();
        }
    }

    fn array(&mut self, rule: &'s Rule, items: &'n [Node], out: &mut Outcome) {
        if let Some(item_rule) = rule.items {
            for (i, item) in items.iter().enumerate() {
                self.path.push(Step::Item(i));
                self.check(item_rule, item, None, out);
                self.path.pop();
            }
        }
        if rule.unique_items && items.len() > 1 {
            self.duplicates(items, out);
        }
    }

    fn scalar(
        &mut self,
        rule: &'s Rule,
        node: &'n Node,
        scalar: &Scalar,
        ty: ScalarType,
        out: &mut Outcome,
    ) {
        if let Some(pattern) = &rule.pattern
            && matches!(ty, ScalarType::Str { .. })
            && !pattern.regex.is_match(&scalar.text)
        {
            out.errors
                .push(self.pattern_error(node, &scalar.text, pattern));
        }
        if rule.minimum.is_none() && rule.maximum.is_none() {
            return;
        }
        let Some(value) = numeric(ty, &scalar.text) else {
            return;
        };
        let low = rule.minimum.filter(|&min| value < min);
        let high = rule.maximum.filter(|&max| value > max);
        if low.is_some() || high.is_some() {
            out.errors
                .push(self.range_error(node, &scalar.text, rule, low.is_some()));
        }
    }

    /// `uniqueItems`: items are hashed by their JSON value and sorted, and
    /// only items with equal hashes are compared, so a long list costs a sort
    /// rather than a comparison of every pair.
    fn duplicates(&mut self, items: &'n [Node], out: &mut Outcome) {
        let mut hashed: Vec<(u64, usize)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut hasher = DefaultHasher::new();
                hash_json(item, &mut hasher);
                (hasher.finish(), i)
            })
            .collect();
        hashed.sort_unstable();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        // Within a run of equal hashes the indices are ascending: each item
        // is compared with the earlier ones, and the first equal one is named.
        for run in hashed.chunk_by(|a, b| a.0 == b.0) {
            for (k, &(_, later)) in run.iter().enumerate().skip(1) {
                let first = run[..k]
                    .iter()
                    .map(|&(_, i)| i)
                    .find(|&i| equal_json(&items[i], &items[later]));
                if let Some(first) = first {
                    repeats.push((later, first));
                }
            }
        }
        repeats.sort_unstable();
        for (later, first) in repeats {
            self.path.push(Step::Item(later));
            out.errors
                .push(self.duplicate(&items[later], &items[first], first));
            self.path.pop();
        }
    }

    fn steps(&self) -> Vec<usize> {
        self.path
            .iter()
            .map(|step| match step {
                Step::Key(_, i) | Step::Item(i) => *i,
            })
            .collect()
    }

    // Diagnostics. Each names the place by its key path and says what would be right.

    fn path_string(&self) -> String {
        path_text(&self.path)
    }

    /// The path without its last step: the mapping of a key, the list of an item.
    fn parent(&self) -> &[Step<'n>] {
        &self.path[..self.path.len().saturating_sub(1)]
    }

    /// The value being checked, as the subject of a sentence.
    fn subject(&self) -> String {
        if self.path.is_empty() {
            "the document".to_string()
        } else {
            format!("`{}`", self.path_string())
        }
    }

    fn diagnostic(&self, message: String, node: &Node, hint: String) -> Diagnostic {
        Diagnostic::new(message)
            .at(&node.span)
            .path(self.path_string())
            .hint(hint)
    }

    fn type_error(&self, node: &Node, ty: Option<ScalarType>, types: Types) -> Diagnostic {
        let message = format!(
            "{} must be {}, not {}",
            self.subject(),
            describe(types),
            kind_name(node, ty)
        );
        self.diagnostic(message, node, type_hint(node, types))
    }

    fn not_allowed(&self, node: &Node) -> Diagnostic {
        self.diagnostic(
            format!("{} is not allowed here", self.subject()),
            node,
            "remove it".to_string(),
        )
    }

    fn enum_error(&self, node: &Node, values: &[Value]) -> Diagnostic {
        let shown: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", show_json(v)))
            .collect();
        let message = format!(
            "{} must be {}{}, not {}",
            self.subject(),
            if values.len() == 1 { "" } else { "one of " },
            join(&shown, "or"),
            show_node(node)
        );
        let text = node.as_str().unwrap_or_default();
        let strings = values.iter().filter_map(Value::as_str);
        let hint = match did_you_mean(text, strings.clone()) {
            Some(close) => format!("did you mean `{close}`?"),
            None if strings.clone().any(|s| s.eq_ignore_ascii_case(text)) => {
                "the values are case-sensitive".to_string()
            }
            None => "use one of the values listed".to_string(),
        };
        self.diagnostic(message, node, hint)
    }

    fn pattern_error(&self, node: &Node, text: &str, pattern: &Pattern) -> Diagnostic {
        self.diagnostic(
            format!(
                "{} is `{text}`, which does not match the pattern `{}`",
                self.subject(),
                pattern.source
            ),
            node,
            format!(
                "write a value that the regular expression `{}` matches",
                pattern.source
            ),
        )
    }

    fn range_error(&self, node: &Node, text: &str, rule: &Rule, too_low: bool) -> Diagnostic {
        let message = match (too_low, rule.minimum, rule.maximum) {
            (true, Some(min), _) => {
                format!("{} must be at least {min}, not {text}", self.subject())
            }
            (_, _, Some(max)) => format!("{} must be at most {max}, not {text}", self.subject()),
            _ => format!("{} is out of range", self.subject()),
        };
        let hint = match (rule.minimum, rule.maximum) {
            (Some(min), Some(max)) => format!("use a value from {min} to {max}"),
            (Some(min), None) => format!("use a value of {min} or more"),
            (None, Some(max)) => format!("use a value of {max} or less"),
            (None, None) => String::new(),
        };
        self.diagnostic(message, node, hint)
    }

    /// `node` is the mapping that lacks `name`.
    fn missing(&self, node: &Node, name: &str) -> Diagnostic {
        let here = self.path_string();
        let (path, hint) = if here.is_empty() {
            (name.to_string(), format!("add `{name}:` at the top level"))
        } else {
            (
                format!("{here}.{name}"),
                format!("add `{name}:` to `{here}`"),
            )
        };
        Diagnostic::new(format!("`{path}` is required"))
            .at(&node.span)
            .path(path)
            .hint(hint)
    }

    /// The current path ends with the offending key.
    fn unknown_key(&self, rule: &Rule, key: &str, entry: &Entry) -> Diagnostic {
        let place = place(self.parent());
        let (message, hint) = if rule.properties.is_empty() && !rule.pattern_properties.is_empty() {
            // A mapping of names (`services`, `networks`...): the key is a name.
            let patterns: Vec<String> = rule
                .pattern_properties
                .iter()
                .map(|(p, _)| format!("`{}`", p.source))
                .collect();
            (
                format!("`{key}` is not a valid name {place}"),
                format!("names here must match {}", join(&patterns, "or")),
            )
        } else {
            let names = rule.properties.keys().map(String::as_str);
            let hint = match did_you_mean(key, names.clone()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => {
                    let mut hint = String::new();
                    if rule.properties.len() <= 12 {
                        let listed: Vec<String> = names.map(|n| format!("`{n}`")).collect();
                        hint = format!("the keys allowed here are {}", join(&listed, "and"));
                    }
                    if rule.extensions {
                        if !hint.is_empty() {
                            hint.push_str("; ");
                        }
                        let _ = write!(
                            hint,
                            "keys starting with `x-` are allowed for extensions (e.g. `x-{key}`)"
                        );
                    }
                    if hint.is_empty() {
                        hint = "remove it, or check the spelling and the indentation".to_string();
                    }
                    hint
                }
            };
            (format!("unknown key `{key}` {place}"), hint)
        };
        Diagnostic::new(message)
            .at(&entry.key_span)
            .path(self.path_string())
            .hint(hint)
    }

    /// The current path ends with the repeated item.
    fn duplicate(&self, item: &Node, first: &Node, first_index: usize) -> Diagnostic {
        let list = path_text(self.parent());
        let line = match &first.span.source {
            Some(_) => format!(" (line {})", first.span.line),
            None => String::new(),
        };
        self.diagnostic(
            format!("`{list}` lists {} more than once", show_node(item)),
            item,
            format!("remove this item: it repeats item [{first_index}]{line}"),
        )
    }
}

/// A path as users write it: `services.web.ports[0].target`. Keys that
/// would read ambiguously after a dot (`net.core.somaxconn`) are quoted.
fn path_text(steps: &[Step<'_>]) -> String {
    let mut text = String::new();
    for step in steps {
        match step {
            Step::Key(key, _) if is_plain_key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Key(key, _) => {
                let _ = write!(text, "[{key:?}]");
            }
            Step::Item(i) => {
                let _ = write!(text, "[{i}]");
            }
        }
    }
    text
}

/// Where the mapping at `steps` sits, the way a user names it:
/// "in service `web`", "at the top level", "in `services.web.deploy`".
fn place(steps: &[Step<'_>]) -> String {
    let section = match steps {
        [] => return "at the top level".to_string(),
        [Step::Key(section, _), Step::Key(name, _)] => match *section {
            "services" => Some(("service", name)),
            "networks" => Some(("network", name)),
            "volumes" => Some(("volume", name)),
            "secrets" => Some(("secret", name)),
            "configs" => Some(("config", name)),
            "models" => Some(("model", name)),
            _ => None,
        },
        _ => None,
    };
    match section {
        Some((kind, name)) => format!("in {kind} `{name}`"),
        None => format!("in `{}`", path_text(steps)),
    }
}

/// Keys that read unambiguously in a dotted path; others are quoted.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The JSON types a scalar of type `ty` satisfies. JSON Schema counts an
/// integer as a number, and a number with no fraction (`2.0`) as an integer.
fn scalar_types(ty: ScalarType, text: &str) -> Types {
    match ty {
        ScalarType::Null => NULL,
        ScalarType::Bool => BOOLEAN,
        ScalarType::Int => INTEGER | NUMBER,
        ScalarType::Float => match parse_float(text) {
            Some(v) if v.is_finite() && v.fract() == 0.0 => NUMBER | INTEGER,
            _ => NUMBER,
        },
        ScalarType::Str { .. } => STRING,
    }
}

fn fit(node: &Node, given: Option<ScalarType>, types: Types) -> Fit {
    let scalar = match &node.kind {
        Kind::Map(_) if types & OBJECT != 0 => return Fit::Yes,
        Kind::Seq(_) if types & ARRAY != 0 => return Fit::Yes,
        Kind::Map(_) | Kind::Seq(_) => return Fit::No,
        Kind::Scalar(scalar) => scalar,
    };
    let ty = given.unwrap_or(scalar.ty);
    if scalar_types(ty, &scalar.text) & types != 0 {
        return Fit::Yes;
    }
    match interpolated_as(ty, &scalar.text) {
        Some(cast) if scalar_types(cast, &scalar.text) & types != 0 => Fit::Cast(cast),
        _ => Fit::No,
    }
}

/// The type an interpolated string reads as when the schema wants a number
/// or boolean: the same reading YAML gives an unquoted `8080`, `0.5`, `true`.
fn interpolated_as(ty: ScalarType, text: &str) -> Option<ScalarType> {
    if ty != (ScalarType::Str { template: true }) {
        return None;
    }
    match resolve_plain(text) {
        t @ (ScalarType::Int | ScalarType::Float | ScalarType::Bool) => Some(t),
        _ => None,
    }
}

/// Every type the node could satisfy, counting a cast it may get.
fn possible_types(node: &Node, given: Option<ScalarType>) -> Types {
    match &node.kind {
        Kind::Map(_) => OBJECT,
        Kind::Seq(_) => ARRAY,
        Kind::Scalar(scalar) => {
            let ty = given.unwrap_or(scalar.ty);
            let cast =
                interpolated_as(ty, &scalar.text).map_or(0, |t| scalar_types(t, &scalar.text));
            scalar_types(ty, &scalar.text) | cast
        }
    }
}

fn numeric(ty: ScalarType, text: &str) -> Option<f64> {
    match ty {
        // An i64 beyond 2^53 loses precision as f64; bounds in schemas are small.
        ScalarType::Int => parse_int(text).map(|v| v as f64),
        ScalarType::Float => parse_float(text),
        _ => None,
    }
}

/// Applies a cast decided by the walk; `steps` were recorded on this tree.
fn cast(root: &mut Node, steps: &[usize], ty: ScalarType) {
    let mut node = root;
    for &step in steps {
        node = match &mut node.kind {
            Kind::Map(map) => match map.get_index_mut(step) {
                Some((_, entry)) => &mut entry.value,
                None => return,
            },
            Kind::Seq(items) => match items.get_mut(step) {
                Some(item) => item,
                None => return,
            },
            Kind::Scalar(_) => return,
        };
    }
    if let Kind::Scalar(scalar) = &mut node.kind {
        scalar.ty = ty;
    }
}

/// JSON equality between a node (typed as `ty` if cast) and a schema value.
fn equals_json(node: &Node, ty: Option<ScalarType>, value: &Value) -> bool {
    let Kind::Scalar(scalar) = &node.kind else {
        return node.to_json() == *value;
    };
    match (ty.unwrap_or(scalar.ty), value) {
        (ScalarType::Null, Value::Null) => true,
        (ScalarType::Bool, Value::Bool(b)) => parse_bool(&scalar.text) == Some(*b),
        (ScalarType::Str { .. }, Value::String(s)) => scalar.text == *s,
        (ty @ (ScalarType::Int | ScalarType::Float), Value::Number(n)) => {
            numeric(ty, &scalar.text).is_some_and(|v| Some(v) == n.as_f64())
        }
        _ => false,
    }
}

/// A scalar as a JSON value would be, for `uniqueItems`.
enum Atom<'a> {
    Null,
    Bool(bool),
    Number(f64),
    Text(&'a str),
}

fn atom(scalar: &Scalar) -> Atom<'_> {
    match scalar.ty {
        ScalarType::Null => Atom::Null,
        ScalarType::Bool => parse_bool(&scalar.text).map_or(Atom::Text(&scalar.text), Atom::Bool),
        ty @ (ScalarType::Int | ScalarType::Float) => {
            numeric(ty, &scalar.text).map_or(Atom::Text(&scalar.text), Atom::Number)
        }
        ScalarType::Str { .. } => Atom::Text(&scalar.text),
    }
}

/// Hashes a node so that JSON-equal nodes hash alike: `1` and `1.0` are
/// the same number, and mapping order does not matter.
fn hash_json(node: &Node, state: &mut impl Hasher) {
    match &node.kind {
        Kind::Scalar(scalar) => match atom(scalar) {
            Atom::Null => 0u8.hash(state),
            Atom::Bool(b) => (1u8, b).hash(state),
            // `+ 0.0` turns -0.0 into 0.0, which JSON considers equal.
            Atom::Number(v) => (2u8, (v + 0.0).to_bits()).hash(state),
            Atom::Text(text) => (3u8, text).hash(state),
        },
        Kind::Seq(items) => {
            (4u8, items.len()).hash(state);
            items.iter().for_each(|item| hash_json(item, state));
        }
        Kind::Map(map) => {
            let entries = map.iter().fold(0u64, |sum, (key, entry)| {
                let mut hasher = DefaultHasher::new();
                key.hash(&mut hasher);
                hash_json(&entry.value, &mut hasher);
                sum.wrapping_add(hasher.finish())
            });
            (5u8, map.len(), entries).hash(state);
        }
    }
}

fn equal_json(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (Kind::Scalar(x), Kind::Scalar(y)) => match (atom(x), atom(y)) {
            (Atom::Null, Atom::Null) => true,
            (Atom::Bool(x), Atom::Bool(y)) => x == y,
            (Atom::Number(x), Atom::Number(y)) => x == y,
            (Atom::Text(x), Atom::Text(y)) => x == y,
            _ => false,
        },
        (Kind::Seq(x), Kind::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal_json(a, b))
        }
        (Kind::Map(x), Kind::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, e)| y.get(k).is_some_and(|f| equal_json(&e.value, &f.value)))
        }
        _ => false,
    }
}

/// The types of a mask in words: "a mapping or a sequence".
fn describe(types: Types) -> String {
    let mut names = Vec::new();
    for (bit, name) in [
        (OBJECT, "a mapping"),
        (ARRAY, "a sequence"),
        (STRING, "a string"),
        (NUMBER, "a number"),
        (INTEGER, "an integer"),
        (BOOLEAN, "a boolean"),
        (NULL, "null"),
    ] {
        // Every integer is a number: "a number or an integer" says nothing more.
        if types & bit != 0 && !(bit == INTEGER && types & NUMBER != 0) {
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        return "absent".to_string();
    }
    join(&names, "or")
}

fn join(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

fn kind_name(node: &Node, ty: Option<ScalarType>) -> &'static str {
    match (&node.kind, ty) {
        (Kind::Scalar(_), Some(ScalarType::Int)) => "an integer",
        (Kind::Scalar(_), Some(ScalarType::Float)) => "a number",
        (Kind::Scalar(_), Some(ScalarType::Bool)) => "a boolean",
        _ => node.kind_name(),
    }
}

fn show_json(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value quoted for a message; long or nested values are abridged.
fn show_node(node: &Node) -> String {
    let text = match &node.kind {
        Kind::Scalar(s) if s.ty == ScalarType::Null => return "null".to_string(),
        Kind::Scalar(s) => s.text.clone(),
        _ => node.to_json().to_string(),
    };
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("`{short}...`")
    } else {
        format!("`{text}`")
    }
}

/// What to write instead of a value of the wrong type.
fn type_hint(node: &Node, types: Types) -> String {
    if let Kind::Scalar(scalar) = &node.kind {
        if scalar.ty == (ScalarType::Str { template: true }) {
            return format!(
                "the value comes from variable interpolation and reads `{}`; the variable must hold {}",
                scalar.text,
                describe(types)
            );
        }
        if scalar.ty == ScalarType::Null {
            return format!("write {} here, or remove the key", describe(types));
        }
        if types & STRING != 0 && !matches!(scalar.ty, ScalarType::Str { .. }) {
            return format!("quote it to make it a string: \"{}\"", scalar.text);
        }
        if matches!(scalar.ty, ScalarType::Str { .. })
            && scalar_types(resolve_plain(&scalar.text), &scalar.text) & types != 0
        {
            return format!(
                "remove the quotes so that YAML reads `{}` as {}",
                scalar.text,
                describe(types & !STRING)
            );
        }
    }
    match types & (OBJECT | ARRAY) {
        t if t == OBJECT | ARRAY => {
            "write `key: value` lines, or a list with one `- item` per line".to_string()
        }
        OBJECT => "write `key: value` lines, indented under the key".to_string(),
        ARRAY => "write a list: one `- item` per line, or `[a, b]`".to_string(),
        _ => format!("write {} here", describe(types)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::diagnostic::Source;
    use crate::spec::yaml::parse;
    use serde_json::json;

    fn load(text: &str) -> Node {
        parse(&Source::new("t.yaml", text))
            .expect("parses")
            .remove(0)
    }

    fn compose(text: &str) -> Vec<Diagnostic> {
        Schema::compose().validate(&mut load(text))
    }

    fn messages(diagnostics: &[Diagnostic]) -> Vec<&str> {
        diagnostics.iter().map(|d| d.message.as_str()).collect()
    }

    /// Marks every string scalar as the result of interpolation.
    fn template(node: &mut Node) {
        match &mut node.kind {
            Kind::Scalar(s) => {
                if let ScalarType::Str { .. } = s.ty {
                    s.ty = ScalarType::Str { template: true };
                }
            }
            Kind::Seq(items) => items.iter_mut().for_each(template),
            Kind::Map(map) => map.values_mut().for_each(|e| template(&mut e.value)),
        }
    }

    #[test]
    fn embedded_compose_schema_compiles() {
        let json: Value = serde_json::from_str(include_str!("compose-spec.json")).unwrap();
        let schema = Schema::compile(&json).unwrap();
        assert!(schema.rules.len() > 100);
        assert!(std::ptr::eq(Schema::compose(), Schema::compose()));
    }

    #[test]
    fn unsupported_keywords_and_bad_refs_are_refused() {
        let err = Schema::compile(&json!({"allOf": [{}]})).unwrap_err();
        assert!(err.contains("`allOf`"), "{err}");
        let err = Schema::compile(&json!({"$ref": "#/$defs/nope"})).unwrap_err();
        assert!(err.contains("#/$defs/nope"), "{err}");
        let err =
            Schema::compile(&json!({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}))
                .unwrap_err();
        assert!(err.contains("refers back"), "{err}");
        let err = Schema::compile(&json!({"pattern": "("})).unwrap_err();
        assert!(err.contains("bad pattern"), "{err}");
    }

    #[test]
    fn recursive_refs_through_values_work() {
        let schema = Schema::compile(&json!({
            "$ref": "#/$defs/tree",
            "$defs": {"tree": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
                "additionalProperties": false
            }}
        }))
        .unwrap();
        let mut ok = load("name: a\nchildren:\n  - name: b\n    children: [{name: c}]\n");
        assert!(schema.validate(&mut ok).is_empty());
        let mut bad = load("name: a\nchildren:\n  - name: b\n    children: [{nam: c}]\n");
        let errors = schema.validate(&mut bad);
        assert_eq!(
            messages(&errors),
            ["unknown key `nam` in `children[0].children[0]`"]
        );
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `name`?"));
    }

    #[test]
    fn additional_property_rules_false_schemas_and_quoted_paths() {
        let schema = Schema::compile(&json!({
            "type": "object",
            "properties": {"gone": false},
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}
        }))
        .unwrap();
        let mut root = load(
            "gone: 1
sysctls:
  net.core.somaxconn: high
",
        );
        let errors = schema.validate(&mut root);
        assert_eq!(
            messages(&errors),
            [
                "`gone` is not allowed here",
                "`sysctls[\"net.core.somaxconn\"]` must be an integer, not a string",
            ]
        );
        assert_eq!(errors[1].hint.as_deref(), Some("write an integer here"));
    }

    #[test]
    fn a_realistic_service_is_valid() {
        let errors = compose(
            r#"
name: shop
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: nginx:1.27
    build:
      context: ./web
      args: {VERSION: "1.2", DEBUG: 1}
    command: ["nginx", "-g", "daemon off;"]
    environment:
      TZ: UTC
      WORKERS: 4
      DEBUG: false
      EMPTY:
    env_file: [.env, {path: .env.local, required: false}]
    ports:
      - 8080:80
      - "443:443/tcp"
      - 9000
      - target: 81
        published: "8081"
        protocol: tcp
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - type: volume
        source: data
        target: /data
        volume: {nocopy: true}
    networks:
      front:
        aliases: [www]
      back:
    depends_on:
      db:
        condition: service_healthy
        restart: true
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost"]
      interval: 30s
      retries: 3
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "0.5", memory: 512M}
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 65535
    labels: [a=b, c=d]
    cpu_percent: 50
    pull_policy: always
    container_name: shop-web
  db:
    image: postgres:16
    environment: [POSTGRES_PASSWORD=secret]
    depends_on: [cache]
    volumes: [data:/var/lib/postgresql/data]
    networks: [back]
    secrets: [db_password, {source: db_password, target: pw, mode: 0440}]
  cache:
    image: redis
    entrypoint: /bin/sh -c 'redis-server'
networks:
  front: {}
  back:
    driver: bridge
    ipam:
      config: [{subnet: 172.28.0.0/16}]
volumes:
  data:
  other: {external: true}
secrets:
  db_password:
    file: ./pw.txt
configs:
  c:
    content: hello
"#,
        );
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn unknown_key_is_reported_at_the_key_with_a_suggestion() {
        let errors = compose("services:\n  web:\n    image: nginx\n    enviroment:\n      A: b\n");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        let e = &errors[0];
        assert_eq!(e.message, "unknown key `enviroment` in service `web`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `environment`?"));
        assert_eq!(e.path, "services.web.enviroment");
        assert_eq!((e.span.line, e.span.col, e.span.len), (4, 5, 10));
    }

    #[test]
    fn unknown_keys_are_named_by_their_place() {
        let errors = compose(
            "servics: {}\n\
             services:\n  web:\n    image: a\n    deploy:\n      replica: 2\n    zzzzzz: 1\n\
             networks:\n  front:\n    drivr: x\n\
             volumes:\n  data:\n    labls: []\n\
             secrets:\n  s:\n    fil: x\n\
             configs:\n  c:\n    fil: x\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "unknown key `servics` at the top level",
                "unknown key `replica` in `services.web.deploy`",
                "unknown key `zzzzzz` in service `web`",
                "unknown key `drivr` in network `front`",
                "unknown key `labls` in volume `data`",
                "unknown key `fil` in secret `s`",
                "unknown key `fil` in config `c`",
            ]
        );
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `services`?"));
        assert_eq!(errors[1].hint.as_deref(), Some("did you mean `replicas`?"));
        let hint = errors[2].hint.as_deref().unwrap();
        assert!(
            hint.contains("keys starting with `x-` are allowed for extensions"),
            "{hint}"
        );
    }

    #[test]
    fn invalid_service_names_are_reported() {
        let errors = compose("services:\n  my web:\n    image: a\n");
        assert_eq!(
            messages(&errors),
            ["`my web` is not a valid name in `services`"]
        );
        assert!(
            errors[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("^[a-zA-Z0-9._-]+$")
        );
        assert_eq!(errors[0].path, "services[\"my web\"]");
    }

    #[test]
    fn wrong_types_say_what_is_accepted() {
        let errors = compose(
            "version: 3.7\nservices:\n  web:\n    image: a\n    ports: \"80:80\"\n    environment: 5\n    privileged: [x]\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "`version` must be a string, not a number",
                "`services.web.ports` must be a sequence, not a string",
                "`services.web.environment` must be a mapping or a sequence, not an integer",
                "`services.web.privileged` must be a string or a boolean, not a sequence",
            ]
        );
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("quote it to make it a string: \"3.7\"")
        );
        assert_eq!((errors[1].span.line, errors[1].span.col), (5, 12));
        assert_eq!(errors[1].path, "services.web.ports");
    }

    #[test]
    fn the_document_itself_must_be_a_mapping() {
        let errors = compose("- a\n");
        assert_eq!(
            messages(&errors),
            ["the document must be a mapping, not a sequence"]
        );
    }

    #[test]
    fn enum_values_are_listed() {
        let errors = compose(
            "services:\n  web:\n    image: a\n    cgroup: privat\n    depends_on:\n      db: {condition: service_ready}\n  db: {image: b}\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "`services.web.cgroup` must be one of `host` or `private`, not `privat`",
                "`services.web.depends_on.db.condition` must be one of `service_started`, \
                 `service_healthy` or `service_completed_successfully`, not `service_ready`",
            ]
        );
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean `private`?"));
    }

    #[test]
    fn required_keys_are_reported() {
        let errors = compose(
            "services:\n  web:\n    image: a\n    depends_on:\n      db: {restart: true}\n    volumes:\n      - source: x\n        target: /x\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "`services.web.depends_on.db.condition` is required",
                "`services.web.volumes[0].type` is required",
            ]
        );
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("add `condition:` to `services.web.depends_on.db`")
        );
        assert_eq!(errors[1].path, "services.web.volumes[0].type");
        assert_eq!((errors[1].span.line, errors[1].span.col), (7, 9));
    }

    #[test]
    fn pattern_minimum_maximum_and_unique_items() {
        let errors = compose(
            "services:\n  web:\n    image: a\n    pull_policy: sometimes\n    cpu_percent: 150\n    \
             oom_score_adj: -2000\n    cap_add: [NET_ADMIN, SYS_TIME, NET_ADMIN]\n    ports: [80, \"80\", 80.0]\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "`services.web.pull_policy` is `sometimes`, which does not match the pattern \
                 `always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+`",
                "`services.web.cpu_percent` must be at most 100, not 150",
                "`services.web.oom_score_adj` must be at least -1000, not -2000",
                "`services.web.cap_add` lists `NET_ADMIN` more than once",
                "`services.web.ports` lists `80.0` more than once",
            ]
        );
        assert_eq!(errors[1].hint.as_deref(), Some("use a value from 0 to 100"));
        assert_eq!(errors[3].path, "services.web.cap_add[2]");
        assert_eq!(
            errors[3].hint.as_deref(),
            Some("remove this item: it repeats item [0] (line 7)")
        );
        assert_eq!(errors[4].path, "services.web.ports[2]");
    }

    #[test]
    fn short_and_long_forms_are_accepted() {
        let errors = compose(
            r#"
services:
  a:
    image: x
    ports: ["80", 81, "127.0.0.1:82:82/udp", {target: 83, published: 8083, host_ip: 0.0.0.0, mode: host}]
    volumes: [data:/d, {type: bind, source: ., target: /src, bind: {create_host_path: true}}, {type: tmpfs, target: /t, tmpfs: {size: 1000}}]
    environment: [A=1, B]
    depends_on: [b]
    networks: [n]
    build: .
    command: echo hi
    entrypoint:
    extends: base
    devices: [/dev/a, {source: /dev/b}]
    dns: 1.1.1.1
    tmpfs: [/run, /tmp]
    extra_hosts: {host: 1.2.3.4, other: [1.2.3.5, "::1"]}
    gpus: all
    cpu_count: "2"
    healthcheck: {test: curl localhost}
  b:
    image: x
    environment: {A: 1, B: 2.5, C: true, D: null, E: text}
    depends_on: {c: {condition: service_started, required: false}}
    networks: {n: {ipv4_address: 10.0.0.2, priority: 10}, m: null}
    build: {context: ., dockerfile: Dockerfile, args: [A=1]}
    command: [a, b]
    extends: {service: a, file: other.yaml}
    extra_hosts: ["host:1.2.3.4"]
    gpus: [{driver: nvidia, count: 1}]
    cpu_count: 2
    dns: [1.1.1.1, 8.8.8.8]
    healthcheck: {test: [CMD, curl, localhost], disable: false}
    develop:
      watch: [{path: ./src, action: sync, target: /src}]
  c:
    image: x
    deploy:
  base:
    image: x
networks: {n: null, m: {external: true}}
"#,
        );
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn interpolated_strings_are_cast_where_the_schema_wants_numbers_or_booleans() {
        let mut root = load(
            "services:\n  web:\n    image: a\n    use_api_socket: \"true\"\n    cpu_count: \"4\"\n    \
             ports: [\"8080\"]\n    depends_on:\n      db: {condition: service_started, required: \"false\"}\n    \
             networks:\n      n: {priority: \"0.5\"}\n  db: {image: b}\nmodels:\n  m: {model: ai/x, context_size: \"2048\"}\n",
        );
        template(&mut root);
        let errors = Schema::compose().validate(&mut root);
        assert!(errors.is_empty(), "{errors:#?}");
        let web = root.get("services").unwrap().get("web").unwrap();
        let ty = |node: &Node| node.as_scalar().unwrap().ty;
        assert_eq!(ty(web.get("use_api_socket").unwrap()), ScalarType::Bool);
        let required = web
            .get("depends_on")
            .unwrap()
            .get("db")
            .unwrap()
            .get("required")
            .unwrap();
        assert_eq!(ty(required), ScalarType::Bool);
        let priority = web
            .get("networks")
            .unwrap()
            .get("n")
            .unwrap()
            .get("priority")
            .unwrap();
        assert_eq!(ty(priority), ScalarType::Float);
        assert_eq!(priority.as_scalar().unwrap().text, "0.5");
        let context = root
            .get("models")
            .unwrap()
            .get("m")
            .unwrap()
            .get("context_size")
            .unwrap();
        assert_eq!(ty(context), ScalarType::Int);
        // Where a string is accepted, the string stays a string.
        let template = ScalarType::Str { template: true };
        assert_eq!(ty(web.get("image").unwrap()), template);
        assert_eq!(ty(web.get("cpu_count").unwrap()), template);
        assert_eq!(
            ty(&web.get("ports").unwrap().as_seq().unwrap()[0]),
            template
        );
    }

    #[test]
    fn interpolated_strings_that_do_not_read_as_the_type_are_errors() {
        let mut root = load("services:\n  web:\n    image: a\n    use_api_socket: \"maybe\"\n");
        template(&mut root);
        let errors = Schema::compose().validate(&mut root);
        assert_eq!(
            messages(&errors),
            ["`services.web.use_api_socket` must be a boolean, not a string"]
        );
        assert!(errors[0].hint.as_deref().unwrap().contains("interpolation"));
        // A quoted string written in the file is never cast.
        let errors = compose("services:\n  web:\n    image: a\n    use_api_socket: \"true\"\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].hint.as_deref(),
            Some("remove the quotes so that YAML reads `true` as a boolean")
        );
    }

    #[test]
    fn casts_respect_bounds_and_the_preference_for_strings_in_one_of() {
        let schema = Schema::compile(&json!({
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "either": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                "number": {"oneOf": [{"type": "integer"}, {"type": "boolean"}]}
            }
        }))
        .unwrap();
        let mut root = load("n: \"-3\"\neither: \"5\"\nnumber: \"7\"\n");
        template(&mut root);
        let errors = schema.validate(&mut root);
        assert_eq!(messages(&errors), ["`n` must be at least 0, not -3"]);
        let ty = |k: &str| root.get(k).unwrap().as_scalar().unwrap().ty;
        assert_eq!(ty("n"), ScalarType::Int);
        assert_eq!(ty("either"), ScalarType::Str { template: true });
        assert_eq!(ty("number"), ScalarType::Int);
    }

    #[test]
    fn several_errors_are_reported_at_once() {
        let errors = compose(
            "services:\n  web:\n    imag: a\n    ports: 80\n  db:\n    image: [x]\n    restart: 1\n\
             networks:\n  n:\n    internal: 5\nvolumes: []\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "unknown key `imag` in service `web`",
                "`services.web.ports` must be a sequence, not an integer",
                "`services.db.image` must be a string, not a sequence",
                "`services.db.restart` must be a string, not an integer",
                "`networks.n.internal` must be a string or a boolean, not an integer",
                "`volumes` must be a mapping, not a sequence",
            ]
        );
        assert!(
            errors
                .iter()
                .all(|e| e.hint.is_some() && e.span.source.is_some())
        );
    }

    #[test]
    fn one_of_reports_the_branch_of_the_value_type() {
        let errors = compose(
            "services:\n  web:\n    image: a\n    build: {context: ., dockerfil: x}\n    \
             ports: [{target: 80, publised: 8080}]\n    env_file: [{required: true}]\n",
        );
        assert_eq!(
            messages(&errors),
            [
                "unknown key `dockerfil` in `services.web.build`",
                "unknown key `publised` in `services.web.ports[0]`",
                "`services.web.env_file[0].path` is required",
            ]
        );
        assert_eq!(errors[1].hint.as_deref(), Some("did you mean `published`?"));
    }

    #[test]
    fn extension_keys_are_allowed_where_the_schema_says() {
        let errors = compose(
            "x-top: {anything: [1, 2]}\n\
             services:\n  web:\n    image: a\n    x-svc: 1\n    deploy:\n      x-d: 1\n      resources:\n        x-r: 1\n    \
             ports: [{target: 80, x-p: 1}]\n    build: {context: ., x-b: 1}\n    healthcheck: {x-h: 1}\n    logging: {x-l: 1}\n\
             networks:\n  n: {x-n: 1, ipam: {x-i: 1}}\nvolumes:\n  v: {x-v: 1}\nsecrets:\n  s: {file: f, x-s: 1}\n\
             configs:\n  c: {file: f, x-c: 1}\n",
        );
        assert!(errors.is_empty(), "{errors:#?}");
        // Where the schema has no `^x-` pattern, an `x-` key is unknown.
        let errors = compose("services:\n  web:\n    image: a\n    blkio_config: {x-b: 1}\n");
        assert_eq!(
            messages(&errors),
            ["unknown key `x-b` in `services.web.blkio_config`"]
        );
    }

    #[test]
    fn a_thousand_services_validate_quickly() {
        let mut text = String::from("services:\n");
        for i in 0..1000 {
            let next = (i + 1) % 1000;
            let _ = write!(
                text,
                "  svc{i}:\n    image: registry.example.com/app{i}:1.0\n    environment:\n      A: \"1\"\n      B: two\n      C: 3\n    \
                 ports: [\"{p}:80\", \"{q}:443\"]\n    volumes: [\"data{i}:/data\", ./conf:/etc/conf:ro]\n    \
                 networks: [front, back]\n    depends_on: [svc{next}]\n",
                p = 10000 + i,
                q = 20000 + i
            );
        }
        text.push_str("networks: {front: {}, back: {}}\n");
        let mut root = load(&text);
        let schema = Schema::compose();
        let start = std::time::Instant::now();
        let errors = schema.validate(&mut root);
        let elapsed = start.elapsed();
        assert!(errors.is_empty(), "{errors:#?}");
        eprintln!("validated 1000 services in {elapsed:?}");
    }

    #[test]
    fn the_awesome_compose_corpus_is_valid() {
        let Some(corpus) = crate::spec::test_corpus() else {
            return;
        };
        let dir = corpus.join("awesome-compose");
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    pending.push(path);
                } else if (name.ends_with(".yml") || name.ends_with(".yaml"))
                    && (name.starts_with("compose") || name.starts_with("docker-compose"))
                {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(!files.is_empty());
        let mut failures = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let source = Source::new(file, text);
            for mut doc in parse(&source).unwrap() {
                for error in Schema::compose().validate(&mut doc) {
                    failures.push(error.to_string());
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        eprintln!("{} corpus files are valid", files.len());
    }
}
