//! The decisions of `up`, apart from their effects: reuse an image built from the same
//! context, or build (per platform), push (once per repository through the daemon, other tags
//! registry-side), put an index over several platforms, and mark the image with its context
//! tag. The effects sit behind two small traits, [`Builder`] (the Docker daemon) and
//! [`Registries`] (registry-side manifest calls), so these decisions are unit-tested against
//! fakes in milliseconds; the real daemon and registry are the integration tests' business.
//!
//! Not for: talking to Docker or a registry (the real implementations below delegate to
//! `build`, `push`, `index`).

use std::collections::BTreeMap;
use std::future::Future;

use bollard::Docker;
use tokio::sync::OnceCell;

use super::index;
use super::kit::KitBuilder;
use super::plan::{
    BuildPlan, BuilderSpec, DaemonAddress, Driver, Env, Events, Export, Exported, Level, Pending,
    TarballFormat,
};
use super::{BuildError, Built, PushError, Result, build, push};
use crate::credentials::Credentials;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{MEDIA_TYPE_DOCKER_MANIFEST_LIST, ManifestInfo, RegistryClient};

/// A Docker daemon, as the flow needs it.
pub trait Builder: Sync {
    /// The daemon's address, for messages.
    fn host(&self) -> String;
    /// Connects (once) and checks the daemon answers.
    fn reach(&self) -> impl Future<Output = Result<()>> + Send;
    /// Builds `plan` for `platform` (the daemon's own when `None`) tagged `local_tag`;
    /// returns the image id. Progress goes to `env`'s events.
    fn build(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Pushes image `image_id` as `target`; returns the digest of the manifest of that image.
    fn push(
        &self,
        env: &Env<'_>,
        image_id: &str,
        target: &Reference,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Tags image `image_id` as `target` in the daemon.
    fn tag(&self, image_id: &str, target: &Reference) -> impl Future<Output = Result<()>> + Send;
    /// True when what it builds stays in it as an image (a Docker daemon); a buildkitd keeps
    /// only its cache, so an unpushed build there is only what its exports wrote.
    fn keeps_images(&self) -> bool {
        true
    }
    /// What the plan's exports wrote for image `image_id`, just built here (the build may
    /// have written them itself, as a buildkitd's exporters do).
    fn exported(
        &self,
        _env: &Env<'_>,
        _plan: &BuildPlan,
        _image_id: &str,
    ) -> impl Future<Output = Result<Vec<Exported>>> + Send {
        async { Ok(Vec::new()) }
    }
    /// Builds every one of `platforms` in one solve and pushes one index of them under
    /// `local_tag`'s tag in every repository of the plan; returns the index's digest.
    /// `None` when this builder cannot (a Docker daemon builds one platform at a time).
    fn build_index(
        &self,
        _env: &Env<'_>,
        _plan: &BuildPlan,
        _platforms: &[Platform],
        _local_tag: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send {
        async { Ok(None) }
    }
}

/// The daemons that build: the default one, and builders that each list some platforms.
pub trait Fleet: Sync {
    type Member: Builder;
    /// Builds what no builder lists, and keeps unpushed images.
    fn default_builder(&self) -> &Self::Member;
    /// The builders that list `platform` (any order).
    fn listing(&self, platform: &Platform) -> Vec<&Self::Member>;
}

/// One daemon is a fleet of one.
impl<B: Builder> Fleet for B {
    type Member = B;
    fn default_builder(&self) -> &B {
        self
    }
    fn listing(&self, _platform: &Platform) -> Vec<&B> {
        Vec::new()
    }
}

/// Rendezvous (highest random weight) order of `hosts` for image `name`: each image always
/// prefers the same builder, so its cache stays warm there, and a builder added or removed
/// moves only the images that prefer it.
pub fn rendezvous<'h>(name: &str, hosts: &[&'h str]) -> Vec<&'h str> {
    let mut scored: Vec<(u64, &str)> = hosts
        .iter()
        .map(|h| {
            let key = format!("{name}\0{h}");
            (xxhash_rust::xxh3::xxh3_64(key.as_bytes()), *h)
        })
        .collect();
    scored.sort_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, h)| h).collect()
}

/// The builder for `platform`: the first of the builders listing it, in rendezvous order on
/// the image's name, that answers (each one that does not is skipped with a warning); the
/// default daemon when none lists it.
async fn choose<'f, F: Fleet>(
    env: &Env<'_>,
    fleet: &'f F,
    plan: &BuildPlan,
    platform: Option<&Platform>,
) -> Result<&'f F::Member> {
    let listing = platform.map(|p| fleet.listing(p)).unwrap_or_default();
    if listing.is_empty() {
        return Ok(fleet.default_builder());
    }
    let hosts: Vec<String> = listing.iter().map(|b| b.host()).collect();
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let order = rendezvous(&plan.reference.repository(), &host_refs);
    let platform = platform.map(Platform::name).unwrap_or_default();
    let mut tried = Vec::new();
    for host in order {
        let Some(i) = hosts.iter().position(|h| h == host) else {
            continue;
        };
        match listing[i].reach().await {
            Ok(()) => return Ok(listing[i]),
            Err(e) => {
                env.log(
                    Level::Warning,
                    &format!(
                        "builder {host} for {platform} cannot be reached, trying the next: {e}"
                    ),
                )
                .await;
                tried.push(format!("{host} ({e})"));
            }
        }
    }
    Err(BuildError::NoBuilder {
        platform,
        tried: tried.join("; "),
    }
    .into())
}

/// Events told with a prefix (the platform, when several build at once).
struct Prefixed<'a> {
    inner: &'a dyn Events,
    prefix: String,
}

impl Events for Prefixed<'_> {
    fn log<'a>(&'a self, level: Level, message: &'a str) -> Pending<'a> {
        Box::pin(async move {
            let text = format!("{}{message}", self.prefix);
            self.inner.log(level, &text).await;
        })
    }
    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
        Box::pin(async move {
            let text = format!("{}{line}", self.prefix);
            self.inner.progress(&text).await;
        })
    }
    fn secret(&self, value: &str) {
        self.inner.secret(value);
    }
}

/// Registry-side manifest calls, for the repository of a reference.
pub trait Registries: Sync {
    /// The manifest `reference` (a tag or a digest) of `repo`'s repository, if it exists.
    fn get(
        &self,
        repo: &Reference,
        reference: &str,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, ManifestInfo)>>> + Send;
    /// Puts `body` under `tag` in `repo`'s repository; returns its digest.
    fn put(
        &self,
        repo: &Reference,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> impl Future<Output = Result<String>> + Send;
}

/// `up`: reuse or build, push, index, mark.
pub async fn up(
    env: &Env<'_>,
    plan: &BuildPlan,
    fleet: &impl Fleet,
    registries: &impl Registries,
) -> Result<Built> {
    // An export writes what a build makes: with exports, an image is always built (from
    // cache, when nothing changed).
    if plan.push
        && plan.skip_if_pushed
        && plan.exports.is_empty()
        && let Some(tag) = &plan.context_tag
        && let Some(built) = reuse(env, plan, registries, tag).await?
    {
        return Ok(built);
    }
    let platforms = &plan.platforms;
    let built = if platforms.len() > 1 || (plan.index && !platforms.is_empty()) {
        build_index(env, plan, fleet, registries).await?
    } else {
        build_single(env, plan, fleet, registries, platforms.first()).await?
    };
    if plan.push
        && let Some(tag) = &plan.context_tag
    {
        // Mark the image as built from this context, for the next machine.
        let main = &plan.push_tags[0];
        if let Some((body, info)) = registries.get(main, &built.digest).await? {
            registries.put(main, tag, &info.media_type, &body).await?;
        }
    }
    Ok(built)
}

/// A change of tags alone: the image built before (`digest`: its manifest, or its image id
/// when not pushed) is put under the plan's tags — registry-side when pushed, in the daemon
/// otherwise — and nothing is built. `None` when that cannot be done without building: a tag
/// in another repository (a manifest copy cannot cross repositories without its blobs), or
/// an image no longer there.
pub async fn retag(
    env: &Env<'_>,
    plan: &BuildPlan,
    digest: &str,
    fleet: &impl Fleet,
    registries: &impl Registries,
) -> Result<Option<()>> {
    if !plan.push {
        for r in &plan.push_tags {
            if let Err(e) = fleet.default_builder().tag(digest, r).await {
                env.log(
                    Level::Info,
                    &format!("the image {digest} cannot be tagged again ({e}): building it"),
                )
                .await;
                return Ok(None);
            }
        }
        return Ok(Some(()));
    }
    if tag_registry_side(env, plan, registries, digest)
        .await?
        .is_none()
    {
        env.log(
            Level::Info,
            &format!(
                "{} cannot be tagged registry-side (a tag in another repository, or the image is gone): building it",
                plan.reference.with_digest(digest)
            ),
        )
        .await;
        return Ok(None);
    }
    Ok(Some(()))
}

/// Puts the manifest `from` (a tag or a digest in `name`'s repository) under every tag of the
/// plan, registry-side, and returns it. `None` when a tag is in another repository (a
/// manifest copy cannot cross repositories without its blobs) or `from` is not there.
async fn tag_registry_side(
    env: &Env<'_>,
    plan: &BuildPlan,
    registries: &impl Registries,
    from: &str,
) -> Result<Option<(Vec<u8>, ManifestInfo)>> {
    let main = &plan.push_tags[0];
    if plan
        .push_tags
        .iter()
        .any(|r| r.repository() != main.repository())
    {
        return Ok(None);
    }
    let Some((body, info)) = registries.get(main, from).await? else {
        return Ok(None);
    };
    for r in &plan.push_tags {
        registries
            .put(r, r.tag_or_latest(), &info.media_type, &body)
            .await?;
        env.progress(&format!("tagged {r} registry-side: {}", info.digest))
            .await;
    }
    Ok(Some((body, info)))
}

/// Looks for `<repository>:<context tag>`; when present, tags it as asked (registry-side)
/// and returns it. Only when every tag is in `name`'s repository (a manifest copy cannot
/// cross repositories without its blobs); otherwise the image is built.
async fn reuse(
    env: &Env<'_>,
    plan: &BuildPlan,
    registries: &impl Registries,
    context_tag: &str,
) -> Result<Option<Built>> {
    let Some((body, info)) = tag_registry_side(env, plan, registries, context_tag).await? else {
        return Ok(None);
    };
    env.log(
        Level::Info,
        &format!(
            "{}:{context_tag} was built from this same context: tagging it instead of building",
            plan.push_tags[0].repository()
        ),
    )
    .await;
    let mut platform_digests = index::platform_digests(&info.media_type, &body);
    if platform_digests.is_empty()
        && let Some(p) = plan.platforms.first()
    {
        platform_digests.insert(p.name(), info.digest.clone());
    }
    Ok(Some(Built {
        reference: Some(plan.reference.with_digest(&info.digest)),
        digest: info.digest,
        platform_digests,
        exported: Vec::new(),
    }))
}

/// Pushes image `image_id` under every tag of `tags`: through the daemon once per
/// repository (which uploads the layers there), then registry-side for the other tags of
/// that repository. Returns the digest pushed under the first tag.
async fn push_all(
    env: &Env<'_>,
    builder: &impl Builder,
    registries: &impl Registries,
    image_id: &str,
    tags: &[Reference],
) -> Result<String> {
    let mut pushed: Vec<(String, String)> = Vec::new(); // (repository, digest)
    for r in tags {
        match pushed.iter().find(|(repo, _)| *repo == r.repository()) {
            None => {
                let d = builder.push(env, image_id, r).await?;
                pushed.push((r.repository(), d));
            }
            Some((_, digest)) => {
                let Some((body, info)) = registries.get(r, digest).await? else {
                    return Err(PushError::Missing {
                        reference: r.with_digest(digest),
                    }
                    .into());
                };
                registries
                    .put(r, r.tag_or_latest(), &info.media_type, &body)
                    .await?;
                env.progress(&format!("tagged {r} registry-side: {digest}"))
                    .await;
            }
        }
    }
    pushed
        .into_iter()
        .next()
        .map(|(_, d)| d)
        .ok_or_else(|| PushError::Nothing.into())
}

/// One image (the daemon's platform, or the one given): build, tag, push — on the builder
/// that lists the platform, else the default daemon.
async fn build_single(
    env: &Env<'_>,
    plan: &BuildPlan,
    fleet: &impl Fleet,
    registries: &impl Registries,
    platform: Option<&Platform>,
) -> Result<Built> {
    let local_tag = plan.local_tag();
    let builder = choose(env, fleet, plan, platform).await?;
    let image_id = builder.build(env, plan, platform, &local_tag).await?;
    if !plan.push {
        // A cache-only build makes no image, even on a daemon that keeps them.
        let keeps = builder.keeps_images() && !plan.exports.contains(&Export::CacheOnly);
        if keeps {
            for r in &plan.push_tags {
                builder.tag(&image_id, r).await?;
            }
        }
        let exported = builder.exported(env, plan, &image_id).await?;
        // A local name exists only where an image is kept: the daemon that built it, or
        // the Docker daemon a buildkitd's `load` export filled.
        let named = keeps || plan.exports.contains(&Export::Load);
        return Ok(Built {
            digest: image_id,
            reference: named.then_some(local_tag),
            platform_digests: BTreeMap::new(),
            exported,
        });
    }
    let digest = push_all(env, builder, registries, &image_id, &plan.push_tags).await?;
    let exported = builder.exported(env, plan, &image_id).await?;
    let platform_digests = platform
        .map(|p| (p.name(), digest.clone()))
        .into_iter()
        .collect();
    Ok(Built {
        reference: Some(plan.reference.with_digest(&digest)),
        digest,
        platform_digests,
        exported,
    })
}

/// Several platforms, all at once, each on its builder: each built and pushed under
/// `<tag>-<os>-<arch>[-<variant>]` in every repository the tags name, then one manifest list
/// per repository under each tag. Each platform's lines are prefixed with it; a failure
/// names the platform and its builder (and stops the others).
async fn build_index(
    env: &Env<'_>,
    plan: &BuildPlan,
    fleet: &impl Fleet,
    registries: &impl Registries,
) -> Result<Built> {
    // Unpushed platforms are only for a buildkitd's exports, in one solve.
    if !plan.push && plan.exports.is_empty() {
        return Err(BuildError::IndexNeedsPush.into());
    }
    if let Some(built) = build_index_in_one_solve(env, plan, fleet, registries).await? {
        return Ok(built);
    }
    if !plan.push {
        return Err(BuildError::IndexNeedsPush.into());
    }
    if !plan.exports.is_empty() {
        let mut hosts: Vec<String> = Vec::new();
        for p in &plan.platforms {
            let h = choose(env, fleet, plan, Some(p)).await?.host();
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        return Err(BuildError::ExportsNeedOneSolve {
            hosts: hosts.join(", "),
        }
        .into());
    }
    let main = &plan.push_tags[0];
    let mut repos: Vec<Reference> = Vec::new();
    for r in &plan.push_tags {
        if !repos.iter().any(|x| x.repository() == r.repository()) {
            repos.push(r.clone());
        }
    }
    let one_platform = |p: &Platform| {
        let repos = &repos;
        let p = p.clone();
        async move {
            let prefixed = Prefixed {
                inner: env.events,
                prefix: format!("[{}] ", p.name()),
            };
            let penv = env.with(env.daemon.clone(), &prefixed);
            let builder = choose(&penv, fleet, plan, Some(&p)).await?;
            let on_builder =
                |e: crate::docker::EngineError| crate::docker::EngineError::OnBuilder {
                    platform: p.name(),
                    host: builder.host(),
                    source: Box::new(e),
                };
            let temp_tag = format!("{}-{}", main.tag_or_latest(), p.tag_suffix());
            let local = Reference {
                tag: Some(temp_tag.clone()),
                ..main.clone()
            };
            let image_id = builder
                .build(&penv, plan, Some(&p), &local.to_string())
                .await
                .map_err(on_builder)?;
            let mut pushed: Vec<(String, ManifestInfo)> = Vec::new();
            for repo in repos {
                let target = Reference {
                    tag: Some(temp_tag.clone()),
                    ..repo.clone()
                };
                let digest = builder
                    .push(&penv, &image_id, &target)
                    .await
                    .map_err(on_builder)?;
                let Some((_, info)) = registries.get(&target, &digest).await? else {
                    return Err(PushError::Missing {
                        reference: target.with_digest(&digest),
                    }
                    .into());
                };
                pushed.push((repo.repository(), info));
            }
            Ok::<_, crate::docker::EngineError>((p, pushed))
        }
    };
    let results =
        futures_util::future::try_join_all(plan.platforms.iter().map(one_platform)).await?;
    let mut entries: BTreeMap<String, Vec<(Platform, ManifestInfo)>> = BTreeMap::new();
    for (p, pushed) in results {
        for (repo, info) in pushed {
            entries.entry(repo).or_default().push((p.clone(), info));
        }
    }
    let mut index_digest = None;
    for r in &plan.push_tags {
        let list = index::manifest_list(
            entries
                .get(&r.repository())
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
        let d = registries
            .put(r, r.tag_or_latest(), MEDIA_TYPE_DOCKER_MANIFEST_LIST, &list)
            .await?;
        env.progress(&format!(
            "pushed the index of {} platforms as {r}: {d}",
            plan.platforms.len()
        ))
        .await;
        index_digest.get_or_insert(d);
    }
    let digest = index_digest.ok_or(PushError::Nothing)?;
    let platform_digests = entries
        .get(&main.repository())
        .into_iter()
        .flatten()
        .map(|(p, info)| (p.name(), info.digest.clone()))
        .collect();
    Ok(Built {
        reference: Some(plan.reference.with_digest(&digest)),
        digest,
        platform_digests,
        exported: Vec::new(),
    })
}

/// Several platforms in one solve, when every one of them goes to the same builder and that
/// builder can (a buildkitd): its image exporter pushes one index straight away, which is
/// then tagged as the plan asks. `None` when the platforms are spread over builders or the
/// builder is a Docker daemon: the per-platform fleet builds them.
async fn build_index_in_one_solve(
    env: &Env<'_>,
    plan: &BuildPlan,
    fleet: &impl Fleet,
    registries: &impl Registries,
) -> Result<Option<Built>> {
    let mut chosen = None;
    for p in &plan.platforms {
        // The member that would build `p` alone (rendezvous order, the first that answers).
        let member = choose(env, fleet, plan, Some(p)).await?;
        match chosen {
            None => chosen = Some(member),
            Some(c) if std::ptr::eq(c, member) => {}
            Some(_) => return Ok(None),
        }
    }
    let Some(builder) = chosen else {
        return Ok(None);
    };
    let local_tag = plan.local_tag();
    let Some(digest) = builder
        .build_index(env, plan, &plan.platforms, &local_tag)
        .await?
    else {
        return Ok(None);
    };
    if !plan.push {
        // Only the exports were written: nothing to tag.
        let exported = builder.exported(env, plan, &digest).await?;
        return Ok(Some(Built {
            reference: plan.exports.contains(&Export::Load).then_some(local_tag),
            digest,
            platform_digests: BTreeMap::new(),
            exported,
        }));
    }
    // The exporter pushed the index under the local tag in every repository: the other tags
    // are registry-side copies of it.
    let main = &plan.push_tags[0];
    let mut platform_digests = BTreeMap::new();
    for r in &plan.push_tags {
        let Some((body, info)) = registries.get(r, &digest).await? else {
            return Err(PushError::Missing {
                reference: r.with_digest(&digest),
            }
            .into());
        };
        if r.tag_or_latest() != main.tag_or_latest() {
            registries
                .put(r, r.tag_or_latest(), &info.media_type, &body)
                .await?;
        }
        if platform_digests.is_empty() {
            platform_digests = index::platform_digests(&info.media_type, &body);
        }
    }
    let index_digest = digest;
    env.progress(&format!(
        "pushed the index of {} platforms, built in one solve on {}, as {main}: {index_digest}",
        plan.platforms.len(),
        builder.host()
    ))
    .await;
    let exported = builder.exported(env, plan, &index_digest).await?;
    Ok(Some(Built {
        reference: Some(plan.reference.with_digest(&index_digest)),
        digest: index_digest,
        platform_digests,
        exported,
    }))
}

/// A real daemon: connected on first use (a reuse needs no daemon at all).
pub struct DaemonBuilder<'a> {
    address: DaemonAddress,
    creds: &'a BTreeMap<String, Credentials>,
    docker: OnceCell<Docker>,
}

impl<'a> DaemonBuilder<'a> {
    pub fn new(address: DaemonAddress, creds: &'a BTreeMap<String, Credentials>) -> Self {
        Self {
            address,
            creds,
            docker: OnceCell::new(),
        }
    }

    async fn docker(&self) -> Result<&Docker> {
        self.docker
            .get_or_try_init(|| super::connect(&self.address))
            .await
    }
}

impl<'a> DaemonBuilder<'a> {
    /// The Engine's own BuildKit through its `/grpc` endpoint (as buildx's `docker` driver
    /// reaches it), as a builder of ours.
    async fn through_grpc(&self) -> Result<super::kit::KitBuilder<'a>> {
        let docker = self.docker().await?;
        let version = docker.client_version();
        let dialer = super::dial::Dialer::new(
            &self.address,
            &format!("{}.{}", version.major_version, version.minor_version),
        )?;
        let kit = crate::buildkit::Buildkitd::connect_docker(dialer).await?;
        let dialect = super::dialect::for_client_version(&version);
        Ok(super::kit::KitBuilder::with_kit(
            self.address.clone(),
            self.creds,
            kit,
            dialect,
        ))
    }

    /// A solve of `plan` on the Engine's own BuildKit (`/grpc`) whose only output is
    /// `export`: no push, and no inline cache (it rides on an image). On a Docker host the
    /// plan has no other cache export or import (`build` refuses them first). After `/build`,
    /// every step comes from the cache it just made. The bytes the export wrote.
    async fn solve_through_grpc(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        export: &Export,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> Result<u64> {
        let builder = self.through_grpc().await?;
        let mut only = plan.clone();
        only.push = false;
        only.exports = vec![export.clone()];
        only.inline_cache = false;
        let env = env.with(self.address.clone(), env.events);
        builder.build(&env, &only, platform, local_tag).await?;
        Ok(builder.take_exported().into_iter().map(|x| x.bytes).sum())
    }
}

impl Builder for DaemonBuilder<'_> {
    fn host(&self) -> String {
        super::daemon_host(&self.address)
    }

    async fn reach(&self) -> Result<()> {
        self.docker().await.map(|_| ())
    }

    async fn build(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> Result<String> {
        if plan.provenance.is_some() {
            return Err(BuildError::NeedsBuildkit {
                host: self.host(),
                what: "attest provenance".to_string(),
            }
            .into());
        }
        if !plan.build_contexts.is_empty() {
            return Err(BuildError::NeedsBuildkit {
                host: self.host(),
                what: "take named build contexts".to_string(),
            }
            .into());
        }
        if let Some(c) = plan.cache_to.first() {
            return Err(BuildError::NeedsBuildkit {
                host: self.host(),
                what: format!("export a {} cache", c.kind),
            }
            .into());
        }
        if let Some(c) = plan.cache_imports.first() {
            return Err(BuildError::NeedsBuildkit {
                host: self.host(),
                what: format!("import a {} cache", c.kind),
            }
            .into());
        }
        if plan.exports.contains(&Export::CacheOnly) {
            // `/build` always makes an image: a cache-only build is a solve with no exporter
            // on the Engine's own BuildKit, whose cache `/build` reads. Nothing is tagged or
            // pushed (no image: "").
            self.solve_through_grpc(env, plan, &Export::CacheOnly, platform, local_tag)
                .await?;
            return Ok(String::new());
        }
        let docker = self.docker().await?;
        let env = env.with(self.address.clone(), env.events);
        let platform = platform.map(Platform::name);
        build::build(
            &env,
            docker,
            plan,
            platform.as_deref(),
            local_tag,
            self.creds,
        )
        .await
    }

    async fn push(&self, env: &Env<'_>, image_id: &str, target: &Reference) -> Result<String> {
        let docker = self.docker().await?;
        let env = env.with(self.address.clone(), env.events);
        let host = target.registry_host();
        let client = RegistryClient::new(host, self.creds.get(host).cloned())?;
        push::push_image(
            &env,
            docker,
            &self.host(),
            image_id,
            target,
            self.creds.get(host),
            &client,
        )
        .await
    }

    async fn tag(&self, image_id: &str, target: &Reference) -> Result<()> {
        push::tag(self.docker().await?, image_id, target).await
    }

    /// A Docker daemon keeps what it builds: `load` is done already, and a `docker` tarball
    /// is `docker save` of the image under the plan's tags.
    async fn exported(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        image_id: &str,
    ) -> Result<Vec<Exported>> {
        let mut out = Vec::new();
        for export in &plan.exports {
            let bytes = match export {
                Export::Load => 0,
                Export::Tarball {
                    path,
                    format: TarballFormat::Docker,
                } => {
                    let docker = self.docker().await?;
                    // Pushed or not, the image is under the plan's tags here by now, so the
                    // tarball names them (as `docker save` of those tags); `image_id`
                    // only when there are none.
                    let mut names: Vec<String> =
                        plan.push_tags.iter().map(ToString::to_string).collect();
                    if names.is_empty() {
                        names.push(image_id.to_string());
                    }
                    push::save(docker, &names, path)
                        .await
                        .map_err(|e| BuildError::Export {
                            target: super::kit::describe(export),
                            reason: e.to_string(),
                        })?
                }
                Export::Tarball {
                    format: TarballFormat::Oci,
                    ..
                } => {
                    return Err(BuildError::NeedsBuildkit {
                        host: self.host(),
                        what: "write an OCI tarball".to_string(),
                    }
                    .into());
                }
                Export::Local { .. } => {
                    // `/build` has no `local` exporter; the Engine's own BuildKit, through
                    // `/grpc`, writes the directory from the cache the build just made (and
                    // says so: no second line here).
                    let tag = plan.reference.to_string();
                    let bytes = self
                        .solve_through_grpc(env, plan, export, plan.platforms.first(), &tag)
                        .await?;
                    out.push(Exported {
                        export: export.clone(),
                        bytes,
                    });
                    continue;
                }
                Export::CacheOnly => {
                    // The build was the export (a solve through `/grpc`), and said so.
                    out.push(Exported {
                        export: export.clone(),
                        bytes: 0,
                    });
                    continue;
                }
            };
            env.progress(&format!(
                "exported {} ({bytes} bytes)",
                super::kit::describe(export)
            ))
            .await;
            out.push(Exported {
                export: export.clone(),
                bytes,
            });
        }
        Ok(out)
    }
}

/// A builder of either kind: a Docker daemon, or a standalone buildkitd.
pub enum AnyBuilder<'a> {
    Docker(DaemonBuilder<'a>),
    Buildkit(KitBuilder<'a>),
}

impl<'a> AnyBuilder<'a> {
    pub fn new(address: DaemonAddress, creds: &'a BTreeMap<String, Credentials>) -> Self {
        match address.driver {
            Driver::Docker => AnyBuilder::Docker(DaemonBuilder::new(address, creds)),
            Driver::Buildkit => AnyBuilder::Buildkit(KitBuilder::new(address, creds)),
        }
    }
}

impl Builder for AnyBuilder<'_> {
    fn host(&self) -> String {
        match self {
            AnyBuilder::Docker(d) => d.host(),
            AnyBuilder::Buildkit(k) => k.host(),
        }
    }

    async fn reach(&self) -> Result<()> {
        match self {
            AnyBuilder::Docker(d) => d.reach().await,
            AnyBuilder::Buildkit(k) => k.reach().await,
        }
    }

    async fn build(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> Result<String> {
        match self {
            AnyBuilder::Docker(d) => d.build(env, plan, platform, local_tag).await,
            AnyBuilder::Buildkit(k) => k.build(env, plan, platform, local_tag).await,
        }
    }

    async fn push(&self, env: &Env<'_>, image_id: &str, target: &Reference) -> Result<String> {
        match self {
            AnyBuilder::Docker(d) => d.push(env, image_id, target).await,
            AnyBuilder::Buildkit(k) => k.push(env, image_id, target).await,
        }
    }

    async fn tag(&self, image_id: &str, target: &Reference) -> Result<()> {
        match self {
            AnyBuilder::Docker(d) => d.tag(image_id, target).await,
            AnyBuilder::Buildkit(k) => k.tag(image_id, target).await,
        }
    }

    fn keeps_images(&self) -> bool {
        matches!(self, AnyBuilder::Docker(_))
    }

    async fn exported(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        image_id: &str,
    ) -> Result<Vec<Exported>> {
        match self {
            AnyBuilder::Docker(d) => d.exported(env, plan, image_id).await,
            AnyBuilder::Buildkit(k) => Ok(k.take_exported()),
        }
    }

    async fn build_index(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platforms: &[Platform],
        local_tag: &str,
    ) -> Result<Option<String>> {
        match self {
            AnyBuilder::Docker(_) => Ok(None),
            AnyBuilder::Buildkit(k) => k.build_all(env, plan, platforms, local_tag).await.map(Some),
        }
    }
}

/// A default daemon and builders that each list the platforms they build.
pub struct Members<B> {
    pub default: B,
    pub builders: Vec<(B, Vec<Platform>)>,
}

impl<B: Builder> Fleet for Members<B> {
    type Member = B;

    fn default_builder(&self) -> &B {
        &self.default
    }

    fn listing(&self, platform: &Platform) -> Vec<&B> {
        self.builders
            .iter()
            .filter(|(_, ps)| ps.iter().any(|p| p.name() == platform.name()))
            .map(|(b, _)| b)
            .collect()
    }
}

/// The real daemons: the default one and the configured builders, each a Docker daemon or a
/// buildkitd as its address says.
pub fn daemon_fleet<'a>(
    default: DaemonAddress,
    builders: &[BuilderSpec],
    creds: &'a BTreeMap<String, Credentials>,
) -> Members<AnyBuilder<'a>> {
    Members {
        default: AnyBuilder::new(default, creds),
        builders: builders
            .iter()
            .map(|b| {
                (
                    AnyBuilder::new(b.address.clone(), creds),
                    b.platforms.clone(),
                )
            })
            .collect(),
    }
}

/// The real registries: a client per call, with the credentials found for its host.
pub struct RegistryClients<'a> {
    creds: &'a BTreeMap<String, Credentials>,
}

impl<'a> RegistryClients<'a> {
    pub fn new(creds: &'a BTreeMap<String, Credentials>) -> Self {
        Self { creds }
    }

    fn client(&self, r: &Reference) -> Result<RegistryClient> {
        let host = r.registry_host();
        Ok(RegistryClient::new(host, self.creds.get(host).cloned())?)
    }
}

impl Registries for RegistryClients<'_> {
    async fn get(
        &self,
        repo: &Reference,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, ManifestInfo)>> {
        index::fetch(&self.client(repo)?, &repo.api_path(), reference).await
    }

    async fn put(
        &self,
        repo: &Reference,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String> {
        index::put(&self.client(repo)?, &repo.api_path(), tag, media_type, body).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::context::DockerfileSource;
    use crate::docker::plan::{DaemonAddress, Events, Pending};
    use crate::registry::MEDIA_TYPE_DOCKER_MANIFEST;

    /// The engine's messages, kept.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Events for Recorder {
        fn log<'a>(&'a self, _level: Level, message: &'a str) -> Pending<'a> {
            self.0.lock().unwrap().push(message.to_string());
            Box::pin(async {})
        }
        fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
            self.0.lock().unwrap().push(line.to_string());
            Box::pin(async {})
        }
        fn secret(&self, _value: &str) {}
    }

    /// (repository, tag or digest) → (bytes, identity).
    type Manifests = BTreeMap<(String, String), (Vec<u8>, ManifestInfo)>;

    /// A registry in memory: manifests by repository and tag or digest.
    #[derive(Default)]
    struct FakeRegistry {
        manifests: Mutex<Manifests>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeRegistry {
        fn store(&self, repo: &Reference, tag: &str, media_type: &str, body: &[u8]) -> String {
            let digest = format!("sha256:{:064x}", xxhash_rust::xxh3::xxh3_128(body));
            let info = ManifestInfo {
                digest: digest.clone(),
                media_type: media_type.to_string(),
                size: body.len() as u64,
            };
            let mut m = self.manifests.lock().unwrap();
            for key in [tag, digest.as_str()] {
                m.insert(
                    (repo.repository(), key.to_string()),
                    (body.to_vec(), info.clone()),
                );
            }
            digest
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Registries for FakeRegistry {
        async fn get(
            &self,
            repo: &Reference,
            reference: &str,
        ) -> Result<Option<(Vec<u8>, ManifestInfo)>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("get {}:{reference}", repo.repository()));
            Ok(self
                .manifests
                .lock()
                .unwrap()
                .get(&(repo.repository(), reference.to_string()))
                .cloned())
        }

        async fn put(
            &self,
            repo: &Reference,
            tag: &str,
            media_type: &str,
            body: &[u8],
        ) -> Result<String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("put {}:{tag}", repo.repository()));
            Ok(self.store(repo, tag, media_type, body))
        }
    }

    /// A daemon that builds image `img-<n>` and pushes into a [`FakeRegistry`].
    struct FakeDaemon<'a> {
        registry: &'a FakeRegistry,
        calls: Mutex<Vec<String>>,
        name: String,
        up: bool,
    }

    impl<'a> FakeDaemon<'a> {
        fn new(registry: &'a FakeRegistry) -> Self {
            Self::named(registry, "default", true)
        }

        fn named(registry: &'a FakeRegistry, name: &str, up: bool) -> Self {
            Self {
                registry,
                calls: Mutex::default(),
                name: name.to_string(),
                up,
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Builder for FakeDaemon<'_> {
        fn host(&self) -> String {
            self.name.clone()
        }

        async fn reach(&self) -> Result<()> {
            if self.up {
                Ok(())
            } else {
                Err(crate::docker::DaemonError::Unreachable {
                    host: self.name.clone(),
                    reason: "down".into(),
                    hint: String::new(),
                }
                .into())
            }
        }

        async fn build(
            &self,
            env: &Env<'_>,
            _plan: &BuildPlan,
            platform: Option<&Platform>,
            local_tag: &str,
        ) -> Result<String> {
            env.progress("step").await;
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let platform = platform.map(Platform::name).unwrap_or_else(|| "-".into());
                calls.push(format!("build {local_tag} {platform}"));
                calls.len()
            };
            if self.name == "broken" {
                return Err(BuildError::NoImage {
                    host: self.name.clone(),
                    tag: local_tag.to_string(),
                }
                .into());
            }
            Ok(if self.name == "default" {
                format!("img-{n}")
            } else {
                format!("img-{}-{n}", self.name)
            })
        }

        async fn push(&self, _env: &Env<'_>, image_id: &str, target: &Reference) -> Result<String> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("push {target} {image_id}"));
            let body = format!(r#"{{"config":{{"digest":"{image_id}"}}}}"#);
            Ok(self.registry.store(
                target,
                target.tag_or_latest(),
                MEDIA_TYPE_DOCKER_MANIFEST,
                body.as_bytes(),
            ))
        }

        async fn tag(&self, image_id: &str, target: &Reference) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("tag {target} {image_id}"));
            Ok(())
        }

        /// A builder named `kit…` solves several platforms at once, as a buildkitd does:
        /// one index (with an attestation manifest) under the tag in the plan's repositories.
        async fn build_index(
            &self,
            _env: &Env<'_>,
            plan: &BuildPlan,
            platforms: &[Platform],
            local_tag: &str,
        ) -> Result<Option<String>> {
            if !self.name.starts_with("kit") {
                return Ok(None);
            }
            let names: Vec<String> = platforms.iter().map(Platform::name).collect();
            self.calls
                .lock()
                .unwrap()
                .push(format!("build-index {local_tag} {}", names.join(",")));
            let mut manifests: Vec<serde_json::Value> = platforms
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "digest": format!("sha256:{:064x}", xxhash_rust::xxh3::xxh3_128(p.name().as_bytes())),
                        "platform": {"os": p.os, "architecture": p.architecture},
                    })
                })
                .collect();
            manifests.push(serde_json::json!({
                "digest": format!("sha256:{}", "a".repeat(64)),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            }));
            let body = serde_json::json!({"manifests": manifests}).to_string();
            let tag = Reference::parse(local_tag).unwrap();
            let mut digest = String::new();
            for r in &plan.push_tags {
                digest = self.registry.store(
                    r,
                    tag.tag_or_latest(),
                    crate::registry::MEDIA_TYPE_OCI_INDEX,
                    body.as_bytes(),
                );
            }
            Ok(Some(digest))
        }
    }

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn plan(tags: &[&str], platforms: &[&str]) -> BuildPlan {
        BuildPlan {
            context_dir: "/ctx".into(),
            dockerfile: DockerfileSource::Path("Dockerfile".into()),
            reference: r("reg.io/app"),
            push_tags: tags.iter().map(|t| r(t)).collect(),
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p).unwrap())
                .collect(),
            index: false,
            build_args: BTreeMap::new(),
            target: None,
            labels: BTreeMap::new(),
            cache_from: Vec::new(),
            cache_imports: Vec::new(),
            inline_cache: true,
            cache_to: Vec::new(),
            provenance: None,
            no_cache: false,
            network: None,
            secrets: Default::default(),
            ssh: Vec::new(),
            add_hosts: Vec::new(),
            pull: false,
            push: true,
            context_tag: Some("ctx-0123456789abcdef".into()),
            skip_if_pushed: true,
            login: None,
            build_contexts: BTreeMap::new(),
            exports: Vec::new(),
        }
    }

    fn test_env(events: &Recorder) -> Env<'_> {
        Env {
            daemon: DaemonAddress::default(),
            builders: Vec::new(),
            events,
            cancel: Default::default(),
        }
    }

    async fn run(plan: &BuildPlan, registry: &FakeRegistry) -> (Built, Vec<String>, Vec<String>) {
        let events = Recorder::default();
        let env = test_env(&events);
        let daemon = FakeDaemon::new(registry);
        let built = up(&env, plan, &daemon, registry).await.unwrap();
        (built, daemon.calls(), registry.calls())
    }

    #[tokio::test]
    async fn a_pushed_context_is_reused_without_the_daemon() {
        let registry = FakeRegistry::default();
        let old = registry.store(
            &r("reg.io/app"),
            "ctx-0123456789abcdef",
            MEDIA_TYPE_DOCKER_MANIFEST,
            br#"{"config":{"digest":"img-old"}}"#,
        );
        let p = plan(&["reg.io/app:latest", "reg.io/app:v2"], &["linux/arm64"]);
        let (built, daemon, calls) = run(&p, &registry).await;
        assert!(daemon.is_empty(), "nothing built or pushed: {daemon:?}");
        assert_eq!(built.digest, old);
        assert_eq!(
            built.reference.as_deref(),
            Some(&*format!("reg.io/app@{old}"))
        );
        assert_eq!(built.platform_digests["linux/arm64"], old);
        assert_eq!(
            calls,
            [
                "get reg.io/app:ctx-0123456789abcdef",
                "put reg.io/app:latest",
                "put reg.io/app:v2"
            ]
        );
    }

    #[tokio::test]
    async fn a_new_context_builds_once_pushes_once_per_repository_and_is_marked() {
        let registry = FakeRegistry::default();
        let p = plan(
            &["reg.io/app:latest", "reg.io/app:v2", "reg.io/other:x"],
            &[],
        );
        let (built, daemon, calls) = run(&p, &registry).await;
        assert_eq!(
            daemon,
            [
                "build reg.io/app:latest -",
                "push reg.io/app:latest img-1",
                "push reg.io/other:x img-1",
            ]
        );
        let main = registry
            .manifests
            .lock()
            .unwrap()
            .get(&("reg.io/app".into(), "latest".into()))
            .cloned()
            .unwrap();
        assert_eq!(
            built.digest, main.1.digest,
            "the digest is the main tag's push"
        );
        assert!(
            calls.contains(&"put reg.io/app:v2".to_string()),
            "{calls:?}"
        );
        assert_eq!(
            calls.last().map(String::as_str),
            Some("put reg.io/app:ctx-0123456789abcdef"),
            "the context is marked last: {calls:?}"
        );
        // Tags in another repository rule out reuse: no lookup of the context tag.
        assert!(!calls.iter().any(|c| c.starts_with("get reg.io/app:ctx-")));
    }

    #[tokio::test]
    async fn without_push_the_image_is_tagged_locally_and_no_registry_is_asked() {
        let registry = FakeRegistry::default();
        let mut p = plan(&["reg.io/app:latest", "reg.io/app:v2"], &[]);
        p.push = false;
        let (built, daemon, calls) = run(&p, &registry).await;
        assert_eq!(built.digest, "img-1", "the image id");
        assert_eq!(
            daemon,
            [
                "build reg.io/app:latest -",
                "tag reg.io/app:latest img-1",
                "tag reg.io/app:v2 img-1"
            ]
        );
        assert!(calls.is_empty(), "{calls:?}");
    }

    #[tokio::test]
    async fn several_platforms_are_built_each_and_indexed_under_every_tag() {
        let registry = FakeRegistry::default();
        let p = plan(
            &["reg.io/app:latest", "reg.io/app:v2"],
            &["linux/amd64", "linux/arm64"],
        );
        let (built, daemon, calls) = run(&p, &registry).await;
        assert_eq!(
            daemon,
            [
                "build reg.io/app:latest-linux-amd64 linux/amd64",
                "push reg.io/app:latest-linux-amd64 img-1",
                "build reg.io/app:latest-linux-arm64 linux/arm64",
                "push reg.io/app:latest-linux-arm64 img-3",
            ]
        );
        assert_eq!(built.platform_digests.len(), 2);
        let index = registry
            .manifests
            .lock()
            .unwrap()
            .get(&("reg.io/app".into(), "v2".into()))
            .cloned()
            .unwrap();
        assert_eq!(index.1.media_type, MEDIA_TYPE_DOCKER_MANIFEST_LIST);
        assert_eq!(index.1.digest, built.digest);
        for d in built.platform_digests.values() {
            assert!(String::from_utf8_lossy(&index.0).contains(d.as_str()));
        }
        assert!(calls.contains(&"put reg.io/app:ctx-0123456789abcdef".to_string()));
    }

    #[tokio::test]
    async fn without_a_context_tag_nothing_is_looked_for_or_marked() {
        let registry = FakeRegistry::default();
        registry.store(
            &r("reg.io/app"),
            "ctx-0123456789abcdef",
            MEDIA_TYPE_DOCKER_MANIFEST,
            b"{}",
        );
        let mut p = plan(&["reg.io/app:latest"], &[]);
        p.context_tag = None; // noCache, or a hash over a secret
        let (_, daemon, calls) = run(&p, &registry).await;
        assert_eq!(daemon.len(), 2, "built and pushed: {daemon:?}");
        assert!(
            !calls.iter().any(|c| c.contains("ctx-")),
            "no context tag touched: {calls:?}"
        );
    }

    #[tokio::test]
    async fn a_tag_change_is_a_registry_side_tag_and_no_build() {
        let registry = FakeRegistry::default();
        let old = registry.store(
            &r("reg.io/app"),
            "latest",
            MEDIA_TYPE_DOCKER_MANIFEST,
            br#"{"config":{"digest":"img-old"}}"#,
        );
        let events = Recorder::default();
        let env = test_env(&events);
        let daemon = FakeDaemon::new(&registry);
        let p = plan(&["reg.io/app:latest", "reg.io/app:v3"], &[]);
        let done = retag(&env, &p, &old, &daemon, &registry).await.unwrap();
        assert_eq!(done, Some(()));
        assert!(daemon.calls().is_empty(), "nothing built or pushed");
        assert_eq!(
            registry.calls(),
            [
                format!("get reg.io/app:{old}"),
                "put reg.io/app:latest".into(),
                "put reg.io/app:v3".into()
            ]
        );
        // Another repository needs the blobs there: that is a build.
        let p = plan(&["reg.io/app:latest", "reg.io/other:v3"], &[]);
        assert_eq!(
            retag(&env, &p, &old, &daemon, &registry).await.unwrap(),
            None
        );
        // An image gone from the registry is built again.
        let gone = format!("sha256:{}", "0".repeat(64));
        let p = plan(&["reg.io/app:latest"], &[]);
        assert_eq!(
            retag(&env, &p, &gone, &daemon, &registry).await.unwrap(),
            None
        );
        // Not pushed: tagged in the daemon.
        let mut p = plan(&["reg.io/app:latest", "reg.io/app:v3"], &[]);
        p.push = false;
        assert_eq!(
            retag(&env, &p, "img-7", &daemon, &registry).await.unwrap(),
            Some(())
        );
        assert_eq!(
            daemon.calls(),
            ["tag reg.io/app:latest img-7", "tag reg.io/app:v3 img-7"]
        );
    }

    #[tokio::test]
    async fn several_platforms_without_push_are_refused_before_building() {
        let registry = FakeRegistry::default();
        let mut p = plan(&["reg.io/app:latest"], &["linux/amd64", "linux/arm64"]);
        p.push = false;
        let events = Recorder::default();
        let env = test_env(&events);
        let daemon = FakeDaemon::new(&registry);
        let e = up(&env, &p, &daemon, &registry).await.unwrap_err();
        assert!(e.to_string().contains("need `push: true`"), "{e}");
        assert!(daemon.calls().is_empty());
    }

    /// A fleet whose builders (`(name, up)`) all list linux/arm64.
    fn arm64_fleet<'a>(
        registry: &'a FakeRegistry,
        builders: &[(&str, bool)],
    ) -> Members<FakeDaemon<'a>> {
        Members {
            default: FakeDaemon::new(registry),
            builders: builders
                .iter()
                .map(|(name, up)| {
                    (
                        FakeDaemon::named(registry, name, *up),
                        vec![Platform::parse("linux/arm64").unwrap()],
                    )
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn each_platform_builds_on_the_builder_that_lists_it_with_prefixed_lines() {
        let registry = FakeRegistry::default();
        let fleet = arm64_fleet(&registry, &[("arm", true)]);
        let events = Recorder::default();
        let env = test_env(&events);
        let p = plan(&["reg.io/app"], &["linux/amd64", "linux/arm64"]);
        let built = up(&env, &p, &fleet, &registry).await.unwrap();
        assert_eq!(
            fleet.default.calls(),
            [
                "build reg.io/app:latest-linux-amd64 linux/amd64",
                "push reg.io/app:latest-linux-amd64 img-1"
            ]
        );
        assert_eq!(
            fleet.builders[0].0.calls(),
            [
                "build reg.io/app:latest-linux-arm64 linux/arm64",
                "push reg.io/app:latest-linux-arm64 img-arm-1"
            ]
        );
        assert_eq!(built.platform_digests.len(), 2);
        let lines = events.0.lock().unwrap().clone();
        assert!(
            lines.contains(&"[linux/amd64] step".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"[linux/arm64] step".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn an_image_always_prefers_the_same_builder_and_removing_another_moves_nothing() {
        let hosts = ["ssh://a", "ssh://b", "ssh://c"];
        let mut firsts = std::collections::BTreeSet::new();
        for i in 0..64 {
            let name = format!("reg.io/app{i}");
            let order = rendezvous(&name, &hosts);
            assert_eq!(order, rendezvous(&name, &hosts), "stable");
            assert_eq!(order.len(), 3);
            firsts.insert(order[0]);
            // Without a builder this image did not prefer, it keeps its builder.
            let other = hosts.iter().find(|h| **h != order[0]).unwrap();
            let fewer: Vec<&str> = hosts.iter().copied().filter(|h| h != other).collect();
            assert_eq!(rendezvous(&name, &fewer)[0], order[0]);
        }
        assert_eq!(firsts.len(), 3, "images spread over every builder");
    }

    #[tokio::test]
    async fn a_builder_that_is_down_is_skipped_with_a_warning_and_none_left_is_an_error() {
        let registry = FakeRegistry::default();
        let p = plan(&["reg.io/app"], &["linux/arm64"]);
        let preferred = rendezvous(&p.reference.repository(), &["x", "y"])[0];
        let other = if preferred == "x" { "y" } else { "x" };
        let fleet = arm64_fleet(&registry, &[(preferred, false), (other, true)]);
        let events = Recorder::default();
        let env = test_env(&events);
        up(&env, &p, &fleet, &registry).await.unwrap();
        assert!(fleet.builders[0].0.calls().is_empty());
        assert_eq!(
            fleet.builders[1].0.calls().len(),
            2,
            "built and pushed there"
        );
        assert!(
            fleet.default.calls().is_empty(),
            "never on the default daemon"
        );
        let lines = events.0.lock().unwrap().join("\n");
        assert!(
            lines.contains(&format!(
                "builder {preferred} for linux/arm64 cannot be reached, trying the next"
            )),
            "{lines}"
        );

        // A new registry: the first up marked its context there, and would be reused.
        let registry = FakeRegistry::default();
        let fleet = arm64_fleet(&registry, &[("x", false)]);
        let e = up(&env, &p, &fleet, &registry).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no builder for linux/arm64 can be reached: x ("),
            "{e}"
        );
    }

    #[tokio::test]
    async fn platforms_all_on_one_buildkitd_are_one_solve_and_its_index_is_tagged() {
        let registry = FakeRegistry::default();
        let fleet = Members {
            default: FakeDaemon::named(&registry, "kit", true),
            builders: Vec::new(),
        };
        let events = Recorder::default();
        let env = test_env(&events);
        let p = plan(
            &["reg.io/app:latest", "reg.io/app:v2"],
            &["linux/amd64", "linux/arm64"],
        );
        let built = up(&env, &p, &fleet, &registry).await.unwrap();
        assert_eq!(
            fleet.default.calls(),
            ["build-index reg.io/app:latest linux/amd64,linux/arm64"],
            "one solve, no per-platform builds or pushes"
        );
        let v2 = registry
            .manifests
            .lock()
            .unwrap()
            .get(&("reg.io/app".into(), "v2".into()))
            .cloned()
            .unwrap();
        assert_eq!(v2.1.digest, built.digest, "the index is under every tag");
        assert_eq!(v2.1.media_type, crate::registry::MEDIA_TYPE_OCI_INDEX);
        assert_eq!(
            built.platform_digests.keys().collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64"],
            "the attestation manifest is no platform"
        );
        assert_eq!(
            built.reference.as_deref(),
            Some(format!("reg.io/app@{}", built.digest).as_str())
        );

        // A platform that another builder lists: the per-platform fleet, one build each.
        let registry = FakeRegistry::default();
        let fleet = Members {
            default: FakeDaemon::named(&registry, "kit", true),
            builders: vec![(
                FakeDaemon::named(&registry, "kit-arm", true),
                vec![Platform::parse("linux/arm64").unwrap()],
            )],
        };
        let built = up(&env, &p, &fleet, &registry).await.unwrap();
        assert_eq!(
            fleet.default.calls(),
            [
                "build reg.io/app:latest-linux-amd64 linux/amd64",
                "push reg.io/app:latest-linux-amd64 img-kit-1"
            ]
        );
        assert_eq!(fleet.builders[0].0.calls().len(), 2);
        assert_eq!(built.platform_digests.len(), 2);

        // A Docker daemon builds one platform at a time.
        let registry = FakeRegistry::default();
        let (_, daemon, _) = run(&p, &registry).await;
        assert_eq!(daemon.len(), 4, "{daemon:?}");
    }

    #[tokio::test]
    async fn a_failure_names_the_platform_and_its_builder() {
        let registry = FakeRegistry::default();
        let fleet = arm64_fleet(&registry, &[("broken", true)]);
        let events = Recorder::default();
        let env = test_env(&events);
        let p = plan(&["reg.io/app"], &["linux/amd64", "linux/arm64"]);
        let e = up(&env, &p, &fleet, &registry).await.unwrap_err();
        assert!(
            e.to_string().starts_with("linux/arm64 (built on broken): "),
            "{e}"
        );
    }
}
