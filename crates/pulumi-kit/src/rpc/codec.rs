//! The property-value codec: Pulumi's `google.protobuf.Struct` property maps to and from
//! plain JSON that serde can turn into typed Rust structs.
//!
//! Pulumi encodes two things inside ordinary values that JSON has no word for: *unknown*
//! values (a magic string, sent during preview for outputs not yet known) and *secrets* (an
//! object carrying a signature key). On the way in, [`decode`] strips both and records where
//! they were ([`Decoded::unknowns`], [`Decoded::secrets`]); on the way out, [`encode`] puts
//! them back, adding every path the schema marks `secret`. Lists and objects nested deeper
//! than [`MAX_NESTING`] are not read ([`Decoded::too_deep`]), so no map, however deep, makes
//! this or anything after it recurse deeper than that. Nothing here knows any resource:
//! what is secret comes from the JSON schema of the struct being encoded.
//!
//! Not for: validation of values ([`crate::validation`] and the resource's `validate` and
//! `check` do that) or schema generation.

use std::collections::BTreeSet;

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// The string Pulumi sends for a value that is not known yet (preview).
pub const UNKNOWN: &str = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
/// The key under which special objects carry their signature.
pub const SIG_KEY: &str = "4dabf18193072939515e22adb298388d";
/// Signature of a secret: `{SIG_KEY: SECRET_SIG, "value": …}`.
pub const SECRET_SIG: &str = "1b47061264138c4ac30d75fd1eb44270";
/// Signature of an output value: `{SIG_KEY: OUTPUT_SIG, "value"?: …, "secret"?: bool, …}`.
pub const OUTPUT_SIG: &str = "d0e6a833031e9bbcd3f4e8bde6ca49a4";

/// How many lists and objects may lie one inside the other in one property value, counted
/// as sent (the object wrapping a secret or an output value is one of them). A list or
/// object deeper than that is not read: [`decode`] records its path in
/// [`Decoded::too_deep`], and validation fails the property it is in. 32 is as deep as
/// prost decodes a request (see [`crate::rpc::nesting`], which cuts deeper values out of the
/// wire bytes before prost sees them), and far deeper than any resource's inputs need.
pub const MAX_NESTING: usize = 32;

pub use crate::path::{PropertyPath, Seg};

/// A property map decoded to JSON, with the places of secrets and unknowns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The plain value: secrets unwrapped, unknowns replaced by `null`.
    pub value: Map<String, Value>,
    /// Paths whose value arrived as a secret.
    pub secrets: BTreeSet<PropertyPath>,
    /// Paths whose value arrived unknown.
    pub unknowns: BTreeSet<PropertyPath>,
    /// Paths where a list or object lies deeper than [`MAX_NESTING`] in its property value:
    /// it was not read (`null` here).
    pub too_deep: BTreeSet<PropertyPath>,
}

impl Decoded {
    pub fn is_unknown(&self, path: &PropertyPath) -> bool {
        self.unknowns.iter().any(|u| path.starts_with(u))
    }

    /// Every secret path of this map: those that arrived as secrets, and those `schema` marks
    /// `"secret": true` (see [`schema_secret_paths`]).
    pub fn secret_paths(&self, schema: &Value) -> BTreeSet<PropertyPath> {
        let mut paths = schema_secret_paths(schema, &self.value);
        paths.extend(self.secrets.iter().cloned());
        paths
    }

    /// True when any unknown lies at or beneath `path`.
    pub fn contains_unknown(&self, path: &PropertyPath) -> bool {
        self.unknowns
            .iter()
            .any(|u| u.starts_with(path) || path.starts_with(u))
    }
}

/// Decodes a property map. Lists and objects deeper than [`MAX_NESTING`] are not read (see
/// [`Decoded::too_deep`]): however deep the map, this recurses no deeper than that.
pub fn decode(s: &prost_types::Struct) -> Decoded {
    let mut d = Decoded::default();
    let root = PropertyPath::root();
    for (k, v) in &s.fields {
        let path = root.child(Seg::Key(k.clone()));
        let value = decode_value(v, &path, 0, &mut d);
        d.value.insert(k.clone(), value);
    }
    d
}

/// `v`, lying `depth` lists and objects deep in its property value.
fn decode_value(
    v: &prost_types::Value,
    path: &PropertyPath,
    depth: usize,
    d: &mut Decoded,
) -> Value {
    if matches!(v.kind, Some(Kind::ListValue(_) | Kind::StructValue(_))) && depth >= MAX_NESTING {
        d.too_deep.insert(path.clone());
        return Value::Null;
    }
    let depth = depth + 1;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) if s == UNKNOWN => {
            d.unknowns.insert(path.clone());
            Value::Null
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(l)) => Value::Array(
            l.values
                .iter()
                .enumerate()
                .map(|(i, v)| decode_value(v, &path.child(Seg::Index(i)), depth, d))
                .collect(),
        ),
        Some(Kind::StructValue(s)) => match signature(s) {
            Some(SECRET_SIG) => {
                d.secrets.insert(path.clone());
                match s.fields.get("value") {
                    Some(inner) => decode_value(inner, path, depth, d),
                    None => Value::Null,
                }
            }
            Some(OUTPUT_SIG) => {
                if matches!(
                    s.fields.get("secret").and_then(|v| v.kind.as_ref()),
                    Some(Kind::BoolValue(true))
                ) {
                    d.secrets.insert(path.clone());
                }
                match s.fields.get("value") {
                    Some(inner) => decode_value(inner, path, depth, d),
                    None => {
                        d.unknowns.insert(path.clone());
                        Value::Null
                    }
                }
            }
            // Assets, archives and resource references pass through as plain objects.
            _ => Value::Object(
                s.fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            decode_value(v, &path.child(Seg::Key(k.clone())), depth, d),
                        )
                    })
                    .collect(),
            ),
        },
    }
}

fn signature(s: &prost_types::Struct) -> Option<&str> {
    match s.fields.get(SIG_KEY).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(sig)) => Some(sig.as_str()),
        _ => None,
    }
}

fn number(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() < EXACT {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Encodes a property map. `unknowns` are written as Pulumi's unknown marker (whatever the
/// value holds there); `secrets` are wrapped as secrets. Paths that do not exist in `value`
/// are created for unknowns and ignored for secrets.
pub fn encode(
    value: &Map<String, Value>,
    secrets: &BTreeSet<PropertyPath>,
    unknowns: &BTreeSet<PropertyPath>,
) -> prost_types::Struct {
    let mut value = value.clone();
    for u in unknowns {
        set_path(&mut value, u, Value::String(UNKNOWN.to_string()));
    }
    let root = PropertyPath::root();
    prost_types::Struct {
        fields: value
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    encode_value(v, &root.child(Seg::Key(k.clone())), secrets),
                )
            })
            .collect(),
    }
}

fn encode_value(
    v: &Value,
    path: &PropertyPath,
    secrets: &BTreeSet<PropertyPath>,
) -> prost_types::Value {
    let plain = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a
                .iter()
                .enumerate()
                .map(|(i, v)| encode_value(v, &path.child(Seg::Index(i)), secrets))
                .collect(),
        }),
        Value::Object(m) => Kind::StructValue(prost_types::Struct {
            fields: m
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        encode_value(v, &path.child(Seg::Key(k.clone())), secrets),
                    )
                })
                .collect(),
        }),
    };
    let plain = prost_types::Value { kind: Some(plain) };
    // A secret that is null stays null: there is nothing to hide, and Pulumi treats a
    // secret null as a set value.
    if secrets.contains(path) && !v.is_null() {
        wrap_secret(plain)
    } else {
        plain
    }
}

/// Wraps a value in Pulumi's secret envelope.
pub fn wrap_secret(v: prost_types::Value) -> prost_types::Value {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(SIG_KEY.to_string(), string_value(SECRET_SIG));
    fields.insert("value".to_string(), v);
    prost_types::Value {
        kind: Some(Kind::StructValue(prost_types::Struct { fields })),
    }
}

pub fn string_value(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

/// Sets `path` in `map` to `v`, creating objects (never arrays) on the way.
pub fn set_path(map: &mut Map<String, Value>, path: &PropertyPath, v: Value) {
    let Some((first, rest)) = path.0.split_first() else {
        return;
    };
    let Seg::Key(k) = first else { return };
    if rest.is_empty() {
        map.insert(k.clone(), v);
        return;
    }
    let slot = map.entry(k.clone()).or_insert(Value::Null);
    set_in_value(slot, rest, v);
}

fn set_in_value(slot: &mut Value, path: &[Seg], v: Value) {
    let Some((first, rest)) = path.split_first() else {
        *slot = v;
        return;
    };
    match first {
        Seg::Key(k) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(m) = slot {
                set_in_value(m.entry(k.clone()).or_insert(Value::Null), rest, v);
            }
        }
        Seg::Index(i) => {
            if let Value::Array(a) = slot
                && let Some(item) = a.get_mut(*i)
            {
                set_in_value(item, rest, v);
            }
        }
    }
}

/// Reads the value at `path`, if present.
pub fn get_path<'a>(map: &'a Map<String, Value>, path: &PropertyPath) -> Option<&'a Value> {
    let (first, rest) = path.0.split_first()?;
    let Seg::Key(k) = first else { return None };
    let mut cur = map.get(k)?;
    for seg in rest {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The credentials written into URLs anywhere in `value`: for each string that is a URL with
/// a user part (`scheme://user:password@host/…`), its path and the password, or for an
/// `http(s)` URL without one, the user itself when it is as long as a token (a token spelt
/// as the user, as `https://TOKEN@github.com/…`). They are secrets wherever they are (a git context's URL, a
/// registry's): the dispatcher keeps their paths secret on the way out and masks the
/// credential in everything it says.
pub fn url_credentials(value: &Map<String, Value>) -> Vec<(PropertyPath, String)> {
    fn walk(v: &Value, at: &PropertyPath, out: &mut Vec<(PropertyPath, String)>) {
        match v {
            Value::String(s) => {
                if let Some(c) = url_credential(s) {
                    out.push((at.clone(), c.to_string()));
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &at.clone().at(i), out);
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    walk(item, &at.clone().field(k), out);
                }
            }
            Value::Bool(_) | Value::Number(_) | Value::Null => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in value {
        walk(v, &PropertyPath::key(k), &mut out);
    }
    out
}

/// The shortest user part of an `http(s)` URL taken for a token (GitHub's are 40 characters,
/// GitLab's 26).
const MIN_URL_TOKEN: usize = 16;

/// The credential of one URL (see [`url_credentials`]), if it has one.
pub fn url_credential(text: &str) -> Option<&str> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _host) = authority.rsplit_once('@')?;
    match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => Some(password),
        Some(_) => None,
        // A user alone is a token only when it is long enough to be one (`git@`, `me@` are
        // names, and masking them would mask the word everywhere).
        None if matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
            && userinfo.len() >= MIN_URL_TOKEN =>
        {
            Some(userinfo)
        }
        None => None,
    }
}

/// The paths of `value` that `schema` (a JSON schema as schemars derives it, with `$defs`)
/// marks `"secret": true`. Follows `$ref`, `anyOf`/`oneOf`, arrays and maps.
pub fn schema_secret_paths(schema: &Value, value: &Map<String, Value>) -> BTreeSet<PropertyPath> {
    let mut out = BTreeSet::new();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    walk_object(schema, &defs, value, &PropertyPath::root(), &mut out);
    out
}

pub(crate) fn resolve<'a>(mut schema: &'a Value, defs: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.rsplit('/').next().and_then(|name| defs.get(name)) {
                Some(target) => schema = target,
                None => return schema,
            },
            None => return schema,
        }
    }
    schema
}

/// The non-null alternatives of a schema (`anyOf`/`oneOf` with a `null` branch, as derived for
/// `Option<T>`), resolved through `$ref`.
pub(crate) fn alternatives<'a>(schema: &'a Value, defs: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(schema, defs);
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            return alts
                .iter()
                .map(|a| resolve(a, defs))
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
        }
    }
    vec![schema]
}

fn walk_object(
    schema: &Value,
    defs: &Value,
    value: &Map<String, Value>,
    path: &PropertyPath,
    out: &mut BTreeSet<PropertyPath>,
) {
    for schema in alternatives(schema, defs) {
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties").filter(|v| v.is_object());
        for (k, v) in value {
            let child = path.child(Seg::Key(k.clone()));
            let sub = props.and_then(|p| p.get(k)).or(extra);
            if let Some(sub) = sub {
                walk_value(sub, defs, v, &child, out);
            }
        }
    }
}

fn walk_value(
    schema: &Value,
    defs: &Value,
    value: &Value,
    path: &PropertyPath,
    out: &mut BTreeSet<PropertyPath>,
) {
    if schema.get("secret").and_then(Value::as_bool) == Some(true) {
        out.insert(path.clone());
    }
    match value {
        Value::Object(m) => walk_object(schema, defs, m, path, out),
        Value::Array(a) => {
            for alt in alternatives(schema, defs) {
                if let Some(items) = alt.get("items") {
                    for (i, v) in a.iter().enumerate() {
                        walk_value(items, defs, v, &path.child(Seg::Index(i)), out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Fills each unknown path of a *required* property with a zero value of the type the
/// schema gives it, so that serde can build the typed struct in preview. Optional
/// properties stay `null` (`None`). The resource learns what was unknown from
/// [`Decoded::unknowns`], never from the zero value.
pub fn fill_unknowns(schema: &Value, d: &mut Decoded) {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let unknowns: Vec<PropertyPath> = d.unknowns.iter().cloned().collect();
    for path in unknowns {
        if let Some(zero) = zero_at(schema, &defs, &path.0) {
            set_path(&mut d.value, &path, zero);
        }
    }
}

fn zero_at(schema: &Value, defs: &Value, path: &[Seg]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    for alt in alternatives(schema, defs) {
        let (sub, required) = match first {
            Seg::Key(k) => {
                let required = alt
                    .get("required")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(k)));
                match alt.get("properties").and_then(|p| p.get(k)) {
                    Some(sub) => (sub, required),
                    None => match alt.get("additionalProperties").filter(|v| v.is_object()) {
                        Some(sub) => (sub, true),
                        None => continue,
                    },
                }
            }
            Seg::Index(_) => match alt.get("items") {
                Some(sub) => (sub, true),
                None => continue,
            },
        };
        if !rest.is_empty() {
            return zero_at(sub, defs, rest);
        }
        if !required {
            return None;
        }
        return Some(zero_of(sub, defs));
    }
    None
}

fn zero_of(schema: &Value, defs: &Value) -> Value {
    let schema = alternatives(schema, defs)
        .into_iter()
        .next()
        .unwrap_or(schema);
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "null",
    };
    match ty {
        "string" => Value::String(String::new()),
        "boolean" => Value::Bool(false),
        "integer" | "number" => Value::Number(0.into()),
        "array" => Value::Array(Vec::new()),
        "object" => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn url_credentials_are_the_passwords_and_tokens_of_urls() {
        assert_eq!(
            url_credential("https://u:p4ss@h.example/r.git#main"),
            Some("p4ss")
        );
        assert_eq!(
            url_credential("https://ghp_0123456789abcdef@github.com/o/r.git"),
            Some("ghp_0123456789abcdef")
        );
        assert_eq!(
            url_credential("https://git@github.com/o/r.git"),
            None,
            "a name"
        );
        assert_eq!(url_credential("ssh://git@github.com/o/r.git"), None);
        assert_eq!(url_credential("git@github.com:o/r.git"), None);
        assert_eq!(
            url_credential("https://h.example/a@b"),
            None,
            "an @ in the path"
        );
        assert_eq!(url_credential("https://u:@h.example/"), None);
        assert_eq!(url_credential("docker-image://alpine@sha256:abc"), None);
        let value: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "buildContexts": {"src": "https://u:s3cret@h.example/r.git", "dir": "./x"},
            "tags": ["a", "git://x:y@h/r"],
        }))
        .unwrap();
        let found = url_credentials(&value);
        assert_eq!(
            found,
            vec![
                (
                    PropertyPath::key("buildContexts").field("src"),
                    "s3cret".to_string()
                ),
                (PropertyPath::key("tags").at(1), "y".to_string()),
            ]
        );
    }
    use super::*;
    use serde_json::json;

    fn pv(kind: Kind) -> prost_types::Value {
        prost_types::Value { kind: Some(kind) }
    }

    fn st(pairs: Vec<(&str, prost_types::Value)>) -> prost_types::Struct {
        prost_types::Struct {
            fields: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn secret(v: prost_types::Value) -> prost_types::Value {
        wrap_secret(v)
    }

    fn s(x: &str) -> prost_types::Value {
        string_value(x)
    }

    fn list(v: Vec<prost_types::Value>) -> prost_types::Value {
        pv(Kind::ListValue(prost_types::ListValue { values: v }))
    }

    fn obj(pairs: Vec<(&str, prost_types::Value)>) -> prost_types::Value {
        pv(Kind::StructValue(st(pairs)))
    }

    #[test]
    fn every_value_kind_round_trips() {
        let input = st(vec![
            ("null", pv(Kind::NullValue(0))),
            ("yes", pv(Kind::BoolValue(true))),
            ("int", pv(Kind::NumberValue(42.0))),
            ("neg", pv(Kind::NumberValue(-7.0))),
            ("float", pv(Kind::NumberValue(1.5))),
            ("str", s("hello")),
            ("empty", s("")),
            (
                "list",
                list(vec![s("a"), pv(Kind::NumberValue(2.0)), list(vec![])]),
            ),
            (
                "map",
                obj(vec![
                    ("k", s("v")),
                    ("nested", obj(vec![("x", pv(Kind::BoolValue(false)))])),
                ]),
            ),
        ]);
        let d = decode(&input);
        assert!(d.secrets.is_empty() && d.unknowns.is_empty());
        assert_eq!(d.value["int"], json!(42));
        assert!(
            d.value["int"].is_i64(),
            "integral numbers decode as integers"
        );
        assert_eq!(d.value["float"], json!(1.5));
        assert_eq!(d.value["list"], json!(["a", 2, []]));
        assert_eq!(d.value["map"]["nested"]["x"], json!(false));
        let back = encode(&d.value, &d.secrets, &d.unknowns);
        assert_eq!(back, input);
    }

    #[test]
    fn secrets_nested_in_lists_and_maps_round_trip() {
        let input = st(vec![
            ("top", secret(s("pw"))),
            ("list", list(vec![s("a"), secret(s("b"))])),
            (
                "map",
                obj(vec![("k", secret(obj(vec![("inner", s("v"))])))]),
            ),
        ]);
        let d = decode(&input);
        assert_eq!(d.value["top"], json!("pw"));
        assert_eq!(d.value["list"], json!(["a", "b"]));
        assert_eq!(d.value["map"]["k"]["inner"], json!("v"));
        let expected: BTreeSet<_> = [
            PropertyPath::keys(&["top"]),
            PropertyPath(vec![Seg::Key("list".into()), Seg::Index(1)]),
            PropertyPath::keys(&["map", "k"]),
        ]
        .into_iter()
        .collect();
        assert_eq!(d.secrets, expected);
        assert_eq!(encode(&d.value, &d.secrets, &d.unknowns), input);
    }

    #[test]
    fn unknowns_nested_in_lists_and_maps_round_trip() {
        let input = st(vec![
            ("top", s(UNKNOWN)),
            ("list", list(vec![s("a"), s(UNKNOWN)])),
            ("map", obj(vec![("k", s(UNKNOWN)), ("j", s("known"))])),
            ("secretUnknown", secret(s(UNKNOWN))),
        ]);
        let d = decode(&input);
        assert_eq!(d.value["top"], Value::Null);
        assert_eq!(d.value["list"], json!(["a", null]));
        assert_eq!(d.unknowns.len(), 4);
        assert!(d.is_unknown(&PropertyPath::keys(&["map", "k"])));
        assert!(!d.is_unknown(&PropertyPath::keys(&["map", "j"])));
        assert!(d.contains_unknown(&PropertyPath::keys(&["map"])));
        assert_eq!(encode(&d.value, &d.secrets, &d.unknowns), input);
    }

    #[test]
    fn output_values_decode_to_value_unknown_and_secret() {
        let out = |pairs: Vec<(&str, prost_types::Value)>| {
            let mut p = vec![(SIG_KEY, s(OUTPUT_SIG))];
            p.extend(pairs);
            obj(p)
        };
        let input = st(vec![
            ("known", out(vec![("value", s("x"))])),
            ("unknown", out(vec![])),
            (
                "secret",
                out(vec![
                    ("value", s("y")),
                    ("secret", pv(Kind::BoolValue(true))),
                ]),
            ),
        ]);
        let d = decode(&input);
        assert_eq!(d.value["known"], json!("x"));
        assert!(d.unknowns.contains(&PropertyPath::keys(&["unknown"])));
        assert!(d.secrets.contains(&PropertyPath::keys(&["secret"])));
        assert_eq!(d.value["secret"], json!("y"));
    }

    #[test]
    fn schema_marks_secret_paths_through_refs_and_options() {
        let schema = json!({
            "type": "object",
            "properties": {
                "registry": {"anyOf": [{"$ref": "#/$defs/Registry"}, {"type": "null"}]},
                "registries": {"type": "array", "items": {"$ref": "#/$defs/Registry"}},
                "plain": {"type": "string"}
            },
            "$defs": {"Registry": {"type": "object", "properties": {
                "server": {"type": "string"},
                "password": {"type": ["string", "null"], "secret": true}
            }}}
        });
        let value = json!({
            "registry": {"server": "s", "password": "p"},
            "registries": [{"server": "a"}, {"password": "q"}],
            "plain": "x"
        });
        let paths = schema_secret_paths(&schema, value.as_object().unwrap());
        let shown: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, vec!["registries[1].password", "registry.password"]);
        let encoded = encode(value.as_object().unwrap(), &paths, &BTreeSet::new());
        let reg = &encoded.fields["registry"];
        let Some(Kind::StructValue(reg)) = &reg.kind else {
            panic!("registry is a struct")
        };
        assert_eq!(
            signature(match &reg.fields["password"].kind {
                Some(Kind::StructValue(s)) => s,
                other => panic!("password not wrapped: {other:?}"),
            }),
            Some(SECRET_SIG)
        );
    }

    #[test]
    fn unknown_required_fields_get_typed_zero_values() {
        let schema = json!({
            "type": "object",
            "required": ["name", "tags"],
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "optional": {"type": ["boolean", "null"]}
            }
        });
        let input = st(vec![
            ("name", s(UNKNOWN)),
            ("tags", s(UNKNOWN)),
            ("optional", s(UNKNOWN)),
        ]);
        let mut d = decode(&input);
        fill_unknowns(&schema, &mut d);
        assert_eq!(d.value["name"], json!(""));
        assert_eq!(d.value["tags"], json!([]));
        assert_eq!(d.value["optional"], Value::Null);
        // On the way out the unknowns come back, whatever the zero value was.
        assert_eq!(encode(&d.value, &BTreeSet::new(), &d.unknowns), input);
    }

    #[test]
    fn lists_and_objects_past_the_bound_are_not_read() {
        // 10,000 levels, built and taken apart here without recursion (prost's own drop
        // would recurse as deep); decode reads 32 of them.
        let mut v = s("leaf");
        for i in 0..10_000 {
            v = if i % 2 == 0 {
                obj(vec![("a", v)])
            } else {
                list(vec![v])
            };
        }
        let input = st(vec![
            ("deep", v),
            ("shallow", obj(vec![("b", list(vec![]))])),
        ]);
        let d = decode(&input);
        assert_eq!(d.value["shallow"], json!({"b": []}));
        let [path] = d.too_deep.iter().collect::<Vec<_>>()[..] else {
            panic!("{:?}", d.too_deep)
        };
        assert_eq!(path.top(), Some("deep"));
        assert_eq!(path.0.len(), 1 + MAX_NESTING);
        assert_eq!(get_path(&d.value, path), Some(&Value::Null));
        // A secret's wrapper is one level, as sent.
        let mut w = s("x");
        for _ in 0..MAX_NESTING {
            w = obj(vec![("a", w)]);
        }
        let d = decode(&st(vec![("fits", w.clone()), ("over", secret(w))]));
        let tops: Vec<_> = d.too_deep.iter().filter_map(PropertyPath::top).collect();
        assert_eq!(tops, vec!["over"]);
        // Take the 10,000 levels apart from the top down.
        let mut input = input;
        let mut next = input.fields.remove("deep");
        while let Some(prost_types::Value { kind: Some(kind) }) = next.take() {
            next = match kind {
                Kind::StructValue(mut s) => s.fields.remove("a"),
                Kind::ListValue(mut l) => l.values.pop(),
                _ => None,
            };
        }
    }

    #[test]
    fn paths_display_like_pulumi_property_paths() {
        let p = PropertyPath(vec![Seg::Key("buildArgs".into()), Seg::Key("A-B".into())]);
        assert_eq!(p.to_string(), "buildArgs[\"A-B\"]");
        let p = PropertyPath(vec![Seg::Key("tags".into()), Seg::Index(2)]);
        assert_eq!(p.to_string(), "tags[2]");
    }

    #[test]
    fn paths_parse_back_from_their_display() {
        for p in [
            PropertyPath::root(),
            PropertyPath::keys(&["name"]),
            PropertyPath::keys(&["registry", "password"]),
            PropertyPath(vec![Seg::Key("tags".into()), Seg::Index(12)]),
            PropertyPath(vec![
                Seg::Key("buildArgs".into()),
                Seg::Key("A-\"B\\\n\0\u{7f}é.[x]".into()),
            ]),
            PropertyPath(vec![
                Seg::Key("a".into()),
                Seg::Index(0),
                Seg::Key("b".into()),
                Seg::Index(1),
            ]),
        ] {
            assert_eq!(PropertyPath::parse(&p.to_string()), Some(p.clone()), "{p}");
        }
        for bad in ["a..b", "a[x]", "a[1", "a[\"x]", "a.", "a[0]x"] {
            assert_eq!(PropertyPath::parse(bad), None, "{bad}");
        }
    }
}
