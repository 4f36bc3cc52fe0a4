//! The `Image` resource: its inputs ([`ImageArgs`]), its state ([`ImageState`]) and its
//! lifecycle. `check` validates and hashes the context (so preview shows a diff without
//! building), `diff` decides whether anything that makes the image changed, `create` and
//! `update` build and push (never in preview), `read` asks the registry whether the image
//! still exists, `delete` leaves the registry alone.
//!
//! The rooms: [`args`] (the inputs and the state), `validate` (one check per input), `plan`
//! (checked inputs → the engine's `BuildPlan`), `hash` (the context hash and the diff's notes)
//! and `engine` (the engine's environment for a call, and its errors as the resource's). This
//! file is the lifecycle that uses them.
//!
//! Not for: Docker or registry protocol details (see [`crate::docker`]) or the context walk
//! and hash ([`crate::context`]).

pub mod args;
mod dockerfile;
mod engine;
mod hash;
mod plan;
mod validate;

use crate::docker;
use crate::resource::{
    CheckFailure, Created, Ctx, DiffResult, Inputs, ReadResult, Resource, ResourceError, Result,
};
use crate::rpc::engine::Severity;

pub use self::args::{
    DEFAULT_SSH_ID, ImageArgs, ImageState, MAX_SECRET_BYTES, Provenance, Registry, SshInput,
};
pub use self::dockerfile::DockerfileReport;
use self::engine::{CtxEvents, env, resource_error};
pub use self::hash::{check_dockerfile, compute_hash, open_context};
use self::hash::{check_off_runtime, describe_context_change, hash_off_runtime, only_tags_changed};
pub use self::plan::context_dir;
use self::plan::{build_plan, exported_outputs, login};
use self::validate::{check_exports, check_ssh, validate};
pub use self::validate::{validate_add_host, validate_platform};
use super::ProviderConfig;
use super::inputs::{
    hash_inputs_known, hashes_a_secret, unknowns_for_the_diff, without_credentials,
};

/// The `Image` resource.
pub struct Image;

/// What only a buildkitd does, asked of a provider where a Docker host may build: a failure
/// on each input that asks it, saying which builder can.
fn needs_a_buildkitd(ctx: &Ctx<ProviderConfig>, news: &Inputs<ImageArgs>) -> Vec<CheckFailure> {
    let Some(docker) = ctx.config.a_docker_builder() else {
        return Vec::new();
    };
    let fix = "set `driver: buildkit` on a buildkitd `host` (and on every builder)";
    let mut failures = Vec::new();
    for (i, c) in news.args.cache_to.iter().flatten().enumerate() {
        let kind = if c.registry.is_some() {
            "registry"
        } else if c.local.is_some() {
            "local"
        } else {
            continue;
        };
        failures.push(CheckFailure::new(
            crate::path::PropertyPath::key("cacheTo").at(i),
            format!(
                "a {kind} cache export needs a BuildKit daemon: the Docker host {docker} (its /build) exports only the inline cache; {fix}"
            ),
        ));
    }
    for (i, c) in news.args.cache_from.iter().flatten().enumerate() {
        if matches!(c, args::CacheFromEntry::Typed(t) if t.local.is_some()) {
            failures.push(CheckFailure::new(
                crate::path::PropertyPath::key("cacheFrom").at(i).field("local"),
                format!(
                    "a local cache import needs a BuildKit daemon: the Docker host {docker} (its /build) imports only images; {fix}"
                ),
            ));
        }
    }
    if matches!(
        news.args.provenance,
        Some(Provenance::Min | Provenance::Max)
    ) {
        failures.push(CheckFailure::new(
            "provenance",
            format!(
                "a provenance attestation needs a BuildKit daemon: the Docker host {docker} (its /build) cannot make one; {fix}, or leave provenance off"
            ),
        ));
    }
    for (i, e) in news.args.exports.iter().flatten().enumerate() {
        if e.tarball
            .as_ref()
            .is_some_and(|t| t.format == Some(args::TarballFormatInput::Oci))
        {
            failures.push(CheckFailure::new(
                crate::path::PropertyPath::key("exports").at(i).field("tarball").field("format"),
                format!(
                    "an OCI tarball needs a BuildKit daemon: the Docker host {docker} saves only docker tarballs; {fix}, or use `format: docker`"
                ),
            ));
        }
    }
    if news.args.exports.as_ref().is_some_and(|e| !e.is_empty())
        && news.args.platforms.as_ref().is_some_and(|p| p.len() > 1)
    {
        failures.push(CheckFailure::new(
            "exports",
            format!(
                "exports of several platforms need them built in one solve on a BuildKit daemon: the Docker host {docker} builds one platform at a time; {fix}"
            ),
        ));
    }
    if news
        .args
        .build_contexts
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        failures.push(CheckFailure::new(
            "buildContexts",
            format!(
                "named build contexts need a BuildKit daemon: the Dockerfile frontend of the Docker host {docker} (its /build) does not take them; {fix}"
            ),
        ));
    }
    failures
}

impl Resource for Image {
    const TOKEN: &'static str = "docker-buildkit:index:Image";
    // Tags, credentials and build settings change in place (a rebuild is an update too).
    const UPDATES_IN_PLACE: bool = true;
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
        failures.extend(check_exports(&ctx.program_dir, &news));
        failures.extend(needs_a_buildkitd(ctx, &news));
        // A buildkitd keeps no images: what it builds, its image exporter pushes or its
        // other exporters write.
        if ctx.config.builds_on_buildkitd()
            && !news.args.push
            && !news.is_unknown("push")
            && news.args.exports.as_ref().is_none_or(Vec::is_empty)
            && !news.is_unknown("exports")
        {
            failures.push(CheckFailure::new(
                "push",
                "the provider builds on a BuildKit daemon (`driver: buildkit`), which keeps no images of its own: set `push: true` (it pushes the image itself), give `exports` (e.g. `load: true`, a tarball, or `cacheOnly: true`), or build on a Docker host",
            ));
        }
        // A value the user cannot set: it is always computed here.
        news.args.context_hash = None;
        news.unknowns.retain(|p| p.top() != Some("contextHash"));
        if failures.is_empty() {
            let check = dockerfile::checkable(&news).then(|| dockerfile::options(&news));
            if hash_inputs_known(&news) {
                match hash_off_runtime(ctx, &news.args, check).await {
                    Ok((h, report)) => {
                        news.args.context_hash = Some(h);
                        failures.extend(report_dockerfile(ctx, report).await);
                    }
                    Err(e) => failures.push(e),
                }
                if hashes_a_secret(&news) {
                    // The hash of a secret is a secret: stored as one, never published.
                    news.secrets
                        .insert(crate::path::PropertyPath::keys(&["contextHash"]));
                }
                warn_of_secret_build_args(ctx, &news).await;
            } else {
                // Not knowable yet (preview with unknown inputs): the hash is unknown too.
                news.unknowns
                    .insert(crate::path::PropertyPath::keys(&["contextHash"]));
                if let Some(check) = check {
                    let report = check_off_runtime(ctx, &news.args, check).await;
                    failures.extend(report_dockerfile(ctx, report).await);
                }
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
        for x in state.exported.iter().flatten() {
            let Some(path) = &x.path else {
                continue;
            };
            let p = std::path::Path::new(path);
            let (there, what) = match x.kind.as_str() {
                "local" => (p.is_dir(), "directory"),
                _ => (p.is_file(), "tarball"),
            };
            if !there {
                ctx.log(
                    Severity::Info,
                    &format!("the {what} {path} this image was exported to is gone: the image will be exported again"),
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
            return Err(ResourceError::invalid_input(format!(
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
        let (hash, _) = hash_off_runtime(ctx, &state.args, None)
            .await
            .map_err(|f| ResourceError::invalid_input(format!("{}: {}", f.property, f.reason)))?;
        state.args.context_hash = Some(hash);
    }
    let plan = build_plan(ctx, &state.args, secret_hash)?;
    let built = docker::build_and_push(&env(ctx, &CtxEvents(ctx)), plan)
        .await
        .map_err(resource_error)?;
    // A cache-only build makes no image to name.
    state.digest = (!built.digest.is_empty()).then_some(built.digest);
    state.reference = built.reference.clone();
    state.repo_digest = built.reference;
    state.platform_digests = (!built.platform_digests.is_empty()).then_some(built.platform_digests);
    state.exported = (!built.exported.is_empty()).then(|| exported_outputs(&built.exported));
    Ok(state)
}

/// The Dockerfile check's warnings and note logged; its failures returned.
async fn report_dockerfile(
    ctx: &Ctx<ProviderConfig>,
    report: Option<DockerfileReport>,
) -> Vec<CheckFailure> {
    let Some(report) = report else {
        return Vec::new();
    };
    for w in &report.warnings {
        ctx.log(Severity::Warning, w).await;
    }
    if let Some(note) = &report.unchecked {
        ctx.log(Severity::Info, note).await;
    }
    report.failures
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

#[cfg(test)]
mod tests;
