//! YAML text to a [`Node`] tree that remembers where every value came from.
//!
//! Compose applies most of its rules (interpolation, merging several files,
//! `extends`, `include`) to the untyped document, before anything is typed:
//! so does stack. The tree is built from the events of `granit-parser` (the
//! YAML 1.2 parser underneath serde-saphyr), because a typed deserializer
//! cannot hold an untyped document and forgets positions. While building,
//! aliases are expanded, merge keys (`<<: *a`, `<<: [*a, *b]`) are applied the
//! way YAML 1.1 defines them (keys written in the mapping win, then earlier
//! merged mappings win over later ones), and plain scalars are resolved with
//! the YAML 1.2 core schema (`true`, `42`, `1.5`, `null`, `~`). Each scalar
//! keeps its source text so that `VERSION: 1.10` stays `1.10`.
//!
//! Compose's own tags `!reset` and `!override` are kept on the node for the
//! merge of several files; `!!str` and friends force a scalar's type.

use std::collections::HashMap;
use std::sync::Arc;

use granit_parser::{Event, Parser, ScalarStyle};
use indexmap::IndexMap;

use super::diagnostic::{Diagnostic, Source, Span};

/// A scalar's resolved type. The text is always kept beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    Null,
    Bool,
    Int,
    Float,
    /// A string. `template` marks a string produced by interpolation: the
    /// schema may still cast it to a number or boolean where it asks for one.
    Str {
        template: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub ty: ScalarType,
}

/// One mapping entry; the key's own position is kept for "unknown key" errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key_span: Span,
    pub value: Node,
}

pub type Map = IndexMap<String, Entry>;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Map),
}

/// Compose's merge tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// `!reset`: in a later file, removes the value an earlier file set.
    Reset,
    /// `!override`: in a later file, replaces the value instead of merging.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Span,
    pub tag: Option<Tag>,
}

/// Aliases may not expand a document beyond this many nodes ("billion laughs").
const MAX_NODES: usize = 2_000_000;

impl Node {
    pub fn new(kind: Kind, span: Span) -> Node {
        Node {
            kind,
            span,
            tag: None,
        }
    }

    pub fn string(text: impl Into<String>, span: Span) -> Node {
        Node::new(
            Kind::Scalar(Scalar {
                text: text.into(),
                ty: ScalarType::Str { template: false },
            }),
            span,
        )
    }

    pub fn null(span: Span) -> Node {
        Node::new(
            Kind::Scalar(Scalar {
                text: String::new(),
                ty: ScalarType::Null,
            }),
            span,
        )
    }

    pub fn map(map: Map, span: Span) -> Node {
        Node::new(Kind::Map(map), span)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar that is not null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) if s.ty != ScalarType::Null => Some(&s.text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.ty == ScalarType::Null)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.get(key).map(|e| &e.value)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        self.as_map_mut()?.get_mut(key).map(|e| &mut e.value)
    }

    /// What a user would call this kind of value, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a sequence",
            Kind::Scalar(s) => match s.ty {
                ScalarType::Null => "null",
                ScalarType::Bool => "a boolean",
                ScalarType::Int => "an integer",
                ScalarType::Float => "a number",
                ScalarType::Str { .. } => "a string",
            },
        }
    }

    /// The tree as JSON (numbers and booleans typed, mappings in their order).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Map(m) => Value::Object(
                m.iter()
                    .map(|(k, e)| (k.clone(), e.value.to_json()))
                    .collect(),
            ),
            Kind::Seq(s) => Value::Array(s.iter().map(Node::to_json).collect()),
            Kind::Scalar(s) => scalar_json(s),
        }
    }
}

fn scalar_json(s: &Scalar) -> serde_json::Value {
    use serde_json::Value;
    match s.ty {
        ScalarType::Null => Value::Null,
        ScalarType::Bool => Value::Bool(parse_bool(&s.text).unwrap_or(false)),
        ScalarType::Int => parse_int(&s.text)
            .map(Value::from)
            .unwrap_or_else(|| Value::String(s.text.clone())),
        ScalarType::Float => parse_float(&s.text)
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.text.clone())),
        ScalarType::Str { .. } => Value::String(s.text.clone()),
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
pub fn resolve_plain(text: &str) -> ScalarType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => ScalarType::Null,
        _ if parse_bool(text).is_some() => ScalarType::Bool,
        _ if parse_int(text).is_some() => ScalarType::Int,
        _ if is_float(text) => ScalarType::Float,
        _ => ScalarType::Str { template: false },
    }
}

pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

pub fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if let Some(hex) = body.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = body.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // [0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)? with at least one digit before the exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    let dots = mantissa.bytes().filter(|b| *b == b'.').count();
    let mantissa_ok =
        digits > 0 && dots <= 1 && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

pub fn parse_float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    match body {
        ".inf" | ".Inf" | ".INF" => Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Parses every document of a YAML file. An empty file is one null document.
pub fn parse(source: &Arc<Source>) -> Result<Vec<Node>, Diagnostic> {
    let text = source.text.strip_prefix('\u{feff}').unwrap_or(&source.text);
    let mut builder = Builder {
        source,
        anchors: HashMap::new(),
        budget: MAX_NODES,
    };
    let mut events = Parser::new_from_str(text).peekable();
    let mut documents = Vec::new();
    loop {
        let (event, span) = builder.next(&mut events)?;
        match event {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                builder.anchors.clear();
                let (event, span) = builder.next(&mut events)?;
                documents.push(builder.node(event, span, &mut events)?);
            }
            _ => {
                return Err(builder.error(&span, "unexpected YAML event outside a document"));
            }
        }
    }
    Ok(documents)
}

type Events<'a> = std::iter::Peekable<Parser<'a, granit_parser::StrInput<'a>>>;

struct Builder<'s> {
    source: &'s Arc<Source>,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

impl Builder<'_> {
    fn span(&self, span: &granit_parser::Span) -> Span {
        let len = span.end.index().saturating_sub(span.start.index());
        let len = if span.end.line() == span.start.line() {
            len
        } else {
            1
        };
        Span::at(self.source, span.start.line(), span.start.col() + 1, len)
    }

    fn error(&self, span: &granit_parser::Span, message: &str) -> Diagnostic {
        Diagnostic::new(message.to_string()).at(&self.span(span))
    }

    fn next<'a>(
        &self,
        events: &mut Events<'a>,
    ) -> Result<(Event<'a>, granit_parser::Span), Diagnostic> {
        match events.next() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => {
                let m = e.marker();
                let message = e.info();
                Err(Diagnostic::new(format!(
                    "this is not valid YAML: {}",
                    if message.is_empty() {
                        "syntax error"
                    } else {
                        &message
                    }
                ))
                .at(&Span::at(self.source, m.line(), m.col() + 1, 1))
                .hint("check the indentation and the quoting around this place"))
            }
            None => Err(Diagnostic::new("the YAML ends unexpectedly").at(&Span::at(
                self.source,
                1,
                1,
                1,
            ))),
        }
    }

    fn spend(&mut self, nodes: usize, span: &granit_parser::Span) -> Result<(), Diagnostic> {
        self.budget = self.budget.checked_sub(nodes).ok_or_else(|| {
            self.error(
                span,
                "aliases expand this document beyond two million nodes",
            )
        })?;
        Ok(())
    }

    fn node<'a>(
        &mut self,
        event: Event<'a>,
        span: granit_parser::Span,
        events: &mut Events<'a>,
    ) -> Result<Node, Diagnostic> {
        self.spend(1, &span)?;
        match event {
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    self.error(&span, "this alias refers to an anchor that is not complete yet (an anchor cannot contain itself)")
                })?;
                self.spend(count(&node), &span)?;
                Ok(node)
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tag_name = tag.as_deref().map(|t| t.suffix().to_string());
                let core = tag.as_deref().is_some_and(|t| t.is_yaml_core_schema());
                let ty = match (core, tag_name.as_deref(), style) {
                    (true, Some("str"), _) => ScalarType::Str { template: false },
                    (true, Some("int"), _) => ScalarType::Int,
                    (true, Some("float"), _) => ScalarType::Float,
                    (true, Some("bool"), _) => ScalarType::Bool,
                    (true, Some("null"), _) => ScalarType::Null,
                    (_, _, ScalarStyle::Plain) => resolve_plain(&text),
                    _ => ScalarType::Str { template: false },
                };
                let mut node = Node::new(
                    Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        ty,
                    }),
                    self.span(&span),
                );
                node.tag = self.compose_tag(tag.as_deref(), core, &span)?;
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::SequenceStart(_, anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (event, inner) = self.next(events)?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, inner, events)?);
                }
                let mut node = Node::new(Kind::Seq(items), self.span(&span));
                let core = tag.as_deref().is_some_and(|t| t.is_yaml_core_schema());
                node.tag = self.compose_tag(tag.as_deref(), core, &span)?;
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(_, anchor, tag) => {
                let mut map = Map::new();
                let mut merges: Vec<Node> = Vec::new();
                loop {
                    let (event, key_span) = self.next(events)?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, key_span, events)?;
                    let (event, value_span) = self.next(events)?;
                    let value = self.node(event, value_span, events)?;
                    let Kind::Scalar(k) = &key.kind else {
                        return Err(self.error(
                            &key_span,
                            "a mapping key must be a plain value, not a sequence or mapping",
                        ));
                    };
                    if k.text == "<<" && k.ty == (ScalarType::Str { template: false }) {
                        merges.push(value);
                        continue;
                    }
                    let text = k.text.clone();
                    if let Some(previous) = map.get(&text) {
                        return Err(Diagnostic::new(format!(
                            "the key `{text}` appears twice in this mapping (first at line {})",
                            previous.key_span.line
                        ))
                        .at(&key.span)
                        .hint("remove one of them; YAML does not allow duplicate keys"));
                    }
                    map.insert(
                        text,
                        Entry {
                            key_span: key.span,
                            value,
                        },
                    );
                }
                for merge in merges {
                    self.apply_merge(&mut map, merge)?;
                }
                let mut node = Node::new(Kind::Map(map), self.span(&span));
                let core = tag.as_deref().is_some_and(|t| t.is_yaml_core_schema());
                node.tag = self.compose_tag(tag.as_deref(), core, &span)?;
                self.remember(anchor, &node);
                Ok(node)
            }
            _ => Err(self.error(&span, "unexpected YAML event")),
        }
    }

    /// `<<: *a` or `<<: [*a, *b]`: copies the keys the mapping lacks.
    fn apply_merge(&self, map: &mut Map, merge: Node) -> Result<(), Diagnostic> {
        let sources = match merge.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.kind {
                        Kind::Map(m) => maps.push(m),
                        _ => {
                            return Err(Diagnostic::new(
                                "a merge key `<<` lists something that is not a mapping",
                            )
                            .at(&item.span)
                            .hint("`<<` takes a mapping (`<<: *anchor`) or a list of mappings (`<<: [*a, *b]`)"));
                        }
                    }
                }
                maps
            }
            Kind::Scalar(_) => {
                return Err(Diagnostic::new("a merge key `<<` must refer to a mapping")
                    .at(&merge.span)
                    .hint("write `<<: *anchor` where the anchor is on a mapping"));
            }
        };
        for source in sources {
            for (key, entry) in source {
                map.entry(key).or_insert(entry);
            }
        }
        Ok(())
    }

    fn compose_tag(
        &self,
        tag: Option<&granit_parser::Tag>,
        core: bool,
        span: &granit_parser::Span,
    ) -> Result<Option<Tag>, Diagnostic> {
        let Some(tag) = tag else { return Ok(None) };
        if core {
            return Ok(None);
        }
        match (tag.handle(), tag.suffix()) {
            ("!", "reset") => Ok(Some(Tag::Reset)),
            ("!", "override") => Ok(Some(Tag::Override)),
            _ => Err(self
                .error(span, &format!("unknown YAML tag `{}`", tag.original()))
                .hint("Compose understands `!reset` and `!override`")),
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

fn count(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(_) => 1,
        Kind::Seq(s) => 1 + s.iter().map(count).sum::<usize>(),
        Kind::Map(m) => 1 + m.values().map(|e| count(&e.value)).sum::<usize>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Node {
        let src = Source::new("t.yaml", text);
        parse(&src).expect("parses").remove(0)
    }

    #[test]
    fn merge_keys_explicit_keys_win_and_earlier_merges_win() {
        let n = load(
            "x-a: &a {image: a, restart: always, user: a}\n\
             x-b: &b {image: b, user: b, hostname: b}\n\
             web:\n  <<: [*a, *b]\n  image: mine\n",
        );
        assert_eq!(
            n.get("web").unwrap().to_json(),
            json!({"image": "mine", "restart": "always", "user": "a", "hostname": "b"})
        );
    }

    #[test]
    fn single_merge_key_and_aliases() {
        let n = load("base: &b\n  a: 1\nother:\n  <<: *b\n  c: 2\nlist: [*b]\n");
        assert_eq!(n.get("other").unwrap().to_json(), json!({"a": 1, "c": 2}));
        assert_eq!(n.get("list").unwrap().to_json(), json!([{"a": 1}]));
    }

    #[test]
    fn core_schema_resolution_keeps_text() {
        let n = load("a: 1.10\nb: '1.10'\nc: true\nd: yes\ne: ~\nf: 0x1F\ng: 80:80\n");
        let s = |k: &str| n.get(k).unwrap().as_scalar().unwrap().clone();
        assert_eq!(s("a").ty, ScalarType::Float);
        assert_eq!(s("a").text, "1.10");
        assert_eq!(s("b").ty, ScalarType::Str { template: false });
        assert_eq!(s("c").ty, ScalarType::Bool);
        assert_eq!(s("d").ty, ScalarType::Str { template: false });
        assert_eq!(s("e").ty, ScalarType::Null);
        assert_eq!(n.get("f").unwrap().to_json(), json!(31));
        assert_eq!(s("g").ty, ScalarType::Str { template: false });
    }

    #[test]
    fn compose_tags_are_kept() {
        let n = load("a: !reset []\nb: !override {x: 1}\nc: !!str 5\n");
        assert_eq!(n.get("a").unwrap().tag, Some(Tag::Reset));
        assert_eq!(n.get("b").unwrap().tag, Some(Tag::Override));
        assert_eq!(n.get("c").unwrap().to_json(), json!("5"));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_positions() {
        let src = Source::new("t.yaml", "a: 1\nb: 2\na: 3\n");
        let err = parse(&src).unwrap_err();
        assert_eq!((err.span.line, err.span.col), (3, 1));
        assert!(err.message.contains("appears twice"), "{}", err.message);

        let src = Source::new("t.yaml", "a:\n  - b\n c: [\n");
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("not valid YAML"), "{}", err.message);
        assert!(err.span.line >= 2);
    }

    #[test]
    fn positions_are_one_based() {
        let n = load("services:\n  web:\n    image: x\n");
        let web = n
            .get("services")
            .unwrap()
            .as_map()
            .unwrap()
            .get("web")
            .unwrap();
        assert_eq!((web.key_span.line, web.key_span.col), (2, 3));
        let image = web.value.get("image").unwrap();
        assert_eq!((image.span.line, image.span.col), (3, 12));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let src = Source::new("t.yaml", text);
        assert!(parse(&src).unwrap_err().message.contains("two million"));
    }

    #[test]
    fn empty_file_is_one_null_document_or_none() {
        let src = Source::new("t.yaml", "");
        let docs = parse(&src).unwrap();
        assert!(docs.iter().all(Node::is_null));
    }
}
