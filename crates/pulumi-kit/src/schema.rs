//! Derives the Pulumi package schema (`schema/schema.json`, served by `GetSchema`) from the
//! JSON schemas schemars derives for each resource's Args and State and for the provider
//! configuration. Nobody writes the package schema by hand.
//!
//! Mapping: struct doc comments → descriptions; `Option<T>` → optional; `#[serde(default)]`
//! values → `default`; `Vec<T>` → array; `BTreeMap<String, T>` → map; nested structs →
//! object types under `types` named `<package>:index:<Struct>`; `"secret": true` (from
//! `#[schemars(extend("secret" = true))]`) carried as is; `"x-computed": true` on an Args
//! field makes it an output only (the provider computes it in `check`).
//!
//! Not for: SDK rendering (codegen does that from this schema).

use serde_json::{Map, Value, json};

use crate::provider::Provider;

/// Package metadata that no struct carries.
pub struct PackageInfo<'a> {
    pub display_name: &'a str,
    pub publisher: &'a str,
    pub repository: &'a str,
    /// Where the engine downloads the plugin from (the schema's `pluginDownloadURL`, which
    /// both SDKs carry): a `github://api.github.com/<owner>/<repo>` source finds the release
    /// `v<version>` and its asset `pulumi-resource-<name>-v<version>-<os>-<arch>.tar.gz`
    /// (what `scripts/dist.sh` writes).
    pub plugin_download_url: &'a str,
    pub keywords: &'a [&'a str],
    pub python_package: &'a str,
    pub nodejs_package: &'a str,
}

/// Builds the whole package schema.
pub fn package_schema<C>(provider: &Provider<C>, info: &PackageInfo<'_>) -> Value
where
    C: serde::de::DeserializeOwned
        + serde::Serialize
        + schemars::JsonSchema
        + Default
        + Send
        + Sync
        + 'static,
{
    let pkg = provider.name;
    let mut types = Map::new();
    let mut resources = Map::new();

    for r in provider.resources() {
        let args = r.args_schema();
        let state = r.state_schema();
        let mut conv = Converter {
            pkg,
            defs: merged_defs(&[args, state]),
            types: &mut types,
        };
        let (input_props, required_inputs) = conv.object_properties(args, Mode::Inputs);
        let (props, required) = conv.object_properties(state, Mode::State);
        let mut res = Map::new();
        if let Some(d) = description(state) {
            res.insert("description".into(), d.into());
        }
        res.insert("properties".into(), Value::Object(props));
        res.insert("required".into(), json!(required));
        res.insert("inputProperties".into(), Value::Object(input_props));
        res.insert("requiredInputs".into(), json!(required_inputs));
        resources.insert(r.token().to_string(), Value::Object(res));
    }

    let config = provider.config_schema();
    let mut conv = Converter {
        pkg,
        defs: merged_defs(&[&config]),
        types: &mut types,
    };
    let (config_props, config_required) = conv.object_properties(&config, Mode::Inputs);

    json!({
        "name": pkg,
        "displayName": info.display_name,
        "version": provider.version,
        "description": provider.description,
        "keywords": info.keywords,
        "publisher": info.publisher,
        "repository": info.repository,
        "pluginDownloadURL": info.plugin_download_url,
        "license": env!("CARGO_PKG_LICENSE"),
        "config": {
            "variables": config_props,
            "defaults": config_required,
        },
        "provider": {
            "description": format!("The provider type for the {pkg} package."),
            "inputProperties": config_props,
            "requiredInputs": config_required,
        },
        "types": types,
        "resources": resources,
        "language": {
            "python": {"packageName": info.python_package, "respectSchemaVersion": true},
            "nodejs": {"packageName": info.nodejs_package, "respectSchemaVersion": true},
        },
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inputs,
    State,
}

fn merged_defs(schemas: &[&Value]) -> Map<String, Value> {
    let mut defs = Map::new();
    for s in schemas {
        if let Some(d) = s.get("$defs").and_then(Value::as_object) {
            for (k, v) in d {
                defs.insert(k.clone(), v.clone());
            }
        }
    }
    defs
}

fn description(schema: &Value) -> Option<String> {
    schema
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string)
}

struct Converter<'a> {
    pkg: &'a str,
    defs: Map<String, Value>,
    types: &'a mut Map<String, Value>,
}

impl Converter<'_> {
    /// Properties and required names of an object schema.
    fn object_properties(
        &mut self,
        schema: &Value,
        mode: Mode,
    ) -> (Map<String, Value>, Vec<String>) {
        let schema = self.resolve(schema);
        let required: Vec<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut props = Map::new();
        let mut req = Vec::new();
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in p {
                let computed = prop.get("x-computed").and_then(Value::as_bool) == Some(true);
                if computed && mode == Mode::Inputs {
                    continue;
                }
                props.insert(name.clone(), self.property(prop));
                if required.contains(name) {
                    req.push(name.clone());
                }
            }
        }
        (props, req)
    }

    fn resolve(&self, schema: &Value) -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .defs
                .get(r.rsplit('/').next().unwrap_or_default())
                .cloned()
                .unwrap_or(Value::Null),
            None => schema.clone(),
        }
    }

    /// One property: its type spec plus description, default and secret flag.
    fn property(&mut self, prop: &Value) -> Value {
        let mut out = self.type_spec(prop);
        if let Value::Object(o) = &mut out {
            if let Some(d) = description(prop) {
                o.insert("description".into(), d.into());
            }
            if let Some(d) = prop
                .get("default")
                .filter(|d| d.is_string() || d.is_boolean() || d.is_number())
            {
                o.insert("default".into(), d.clone());
            }
            if prop.get("secret").and_then(Value::as_bool) == Some(true) {
                o.insert("secret".into(), true.into());
            }
        }
        out
    }

    /// The Pulumi type spec of a JSON schema.
    fn type_spec(&mut self, schema: &Value) -> Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default().to_string();
            // A named union (an untagged enum: a string or an object) is no object type:
            // Pulumi spells it inline, as `oneOf`.
            let def = self.defs.get(&name).cloned().unwrap_or(Value::Null);
            let union = ["anyOf", "oneOf"].iter().any(|k| def.get(*k).is_some());
            if union && string_enum(&def).is_none() {
                return self.type_spec(&def);
            }
            return self.object_type(&name);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = schema.get(key) {
                let non_null: Vec<&Value> = alts
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                    .collect();
                if let [only] = non_null.as_slice() {
                    return self.type_spec(only);
                }
                // Several shapes (e.g. a string or an object): Pulumi's `oneOf`.
                let specs: Vec<Value> = non_null.iter().map(|a| self.type_spec(a)).collect();
                return json!({"oneOf": specs});
            }
        }
        let ty = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null")
                .to_string(),
            _ => String::new(),
        };
        match ty.as_str() {
            "string" | "boolean" | "integer" | "number" => json!({"type": ty}),
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                json!({"type": "array", "items": self.type_spec(&items)})
            }
            "object" => match schema.get("additionalProperties") {
                Some(extra) if extra.is_object() => {
                    json!({"type": "object", "additionalProperties": self.type_spec(extra)})
                }
                _ => json!({"$ref": "pulumi.json#/Any"}),
            },
            _ => json!({"$ref": "pulumi.json#/Any"}),
        }
    }

    /// Registers a named object type and returns a reference to it.
    fn object_type(&mut self, name: &str) -> Value {
        let token = format!("{}:index:{}", self.pkg, name);
        if !self.types.contains_key(&token) {
            // Insert a placeholder first so recursive types terminate.
            self.types.insert(token.clone(), json!({"type": "object"}));
            let def = self.defs.get(name).cloned().unwrap_or(Value::Null);
            if let Some(values) = string_enum(&def) {
                let mut t = Map::new();
                if let Some(d) = description(&def) {
                    t.insert("description".into(), d.into());
                }
                t.insert("type".into(), "string".into());
                t.insert("enum".into(), Value::Array(values));
                self.types.insert(token.clone(), Value::Object(t));
                return json!({"$ref": format!("#/types/{token}")});
            }
            let (props, required) = self.object_properties(&def, Mode::State);
            let mut t = Map::new();
            if let Some(d) = description(&def) {
                t.insert("description".into(), d.into());
            }
            t.insert("type".into(), "object".into());
            t.insert("properties".into(), Value::Object(props));
            if !required.is_empty() {
                t.insert("required".into(), json!(required));
            }
            self.types.insert(token.clone(), Value::Object(t));
        }
        json!({"$ref": format!("#/types/{token}")})
    }
}

/// The members of a string enum as Pulumi writes them (`{name, value, description}`), when
/// `def` is one: schemars writes a Rust enum of unit variants as `enum: [..]`, or, when the
/// variants have docs, as `oneOf` of `{const, description}`.
fn string_enum(def: &Value) -> Option<Vec<Value>> {
    let member = |value: &str, doc: Option<String>| {
        let mut m = Map::new();
        let mut name: Vec<char> = value.chars().collect();
        if let Some(first) = name.first_mut() {
            *first = first.to_ascii_uppercase();
        }
        m.insert("name".into(), name.into_iter().collect::<String>().into());
        m.insert("value".into(), value.into());
        if let Some(d) = doc {
            m.insert("description".into(), d.into());
        }
        Value::Object(m)
    };
    if let Some(values) = def.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(|v| v.as_str().map(|v| member(v, None)))
            .collect();
    }
    let alts = def.get("oneOf").and_then(Value::as_array)?;
    alts.iter()
        .map(|a| {
            a.get("const")
                .and_then(Value::as_str)
                .map(|v| member(v, description(a)))
        })
        .collect()
}
