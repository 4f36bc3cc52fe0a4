//! Generic checks of a decoded property map against the JSON schema of the struct it must
//! become (as schemars derives it), run by the dispatcher before serde and before the
//! resource sees a value: JSON types (an object where an object is expected, a list where a
//! list is, a string, a boolean, a number), strings holding a NUL character, and properties
//! the schema does not know (a typo such as `buildArg`: reported as a warning naming the
//! closest known property, never a failure), and lists and objects nested deeper than the
//! codec reads ([`Decoded::too_deep`]: a failure of the top-level property they are in,
//! unless they are inside a property the schema does not know, which is ignored). Also [`hide_secret_value`]: a failure on a
//! secret names the expected type, never the value.
//!
//! No message here quotes a value: each names the path and what was expected. Nothing here
//! knows a resource. Not for: a resource's own rules (its `validate`), or masking secrets in
//! free text (see [`crate::redact`]).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::resource::CheckFailure;
use crate::rpc::codec::{Decoded, MAX_NESTING, PropertyPath, Seg, alternatives, resolve};

/// What [`check`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    /// Values that cannot be right: a wrong JSON type, a NUL character.
    pub failures: Vec<CheckFailure>,
    /// One sentence per property the schema does not know (the decoder ignores it).
    pub unknown_properties: Vec<String>,
}

/// Checks `d` against `schema`. Unknown values (preview) and `null`s are not judged.
pub fn check(schema: &Value, d: &Decoded) -> Findings {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut w = Walker {
        defs: &defs,
        decoded: d,
        out: Findings::default(),
    };
    w.members(schema, &d.value, &PropertyPath::root());
    w.out
}

struct Walker<'a> {
    defs: &'a Value,
    decoded: &'a Decoded,
    out: Findings,
}

impl Walker<'_> {
    fn fail(&mut self, path: &PropertyPath, reason: String) {
        self.out.failures.push(CheckFailure::new(path, reason));
    }

    /// A list or object the codec did not read, being too deep: fails the top-level property
    /// it is in, once.
    fn too_deep(&mut self, path: &PropertyPath) {
        let property = path.top_level();
        if !self.out.failures.iter().any(|f| f.property == property) {
            self.out
                .failures
                .push(CheckFailure::new(property, too_deep_reason()));
        }
    }

    fn value(&mut self, schema: &Value, v: &Value, path: &PropertyPath) {
        if self.decoded.too_deep.contains(path) {
            return self.too_deep(path);
        }
        if v.is_null() || self.decoded.is_unknown(path) {
            return;
        }
        let alts = alternatives(schema, self.defs);
        if alts.iter().any(|a| types_of(a).is_none()) {
            // The schema does not constrain the type here.
            return self.only_nuls(v, path);
        }
        let Some(alt) = alts
            .iter()
            .find(|a| types_of(a).is_some_and(|ts| ts.iter().any(|t| is_type(v, t))))
        else {
            let expected = describe_all(&alts, self.defs);
            return self.fail(path, format!("expected {expected}, got {}", kind(v)));
        };
        match v {
            Value::String(s) if s.contains('\0') => self.fail(path, NUL_REASON.to_string()),
            Value::Object(m) => self.members(alt, m, path),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = path.child(Seg::Index(i));
                    match alt.get("items") {
                        Some(sub) => self.value(sub, item, &child),
                        None => self.only_nuls(item, &child),
                    }
                }
            }
            _ => {}
        }
    }

    /// The members of an object whose schema is `schema`.
    fn members(&mut self, schema: &Value, m: &Map<String, Value>, path: &PropertyPath) {
        let schema = resolve(schema, self.defs);
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        for (k, v) in m {
            let child = path.child(Seg::Key(k.clone()));
            if let Some(sub) = props.and_then(|p| p.get(k)) {
                self.value(sub, v, &child);
                continue;
            }
            match extra {
                Some(sub) if sub.is_object() => {
                    if k.contains('\0') {
                        self.fail(path, format!("a key {NUL_REASON}"));
                    }
                    self.value(sub, v, &child);
                }
                Some(Value::Bool(false)) | None if props.is_some() => {
                    if !k.starts_with("__") {
                        let known: Vec<&String> =
                            props.map(|p| p.keys().collect()).unwrap_or_default();
                        self.out
                            .unknown_properties
                            .push(unknown_property(&child, &known));
                    }
                }
                _ => self.only_nuls(v, &child),
            }
        }
    }

    /// A value the schema says nothing about: only NUL characters are looked for.
    fn only_nuls(&mut self, v: &Value, path: &PropertyPath) {
        if self.decoded.too_deep.contains(path) {
            return self.too_deep(path);
        }
        if self.decoded.is_unknown(path) {
            return;
        }
        match v {
            Value::String(s) if s.contains('\0') => self.fail(path, NUL_REASON.to_string()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.only_nuls(item, &path.child(Seg::Index(i)));
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    if k.contains('\0') {
                        self.fail(path, format!("a key {NUL_REASON}"));
                    }
                    self.only_nuls(item, &path.child(Seg::Key(k.clone())));
                }
            }
            _ => {}
        }
    }
}

/// Why a value nested deeper than the codec reads fails.
fn too_deep_reason() -> String {
    format!(
        "is nested too deeply: it holds lists or objects more than {MAX_NESTING} levels one inside the other (a secret counts as one): flatten it"
    )
}

const NUL_REASON: &str = "holds a NUL character (\\0), which no input may contain (nothing downstream can pass it on): remove it";

/// The JSON types a schema allows (without `null`), or `None` when it does not say.
fn types_of(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
        ),
        _ => None,
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match (t, v) {
        ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// What a value is, in words, without the value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe_all(alts: &[&Value], defs: &Value) -> String {
    let mut words: Vec<String> = Vec::new();
    for alt in alts {
        for w in describe(alt, defs) {
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    if words.is_empty() {
        "a value".to_string()
    } else {
        words.join(" or ")
    }
}

/// What a schema asks for, in words (one phrase per allowed type).
fn describe(schema: &Value, defs: &Value) -> Vec<String> {
    let schema = resolve(schema, defs);
    let Some(types) = types_of(schema) else {
        return vec!["a value".to_string()];
    };
    types
        .into_iter()
        .map(|t| match t {
            "array" => match schema.get("items") {
                Some(items) => format!("a list of {}", plural(items, defs)),
                None => "a list".to_string(),
            },
            "object" => {
                let props = schema.get("properties").and_then(Value::as_object);
                match (props, schema.get("additionalProperties")) {
                    (Some(p), _) if !p.is_empty() => format!(
                        "an object with {}",
                        p.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                    ),
                    (_, Some(extra)) if extra.is_object() => {
                        format!("a map of {}", plural(extra, defs))
                    }
                    _ => "an object".to_string(),
                }
            }
            other => singular(other).to_string(),
        })
        .collect()
}

fn singular(t: &str) -> &'static str {
    match t {
        "string" => "a string",
        "boolean" => "a boolean (true or false)",
        "integer" => "a whole number",
        "number" => "a number",
        "array" => "a list",
        "object" => "an object",
        _ => "a value",
    }
}

fn plural(schema: &Value, defs: &Value) -> &'static str {
    let alts = alternatives(schema, defs);
    match alts.first().and_then(|a| types_of(a)).as_deref() {
        Some(["string"]) => "strings",
        Some(["boolean"]) => "booleans",
        Some(["integer"]) => "whole numbers",
        Some(["number"]) => "numbers",
        Some(["array"]) => "lists",
        Some(["object"]) => "objects",
        _ => "values",
    }
}

/// The warning for a property the schema does not know, naming the closest known one.
fn unknown_property(path: &PropertyPath, known: &[&String]) -> String {
    let Some(Seg::Key(name)) = path.0.last() else {
        return format!("{path} is not a known property and is ignored");
    };
    let parent = PropertyPath(path.0[..path.0.len() - 1].to_vec());
    let full = |k: &str| parent.child(Seg::Key(k.to_string())).to_string();
    match closest(name, known.iter().map(|k| k.as_str())) {
        Some(k) => format!(
            "{path} is not a known property and is ignored: did you mean {}?",
            full(k)
        ),
        None => format!(
            "{path} is not a known property and is ignored; the known ones are {}",
            known.iter().map(|k| full(k)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The candidate closest to `name` by edit distance (ignoring case, `_` and `-`), when it is
/// close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let n = norm(name);
    candidates
        .map(|c| (edit_distance(&n, &norm(c)), c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1) && *d < n.len().max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of neighbours
/// (optimal string alignment).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `f` unchanged, unless its property is secret (at or beneath a path of `secrets`): then
/// its reason, which may quote the value, is replaced by one that names what `schema`
/// expects there (type and description) and not the value.
pub fn hide_secret_value(
    schema: &Value,
    secrets: &BTreeSet<PropertyPath>,
    f: CheckFailure,
) -> CheckFailure {
    if !secrets.iter().any(|s| f.property.starts_with(s)) {
        return f;
    }
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let (expected, doc) = expected_at(schema, &defs, &f.property);
    let doc = doc.map(|d| format!(" ({d})")).unwrap_or_default();
    CheckFailure::new(
        f.property,
        format!(
            "the value is not valid; it is secret, so it is not shown: expected {expected}{doc}"
        ),
    )
}

/// What the schema expects at `path`, and the first sentence of the closest description
/// on the way there.
fn expected_at(schema: &Value, defs: &Value, path: &PropertyPath) -> (String, Option<String>) {
    let mut cur = vec![schema];
    let mut doc = None;
    for seg in &path.0 {
        let next: Vec<&Value> = cur
            .iter()
            .flat_map(|s| alternatives(s, defs))
            .filter_map(|alt| match seg {
                Seg::Key(k) => alt
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or(alt.get("additionalProperties").filter(|v| v.is_object())),
                Seg::Index(_) => alt.get("items"),
            })
            .collect();
        if next.is_empty() {
            return ("a valid value".to_string(), doc);
        }
        if let Some(d) = next
            .iter()
            .find_map(|s| s.get("description").and_then(Value::as_str))
        {
            doc = Some(first_sentence(d));
        }
        cur = next;
    }
    let alts: Vec<&Value> = cur.iter().flat_map(|s| alternatives(s, defs)).collect();
    (describe_all(&alts, defs), doc)
}

fn first_sentence(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(i) => flat[..=i].to_string(),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": ["array", "null"], "items": {"type": "string"},
                         "description": "More tags. Second sentence."},
                "buildArgs": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                "push": {"type": "boolean"},
                "count": {"type": ["integer", "null"]},
                "anything": true,
                "registry": {"anyOf": [{"$ref": "#/$defs/Registry"}, {"type": "null"}]}
            },
            "$defs": {"Registry": {"type": "object", "properties": {
                "server": {"type": "string"},
                "password": {"type": ["string", "null"], "secret": true,
                             "description": "The password."}
            }}}
        })
    }

    fn decoded(v: Value) -> Decoded {
        Decoded {
            value: v.as_object().cloned().unwrap_or_default(),
            ..Decoded::default()
        }
    }

    fn failures(v: Value) -> Vec<(String, String)> {
        check(&schema(), &decoded(v))
            .failures
            .into_iter()
            .map(|f| (f.property.to_string(), f.reason))
            .collect()
    }

    #[test]
    fn json_types_are_checked_against_the_schema_without_quoting_values() {
        let f = failures(json!({
            "name": 918273645,
            "tags": "solo",
            "buildArgs": {"A": 1, "B": "ok"},
            "push": "yes",
            "count": 1.5,
            "registry": ["x"],
        }));
        let expected = vec![
            ("name", "expected a string, got a number"),
            ("tags", "expected a list of strings, got a string"),
            ("buildArgs.A", "expected a string, got a number"),
            ("push", "expected a boolean (true or false), got a string"),
            ("count", "expected a whole number, got a number"),
            (
                "registry",
                "expected an object with server, password, got a list",
            ),
        ];
        let got: Vec<(&str, &str)> = f.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
        assert_eq!(got, expected);
        for (_, r) in &f {
            assert!(!r.contains("918273645") && !r.contains("solo") && !r.contains("yes"));
        }
    }

    #[test]
    fn right_types_nulls_and_unknowns_pass() {
        assert!(
            failures(json!({
                "name": "a", "tags": ["x"], "buildArgs": {"A": "1"}, "push": true,
                "count": 3, "anything": {"x": [1, "y"]}, "registry": {"server": "s"},
                "tags2": 5
            }))
            .is_empty()
        );
        assert!(failures(json!({"name": null, "registry": null, "count": 2.0})).is_empty());
        let mut d = decoded(json!({"name": "", "tags": [null, "x"]}));
        d.unknowns.insert(PropertyPath::keys(&["name"]));
        d.unknowns
            .insert(PropertyPath(vec![Seg::Key("tags".into()), Seg::Index(0)]));
        assert!(check(&schema(), &d).failures.is_empty());
    }

    #[test]
    fn a_nul_anywhere_fails_naming_its_path() {
        let f = failures(json!({
            "name": "a\u{0}b",
            "tags": ["ok", "x\u{0}"],
            "buildArgs": {"A": "1\u{0}", "K\u{0}": "v"},
            "anything": {"deep": ["\u{0}"]},
            "registry": {"server": "s", "password": "p\u{0}w"},
        }));
        let props: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            props,
            vec![
                "name",
                "tags[1]",
                "buildArgs.A",
                "buildArgs",
                "anything.deep[0]",
                "registry.password"
            ]
        );
        for (_, r) in &f {
            assert!(r.contains("NUL"), "{r}");
            assert!(!r.contains("p\u{0}w"));
        }
    }

    #[test]
    fn unknown_properties_are_reported_with_the_closest_known_name() {
        let found = check(
            &schema(),
            &decoded(json!({
                "name": "a",
                "tag": ["x"],
                "build_args": {},
                "registry": {"server": "s", "pasword": "p"},
                "zzzzzz": 1,
                "__defaults": [],
            })),
        );
        assert!(found.failures.is_empty(), "{:?}", found.failures);
        assert_eq!(
            found.unknown_properties,
            vec![
                "tag is not a known property and is ignored: did you mean tags?",
                "build_args is not a known property and is ignored: did you mean buildArgs?",
                "registry.pasword is not a known property and is ignored: did you mean registry.password?",
                "zzzzzz is not a known property and is ignored; the known ones are name, tags, buildArgs, push, count, anything, registry",
            ]
        );
    }

    #[test]
    fn closest_needs_a_likely_typo() {
        let known = ["secrets", "buildArgs", "name", "dockerfile", "tags"];
        let c = |n: &str| closest(n, known.iter().copied());
        assert_eq!(c("secret"), Some("secrets"));
        assert_eq!(c("buildArg"), Some("buildArgs"));
        assert_eq!(c("dockerFile"), Some("dockerfile"));
        assert_eq!(c("nmae"), Some("name"));
        assert_eq!(c("x"), None);
        assert_eq!(c("platform"), None);
    }

    #[test]
    fn a_failure_on_a_secret_names_the_type_not_the_value() {
        let secrets: BTreeSet<PropertyPath> = [
            PropertyPath::keys(&["registry", "password"]),
            PropertyPath::keys(&["tags"]),
        ]
        .into_iter()
        .collect();
        let hide = |p: &str, r: &str| {
            let p = PropertyPath::parse(p).unwrap();
            hide_secret_value(&schema(), &secrets, CheckFailure::new(p, r))
        };
        let f = hide(
            "registry.password",
            "invalid type: integer `918273645`, expected a string",
        );
        assert_eq!(f.property, "registry.password");
        assert_eq!(
            f.reason,
            "the value is not valid; it is secret, so it is not shown: expected a string (The password.)"
        );
        let f = hide("tags[0]", "the tag \"-bad\" must be …");
        assert_eq!(
            f.reason,
            "the value is not valid; it is secret, so it is not shown: expected a string (More tags.)"
        );
        let f = hide("tags", "x");
        assert!(
            f.reason.contains("expected a list of strings"),
            "{}",
            f.reason
        );
        // Not secret: unchanged.
        let f = hide("name", "\"Bad\" is not a valid image reference");
        assert_eq!(f.reason, "\"Bad\" is not a valid image reference");
    }
}
