//! The contract between the generic provider and one resource implementation.
//!
//! A resource is an *Args* struct (inputs), a *State* struct (the args flattened plus
//! outputs) and CRUD methods, as in pulumi-go-provider's `infer`: only `create` must be
//! written; `check`, `diff`, `read`, `update` and `delete` have sane defaults. Everything
//! about the wire (structs, secrets, unknowns, tokens) stays in [`crate::provider`] and
//! [`crate::rpc`]; a resource sees typed values and a [`Ctx`].
//!
//! Not for: gRPC types (none appear here) or schema rendering.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::path::PropertyPath;
use crate::redact::Redactor;
use crate::rpc::engine::EngineLog;
pub use crate::severity::Severity;

/// What a resource method may know about the call it serves.
pub struct Ctx<C> {
    /// The resource's URN (empty for calls that have none).
    pub urn: String,
    /// The resource's logical name.
    pub name: String,
    /// The provider configuration from `Configure`.
    pub config: Arc<C>,
    /// Where the Pulumi program lives (from `Handshake`), to resolve relative paths.
    pub program_dir: PathBuf,
    /// Cancelled when the engine calls `Cancel`: long work must stop when it fires.
    pub cancel: CancellationToken,
    pub(crate) log: EngineLog,
    /// The secret values of this call: every line logged through this context, and every
    /// error the dispatcher returns for it, is masked with it.
    pub(crate) redactor: Redactor,
}

impl<C> Clone for Ctx<C> {
    fn clone(&self) -> Self {
        Self {
            urn: self.urn.clone(),
            name: self.name.clone(),
            config: self.config.clone(),
            program_dir: self.program_dir.clone(),
            cancel: self.cancel.clone(),
            log: self.log.clone(),
            redactor: self.redactor.clone(),
        }
    }
}

impl<C> Ctx<C> {
    /// A context outside any engine call (for a resource's own tests and tools): no URN,
    /// log lines to stderr only, nothing to mask yet, never cancelled.
    pub fn detached(config: C, program_dir: impl Into<PathBuf>) -> Self {
        Ctx {
            urn: String::new(),
            name: String::new(),
            config: Arc::new(config),
            program_dir: program_dir.into(),
            cancel: CancellationToken::default(),
            log: EngineLog::stderr_only(),
            redactor: Redactor::default(),
        }
    }

    /// Logs a line against this resource in the engine's output (secrets masked).
    pub async fn log(&self, severity: Severity, message: &str) {
        let message = self.redactor.mask(message);
        self.log.log(severity, &self.urn, &message, false).await;
    }

    /// Logs a progress line shown while the operation runs (not kept in the final output).
    pub async fn progress(&self, message: &str) {
        let message = self.redactor.mask(message);
        self.log
            .log(Severity::Info, &self.urn, &message, true)
            .await;
    }

    /// Declares a secret learnt while serving the call (e.g. a password from the Docker CLI's
    /// config): from now on it is masked like the secret inputs.
    pub fn add_secret(&self, secret: &str) {
        self.redactor.add(secret);
    }

    /// The masking of this call, for text that leaves the provider by another way.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// Typed inputs plus what the codec learned about them.
#[derive(Debug, Clone)]
pub struct Inputs<A> {
    pub args: A,
    /// Paths whose value is not known yet (preview only). Their value in `args` is a zero
    /// value or `None`: never read it as real.
    pub unknowns: BTreeSet<PropertyPath>,
    /// Paths that arrived as secrets (kept secret on the way out).
    pub secrets: BTreeSet<PropertyPath>,
}

/// How much of a value is unknown in preview ([`Inputs::unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unknown {
    /// All of it is known.
    No,
    /// It is there, but something inside it is unknown (a map's value, a list's element).
    Within,
    /// The value itself is unknown, or what holds it is.
    Whole,
}

impl Unknown {
    /// Anything of it is unknown.
    pub fn any(self) -> bool {
        self != Unknown::No
    }
}

impl<A> Inputs<A> {
    /// The one question about unknowns: how much of the value at `path` is unknown.
    pub fn unknown(&self, path: &PropertyPath) -> Unknown {
        if self.unknowns.iter().any(|u| path.starts_with(u)) {
            Unknown::Whole
        } else if self.unknowns.iter().any(|u| u.starts_with(path)) {
            Unknown::Within
        } else {
            Unknown::No
        }
    }

    /// True when the top-level property `name`, or anything inside it, is unknown
    /// (`unknown` of that property, [`Unknown::any`]).
    pub fn is_unknown(&self, name: &str) -> bool {
        self.unknown(&PropertyPath::keys(&[name])).any()
    }

    pub fn has_unknowns(&self) -> bool {
        !self.unknowns.is_empty()
    }
}

/// A problem with one input, reported by `check` (Pulumi shows it next to the property).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// The property at fault; the wire carries it as [`PropertyPath`]'s `Display`.
    pub property: PropertyPath,
    pub reason: String,
}

impl CheckFailure {
    /// A failure of `property`: a top-level name (`"context"`) or a built path
    /// (`PropertyPath::key("tags").at(1)`).
    pub fn new(property: impl Into<PropertyPath>, reason: impl Into<String>) -> Self {
        Self {
            property: property.into(),
            reason: reason.into(),
        }
    }
}

/// How a property changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Delete,
    Update,
}

/// One changed property (a top-level name or a nested path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyChange {
    pub path: String,
    pub kind: ChangeKind,
    /// The change needs a replacement, not an in-place update.
    pub replace: bool,
}

/// The outcome of `diff`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffResult {
    pub changes: Vec<PropertyChange>,
    pub delete_before_replace: bool,
    /// A human sentence about the change (e.g. which files changed), shown in the
    /// engine's output for this resource.
    pub note: Option<String>,
}

impl DiffResult {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Whose problem an error is, which decides its gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The inputs cannot work (bad value that only shows when acting on it).
    InvalidInput,
    /// Something outside could not be reached (daemon, registry).
    Unavailable,
    /// The engine cancelled the operation.
    Cancelled,
    /// Anything else.
    Failed,
}

/// An error from a resource method: a kind and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if *kind == ErrorKind::Cancelled { "cancelled: " } else { "" })]
pub struct ResourceError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ResourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ResourceError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// The same error with every secret of `r` masked in its message.
    pub fn masked(self, r: &Redactor) -> Self {
        Self::new(self.kind, r.mask(&self.message))
    }
}

pub type Result<T, E = ResourceError> = std::result::Result<T, E>;

/// What `create` returns: the resource id and its state.
#[derive(Debug, Clone)]
pub struct Created<S> {
    pub id: String,
    pub state: S,
}

/// What `read` returns: the current state and the inputs that would produce it.
#[derive(Debug, Clone)]
pub struct ReadResult<A, S> {
    pub id: String,
    pub state: S,
    pub inputs: A,
}

/// One resource type. `Args` are the inputs; `State` must hold the args flattened
/// (`#[serde(flatten)]`) plus the outputs. Doc comments on the structs and fields become the
/// schema's descriptions; `#[schemars(extend("secret" = true))]` marks a secret once.
pub trait Resource: Send + Sync + 'static {
    /// The type token, e.g. `docker-buildkit:index:Image`.
    const TOKEN: &'static str;
    /// Whether [`Resource::update`] is implemented. The kit's defaults follow it: without an
    /// update, the default `diff` asks for a replacement on every change (so the engine never
    /// calls the default `update`, which refuses).
    const UPDATES_IN_PLACE: bool = false;
    /// The provider configuration type this resource reads.
    type Config: Send + Sync + 'static;
    type Args: DeserializeOwned + Serialize + JsonSchema + Clone + Send + Sync + 'static;
    type State: DeserializeOwned + Serialize + JsonSchema + Clone + Send + Sync + 'static;

    /// The checks that need nothing but the inputs (no file, daemon or registry). The
    /// dispatcher runs them before `check`, `create` and `update` alike, so inputs that never
    /// went through Check are refused the same way (INVALID_ARGUMENT), before anything is
    /// contacted. Unknown values (preview) must not be judged. The default accepts all.
    fn validate(&self, _inputs: &Inputs<Self::Args>) -> Vec<CheckFailure> {
        Vec::new()
    }

    /// Validates and normalizes inputs. `olds` are the previous inputs, if any. Runs only
    /// when [`Resource::validate`] found nothing.
    fn check(
        &self,
        _ctx: &Ctx<Self::Config>,
        news: Inputs<Self::Args>,
        _olds: Option<Self::Args>,
    ) -> impl Future<Output = std::result::Result<Inputs<Self::Args>, Vec<CheckFailure>>> + Send
    {
        async move { Ok(news) }
    }

    /// Compares the old state with new inputs. The default compares the inputs property by
    /// property (an unknown counts as a change) and updates in place.
    fn diff(
        &self,
        _ctx: &Ctx<Self::Config>,
        _id: &str,
        olds: &Self::State,
        news: &Inputs<Self::Args>,
    ) -> impl Future<Output = Result<DiffResult>> + Send {
        let changes = default_diff::<Self::Args, Self::State>(olds, news).map(|mut changes| {
            for c in &mut changes {
                c.replace = !Self::UPDATES_IN_PLACE;
            }
            changes
        });
        async move {
            Ok(DiffResult {
                changes: changes?,
                ..DiffResult::default()
            })
        }
    }

    /// Creates the resource. With `preview`, must not act: return what is known, leaving
    /// unknown outputs `None` (they are sent as unknown).
    fn create(
        &self,
        ctx: &Ctx<Self::Config>,
        inputs: Inputs<Self::Args>,
        preview: bool,
    ) -> impl Future<Output = Result<Created<Self::State>>> + Send;

    /// Refreshes the state. `Ok(None)` means the resource is gone. The default trusts the
    /// stored state.
    fn read(
        &self,
        _ctx: &Ctx<Self::Config>,
        id: &str,
        state: Self::State,
        inputs: Self::Args,
    ) -> impl Future<Output = Result<Option<ReadResult<Self::Args, Self::State>>>> + Send {
        let id = id.to_string();
        async move { Ok(Some(ReadResult { id, state, inputs })) }
    }

    /// Updates in place (set [`Resource::UPDATES_IN_PLACE`] when implementing it). The
    /// default refuses: the default `diff` of a resource without an update asks for a
    /// replacement on every change, so the engine does not call it.
    fn update(
        &self,
        _ctx: &Ctx<Self::Config>,
        _id: &str,
        _olds: Self::State,
        _news: Inputs<Self::Args>,
        _preview: bool,
    ) -> impl Future<Output = Result<Self::State>> + Send {
        async move {
            Err(ResourceError::failed(format!(
                "{} cannot be updated in place",
                Self::TOKEN
            )))
        }
    }

    /// Deletes the resource. The default does nothing.
    fn delete(
        &self,
        _ctx: &Ctx<Self::Config>,
        _id: &str,
        _state: Self::State,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { Ok(()) }
    }
}

/// Property-by-property comparison of old and new inputs, as JSON: the default `diff`. Values
/// that are not JSON objects cannot be compared: an error, never "no changes".
pub fn default_diff<A: Serialize, S: Serialize>(
    olds: &S,
    news: &Inputs<A>,
) -> Result<Vec<PropertyChange>> {
    let as_object = |v: serde_json::Result<serde_json::Value>, what: &str| match v {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(ResourceError::failed(format!(
            "cannot compare the {what}: expected an object, got {}",
            match other {
                serde_json::Value::Array(_) => "a list",
                _ => "a plain value",
            }
        ))),
        Err(e) => Err(ResourceError::failed(format!(
            "cannot compare the {what}: {e}"
        ))),
    };
    let old = as_object(serde_json::to_value(olds), "old state")?;
    let new = as_object(serde_json::to_value(&news.args), "new inputs")?;
    let (old, new) = (&old, &new);
    let mut changes = Vec::new();
    for (k, v) in new {
        let kind = match old.get(k) {
            _ if news.is_unknown(k) => Some(ChangeKind::Update),
            None | Some(serde_json::Value::Null) if !v.is_null() => Some(ChangeKind::Add),
            Some(o) if !o.is_null() && v.is_null() => Some(ChangeKind::Delete),
            Some(o) if o != v && !(o.is_null() && v.is_null()) => Some(ChangeKind::Update),
            _ => None,
        };
        if let Some(kind) = kind {
            changes.push(PropertyChange {
                path: k.clone(),
                kind,
                replace: false,
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
    struct Args {
        size: Option<u32>,
    }

    /// A resource with the kit's defaults only: no `update`.
    struct Fixed;
    impl Resource for Fixed {
        const TOKEN: &'static str = "test:index:Fixed";
        type Config = ();
        type Args = Args;
        type State = Args;
        async fn create(
            &self,
            _ctx: &Ctx<()>,
            inputs: Inputs<Args>,
            _preview: bool,
        ) -> Result<Created<Args>> {
            Ok(Created {
                id: "id".into(),
                state: inputs.args,
            })
        }
    }

    /// The same with an update of its own.
    struct Mutable;
    impl Resource for Mutable {
        const TOKEN: &'static str = "test:index:Mutable";
        const UPDATES_IN_PLACE: bool = true;
        type Config = ();
        type Args = Args;
        type State = Args;
        async fn create(
            &self,
            _ctx: &Ctx<()>,
            inputs: Inputs<Args>,
            _preview: bool,
        ) -> Result<Created<Args>> {
            Ok(Created {
                id: "id".into(),
                state: inputs.args,
            })
        }
        async fn update(
            &self,
            _ctx: &Ctx<()>,
            _id: &str,
            _olds: Args,
            news: Inputs<Args>,
            _preview: bool,
        ) -> Result<Args> {
            Ok(news.args)
        }
    }

    fn inputs(size: u32) -> Inputs<Args> {
        Inputs {
            args: Args { size: Some(size) },
            unknowns: Default::default(),
            secrets: Default::default(),
        }
    }

    #[tokio::test]
    async fn without_an_update_the_default_diff_replaces() {
        let ctx = Ctx::detached((), "/");
        let old = Args { size: Some(1) };
        let diff = Fixed.diff(&ctx, "id", &old, &inputs(2)).await.unwrap();
        assert_eq!(diff.changes.len(), 1);
        assert!(diff.changes[0].replace, "{diff:?}");
        let diff = Mutable.diff(&ctx, "id", &old, &inputs(2)).await.unwrap();
        assert!(!diff.changes[0].replace, "{diff:?}");
        assert_eq!(
            Mutable
                .update(&ctx, "id", old.clone(), inputs(2), false)
                .await
                .unwrap(),
            Args { size: Some(2) }
        );
        // No change, nothing to replace.
        assert!(
            Fixed
                .diff(&ctx, "id", &old, &inputs(1))
                .await
                .unwrap()
                .changes
                .is_empty()
        );
    }

    #[test]
    fn one_question_about_unknowns() {
        use crate::rpc::codec::Seg;
        let mut i = inputs(1);
        let secrets = PropertyPath::keys(&["secrets"]);
        let token = secrets.child(Seg::Key("token".into()));
        i.unknowns.insert(token.clone());
        assert_eq!(i.unknown(&token), Unknown::Whole);
        assert_eq!(i.unknown(&token.child(Seg::Index(0))), Unknown::Whole);
        assert_eq!(i.unknown(&secrets), Unknown::Within);
        assert_eq!(i.unknown(&PropertyPath::keys(&["size"])), Unknown::No);
        assert!(i.is_unknown("secrets") && !i.is_unknown("size"));
        assert!(
            !i.is_unknown("secret"),
            "a prefix of the name is another property"
        );
    }
}
