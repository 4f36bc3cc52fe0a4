//! The `Image` resource: its inputs ([`ImageArgs`]), its state ([`ImageState`]) and its
//! lifecycle. `check` validates and hashes the context (so preview shows a diff without
//! building), `diff` decides whether anything that makes the image changed, `create` and
//! `update` build and push (never in preview), `read` asks the registry whether the image
//! still exists, `delete` leaves the registry alone.
//!
//! Not for: Docker or registry protocol details (see [`crate::docker`]) or the context walk
//! and hash ([`crate::context`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::{self, BuildContext, DockerfileSource};
use crate::credentials::Credentials;
use crate::credentials::normalize_server;
use crate::docker::session::ssh::{PathKind, path_kind, paths_of};
use crate::docker::{
    self, BuildPlan, BuildSecrets, DaemonAddress, Env, Events, Level, Pending, SshForward,
};
use crate::platform::Platform;
use crate::reference::{Reference, validate_registry};
use crate::resource::{
    CheckFailure, Created, Ctx, DiffResult, Inputs, ReadResult, Resource, ResourceError, Result,
};
use crate::rpc::codec::{PropertyPath, Seg};
use crate::rpc::engine::Severity;

use super::ProviderConfig;
use super::inputs::{
    hash_inputs_known, hashes_a_secret, unknowns_for_the_diff, without_credentials,
};

/// Credentials for the registry the image is pushed to (and its inline cache pulled from).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// The registry host, e.g. `ghcr.io` or `127.0.0.1:5000` (a URL such as
    /// `https://123.dkr.ecr.us-east-1.amazonaws.com` is accepted too).
    pub server: String,
    /// The user name.
    pub username: Option<String>,
    /// The password or token. Always stored as a secret; changing it never rebuilds.
    #[schemars(extend("secret" = true))]
    pub password: Option<String>,
}

/// An ssh agent forwarded to the build, for `RUN --mount=type=ssh` steps (as
/// `docker build --ssh`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshInput {
    /// The id `RUN --mount=type=ssh,id=<id>` names. Defaults to `default`, the id of a bare
    /// `RUN --mount=type=ssh`.
    pub id: Option<String>,
    /// The agent's socket, or private key files (without a passphrase) that are loaded into
    /// an ssh-agent of their own for the build; relative paths are resolved against the Pulumi
    /// program's directory (as `context`). Without paths, the agent of the provider's
    /// `SSH_AUTH_SOCK`.
    pub paths: Option<Vec<String>>,
}

/// The id of an [`SshInput`] that names none.
pub const DEFAULT_SSH_ID: &str = "default";

/// BuildKit's own limit on the size of a build secret's value.
pub const MAX_SECRET_BYTES: usize = 500 * 1024;

/// The inputs of an `Image`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageArgs {
    /// The image repository to push to, e.g. `registry.example.com/team/app`, optionally
    /// with a tag (`:v1`; `latest` when none is given).
    pub name: String,
    /// More tags to push the same image under: a bare tag (`v1.2`) applies to `name`'s
    /// repository; a full reference (`registry/other:tag`) names another one.
    pub tags: Option<Vec<String>>,
    /// The build context directory, relative to the Pulumi program's directory. Defaults to
    /// the program's directory (`.`); with `dockerfileInline` and no `context`, the context is
    /// empty (as `docker build - < Dockerfile`), so edits to the program's directory never
    /// rebuild the image.
    pub context: Option<String>,
    /// The Dockerfile, relative to the context directory. Defaults to `Dockerfile`.
    pub dockerfile: Option<String>,
    /// The Dockerfile's text, instead of a file (not together with `dockerfile`).
    pub dockerfile_inline: Option<String>,
    /// The platforms to build for, as `os/arch[/variant]` (e.g. `linux/arm64`). Defaults to
    /// the Docker daemon's own platform. With several, each is built and pushed on its own
    /// (under the temporary tag `<tag>-<os>-<arch>[-<variant>]`, which stays in the registry)
    /// and one image index naming them all is pushed under `name` and `tags`.
    pub platforms: Option<Vec<String>>,
    /// Build arguments (`ARG` values).
    pub build_args: Option<BTreeMap<String, String>>,
    /// The stage of a multi-stage Dockerfile to build.
    pub target: Option<String>,
    /// Labels to set on the image.
    pub labels: Option<BTreeMap<String, String>>,
    /// More images to take build cache from (the image's own `name` always is one).
    pub cache_from: Option<Vec<String>>,
    /// Embed BuildKit's inline cache in the pushed image, so the next build anywhere can
    /// reuse its layers.
    #[serde(default = "yes")]
    pub inline_cache: bool,
    /// Build without any cache.
    #[serde(default)]
    pub no_cache: bool,
    /// Always try to pull newer versions of the base images (`FROM`), as `docker build
    /// --pull`, instead of using those the daemon already has. Does not rebuild by itself.
    #[serde(default)]
    pub pull: bool,
    /// The network mode of `RUN` steps: `default`, `host` or `none`.
    pub network: Option<String>,
    /// Build secrets by id, each read by `RUN --mount=type=secret,id=<id>` from the file
    /// `/run/secrets/<id>`: ids of letters, digits, `.`, `_` and `-`, values of at most 500 KiB.
    /// Every value is a secret: stored and sent as one, masked in all output, and never in the
    /// image, its history or `contextHash`. The ids are part of the image (adding or removing
    /// one rebuilds); a changed value alone neither rebuilds nor shows in the diff (change
    /// `triggers` to rebuild with it).
    #[schemars(extend("secret" = true))]
    pub secrets: Option<BTreeMap<String, String>>,
    /// ssh agents (sockets or private key files) forwarded to `RUN --mount=type=ssh[,id=<id>]`
    /// steps, e.g. to clone private repositories, as `docker build --ssh`. Does not rebuild
    /// by itself.
    pub ssh: Option<Vec<SshInput>>,
    /// More `/etc/hosts` entries for `RUN` steps, each `host:ip` (as `docker build
    /// --add-host`), e.g. `db.internal:10.0.0.5` or `v6host:2001:db8::1`; the ip may be
    /// `host-gateway` (the daemon's gateway address).
    pub add_hosts: Option<Vec<String>>,
    /// Push the image to the registry. When false, the image stays in the Docker daemon.
    #[serde(default = "yes")]
    pub push: bool,
    /// Credentials for the registry. Without them, those of the Docker CLI's config
    /// (`$DOCKER_CONFIG/config.json`, credential helpers included) are used.
    pub registry: Option<Registry>,
    /// Any change to these values rebuilds the image, even with an unchanged context.
    pub triggers: Option<Vec<String>>,
    /// Push an image index even for a single platform (several platforms always get one).
    /// Needs `platforms` and `push`.
    #[serde(default)]
    pub index: bool,
    /// Build once per context, across machines: every push also tags the image
    /// `ctx-<first 16 hex digits of contextHash>`, and before building the registry is asked
    /// for that tag. When it is there, nothing is built or pushed: the existing image is
    /// tagged as asked, registry-side, and its digest returned.
    #[serde(default = "yes")]
    pub skip_if_pushed: bool,
    /// A hash of everything that makes the image: the files of the context that
    /// `.dockerignore` lets in (path, exec bit and content), the Dockerfile, build args,
    /// target, labels, platforms, network, index, triggers, `addHosts` and the ids (never the
    /// values) of `secrets`.
    #[schemars(extend("x-computed" = true))]
    pub context_hash: Option<String>,
}

fn yes() -> bool {
    true
}

/// A Docker image built with BuildKit and pushed to a registry. Preview never builds;
/// nothing is built when nothing in the context changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageState {
    #[serde(flatten)]
    pub args: ImageArgs,
    /// The digest of the pushed manifest (`sha256:…`); with `push: false`, the image id.
    #[schemars(required)]
    pub digest: Option<String>,
    /// The pushed image pinned by digest, `repository@sha256:…`: deploy this.
    #[serde(rename = "ref")]
    #[schemars(required)]
    pub reference: Option<String>,
    /// The same as `ref` (the name the original provider used).
    #[schemars(required)]
    pub repo_digest: Option<String>,
    /// For each platform built, the digest of its own manifest (the index's entries).
    pub platform_digests: Option<BTreeMap<String, String>>,
}

/// The `Image` resource.
pub struct Image;

impl Resource for Image {
    const TOKEN: &'static str = "docker-buildkit:index:Image";
    type Config = ProviderConfig;
    type Args = ImageArgs;
    type State = ImageState;

    fn validate(&self, news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
        validate(news)
    }

    async fn check(
        &self,
        ctx: &Ctx<ProviderConfig>,
        mut news: Inputs<ImageArgs>,
        _olds: Option<ImageArgs>,
    ) -> std::result::Result<Inputs<ImageArgs>, Vec<CheckFailure>> {
        // `validate` has already passed: the dispatcher runs it before every Check, Create
        // and Update.
        // What needs the file system or the provider's environment.
        let mut failures = check_ssh(&ctx.program_dir, &news);
        // A value the user cannot set: it is always computed here.
        news.args.context_hash = None;
        news.unknowns.retain(|p| p.top() != Some("contextHash"));
        if failures.is_empty() {
            if hash_inputs_known(&news) {
                match hash_off_runtime(ctx, &news.args).await {
                    Ok(h) => news.args.context_hash = Some(h),
                    Err(e) => failures.push(e),
                }
                if hashes_a_secret(&news) {
                    // The hash of a secret is a secret: stored as one, never published.
                    news.secrets
                        .insert(crate::rpc::codec::PropertyPath::keys(&["contextHash"]));
                }
                warn_of_secret_build_args(ctx, &news).await;
            } else {
                // Not knowable yet (preview with unknown inputs): the hash is unknown too.
                news.unknowns
                    .insert(crate::rpc::codec::PropertyPath::keys(&["contextHash"]));
            }
        }
        if failures.is_empty() {
            Ok(news)
        } else {
            Err(failures)
        }
    }

    async fn diff(
        &self,
        _ctx: &Ctx<ProviderConfig>,
        _id: &str,
        olds: &ImageState,
        news: &Inputs<ImageArgs>,
    ) -> Result<DiffResult> {
        let mut changes = crate::resource::default_diff(
            &without_credentials(&olds.args),
            &Inputs {
                args: without_credentials(&news.args),
                unknowns: unknowns_for_the_diff(&news.unknowns),
                secrets: news.secrets.clone(),
            },
        )?;
        for c in &mut changes {
            c.replace = false;
        }
        let note = if changes.iter().any(|c| c.path == "contextHash") {
            Some(describe_context_change(olds, news))
        } else if !news.has_unknowns() && only_tags_changed(&olds.args, &news.args) {
            Some("tags only: no build; the image is tagged again, registry-side".to_string())
        } else {
            None
        };
        Ok(DiffResult {
            changes,
            delete_before_replace: false,
            note,
        })
    }

    async fn create(
        &self,
        ctx: &Ctx<ProviderConfig>,
        inputs: Inputs<ImageArgs>,
        preview: bool,
    ) -> Result<Created<ImageState>> {
        let state = build_or_preview(ctx, inputs, preview).await?;
        let id = state
            .reference
            .clone()
            .unwrap_or_else(|| state.args.name.clone());
        Ok(Created { id, state })
    }

    async fn update(
        &self,
        ctx: &Ctx<ProviderConfig>,
        _id: &str,
        olds: ImageState,
        news: Inputs<ImageArgs>,
        preview: bool,
    ) -> Result<ImageState> {
        if let Some(digest) = olds.digest.as_deref()
            && !news.has_unknowns()
            && only_tags_changed(&olds.args, &news.args)
        {
            let state = ImageState {
                args: news.args.clone(),
                ..olds.clone()
            };
            if preview {
                return Ok(state);
            }
            let plan = build_plan(ctx, &news.args, hashes_a_secret(&news))?;
            if docker::retag(&env(ctx, &CtxEvents(ctx)), &plan, digest)
                .await
                .map_err(resource_error)?
            {
                ctx.log(
                    Severity::Info,
                    &format!(
                        "tags only: no build; {} now tagged as asked (tags removed from `tags` stay in the registry: images may be shared)",
                        olds.reference.as_deref().unwrap_or(digest)
                    ),
                )
                .await;
                return Ok(state);
            }
        }
        build_or_preview(ctx, news, preview).await
    }

    async fn read(
        &self,
        ctx: &Ctx<ProviderConfig>,
        id: &str,
        state: ImageState,
        inputs: ImageArgs,
    ) -> Result<Option<ReadResult<ImageArgs, ImageState>>> {
        if state.args.push
            && let Some(reference) = &state.reference
        {
            let exists = match docker::registry_has(
                &env(ctx, &CtxEvents(ctx)),
                reference,
                login(state.args.registry.as_ref()).as_ref(),
            )
            .await
            {
                Ok(exists) => exists,
                Err(e) => {
                    // Only a registry that says "not found" may drop the resource: an expired
                    // token, a refusal or an outage says nothing about the image.
                    ctx.log(
                        Severity::Warning,
                        &format!("could not check that {reference} is still in the registry, so the resource is kept as it was: {e}"),
                    )
                    .await;
                    true
                }
            };
            if !exists {
                ctx.log(
                    Severity::Info,
                    &format!("{reference} is no longer in the registry: the image will be rebuilt"),
                )
                .await;
                return Ok(None);
            }
        }
        Ok(Some(ReadResult {
            id: id.to_string(),
            state,
            inputs,
        }))
    }

    async fn delete(&self, ctx: &Ctx<ProviderConfig>, _id: &str, state: ImageState) -> Result<()> {
        ctx.log(
            Severity::Debug,
            &format!(
                "{} stays in the registry: images may be shared, so deleting the resource removes nothing",
                state.reference.as_deref().unwrap_or(&state.args.name)
            ),
        )
        .await;
        Ok(())
    }
}

/// Preview returns what is known; otherwise build, tag and push.
async fn build_or_preview(
    ctx: &Ctx<ProviderConfig>,
    inputs: Inputs<ImageArgs>,
    preview: bool,
) -> Result<ImageState> {
    let secret_hash = hashes_a_secret(&inputs);
    let mut state = ImageState {
        args: inputs.args,
        ..ImageState::default()
    };
    if preview || !inputs.unknowns.is_empty() {
        if !preview {
            return Err(ResourceError::InvalidInput(format!(
                "cannot build with unknown inputs: {}",
                inputs
                    .unknowns
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(state);
    }
    if state.args.context_hash.is_none() {
        // Inputs that did not come through Check: hash here, as Check would.
        let hash = hash_off_runtime(ctx, &state.args)
            .await
            .map_err(|f| ResourceError::InvalidInput(format!("{}: {}", f.property, f.reason)))?;
        state.args.context_hash = Some(hash);
    }
    let plan = build_plan(ctx, &state.args, secret_hash)?;
    let built = docker::build_and_push(&env(ctx, &CtxEvents(ctx)), plan)
        .await
        .map_err(resource_error)?;
    state.digest = Some(built.digest);
    state.reference = built.reference.clone();
    state.repo_digest = built.reference;
    state.platform_digests = (!built.platform_digests.is_empty()).then_some(built.platform_digests);
    Ok(state)
}

/// The build plan of checked inputs: every default resolved, every name parsed, nothing left
/// for the engine to decide. `secret_hash`: the context hash covers a secret, so build-once
/// (a public `ctx-<hash>` tag) is off.
fn build_plan(ctx: &Ctx<ProviderConfig>, a: &ImageArgs, secret_hash: bool) -> Result<BuildPlan> {
    let invalid =
        |property: &str, e: String| ResourceError::InvalidInput(format!("{property}: {e}"));
    let reference = Reference::parse(&a.name).map_err(|e| invalid("name", e.to_string()))?;
    let mut push_tags = vec![reference.tagged()];
    for (i, t) in a.tags.iter().flatten().enumerate() {
        let r = reference
            .resolve_tag(t)
            .map_err(|e| invalid(&format!("tags[{i}]"), e))?;
        if !push_tags.contains(&r) {
            push_tags.push(r);
        }
    }
    let platforms = a
        .platforms
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| {
            Platform::parse(p).ok_or_else(|| {
                invalid(
                    &format!("platforms[{i}]"),
                    format!("{p:?} is not os/arch[/variant]"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let build_once = !a.no_cache && !secret_hash;
    Ok(BuildPlan {
        context_dir: context_path(&ctx.program_dir, a).map_err(ResourceError::InvalidInput)?,
        dockerfile: dockerfile_source(a),
        reference,
        push_tags,
        platforms,
        index: a.index,
        build_args: a.build_args.clone().unwrap_or_default(),
        target: a.target.clone(),
        labels: a.labels.clone().unwrap_or_default(),
        cache_from: a.cache_from.clone().unwrap_or_default(),
        inline_cache: a.inline_cache,
        no_cache: a.no_cache,
        network: a.network.clone().filter(|n| n != "default"),
        secrets: BuildSecrets(a.secrets.clone().unwrap_or_default()),
        ssh: a
            .ssh
            .iter()
            .flatten()
            .map(|s| ssh_forward(&ctx.program_dir, s))
            .collect(),
        add_hosts: a.add_hosts.clone().unwrap_or_default(),
        pull: a.pull,
        push: a.push,
        context_tag: a
            .context_hash
            .as_deref()
            .filter(|_| build_once)
            .map(docker::index::context_tag),
        skip_if_pushed: a.skip_if_pushed,
        login: login(a.registry.as_ref()),
    })
}

/// The credentials of the `registry` input, when it has both a username and a password.
fn login(registry: Option<&Registry>) -> Option<Credentials> {
    let r = registry?;
    Some(Credentials {
        server: r.server.clone(),
        username: r.username.clone()?,
        password: r.password.clone()?,
        identity_token: None,
    })
}

/// The one mapping of the engine's errors to the resource's, and so to a gRPC code: whose
/// problem it is decides the code; the message is the error's own.
fn resource_error(e: docker::EngineError) -> ResourceError {
    if let docker::EngineError::Cancelled { what, target } = &e {
        return ResourceError::Cancelled(format!("the {what} of {target} was stopped"));
    }
    let message = e.to_string();
    match e.kind() {
        docker::Kind::InvalidInput => ResourceError::InvalidInput(message),
        docker::Kind::Unavailable => ResourceError::Unavailable(message),
        docker::Kind::Cancelled => ResourceError::Cancelled(message),
        docker::Kind::Failed => ResourceError::Failed(message),
    }
}

/// The engine's environment for a call: the daemon from the provider configuration, its
/// messages into the engine's log (masked there), the call's cancellation.
fn env<'a>(ctx: &'a Ctx<ProviderConfig>, events: &'a CtxEvents<'a>) -> Env<'a> {
    Env {
        daemon: DaemonAddress {
            host: ctx.config.host.clone(),
            cert_path: ctx.config.cert_path.clone(),
        },
        builders: ctx.config.builder_specs(),
        events,
        cancel: ctx.cancel.clone(),
    }
}

/// A call's [`Ctx`] as the engine's [`Events`] sink.
struct CtxEvents<'a>(&'a Ctx<ProviderConfig>);

impl Events for CtxEvents<'_> {
    fn log<'a>(&'a self, level: Level, message: &'a str) -> Pending<'a> {
        let severity = match level {
            Level::Debug => Severity::Debug,
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        };
        Box::pin(Ctx::log(self.0, severity, message))
    }

    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
        Box::pin(Ctx::progress(self.0, line))
    }

    fn secret(&self, value: &str) {
        self.0.add_secret(value);
    }
}

/// The build context of `args`: `context` resolved against the program directory; without
/// one, the program directory, or an empty directory for an inline Dockerfile.
fn context_path(program_dir: &Path, args: &ImageArgs) -> std::result::Result<PathBuf, String> {
    match (&args.context, &args.dockerfile_inline) {
        (Some(c), _) => Ok(context_dir(program_dir, c)),
        (None, Some(_)) => empty_context(),
        (None, None) => Ok(program_dir.to_path_buf()),
    }
}

/// An empty directory of the provider's own (under its cache directory, else the temporary
/// one), for builds with no context: made again if anything was put into it.
fn empty_context() -> std::result::Result<PathBuf, String> {
    let base = crate::cache::cache_dir().unwrap_or_else(std::env::temp_dir);
    let dir = base.join("empty-context");
    let fail = |e: std::io::Error| {
        format!(
            "cannot make an empty build context at {}: {e}",
            dir.display()
        )
    };
    match std::fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => {
            if std::fs::read_dir(&dir).map_err(fail)?.next().is_none() {
                return Ok(dir);
            }
            std::fs::remove_dir_all(&dir).map_err(fail)?;
        }
        // A file or a link where the directory should be: not ours to follow.
        Ok(_) => std::fs::remove_file(&dir).map_err(fail)?,
        Err(_) => {}
    }
    std::fs::create_dir_all(&dir).map_err(fail)?;
    Ok(dir)
}

/// The context directory: relative paths resolve against the program directory.
pub fn context_dir(program_dir: &Path, context: &str) -> PathBuf {
    program_path(program_dir, context)
}

/// A path of the inputs: relative paths resolve against the program directory.
fn program_path(program_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        program_dir.join(p)
    }
}

/// The agent to forward for one entry of `ssh`: its id (`default` when it names none) and its
/// paths resolved against the program directory.
fn ssh_forward(program_dir: &Path, s: &SshInput) -> SshForward {
    SshForward {
        id: s.id.clone().unwrap_or_else(|| DEFAULT_SSH_ID.to_string()),
        paths: s
            .paths
            .iter()
            .flatten()
            .map(|p| program_path(program_dir, p))
            .collect(),
    }
}

/// The checks of `ssh` that need the file system or the provider's environment (so not in
/// [`validate`]): each path is an agent socket or a key file; an entry without paths needs
/// the provider's `SSH_AUTH_SOCK` to be an agent. Entries with unknown values are not checked.
fn check_ssh(program_dir: &Path, news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    for (i, s) in news.args.ssh.iter().flatten().enumerate() {
        let entry = PropertyPath::keys(&["ssh"]).child(Seg::Index(i));
        if unknown_at(news, &entry) {
            continue;
        }
        let forward = ssh_forward(program_dir, s);
        if forward.paths.is_empty() {
            let problem = match paths_of(&forward) {
                // It says how to fix it.
                Err(e) => Some(e),
                Ok(agents) => agents
                    .iter()
                    .find_map(|p| match path_kind(p) {
                        Ok(PathKind::Socket) => None,
                        Ok(PathKind::KeyFile) => Some(format!("{} is not a socket", p.display())),
                        Err(e) => Some(e),
                    })
                    .map(|e| format!("the provider's SSH_AUTH_SOCK names no running ssh agent ({e}): start one with `eval $(ssh-agent)` and `ssh-add` before running pulumi, or list key files in `paths`")),
            };
            if let Some(reason) = problem {
                f.push(CheckFailure::new(entry.to_string(), reason));
            }
            continue;
        }
        for (j, p) in forward.paths.iter().enumerate() {
            if let Err(e) = path_kind(p) {
                f.push(CheckFailure::new(
                    entry
                        .child(Seg::Key("paths".into()))
                        .child(Seg::Index(j))
                        .to_string(),
                    format!("{e}: give an ssh agent's socket or a private key file"),
                ));
            }
        }
    }
    f
}

fn dockerfile_source(args: &ImageArgs) -> DockerfileSource {
    match (&args.dockerfile_inline, &args.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(path)) => DockerfileSource::Path(path.clone()),
        (None, None) => DockerfileSource::Path("Dockerfile".to_string()),
    }
}

/// Opens the build context of `args`, rooted at `dir`.
pub fn open_context(
    dir: &Path,
    args: &ImageArgs,
) -> std::result::Result<BuildContext, CheckFailure> {
    BuildContext::open(dir, dockerfile_source(args)).map_err(|e| context_failure(dir, args, e))
}

/// A context error as a failure on the input to fix: `dockerfile` for an error about the
/// Dockerfile or a directory on the way to it (e.g. a path the OS refuses), else `context`.
fn context_failure(dir: &Path, args: &ImageArgs, e: context::ContextError) -> CheckFailure {
    use context::ContextError as E;
    let on_the_way_to_dockerfile = |path: &Path| match dockerfile_source(args) {
        DockerfileSource::Path(rel) => path != dir && dir.join(rel).starts_with(path),
        DockerfileSource::Inline(_) => false,
    };
    let property = match &e {
        E::DockerfileInvalidPath { .. }
        | E::DockerfileNotFound { .. }
        | E::DockerfileNotRegular { .. } => "dockerfile",
        E::Stat { path, .. } | E::ReadFile { path, .. } if on_the_way_to_dockerfile(path) => {
            "dockerfile"
        }
        _ => "context",
    };
    CheckFailure::new(property, e.to_string())
}

/// The context hash: the context's own digest combined with every other input that
/// changes the image.
///
/// `dialects` are the `.dockerignore` dialects of the daemons that may build it, the
/// default daemon's first (an empty list: Classic). The dialect itself is not hashed, only
/// the context it selects: when every dialect selects the same files (always, with one
/// dialect), the hash is the one this context always had; otherwise the other dialects'
/// digests are hashed too, so that a change any builder would see changes the hash.
pub fn compute_hash(
    dir: &Path,
    args: &ImageArgs,
    dialects: &[context::IgnoreDialect],
) -> std::result::Result<context::ContextDigest, CheckFailure> {
    let ctx = open_context(dir, args)?;
    let (first, others) = dialects
        .split_first()
        .unwrap_or((&context::IgnoreDialect::Classic20_10, &[]));
    let hash_in = |dialect: context::IgnoreDialect| {
        ctx.clone()
            .with_dialect(dialect)
            .hash()
            .map_err(|e| context_failure(dir, args, e))
    };
    let digest = hash_in(*first)?;
    let mut also = Vec::new();
    for dialect in others.iter().filter(|d| *d != first) {
        let other = hash_in(*dialect)?;
        if other.hash != digest.hash && !also.contains(&other.hash) {
            also.push(other.hash);
        }
    }
    let extra = super::inputs::hashed_json(args);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"docker-buildkit context v1\0");
    h.update(digest.hash.as_bytes());
    for other in &also {
        h.update(b"\0+");
        h.update(other.as_bytes());
    }
    h.update(b"\0");
    h.update(extra.as_bytes());
    Ok(context::ContextDigest {
        hash: format!("{:032x}", h.digest128()),
        files: digest.files,
        build_files: digest.build_files,
    })
}

/// Hashes the context on a blocking thread (it reads files and the stat cache), so that the
/// provider keeps answering other calls meanwhile.
async fn hash_off_runtime(
    ctx: &Ctx<ProviderConfig>,
    args: &ImageArgs,
) -> std::result::Result<String, CheckFailure> {
    let dir = context_path(&ctx.program_dir, args).map_err(|e| CheckFailure::new("context", e))?;
    let args = args.clone();
    let dialects = ignore_dialects(ctx).await;
    tokio::task::spawn_blocking(move || {
        let h = compute_hash(&dir, &args, &dialects)?;
        crate::cache::store_manifest(&h.hash, &h.files);
        Ok(h.hash)
    })
    .await
    .map_err(|e| CheckFailure::new("context", format!("hashing the context failed: {e}")))?
}

/// The `.dockerignore` dialects of the daemons that may build: the default daemon's first,
/// then the configured builders' (each asked once per process, never for longer than
/// [`docker::dialect::PROBE_TIMEOUT`]; one that does not answer counts as Classic).
async fn ignore_dialects(ctx: &Ctx<ProviderConfig>) -> Vec<context::IgnoreDialect> {
    let events = CtxEvents(ctx);
    let env = env(ctx, &events);
    let addresses = std::iter::once(&env.daemon).chain(env.builders.iter().map(|b| &b.address));
    let found = futures_util::future::join_all(addresses.map(docker::dialect::probe)).await;
    let mut dialects = Vec::new();
    for d in found {
        if !dialects.contains(&d) {
            dialects.push(d);
        }
    }
    dialects
}

/// Docker keeps build-arg values in the image's history, where anyone who can pull the image
/// reads them: say so when a build arg is a secret.
async fn warn_of_secret_build_args(ctx: &Ctx<ProviderConfig>, news: &Inputs<ImageArgs>) {
    let secret_args: Vec<String> = news
        .secrets
        .iter()
        .filter(|p| p.top() == Some("buildArgs"))
        .map(|p| p.to_string())
        .collect();
    if secret_args.is_empty() {
        return;
    }
    ctx.log(
        Severity::Warning,
        &format!(
            "{} {} secret, but Docker stores build-arg values in the image's history, in clear, for anyone who can pull the image; pass secrets in `secrets` instead, for `RUN --mount=type=secret,id=<id>`",
            secret_args.join(", "),
            if secret_args.len() == 1 { "is" } else { "are" }
        ),
    )
    .await;
}

/// True when the new inputs differ from the old ones in `tags` alone (credentials never
/// count, as in the diff).
fn only_tags_changed(olds: &ImageArgs, news: &ImageArgs) -> bool {
    let rest = |a: &ImageArgs| ImageArgs {
        tags: None,
        ..without_credentials(a)
    };
    olds.tags != news.tags && rest(olds) == rest(news)
}

fn describe_context_change(olds: &ImageState, news: &Inputs<ImageArgs>) -> String {
    let manifest = |h: &Option<String>| h.as_deref().and_then(crate::cache::load_manifest);
    let changed = match (
        manifest(&olds.args.context_hash),
        manifest(&news.args.context_hash),
    ) {
        (Some(old), Some(new)) => context::changed_paths(&old, &new),
        _ => Vec::new(),
    };
    if changed.is_empty() {
        return "the build context or build settings changed: the image will be rebuilt"
            .to_string();
    }
    let shown: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
    let more = changed.len().saturating_sub(shown.len());
    format!(
        "{} file{} changed in the build context: {}{}",
        changed.len(),
        if changed.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// Every check that needs no Docker. Unknown values are not checked.
fn validate(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let a = &news.args;
    let mut f = Vec::new();
    let known = |p: &str| !news.is_unknown(p);
    if known("name") {
        match Reference::parse(&a.name) {
            Ok(r) if r.digest.is_some() => f.push(CheckFailure::new(
                "name",
                format!(
                    "{:?} has a digest: name the repository (and tag) to push to, e.g. {}",
                    a.name,
                    r.repository()
                ),
            )),
            Ok(_) => {}
            Err(e) => f.push(CheckFailure::new("name", e.to_string())),
        }
    }
    if known("tags") {
        // Bare tags are checked against any valid name (the name's own failure is above).
        let name = Reference::parse(&a.name).unwrap_or_else(|_| Reference {
            registry: None,
            path: "x".into(),
            tag: None,
            digest: None,
        });
        for (i, t) in a.tags.iter().flatten().enumerate() {
            if let Err(e) = name.resolve_tag(t) {
                f.push(CheckFailure::new(format!("tags[{i}]"), e));
            }
        }
    }
    if a.dockerfile.is_some() && a.dockerfile_inline.is_some() {
        f.push(CheckFailure::new(
            "dockerfileInline",
            "set either `dockerfile` or `dockerfileInline`, not both",
        ));
    }
    if let Some(text) = &a.dockerfile_inline
        && known("dockerfileInline")
        && text.trim().is_empty()
    {
        f.push(CheckFailure::new(
            "dockerfileInline",
            "the inline Dockerfile is empty: give its text (e.g. \"FROM alpine\"), or leave dockerfileInline out to build from a Dockerfile in the context",
        ));
    }
    if let Some(d) = &a.dockerfile
        && known("dockerfile")
        && (d.is_empty() || Path::new(d).is_absolute())
    {
        f.push(CheckFailure::new(
            "dockerfile",
            format!("{d:?} must be a path relative to the context directory"),
        ));
    }
    if known("platforms") {
        let platforms = a.platforms.as_deref().unwrap_or_default();
        for (i, p) in platforms.iter().enumerate() {
            if let Err(e) = validate_platform(p) {
                f.push(CheckFailure::new(format!("platforms[{i}]"), e));
            }
        }
        if a.index && platforms.is_empty() {
            f.push(CheckFailure::new(
                "index",
                "an index needs `platforms`: name the platform(s) it lists, e.g. [\"linux/amd64\"]",
            ));
        }
        if (platforms.len() > 1 || a.index) && !a.push && known("push") {
            f.push(CheckFailure::new(
                "push",
                "several platforms need `push: true`: the Docker daemon cannot keep a multi-platform image locally",
            ));
        }
        for (i, p) in platforms.iter().enumerate() {
            if platforms[..i].contains(p) {
                f.push(CheckFailure::new(
                    format!("platforms[{i}]"),
                    format!("{p:?} is listed twice"),
                ));
            }
        }
    }
    if let Some(n) = &a.network
        && known("network")
        && !matches!(n.as_str(), "default" | "host" | "none")
    {
        f.push(CheckFailure::new(
            "network",
            format!("{n:?} is not a network mode: use \"default\", \"host\" or \"none\""),
        ));
    }
    f.extend(validate_secrets(news));
    f.extend(validate_ssh(news));
    for (i, h) in a.add_hosts.iter().flatten().enumerate() {
        let path = PropertyPath::keys(&["addHosts"]).child(Seg::Index(i));
        if !unknown_at(news, &path)
            && let Err(e) = validate_add_host(h)
        {
            f.push(CheckFailure::new(path.to_string(), e));
        }
    }
    if known("buildArgs") {
        for k in a.build_args.iter().flat_map(|m| m.keys()) {
            if k.is_empty() || k.contains('=') || k.chars().any(char::is_whitespace) {
                f.push(CheckFailure::new(
                    "buildArgs",
                    format!("{k:?} is not a valid build argument name"),
                ));
            }
        }
    }
    if known("cacheFrom") {
        for (i, c) in a.cache_from.iter().flatten().enumerate() {
            if let Err(e) = Reference::parse(c) {
                f.push(CheckFailure::new(format!("cacheFrom[{i}]"), e.to_string()));
            }
        }
    }
    if let Some(r) = &a.registry
        && known("registry")
    {
        // Credentials are used for the host `normalize_server` makes of `server`: a server
        // that makes none (e.g. "https://") or an invalid one would never match, leaving them
        // silently unused.
        let host = normalize_server(&r.server);
        if r.server.trim().is_empty() {
            f.push(CheckFailure::new(
                "registry.server",
                "the registry server must not be empty",
            ));
        } else if host.is_empty() {
            f.push(CheckFailure::new(
                "registry.server",
                format!(
                    "{:?} names no registry host: give the host the credentials are for, e.g. ghcr.io or 127.0.0.1:5000",
                    r.server
                ),
            ));
        } else if let Err(e) = validate_registry(&host) {
            f.push(CheckFailure::new(
                "registry.server",
                format!(
                    "{:?} is not a registry host ({e}): give e.g. ghcr.io or 127.0.0.1:5000",
                    r.server
                ),
            ));
        }
        if r.username.is_some() != r.password.is_some() {
            f.push(CheckFailure::new(
                if r.password.is_none() {
                    "registry.password"
                } else {
                    "registry.username"
                },
                "give both `username` and `password`, or neither",
            ));
        }
    }
    if known("context") && a.context.as_deref() == Some("") {
        f.push(CheckFailure::new(
            "context",
            "the context directory must not be empty (use \".\")",
        ));
    }
    f
}

/// True when the value at `path`, anything inside it or what holds it is unknown (preview).
fn unknown_at(news: &Inputs<ImageArgs>, path: &PropertyPath) -> bool {
    news.unknowns
        .iter()
        .any(|u| path.starts_with(u) || u.starts_with(path))
}

/// The ids and sizes of `secrets`. No reason quotes a value. The ids are checked when the map
/// is known, each value when it is.
fn validate_secrets(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let map = PropertyPath::keys(&["secrets"]);
    if news.unknowns.iter().any(|u| map.starts_with(u)) {
        return f;
    }
    for (id, value) in news.args.secrets.iter().flatten() {
        let path = map.child(Seg::Key(id.clone()));
        if id.is_empty() {
            f.push(CheckFailure::new(
                "secrets",
                "a secret has an empty id: give each one the id its `RUN --mount=type=secret,id=<id>` names",
            ));
        } else if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            f.push(CheckFailure::new(
                path.to_string(),
                format!("{id:?} is not a secret id: use letters, digits, `.`, `_` and `-`"),
            ));
        }
        if !news.unknowns.iter().any(|u| u.starts_with(&path)) && value.len() > MAX_SECRET_BYTES {
            f.push(CheckFailure::new(
                path.to_string(),
                format!(
                    "the value is {} bytes, more than BuildKit's limit of 500 KiB ({MAX_SECRET_BYTES} bytes) for a build secret",
                    value.len()
                ),
            ));
        }
    }
    f
}

/// The ids of `ssh`: none empty, none twice (an entry without one is `default`). Its paths
/// need the file system: see [`check_ssh`].
fn validate_ssh(news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let mut f = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in news.args.ssh.iter().flatten().enumerate() {
        let path = PropertyPath::keys(&["ssh"])
            .child(Seg::Index(i))
            .child(Seg::Key("id".into()));
        if unknown_at(news, &path) {
            continue;
        }
        let id = s.id.as_deref().unwrap_or(DEFAULT_SSH_ID);
        if id.is_empty() {
            f.push(CheckFailure::new(
                path.to_string(),
                format!("the id must not be empty: give the id `RUN --mount=type=ssh,id=<id>` names, or leave it out for {DEFAULT_SSH_ID:?}"),
            ));
        } else if seen.contains(&id) {
            f.push(CheckFailure::new(
                path.to_string(),
                format!(
                    "{id:?} is the id of an earlier entry{}: each id names one agent, so give each entry its own (several key files can share one entry's `paths`)",
                    if s.id.is_none() {
                        " (an entry without an id has the id \"default\")"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            seen.push(id);
        }
    }
    f
}

/// Checks `host:ip` (as `docker build --add-host`): split at the first colon, as IPv6
/// addresses have more; the ip may be `host-gateway`, which the daemon resolves.
pub fn validate_add_host(entry: &str) -> std::result::Result<(), String> {
    let ok = entry.split_once(':').is_some_and(|(host, ip)| {
        !host.is_empty()
            && !host.chars().any(char::is_whitespace)
            && (ip == "host-gateway" || ip.parse::<std::net::IpAddr>().is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{entry:?} is not an extra host: use host:ip, e.g. db.internal:10.0.0.5 or v6host:2001:db8::1 (or host:host-gateway)"
        ))
    }
}

/// Checks `os/arch[/variant]`.
pub fn validate_platform(p: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = p.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a platform: use os/arch[/variant], e.g. linux/amd64 or linux/arm/v7"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context for a program in `/prog`.
    fn test_ctx() -> Ctx<ProviderConfig> {
        Ctx::detached(ProviderConfig::default(), "/prog")
    }

    /// The context hash before dialects existed, for a context and `args`.
    fn hash_before_dialects(dir: &Path, args: &ImageArgs) -> String {
        let digest = open_context(dir, args).unwrap().hash().unwrap();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(b"docker-buildkit context v1\0");
        h.update(digest.hash.as_bytes());
        h.update(b"\0");
        h.update(super::super::inputs::hashed_json(args).as_bytes());
        format!("{:032x}", h.digest128())
    }

    #[test]
    fn the_dialect_changes_the_hash_only_through_the_files() {
        use context::IgnoreDialect::{Classic20_10, Modern};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            (".dockerignore", "*\n!Dockerfile\n!**/node_modules\n"),
            ("node_modules/r.js", "r"),
        ] {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let args = ImageArgs {
            name: "reg.io/app".into(),
            ..ImageArgs::default()
        };
        let hash =
            |dialects: &[context::IgnoreDialect]| compute_hash(root, &args, dialects).unwrap().hash;
        // Classic (dockerd 20.10, or no answer): the hash every existing stack has.
        let before = hash_before_dialects(root, &args);
        assert_eq!(hash(&[Classic20_10]), before);
        assert_eq!(hash(&[]), before);
        // Modern keeps node_modules/r.js, which Classic drops: another hash, and a fleet
        // with both dialects sees changes either would.
        let modern = hash(&[Modern]);
        assert_ne!(modern, before);
        let both = hash(&[Classic20_10, Modern]);
        assert!(both != before && both != modern);
        assert_eq!(hash(&[Classic20_10, Modern, Classic20_10]), both);
        // Where the dialects select the same files, the dialect leaves no trace.
        std::fs::write(root.join(".dockerignore"), "*.log\n").unwrap();
        let before = hash_before_dialects(root, &args);
        assert_eq!(hash(&[Modern]), before);
        assert_eq!(hash(&[Classic20_10, Modern]), before);
    }

    #[test]
    fn the_plan_resolves_tags_against_the_name() {
        let ctx = test_ctx();
        let args = ImageArgs {
            name: "reg.io/team/app:v1".into(),
            tags: Some(vec!["v2".into(), "reg.io/other:x".into(), "v1".into()]),
            context: Some("app".into()),
            network: Some("default".into()),
            context_hash: Some("0123456789abcdef0123".into()),
            registry: Some(Registry {
                server: "reg.io".into(),
                username: Some("u".into()),
                password: None,
            }),
            ..ImageArgs::default()
        };
        let plan = build_plan(&ctx, &args, false).unwrap();
        let tags: Vec<String> = plan.push_tags.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            tags,
            vec!["reg.io/team/app:v1", "reg.io/team/app:v2", "reg.io/other:x"]
        );
        assert_eq!(plan.local_tag(), "reg.io/team/app:v1");
        assert_eq!(plan.context_dir, Path::new("/prog/app"));
        assert_eq!(
            plan.network, None,
            "the daemon's default is no network option"
        );
        assert!(
            plan.login.is_none(),
            "a username without a password is no login"
        );
        assert_eq!(plan.context_tag.as_deref(), Some("ctx-0123456789abcdef"));
        let no_cache = ImageArgs {
            no_cache: true,
            ..args.clone()
        };
        assert_eq!(
            build_plan(&ctx, &no_cache, false).unwrap().context_tag,
            None
        );
        assert_eq!(
            build_plan(&ctx, &args, true).unwrap().context_tag,
            None,
            "a secret hash is never published"
        );
    }

    #[test]
    fn the_plan_carries_secrets_ssh_hosts_and_pull() {
        let ctx = test_ctx();
        let args = ImageArgs {
            name: "reg.io/team/app".into(),
            context: Some(".".into()),
            secrets: Some([("npmrc".to_string(), "tok".to_string())].into()),
            ssh: Some(vec![
                SshInput::default(),
                SshInput {
                    id: Some("deploy".into()),
                    paths: Some(vec!["keys/id_ed25519".into(), "/abs/agent.sock".into()]),
                },
            ]),
            add_hosts: Some(vec!["db:10.0.0.2".into()]),
            pull: true,
            ..ImageArgs::default()
        };
        let plan = build_plan(&ctx, &args, false).unwrap();
        assert_eq!(plan.secrets.0["npmrc"], "tok");
        assert_eq!(
            plan.ssh,
            vec![
                SshForward {
                    id: "default".into(),
                    paths: vec![],
                },
                SshForward {
                    id: "deploy".into(),
                    paths: vec![
                        PathBuf::from("/prog/keys/id_ed25519"),
                        PathBuf::from("/abs/agent.sock")
                    ],
                },
            ]
        );
        assert_eq!(plan.add_hosts, vec!["db:10.0.0.2"]);
        assert!(plan.pull);
        let none = build_plan(
            &ctx,
            &ImageArgs {
                name: "a/b".into(),
                ..ImageArgs::default()
            },
            false,
        )
        .unwrap();
        assert!(none.secrets.0.is_empty() && none.ssh.is_empty() && none.add_hosts.is_empty());
        assert!(!none.pull);
    }

    #[test]
    fn extra_hosts_are_host_colon_ip() {
        for good in [
            "db:10.0.0.2",
            "db.internal:192.168.1.1",
            "v6:2001:db8::1",
            "v6:::1",
            "gw:host-gateway",
        ] {
            validate_add_host(good).unwrap();
        }
        for bad in [
            "db",
            ":10.0.0.2",
            "db:",
            "db:10.0.0",
            "db:[::1]",
            "my host:10.0.0.2",
            "db=10.0.0.2",
            "db:example.com",
        ] {
            let e = validate_add_host(bad).expect_err(bad);
            assert!(e.contains("host:ip"), "{e}");
        }
    }

    fn props(i: &Inputs<ImageArgs>) -> Vec<String> {
        validate(i).into_iter().map(|f| f.property).collect()
    }

    #[test]
    fn secrets_are_checked_without_quoting_a_value() {
        let big = "s".repeat(MAX_SECRET_BYTES + 1);
        let args = ImageArgs {
            name: "a/b".into(),
            secrets: Some(
                [
                    ("".to_string(), "v".to_string()),
                    ("ok.id_-1".to_string(), "s".repeat(MAX_SECRET_BYTES)),
                    ("a b".to_string(), "v".to_string()),
                    ("big".to_string(), big.clone()),
                ]
                .into(),
            ),
            ..ImageArgs::default()
        };
        let f = validate(&inputs(args.clone()));
        let names: Vec<&str> = f.iter().map(|f| f.property.as_str()).collect();
        assert_eq!(names, vec!["secrets", "secrets[\"a b\"]", "secrets.big"]);
        assert!(f[2].reason.contains("500 KiB"), "{}", f[2].reason);
        assert!(f.iter().all(|f| !f.reason.contains("sss")));
        // A value not known yet is not judged; the ids still are.
        let mut i = inputs(args.clone());
        i.unknowns.insert(PropertyPath::keys(&["secrets", "big"]));
        assert_eq!(props(&i), vec!["secrets", "secrets[\"a b\"]"]);
        // The whole map unknown: nothing is.
        let mut i = inputs(args);
        i.unknowns.insert(PropertyPath::keys(&["secrets"]));
        assert!(props(&i).is_empty());
    }

    #[test]
    fn ssh_ids_are_unique_and_not_empty() {
        let entry = |id: Option<&str>| SshInput {
            id: id.map(str::to_string),
            paths: None,
        };
        let args = ImageArgs {
            name: "a/b".into(),
            ssh: Some(vec![
                entry(None),
                entry(Some("git")),
                entry(Some("default")),
                entry(Some("")),
                entry(Some("git")),
            ]),
            ..ImageArgs::default()
        };
        let i = inputs(args.clone());
        assert_eq!(props(&i), vec!["ssh[2].id", "ssh[3].id", "ssh[4].id"]);
        let mut i = inputs(args);
        i.unknowns.insert(
            PropertyPath::keys(&["ssh"])
                .child(Seg::Index(3))
                .child(Seg::Key("id".into())),
        );
        assert_eq!(props(&i), vec!["ssh[2].id", "ssh[4].id"]);
    }

    #[test]
    fn ssh_paths_must_be_sockets_or_key_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("id_ed25519"), "key").expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let _agent =
            std::os::unix::net::UnixListener::bind(dir.path().join("agent.sock")).expect("socket");
        let paths = |ps: &[&str]| SshInput {
            id: None,
            paths: Some(ps.iter().map(|p| p.to_string()).collect()),
        };
        let abs = dir.path().join("agent.sock").display().to_string();
        let args = ImageArgs {
            name: "a/b".into(),
            ssh: Some(vec![
                paths(&["id_ed25519", "missing"]),
                SshInput {
                    id: Some("a".into()),
                    ..paths(&[&abs])
                },
                SshInput {
                    id: Some("b".into()),
                    ..paths(&["sub"])
                },
            ]),
            ..ImageArgs::default()
        };
        let f = check_ssh(dir.path(), &inputs(args.clone()));
        let names: Vec<&str> = f.iter().map(|f| f.property.as_str()).collect();
        assert_eq!(names, vec!["ssh[0].paths[1]", "ssh[2].paths[0]"], "{f:?}");
        assert!(f[0].reason.contains("missing"), "{}", f[0].reason);
        // Unknown entries are not checked.
        let mut i = inputs(args);
        i.unknowns.insert(
            PropertyPath::keys(&["ssh"])
                .child(Seg::Index(2))
                .child(Seg::Key("paths".into())),
        );
        assert_eq!(check_ssh(dir.path(), &i).len(), 1);
    }

    #[test]
    fn platforms_are_os_arch_variant() {
        for good in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "windows/amd64",
        ] {
            validate_platform(good).unwrap();
        }
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "Linux/amd64",
            "linux/arm/v7/x",
            "",
        ] {
            assert!(validate_platform(bad).is_err(), "{bad}");
        }
    }

    fn inputs(args: ImageArgs) -> Inputs<ImageArgs> {
        Inputs {
            args,
            unknowns: Default::default(),
            secrets: Default::default(),
        }
    }

    #[test]
    fn validation_names_each_property() {
        let args = ImageArgs {
            name: "Bad Name".into(),
            tags: Some(vec!["ok".into(), "-bad".into()]),
            dockerfile: Some("Dockerfile".into()),
            dockerfile_inline: Some("FROM scratch".into()),
            platforms: Some(vec!["linux".into()]),
            network: Some("bridge0".into()),
            registry: Some(Registry {
                server: "".into(),
                username: Some("u".into()),
                password: None,
            }),
            context: Some(String::new()),
            ..ImageArgs::default()
        };
        let f = validate(&inputs(args));
        let props: Vec<&str> = f.iter().map(|f| f.property.as_str()).collect();
        assert_eq!(
            props,
            vec![
                "name",
                "tags[1]",
                "dockerfileInline",
                "platforms[0]",
                "network",
                "registry.server",
                "registry.password",
                "context"
            ]
        );
    }

    #[test]
    fn validation_catches_what_only_up_would_trip_on() {
        let base = ImageArgs {
            name: "a/b".into(),
            context: Some(".".into()),
            ..ImageArgs::default()
        };
        let props = |args: ImageArgs| -> Vec<String> {
            validate(&inputs(args))
                .into_iter()
                .map(|f| f.property)
                .collect()
        };
        assert_eq!(props(base.clone()), Vec::<String>::new());
        let bad = [
            ImageArgs {
                dockerfile_inline: Some(" \n".into()),
                ..base.clone()
            },
            ImageArgs {
                name: "[:5000/app".into(),
                ..base.clone()
            },
            ImageArgs {
                name: format!("a/b@sha256:{}", "0".repeat(64)),
                ..base.clone()
            },
        ];
        for (args, want) in bad.into_iter().zip(["dockerfileInline", "name", "name"]) {
            assert_eq!(props(args), vec![want]);
        }
        for (server, ok) in [
            ("https://", false),
            ("http:///v2/", false),
            ("https://reg istry", false),
            ("https://[::1", false),
            ("ghcr.io", true),
            ("https://123.dkr.ecr.us-east-1.amazonaws.com", true),
            ("https://index.docker.io/v1/", true),
            ("[::1]:5000", true),
        ] {
            let args = ImageArgs {
                registry: Some(Registry {
                    server: server.into(),
                    username: Some("u".into()),
                    password: Some("p".into()),
                }),
                ..base.clone()
            };
            let want: Vec<String> = if ok {
                vec![]
            } else {
                vec!["registry.server".into()]
            };
            assert_eq!(props(args), want, "{server}");
        }
    }

    #[test]
    fn a_dockerfile_the_os_refuses_is_reported_under_dockerfile() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        let with = |dockerfile: &str| ImageArgs {
            name: "a/b".into(),
            dockerfile: Some(dockerfile.into()),
            ..ImageArgs::default()
        };
        for bad in ["Docker\0file", "sub\0dir/Dockerfile", "missing"] {
            let f = open_context(dir.path(), &with(bad)).expect_err(bad);
            assert_eq!(f.property, "dockerfile", "{bad}: {}", f.reason);
        }
        // A context directory that does not exist is the context's fault.
        let f = open_context(&dir.path().join("nope"), &with("Dockerfile")).expect_err("root");
        assert_eq!(f.property, "context");
    }

    #[test]
    fn unknown_values_are_not_validated() {
        let mut i = inputs(ImageArgs {
            name: String::new(),
            context: Some(".".into()),
            ..ImageArgs::default()
        });
        i.unknowns
            .insert(crate::rpc::codec::PropertyPath::keys(&["name"]));
        assert!(validate(&i).is_empty());
    }
}
