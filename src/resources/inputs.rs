//! What each input of an `Image` is, said once. Every rule that depends on the kind of an
//! input derives from [`CLASSES`]: which inputs make `contextHash` ([`hashed`],
//! [`hashed_json`]), when the hash can be computed ([`hash_inputs_known`]), whether a hash covers a
//! secret ([`hashes_a_secret`]), and which changes the diff ignores ([`without_credentials`],
//! [`unknowns_for_the_diff`]).
//! A test walks `schema/schema.json` and fails for an input that has no class here, so a new
//! field cannot be silently left out of the hash.
//!
//! The functions take the args as any serializable value and read them by the schema names
//! of [`CLASSES`], so this table depends on nothing of `image.rs` (which uses it).
//!
//! Not for: validating values (see `image.rs`) or turning inputs into a build plan.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use std::collections::BTreeSet;

use crate::resource::{Inputs, Unknown};
use crate::rpc::codec::PropertyPath;

/// The kind of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Part of the image: hashed into `contextHash`, so a change rebuilds.
    Image,
    /// Part of the image, hashed through the context's own digest (the files and the
    /// Dockerfile), not as a value.
    ImageFiles,
    /// How a build runs, not what it makes (e.g. `noCache`, `cacheFrom`): not hashed; a
    /// change is an update that builds only if the image inputs changed too.
    Behaviour,
    /// Where the image goes (`name`, `tags`, `registry.server`, `push`): not hashed; a change
    /// pushes or tags again.
    Destination,
    /// A credential: never hashed, a change never rebuilds or even shows in the diff, always
    /// masked.
    Credential,
    /// A map whose keys are part of the image and whose values are credentials (`secrets`:
    /// the ids `RUN --mount=type=secret,id=…` names, and the secret each one holds). The
    /// sorted list of keys is hashed (only when the map has any, as for every image input
    /// added later, see [`HASHED_ALWAYS`]), so adding or removing an id rebuilds. The values
    /// are never hashed in any form, and a change of values alone never rebuilds or even
    /// shows in the diff, as for a [`Class::Credential`]. The keys are names (the Dockerfile
    /// spells them out), not secrets: hashing them never makes `contextHash` a secret.
    SecretIds,
    /// Computed by the provider, never set by the user.
    Computed,
}

/// Every input property, by its schema path (`parent.child` for the properties of an object
/// input), and its class.
pub const CLASSES: &[(&str, Class)] = &[
    ("name", Class::Destination),
    ("tags", Class::Destination),
    ("context", Class::ImageFiles),
    ("dockerfile", Class::ImageFiles),
    ("dockerfileInline", Class::ImageFiles),
    ("buildContexts", Class::ImageFiles),
    ("platforms", Class::Image),
    ("buildArgs", Class::Image),
    ("target", Class::Image),
    ("labels", Class::Image),
    ("cacheFrom", Class::Behaviour),
    ("cacheTo", Class::Behaviour),
    ("cacheTo.registry", Class::Behaviour),
    ("cacheTo.local", Class::Behaviour),
    ("cacheTo.inline", Class::Behaviour),
    ("cacheTo.disabled", Class::Behaviour),
    ("inlineCache", Class::Behaviour),
    ("noCache", Class::Behaviour),
    ("network", Class::Image),
    ("secrets", Class::SecretIds),
    ("ssh", Class::Behaviour),
    ("ssh.id", Class::Behaviour),
    ("ssh.paths", Class::Behaviour),
    ("addHosts", Class::Image),
    ("pull", Class::Behaviour),
    ("push", Class::Destination),
    ("registry", Class::Destination),
    ("registry.server", Class::Destination),
    ("registry.username", Class::Credential),
    ("registry.password", Class::Credential),
    ("triggers", Class::Image),
    ("index", Class::Image),
    ("provenance", Class::Image),
    ("exports", Class::Destination),
    ("exports.tarball", Class::Destination),
    ("exports.load", Class::Destination),
    ("exports.cacheOnly", Class::Destination),
    ("exports.local", Class::Destination),
    ("skipIfPushed", Class::Behaviour),
    ("contextHash", Class::Computed),
];

/// The image inputs that were hashed as values before any other existed: they are always in
/// the hashed JSON (`null` when unset). Image inputs added later (and [`Class::SecretIds`]
/// inputs) are in it only when set to something other than `false`, an empty list or an
/// empty map, so that adding an input never changes the hash of an image that does not use
/// it. Their order is the order of the JSON's members (serde_json keeps insertion order here).
const HASHED_ALWAYS: &[&str] = &[
    "buildArgs",
    "target",
    "labels",
    "platforms",
    "network",
    "triggers",
];

/// The class of the input at `path`, if it has one.
pub fn class_of(path: &str) -> Option<Class> {
    CLASSES.iter().find(|(p, _)| *p == path).map(|(_, c)| *c)
}

/// The top-level inputs that make the image (hashed as values, through the files, or by
/// their keys).
pub fn hashed() -> impl Iterator<Item = &'static str> {
    top_level(&[Class::Image, Class::ImageFiles, Class::SecretIds])
}

/// The top-level inputs of the given classes.
fn top_level(classes: &'static [Class]) -> impl Iterator<Item = &'static str> {
    CLASSES
        .iter()
        .filter(move |(p, c)| !p.contains('.') && classes.contains(c))
        .map(|(p, _)| *p)
}

/// The image inputs as the JSON that goes into `contextHash` beside the context's digest.
pub fn hashed_json(args: &impl Serialize) -> String {
    let all = match serde_json::to_value(args) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let value = |p: &str| all.get(p).cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    for path in HASHED_ALWAYS {
        out.insert((*path).to_string(), value(path));
    }
    for (path, class) in CLASSES {
        if path.contains('.') || HASHED_ALWAYS.contains(path) {
            continue;
        }
        let v = match class {
            Class::Image => value(path),
            // The ids only, sorted: never a value, not even its length.
            Class::SecretIds => match value(path) {
                Value::Object(m) => {
                    let mut ids: Vec<&String> = m.keys().collect();
                    ids.sort();
                    serde_json::json!(ids)
                }
                _ => Value::Null,
            },
            _ => continue,
        };
        if !is_unset(&v) {
            out.insert((*path).to_string(), v);
        }
    }
    Value::Object(out).to_string()
}

/// What an input added later has when an image does not use it.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// True when every input of the hash is known (preview may have unknowns). Of a
/// [`Class::SecretIds`] input only the keys count: they are known when the map itself is,
/// whatever its values.
pub fn hash_inputs_known<A>(news: &Inputs<A>) -> bool {
    top_level(&[Class::Image, Class::ImageFiles]).all(|p| !news.is_unknown(p))
        && top_level(&[Class::SecretIds])
            .all(|p| news.unknown(&PropertyPath::keys(&[p])) != Unknown::Whole)
}

/// True when a secret value is part of the hash. Then `contextHash` is a secret (an unsalted
/// hash of a short secret could be brute-forced from it) and the `ctx-<hash>` tag, which
/// anyone who can list the repository's tags sees, is neither pushed nor looked for.
/// A [`Class::SecretIds`] input never counts: its values are never hashed, and its keys are
/// names, even when the whole map is secret (as the schema makes it).
pub fn hashes_a_secret<A>(inputs: &Inputs<A>) -> bool {
    inputs.secrets.iter().any(|p| {
        p.top()
            .is_some_and(|t| top_level(&[Class::Image, Class::ImageFiles]).any(|h| h == t))
    })
}

/// The unknowns that count in the diff: those of a value that is never compared (a value
/// of a [`Class::SecretIds`] map) are left out, so that a secret not yet known in preview
/// does not show as a change.
pub fn unknowns_for_the_diff(unknowns: &BTreeSet<PropertyPath>) -> BTreeSet<PropertyPath> {
    unknowns
        .iter()
        .filter(|u| {
            !top_level(&[Class::SecretIds]).any(|p| {
                let map = PropertyPath::keys(&[p]);
                u.starts_with(&map) && **u != map
            })
        })
        .cloned()
        .collect()
}

/// `args` without its credentials, for the diff: a changed credential is no change. The
/// values of a [`Class::SecretIds`] map are emptied, its keys kept: a changed id is a change,
/// a changed value is not.
pub fn without_credentials<A: Serialize + DeserializeOwned + Clone>(args: &A) -> A {
    let mut value = match serde_json::to_value(args) {
        Ok(v) => v,
        Err(_) => return args.clone(),
    };
    for (path, class) in CLASSES {
        if *class == Class::SecretIds {
            if let Some(m) = value.get_mut(*path).and_then(Value::as_object_mut) {
                for v in m.values_mut() {
                    *v = Value::String(String::new());
                }
            }
            continue;
        }
        if *class != Class::Credential {
            continue;
        }
        let mut slot = Some(&mut value);
        let mut keys = path.split('.').peekable();
        while let (Some(key), Some(v)) = (keys.next(), slot.take()) {
            if keys.peek().is_none() {
                if let Some(m) = v.as_object_mut() {
                    m.remove(key);
                }
            } else {
                slot = v.get_mut(key);
            }
        }
    }
    serde_json::from_value(value).unwrap_or_else(|_| args.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::resources::image::args::ImageArgs;

    /// Every input property of the schema (and of the object types it refers to, directly or
    /// as the items of a list), as `parent.child` paths.
    fn schema_input_paths() -> Vec<String> {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/schema.json"))
                .expect("schema/schema.json");
        let schema: Value = serde_json::from_str(&text).expect("schema JSON");
        let image = &schema["resources"]["docker-buildkit:index:Image"];
        let mut paths = Vec::new();
        for (name, prop) in image["inputProperties"].as_object().expect("inputs") {
            paths.push(name.clone());
            let reference = prop["$ref"]
                .as_str()
                .or(prop["items"]["$ref"].as_str())
                .unwrap_or_default();
            if let Some(token) = reference.strip_prefix("#/types/") {
                for child in schema["types"][token]["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    paths.push(format!("{name}.{child}"));
                }
            }
        }
        paths
    }

    #[test]
    fn every_input_of_the_schema_has_a_class() {
        let paths = schema_input_paths();
        assert!(paths.len() > 15, "the schema was read: {paths:?}");
        let missing: Vec<&String> = paths.iter().filter(|p| class_of(p).is_none()).collect();
        assert!(
            missing.is_empty(),
            "inputs without a class in src/resources/inputs.rs CLASSES: {missing:?}; say whether each is part of the image (hashed), a build behaviour, a destination or a credential"
        );
        let stale: Vec<&str> = CLASSES
            .iter()
            .filter(|(p, c)| *c != Class::Computed && !paths.iter().any(|q| q == p))
            .map(|(p, _)| *p)
            .collect();
        assert!(
            stale.is_empty(),
            "classes of inputs that no longer exist: {stale:?}"
        );
    }

    #[test]
    fn the_hashed_json_is_the_one_hashes_were_made_with() {
        // The JSON the hash has always used: six values (null when unset), `index` only when
        // true. Stacks built before keep their hash, so nothing rebuilds on upgrade.
        let mut args = ImageArgs {
            target: Some("t".into()),
            ..ImageArgs::default()
        };
        assert_eq!(
            hashed_json(&args),
            r#"{"buildArgs":null,"target":"t","labels":null,"platforms":null,"network":null,"triggers":null}"#
        );
        // … which is what the hash was computed from before this table existed.
        let before = |a: &ImageArgs| {
            let mut extra = serde_json::json!({
                "buildArgs": a.build_args,
                "target": a.target,
                "labels": a.labels,
                "platforms": a.platforms,
                "network": a.network,
                "triggers": a.triggers,
            });
            if a.index {
                extra["index"] = Value::Bool(true);
            }
            extra.to_string()
        };
        assert_eq!(hashed_json(&args), before(&args));
        args.index = true;
        args.build_args = Some([("A".to_string(), "1".to_string())].into());
        args.platforms = Some(vec!["linux/arm64".into()]);
        assert_eq!(hashed_json(&args), before(&args));
        assert!(hashed_json(&args).ends_with(r#""triggers":null,"index":true}"#));
        // Behaviour, destination and credential inputs are not in it.
        args.no_cache = true;
        args.name = "x".into();
        args.registry = Some(super::super::image::args::Registry {
            server: "s".into(),
            username: Some("u".into()),
            password: Some("p".into()),
        });
        let json = hashed_json(&args);
        assert!(!json.contains("noCache") && !json.contains("registry") && !json.contains("\"x\""));
    }

    #[test]
    fn inputs_added_later_change_no_hash_until_used() {
        use super::super::image::args::SshInput;
        let plain = ImageArgs {
            target: Some("t".into()),
            ..ImageArgs::default()
        };
        let unused = ImageArgs {
            secrets: Some(BTreeMap::new()),
            ssh: Some(vec![SshInput::default()]),
            add_hosts: Some(Vec::new()),
            pull: true,
            ..plain.clone()
        };
        assert_eq!(hashed_json(&unused), hashed_json(&plain));
        let hosts = ImageArgs {
            add_hosts: Some(vec!["db:10.0.0.2".into()]),
            ..plain.clone()
        };
        assert!(
            hashed_json(&hosts).ends_with(r#""triggers":null,"addHosts":["db:10.0.0.2"]}"#),
            "{}",
            hashed_json(&hosts)
        );
    }

    fn with_secrets(pairs: &[(&str, &str)]) -> ImageArgs {
        ImageArgs {
            name: "n".into(),
            secrets: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ImageArgs::default()
        }
    }

    #[test]
    fn secret_ids_are_hashed_and_their_values_never_are() {
        let one = with_secrets(&[("npmrc", "token-one-8642"), ("aws", "key-1")]);
        let json = hashed_json(&one);
        assert!(json.ends_with(r#""secrets":["aws","npmrc"]}"#), "{json}");
        assert!(!json.contains("token-one-8642") && !json.contains("key-1"));
        // Another value: the same hash. Another id: another hash.
        let other_value = with_secrets(&[("npmrc", "a much longer token-two"), ("aws", "key-1")]);
        assert_eq!(hashed_json(&other_value), json);
        let other_id = with_secrets(&[("npmrc", "token-one-8642")]);
        assert_ne!(hashed_json(&other_id), json);
    }

    #[test]
    fn a_secret_value_is_no_change_in_the_diff_and_an_id_is() {
        let one = with_secrets(&[("npmrc", "token-one")]);
        let clean = without_credentials(&one);
        assert_eq!(
            clean.secrets,
            Some([("npmrc".to_string(), String::new())].into())
        );
        assert_eq!(
            without_credentials(&with_secrets(&[("npmrc", "token-two")])),
            clean
        );
        assert_ne!(
            without_credentials(&with_secrets(&[("npmrc", "t"), ("aws", "k")])),
            clean
        );
    }

    fn inputs(
        args: ImageArgs,
        unknowns: &[PropertyPath],
        secrets: &[PropertyPath],
    ) -> Inputs<ImageArgs> {
        Inputs {
            args,
            unknowns: unknowns.iter().cloned().collect(),
            secrets: secrets.iter().cloned().collect(),
        }
    }

    #[test]
    fn secret_values_neither_hide_the_hash_nor_make_it_secret() {
        use crate::rpc::codec::Seg;
        let map = PropertyPath::keys(&["secrets"]);
        let value = map.child(Seg::Key("npmrc".into()));
        let args = with_secrets(&[("npmrc", "")]);
        // A value not known yet (preview): the ids are, and so is the hash.
        let i = inputs(args.clone(), std::slice::from_ref(&value), &[]);
        assert!(hash_inputs_known(&i));
        assert!(unknowns_for_the_diff(&i.unknowns).is_empty());
        // The whole map unknown: its ids are not known either.
        let i = inputs(args.clone(), std::slice::from_ref(&map), &[]);
        assert!(!hash_inputs_known(&i));
        assert_eq!(unknowns_for_the_diff(&i.unknowns), i.unknowns);
        // Secret (as the schema makes it): the hash of the ids is not.
        assert!(!hashes_a_secret(&inputs(args.clone(), &[], &[map, value])));
        assert!(hashes_a_secret(&inputs(
            args,
            &[],
            &[PropertyPath::keys(&["addHosts"])]
        )));
    }

    #[test]
    fn credentials_are_taken_out_for_the_diff() {
        let args = ImageArgs {
            name: "n".into(),
            registry: Some(super::super::image::args::Registry {
                server: "s".into(),
                username: Some("u".into()),
                password: Some("p".into()),
            }),
            ..ImageArgs::default()
        };
        let clean = without_credentials(&args);
        let r = clean.registry.expect("the server stays");
        assert_eq!(
            (r.server.as_str(), r.username, r.password),
            ("s", None, None)
        );
        assert_eq!(clean.name, "n");
    }
}
