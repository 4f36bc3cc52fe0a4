//! The generic dispatcher: a registry of resources keyed by type token, and the erasure that
//! turns each typed [`Resource`] into calls on property maps.
//!
//! Here, and only here, wire property maps become typed structs and back: decode with
//! [`codec`], fill unknowns with typed zero values, check against the schema ([`validation`]),
//! deserialize with the failing field named, run the resource's `validate`, call the
//! resource, serialize, re-wrap secrets (from the schema and from the inputs), and mark
//! unknown outputs in preview. Nothing in this file names a particular resource.
//!
//! Not for: gRPC transport (see [`crate::rpc::server`]) or schema rendering ([`crate::schema`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use prost_types::Struct;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::redact::Redactor;
use crate::resource::{ChangeKind, CheckFailure, Ctx, DiffResult, Inputs, Resource, ResourceError};
use crate::rpc::codec::{self, Decoded, PropertyPath};
use crate::rpc::engine::{EngineLog, Severity};
use crate::validation;

/// The JSON schema schemars derives for `T`, with definitions under `$defs`.
pub fn json_schema_of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Errors of the dispatcher itself, before or after a resource runs.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("unknown resource type {0:?}: this provider implements {1}")]
    UnknownType(String, String),
    #[error("{0}")]
    BadProperties(String),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

impl DispatchError {
    /// The same error with every secret of `r` masked in its message.
    pub fn masked(self, r: &Redactor) -> Self {
        match self {
            DispatchError::UnknownType(t, known) => DispatchError::UnknownType(r.mask(&t), known),
            DispatchError::BadProperties(m) => DispatchError::BadProperties(r.mask(&m)),
            DispatchError::Resource(e) => DispatchError::Resource(e.masked(r)),
        }
    }
}

/// A context for one call whose secrets are the values at secret paths of `structs` (the
/// paths that arrived as secrets, and those `schema` marks secret) and the credentials in
/// their URLs ([`codec::url_credentials`]), on top of `ctx`'s own.
fn ctx_with_secrets<C>(ctx: &Ctx<C>, schema: &Value, structs: &[&Struct]) -> Ctx<C> {
    let redactor = Redactor::new();
    redactor.extend(&ctx.redactor);
    for s in structs {
        let d = codec::decode(s);
        let paths = d.secret_paths(schema);
        for p in &paths {
            if let Some(v) = codec::get_path(&d.value, p) {
                redactor.add_value(v);
            }
        }
        for (_, credential) in codec::url_credentials(&d.value) {
            redactor.add(&credential);
        }
    }
    Ctx {
        redactor,
        ..ctx.clone()
    }
}

/// `failures` with every secret masked in their reasons.
fn masked_failures(r: &Redactor, failures: Vec<CheckFailure>) -> Vec<CheckFailure> {
    failures
        .into_iter()
        .map(|f| CheckFailure {
            reason: r.mask(&f.reason),
            ..f
        })
        .collect()
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `decoded` with every top-level value that is a string where the schema wants another type
/// read as the JSON it holds: stack configuration (`pulumi config set --path
/// docker-buildkit:builders[0].host …`) reaches the provider as strings, JSON-encoded for
/// lists, maps, numbers and booleans. A string that is not such JSON stays, for the type
/// check to name.
fn unstringified(schema: &Value, decoded: &Decoded) -> Decoded {
    let mut out = decoded.clone();
    let props = schema.get("properties").and_then(Value::as_object);
    for (key, value) in out.value.iter_mut() {
        let Some(text) = value.as_str() else { continue };
        let wants_string = props
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("type"))
            .is_some_and(|t| {
                t == "string"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|t| t == "string"))
            });
        if wants_string {
            continue;
        }
        if let Ok(parsed) = serde_json::from_str::<Value>(text)
            && !parsed.is_string()
        {
            *value = parsed;
        }
    }
    out
}

/// The outcome of a `Check` on property maps.
pub struct CheckOutcome {
    pub inputs: Struct,
    pub failures: Vec<CheckFailure>,
}

/// The outcome of `Read` on property maps; `None` from `read` means the resource is gone.
pub struct ReadOutcome {
    pub id: String,
    pub state: Struct,
    pub inputs: Struct,
}

/// A resource seen through property maps: what the gRPC layer dispatches to.
pub trait DynResource<C>: Send + Sync {
    fn token(&self) -> &'static str;
    fn args_schema(&self) -> &Value;
    fn state_schema(&self) -> &Value;
    fn check<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        news: &'a Struct,
        olds: Option<&'a Struct>,
    ) -> BoxFuture<'a, Result<CheckOutcome, DispatchError>>;
    fn diff<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
    ) -> BoxFuture<'a, Result<DiffResult, DispatchError>>;
    fn create<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        props: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<(String, Struct), DispatchError>>;
    fn read<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        state: &'a Struct,
        inputs: &'a Struct,
    ) -> BoxFuture<'a, Result<Option<ReadOutcome>, DispatchError>>;
    fn update<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<Struct, DispatchError>>;
    fn delete<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        state: &'a Struct,
    ) -> BoxFuture<'a, Result<(), DispatchError>>;
}

/// A typed resource and what is derived once from its schemas.
struct Typed<R> {
    resource: R,
    args_schema: Value,
    state_schema: Value,
    /// State properties that only the provider sets (outputs, and inputs marked
    /// `x-computed`): `null` ones are unknown in preview.
    computed: Vec<String>,
}

impl<R: Resource> Typed<R> {
    fn new(resource: R) -> Self {
        let args_schema = json_schema_of::<R::Args>();
        let state_schema = json_schema_of::<R::State>();
        let arg_props = args_schema.get("properties").and_then(Value::as_object);
        let computed = state_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(k, v)| {
                        v.get("x-computed").and_then(Value::as_bool) == Some(true)
                            || !arg_props.is_some_and(|a| a.contains_key(*k))
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            resource,
            args_schema,
            state_schema,
            computed,
        }
    }

    fn decode_args(&self, s: &Struct) -> Result<Inputs<R::Args>, Vec<CheckFailure>> {
        let t = typed_decode::<R::Args>(&self.args_schema, codec::decode(s), Checks::TypesOnly);
        let args = t.value.map_err(|f| vec![f])?;
        Ok(Inputs {
            args,
            unknowns: t.decoded.unknowns,
            secrets: t.decoded.secrets,
        })
    }

    /// Decodes inputs that are about to be acted on (Check, Create, Update) and runs every
    /// check that needs nothing but them: the generic ones of [`validation`] (JSON types, NUL
    /// characters), the typed decode, then the resource's own `validate`. One place, so that
    /// Create and Update refuse what Check would. A failure on a secret names the expected
    /// type, never the value.
    fn validated_args(&self, s: &Struct) -> Validated<R::Args> {
        let t = typed_decode::<R::Args>(&self.args_schema, codec::decode(s), Checks::Generic);
        let mut failures = t.failures;
        let inputs = match t.value {
            Ok(args) => {
                let inputs = Inputs {
                    args,
                    unknowns: t.decoded.unknowns,
                    secrets: t.decoded.secrets,
                };
                // The resource's own failures may quote a value, so they are hidden.
                let own = self.hide_secrets(&t.secrets, self.resource.validate(&inputs));
                // A second failure on a property the generic checks failed adds nothing.
                let own: Vec<CheckFailure> = own
                    .into_iter()
                    .filter(|f| !failures.iter().any(|g| same_property(f, g)))
                    .collect();
                failures.extend(own);
                Some(inputs)
            }
            // `typed_decode` has added serde's failure to the others.
            Err(_) => None,
        };
        Validated {
            inputs: match inputs {
                Some(i) if failures.is_empty() => Ok(i),
                _ => Err(failures),
            },
            warnings: t.warnings,
            secrets: t.secrets,
        }
    }

    /// `failures` with every one on a secret path hidden (see [`validation::hide_secret_value`]).
    fn hide_secrets(
        &self,
        secrets: &BTreeSet<PropertyPath>,
        failures: Vec<CheckFailure>,
    ) -> Vec<CheckFailure> {
        failures
            .into_iter()
            .map(|f| validation::hide_secret_value(&self.args_schema, secrets, f))
            .collect()
    }

    fn decode_state(&self, s: &Struct) -> Result<(R::State, Decoded), DispatchError> {
        let t = typed_decode::<R::State>(&self.state_schema, codec::decode(s), Checks::TypesOnly);
        let state = t.value.map_err(|f| {
            DispatchError::BadProperties(format!(
                "the stored state of this {} cannot be read: {}: {}",
                R::TOKEN,
                f.property,
                f.reason
            ))
        })?;
        Ok((state, t.decoded))
    }

    fn encode<T: Serialize>(
        &self,
        schema: &Value,
        value: &T,
        secrets: &BTreeSet<PropertyPath>,
        unknowns: &BTreeSet<PropertyPath>,
    ) -> Result<Struct, DispatchError> {
        let value = to_map(value)?;
        let mut all_secrets = codec::schema_secret_paths(schema, &value);
        all_secrets.extend(secrets.iter().cloned());
        all_secrets.extend(codec::url_credentials(&value).into_iter().map(|(p, _)| p));
        Ok(codec::encode(&value, &all_secrets, unknowns))
    }

    /// Encodes a state; in preview, computed properties that are still `null` are unknown.
    fn encode_state(
        &self,
        state: &R::State,
        inputs_secrets: &BTreeSet<PropertyPath>,
        inputs_unknowns: &BTreeSet<PropertyPath>,
        preview: bool,
    ) -> Result<Struct, DispatchError> {
        let mut unknowns = inputs_unknowns.clone();
        if preview {
            let map = to_map(state)?;
            for k in &self.computed {
                if map.get(k).is_none_or(Value::is_null) {
                    unknowns.insert(PropertyPath::keys(&[k]));
                }
            }
        }
        self.encode(&self.state_schema, state, inputs_secrets, &unknowns)
    }
}

/// Inputs about to be acted on, after every check that needs nothing but them.
struct Validated<A> {
    inputs: Result<Inputs<A>, Vec<CheckFailure>>,
    /// One sentence per property the schema does not know: Check logs them as warnings.
    warnings: Vec<String>,
    /// Every secret path of the inputs (arrived as a secret, or marked so by the schema).
    secrets: BTreeSet<PropertyPath>,
}

/// Which checks [`typed_decode`] runs before serde.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// The generic checks of [`validation`] (JSON types, NUL characters, unknown and too
    /// deep properties): for values about to be acted on.
    Generic,
    /// Only serde's: for values this provider wrote itself (state, old inputs).
    TypesOnly,
}

/// What [`typed_decode`] made of a property map.
struct TypedDecode<T> {
    /// The typed value, or serde's failure (its reason hidden on a secret path).
    value: Result<T, CheckFailure>,
    /// The generic checks' failures ([`Checks::Generic`]); a serde failure on a property
    /// they already failed is not repeated.
    failures: Vec<CheckFailure>,
    /// One sentence per property the schema does not know ([`Checks::Generic`]).
    warnings: Vec<String>,
    /// The map as decoded (unknowns filled with typed zero values).
    decoded: Decoded,
    /// Every secret path: arrived as a secret, or marked so by the schema.
    secrets: BTreeSet<PropertyPath>,
}

/// The one way a wire property map becomes a typed `T` (args, state, configuration): fill
/// unknowns with typed zero values, run `checks`, drop `null`s so that serde defaults
/// apply, deserialize naming the failing property, and never quote a secret in a failure.
fn typed_decode<T: DeserializeOwned>(
    schema: &Value,
    mut decoded: Decoded,
    checks: Checks,
) -> TypedDecode<T> {
    codec::fill_unknowns(schema, &mut decoded);
    let found = match checks {
        Checks::Generic => validation::check(schema, &decoded),
        Checks::TypesOnly => validation::Findings::default(),
    };
    let secrets = decoded.secret_paths(schema);
    let mut value = decoded.value.clone();
    drop_nulls(&mut value);
    let mut failures = found.failures;
    let value = typed_from::<T>(&value).map_err(|f| {
        let f = validation::hide_secret_value(schema, &secrets, f);
        if !failures.iter().any(|g| same_property(&f, g)) {
            failures.push(f.clone());
        }
        f
    });
    TypedDecode {
        value,
        failures,
        warnings: found.unknown_properties,
        decoded,
        secrets,
    }
}

/// True when two failures are about the same property, or one lies inside the other (a
/// failure of the whole map is about no one property).
fn same_property(a: &CheckFailure, b: &CheckFailure) -> bool {
    match (a.property.is_root(), b.property.is_root()) {
        (false, false) => a.property.overlaps(&b.property),
        _ => a.property == b.property,
    }
}

/// Serializes to a JSON object, dropping `null` members (absent and null are one thing to
/// Pulumi, and absent keeps states small; on the way in, it lets serde defaults apply).
fn to_map<T: Serialize>(value: &T) -> Result<Map<String, Value>, DispatchError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(mut m)) => {
            drop_nulls(&mut m);
            Ok(m)
        }
        Ok(other) => Err(DispatchError::BadProperties(format!(
            "expected an object, got {other}"
        ))),
        Err(e) => Err(DispatchError::BadProperties(e.to_string())),
    }
}

fn drop_nulls(m: &mut Map<String, Value>) {
    m.retain(|_, v| !v.is_null());
    for v in m.values_mut() {
        if let Value::Object(inner) = v {
            drop_nulls(inner);
        }
    }
}

/// Deserializes a typed struct; a failure names the property path that failed.
pub fn typed_from<T: DeserializeOwned>(value: &Map<String, Value>) -> Result<T, CheckFailure> {
    let v = Value::Object(value.clone());
    serde_path_to_error::deserialize(v).map_err(|e| {
        use serde_path_to_error::Segment;
        // Written as the codec writes paths, so that failures and secrets compare.
        let path = PropertyPath(
            e.path()
                .iter()
                .map(|seg| match seg {
                    Segment::Seq { index } => codec::Seg::Index(*index),
                    Segment::Map { key } => codec::Seg::Key(key.clone()),
                    Segment::Enum { variant } => codec::Seg::Key(variant.clone()),
                    Segment::Unknown => codec::Seg::Key("?".to_string()),
                })
                .collect(),
        );
        let reason = e.into_inner().to_string();
        // serde names a missing field in its message; lift it into the property.
        let missing = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let property = match missing {
            Some(field) if path.is_root() => PropertyPath::key(field),
            _ => path,
        };
        CheckFailure::new(property, reason)
    })
}

fn failures_to_error(token: &str, failures: Vec<CheckFailure>) -> DispatchError {
    let text = failures
        .iter()
        .map(|f| format!("{}: {}", f.property, f.reason))
        .collect::<Vec<_>>()
        .join("; ");
    DispatchError::BadProperties(format!("invalid inputs for {token}: {text}"))
}

impl<R: Resource> DynResource<R::Config> for Typed<R> {
    fn token(&self) -> &'static str {
        R::TOKEN
    }

    fn args_schema(&self) -> &Value {
        &self.args_schema
    }

    fn state_schema(&self) -> &Value {
        &self.state_schema
    }

    fn check<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        news: &'a Struct,
        olds: Option<&'a Struct>,
    ) -> BoxFuture<'a, Result<CheckOutcome, DispatchError>> {
        Box::pin(async move {
            let validated = self.validated_args(news);
            for warning in &validated.warnings {
                ctx.log(Severity::Warning, warning).await;
            }
            let inputs = match validated.inputs {
                Ok(i) => i,
                Err(failures) => {
                    return Ok(CheckOutcome {
                        inputs: news.clone(),
                        failures,
                    });
                }
            };
            let olds = olds
                .filter(|s| !s.fields.is_empty())
                .and_then(|s| self.decode_args(s).ok())
                .map(|i| i.args);
            match self.resource.check(ctx, inputs, olds).await {
                Ok(checked) => Ok(CheckOutcome {
                    inputs: self.encode(
                        &self.args_schema,
                        &checked.args,
                        &checked.secrets,
                        &checked.unknowns,
                    )?,
                    failures: Vec::new(),
                }),
                Err(failures) => Ok(CheckOutcome {
                    inputs: news.clone(),
                    failures: self.hide_secrets(&validated.secrets, failures),
                }),
            }
        })
    }

    fn diff<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
    ) -> BoxFuture<'a, Result<DiffResult, DispatchError>> {
        Box::pin(async move {
            let (olds, _) = self.decode_state(olds)?;
            let news = self
                .decode_args(news)
                .map_err(|f| failures_to_error(R::TOKEN, f))?;
            Ok(self.resource.diff(ctx, id, &olds, &news).await?)
        })
    }

    fn create<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        props: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<(String, Struct), DispatchError>> {
        Box::pin(async move {
            let inputs = self
                .validated_args(props)
                .inputs
                .map_err(|f| failures_to_error(R::TOKEN, f))?;
            let (secrets, unknowns) = (inputs.secrets.clone(), inputs.unknowns.clone());
            let created = self.resource.create(ctx, inputs, preview).await?;
            let state = self.encode_state(&created.state, &secrets, &unknowns, preview)?;
            Ok((created.id, state))
        })
    }

    fn read<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        id: &'a str,
        state: &'a Struct,
        inputs: &'a Struct,
    ) -> BoxFuture<'a, Result<Option<ReadOutcome>, DispatchError>> {
        Box::pin(async move {
            if state.fields.is_empty() {
                return Err(DispatchError::BadProperties(format!(
                    "{} cannot be imported from an id alone: create it with `pulumi up` instead",
                    R::TOKEN
                )));
            }
            let (state, decoded) = self.decode_state(state)?;
            let inputs = if inputs.fields.is_empty() {
                // Older engines send no inputs: the state holds them (flattened).
                self.decode_args(&codec::encode(
                    &decoded.value,
                    &BTreeSet::new(),
                    &BTreeSet::new(),
                ))
            } else {
                self.decode_args(inputs)
            }
            .map_err(|f| failures_to_error(R::TOKEN, f))?;
            let Some(read) = self.resource.read(ctx, id, state, inputs.args).await? else {
                return Ok(None);
            };
            Ok(Some(ReadOutcome {
                id: read.id,
                state: self.encode_state(&read.state, &decoded.secrets, &BTreeSet::new(), false)?,
                inputs: self.encode(
                    &self.args_schema,
                    &read.inputs,
                    &inputs.secrets,
                    &BTreeSet::new(),
                )?,
            }))
        })
    }

    fn update<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<Struct, DispatchError>> {
        Box::pin(async move {
            let (olds, _) = self.decode_state(olds)?;
            let news = self
                .validated_args(news)
                .inputs
                .map_err(|f| failures_to_error(R::TOKEN, f))?;
            let (secrets, unknowns) = (news.secrets.clone(), news.unknowns.clone());
            let state = self.resource.update(ctx, id, olds, news, preview).await?;
            self.encode_state(&state, &secrets, &unknowns, preview)
        })
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a Ctx<R::Config>,
        id: &'a str,
        state: &'a Struct,
    ) -> BoxFuture<'a, Result<(), DispatchError>> {
        Box::pin(async move {
            let (state, _) = self.decode_state(state)?;
            Ok(self.resource.delete(ctx, id, state).await?)
        })
    }
}

/// The boundary where secrets are masked: wraps a resource so that every call sees a [`Ctx`]
/// whose redactor holds the secret values of that call's property maps, and every failure
/// and error it returns is masked with it. The only place errors are masked.
struct Guarded<D>(D);

impl<C: Send + Sync, D: DynResource<C>> DynResource<C> for Guarded<D> {
    fn token(&self) -> &'static str {
        self.0.token()
    }

    fn args_schema(&self) -> &Value {
        self.0.args_schema()
    }

    fn state_schema(&self) -> &Value {
        self.0.state_schema()
    }

    fn check<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        news: &'a Struct,
        olds: Option<&'a Struct>,
    ) -> BoxFuture<'a, Result<CheckOutcome, DispatchError>> {
        Box::pin(async move {
            let structs: Vec<&Struct> = std::iter::once(news).chain(olds).collect();
            let ctx = ctx_with_secrets(ctx, self.args_schema(), &structs);
            match self.0.check(&ctx, news, olds).await {
                Ok(out) => Ok(CheckOutcome {
                    failures: masked_failures(&ctx.redactor, out.failures),
                    ..out
                }),
                Err(e) => Err(e.masked(&ctx.redactor)),
            }
        })
    }

    fn diff<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
    ) -> BoxFuture<'a, Result<DiffResult, DispatchError>> {
        Box::pin(async move {
            let ctx = ctx_with_secrets(ctx, self.state_schema(), &[olds, news]);
            let out = self.0.diff(&ctx, id, olds, news).await;
            out.map(|d| DiffResult {
                note: d.note.as_deref().map(|n| ctx.redactor.mask(n)),
                ..d
            })
            .map_err(|e| e.masked(&ctx.redactor))
        })
    }

    fn create<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        props: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<(String, Struct), DispatchError>> {
        Box::pin(async move {
            let ctx = ctx_with_secrets(ctx, self.args_schema(), &[props]);
            let out = self.0.create(&ctx, props, preview).await;
            out.map_err(|e| e.masked(&ctx.redactor))
        })
    }

    fn read<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        state: &'a Struct,
        inputs: &'a Struct,
    ) -> BoxFuture<'a, Result<Option<ReadOutcome>, DispatchError>> {
        Box::pin(async move {
            let ctx = ctx_with_secrets(ctx, self.state_schema(), &[state, inputs]);
            let out = self.0.read(&ctx, id, state, inputs).await;
            out.map_err(|e| e.masked(&ctx.redactor))
        })
    }

    fn update<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        olds: &'a Struct,
        news: &'a Struct,
        preview: bool,
    ) -> BoxFuture<'a, Result<Struct, DispatchError>> {
        Box::pin(async move {
            let ctx = ctx_with_secrets(ctx, self.state_schema(), &[olds, news]);
            let out = self.0.update(&ctx, id, olds, news, preview).await;
            out.map_err(|e| e.masked(&ctx.redactor))
        })
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a Ctx<C>,
        id: &'a str,
        state: &'a Struct,
    ) -> BoxFuture<'a, Result<(), DispatchError>> {
        Box::pin(async move {
            let ctx = ctx_with_secrets(ctx, self.state_schema(), &[state]);
            let out = self.0.delete(&ctx, id, state).await;
            out.map_err(|e| e.masked(&ctx.redactor))
        })
    }
}

/// The checks of a provider configuration beyond its JSON types: CheckConfig reports their
/// failures, Configure refuses with INVALID_ARGUMENT. Unset values are not judged.
pub trait ValidateConfig {
    fn validate(&self) -> Vec<CheckFailure>;
}

/// A provider: its name and version, configuration type `C`, and its resources.
pub struct Provider<C> {
    pub name: &'static str,
    pub version: &'static str,
    /// Shown as the package description in the schema.
    pub description: &'static str,
    resources: BTreeMap<&'static str, Box<dyn DynResource<C>>>,
    config: RwLock<Arc<C>>,
    program_dir: RwLock<Option<PathBuf>>,
    log: RwLock<EngineLog>,
    cancel: CancellationToken,
}

impl<C> Provider<C>
where
    C: DeserializeOwned + Serialize + JsonSchema + Default + Send + Sync + 'static,
{
    pub fn new(name: &'static str, version: &'static str, description: &'static str) -> Self {
        Self {
            name,
            version,
            description,
            resources: BTreeMap::new(),
            config: RwLock::new(Arc::new(C::default())),
            program_dir: RwLock::new(None),
            log: RwLock::new(EngineLog::stderr_only()),
            cancel: CancellationToken::new(),
        }
    }

    /// Adds a resource type.
    pub fn with<R: Resource<Config = C>>(mut self, resource: R) -> Self {
        self.resources
            .insert(R::TOKEN, Box::new(Guarded(Typed::new(resource))));
        self
    }

    pub fn resources(&self) -> impl Iterator<Item = &dyn DynResource<C>> {
        self.resources.values().map(|r| r.as_ref())
    }

    pub fn resource(&self, token: &str) -> Result<&dyn DynResource<C>, DispatchError> {
        self.resources
            .get(token)
            .map(|r| r.as_ref())
            .ok_or_else(|| {
                DispatchError::UnknownType(
                    token.to_string(),
                    self.resources
                        .keys()
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }

    /// The JSON schema of the configuration type.
    pub fn config_schema(&self) -> Value {
        json_schema_of::<C>()
    }

    pub fn set_engine_log(&self, log: EngineLog) {
        if let Ok(mut l) = self.log.write() {
            *l = log;
        }
    }

    pub fn engine_log(&self) -> EngineLog {
        self.log.read().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn set_program_dir(&self, dir: Option<PathBuf>) {
        if let Ok(mut d) = self.program_dir.write() {
            *d = dir;
        }
    }

    /// Parses configuration from `Configure`'s `args` (typed) or its `variables` map
    /// (`<name>:config:<key>` → string, JSON-encoded for non-strings).
    pub fn parse_config(
        &self,
        args: Option<&Struct>,
        variables: &BTreeMap<String, String>,
    ) -> Result<C, Vec<CheckFailure>> {
        let decoded = match args {
            Some(s) if !s.fields.is_empty() => codec::decode(s),
            _ => Decoded {
                value: self.config_variables(variables),
                ..Decoded::default()
            },
        };
        self.config_from(&decoded)
    }

    /// The configuration in `Configure`'s `variables` map.
    ///
    /// (Stack configuration reaches a provider as strings, JSON for the other types, in
    /// `variables` and in the `args` of CheckConfig/Configure alike: see [`unstringified`].)
    fn config_variables(&self, variables: &BTreeMap<String, String>) -> Map<String, Value> {
        let prefix = format!("{}:config:", self.name);
        variables
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(&prefix)?;
                let value = serde_json::from_str::<Value>(v)
                    .ok()
                    .filter(|v| !v.is_string())
                    .unwrap_or_else(|| Value::String(v.clone()));
                Some((key.to_string(), value))
            })
            .collect()
    }

    /// The typed configuration of a decoded property map, after the generic checks of
    /// [`validation`] against the configuration's schema. Does not run [`ValidateConfig`].
    pub fn config_from(&self, decoded: &Decoded) -> Result<C, Vec<CheckFailure>> {
        let schema = self.config_schema();
        let t = typed_decode::<C>(&schema, unstringified(&schema, decoded), Checks::Generic);
        match t.value {
            Ok(config) if t.failures.is_empty() => Ok(config),
            _ => Err(t.failures),
        }
    }

    pub fn set_config(&self, config: C) {
        if let Ok(mut c) = self.config.write() {
            *c = Arc::new(config);
        }
    }

    /// A context for one call on the resource `urn`.
    pub fn ctx(&self, urn: &str) -> Ctx<C> {
        let program_dir = self
            .program_dir
            .read()
            .ok()
            .and_then(|d| d.clone())
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        Ctx {
            urn: urn.to_string(),
            name: urn_name(urn).to_string(),
            config: self.config.read().map(|c| c.clone()).unwrap_or_default(),
            program_dir,
            cancel: self.cancel.clone(),
            log: self.engine_log(),
            redactor: Redactor::new(),
        }
    }

    /// Cancels every operation in flight (the engine's `Cancel`).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Logs a diff's note against the resource, when there is one.
    pub async fn log_note(&self, ctx: &Ctx<C>, diff: &DiffResult) {
        if let Some(note) = &diff.note {
            ctx.log(Severity::Info, note).await;
        }
    }
}

/// The type token inside a URN (`urn:pulumi:stack::project::parent$type::name`).
pub fn urn_type(urn: &str) -> &str {
    urn.split("::")
        .nth(2)
        .and_then(|q| q.rsplit('$').next())
        .unwrap_or("")
}

/// The resource name inside a URN (may itself contain `::`).
pub fn urn_name(urn: &str) -> &str {
    match urn.match_indices("::").nth(2) {
        Some((i, _)) => &urn[i + 2..],
        None => "",
    }
}

/// The top-level property names of a diff, for the `diffs` field.
pub fn diff_keys(diff: &DiffResult) -> Vec<String> {
    let mut keys: Vec<String> = diff
        .changes
        .iter()
        .map(|c| {
            c.path
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Maps a change kind to Pulumi's `PropertyDiff.Kind` number.
pub fn diff_kind_wire(kind: ChangeKind, replace: bool) -> i32 {
    match (kind, replace) {
        (ChangeKind::Add, false) => 0,
        (ChangeKind::Add, true) => 1,
        (ChangeKind::Delete, false) => 2,
        (ChangeKind::Delete, true) => 3,
        (ChangeKind::Update, false) => 4,
        (ChangeKind::Update, true) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_keys_are_top_level_names() {
        use crate::resource::PropertyChange;
        let change = |path: &str| PropertyChange {
            path: path.into(),
            kind: ChangeKind::Update,
            replace: false,
        };
        let diff = DiffResult {
            changes: vec![
                change("registry.server"),
                change("tags[1]"),
                change("registry"),
                change("contextHash"),
            ],
            ..DiffResult::default()
        };
        assert_eq!(diff_keys(&diff), vec!["contextHash", "registry", "tags"]);
    }

    #[test]
    fn urn_parts() {
        let urn = "urn:pulumi:dev::proj::docker-buildkit:index:Image::app";
        assert_eq!(urn_type(urn), "docker-buildkit:index:Image");
        assert_eq!(urn_name(urn), "app");
        let nested = "urn:pulumi:dev::proj::my:comp:C$docker-buildkit:index:Image::a::b";
        assert_eq!(urn_type(nested), "docker-buildkit:index:Image");
        assert_eq!(urn_name(nested), "a::b");
        assert_eq!(urn_type("garbage"), "");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn typed_from_names_the_failing_property() {
        let v = serde_json::json!({"name": 3});
        let f = typed_from::<Sample>(v.as_object().unwrap()).unwrap_err();
        assert_eq!(f.property, "name");
        assert!(f.reason.contains("expected a string"), "{}", f.reason);
        let v = serde_json::json!({"name": "x", "inner": {"port": "no"}});
        let f = typed_from::<Sample>(v.as_object().unwrap()).unwrap_err();
        assert_eq!(f.property, "inner.port");
        let v = serde_json::json!({});
        let f = typed_from::<Sample>(v.as_object().unwrap()).unwrap_err();
        assert_eq!(f.property, "name");
    }
}
