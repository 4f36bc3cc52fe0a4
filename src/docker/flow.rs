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

use super::auth::Credentials;
use super::index::{self, Platform};
use super::plan::{BuildPlan, Env, Level};
use super::{BuildError, Built, PushError, Result, build, push};
use crate::reference::Reference;
use crate::registry::{MEDIA_TYPE_DOCKER_MANIFEST_LIST, ManifestInfo, RegistryClient};

/// The Docker daemon, as the flow needs it.
pub trait Builder: Sync {
    /// Builds `plan` for `platform` (the daemon's own when `None`) tagged `local_tag`;
    /// returns the image id.
    fn build(
        &self,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Pushes image `image_id` as `target`; returns the digest of the manifest of that image.
    fn push(
        &self,
        image_id: &str,
        target: &Reference,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Tags image `image_id` as `target` in the daemon.
    fn tag(&self, image_id: &str, target: &Reference) -> impl Future<Output = Result<()>> + Send;
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
    builder: &impl Builder,
    registries: &impl Registries,
) -> Result<Built> {
    if plan.push
        && plan.skip_if_pushed
        && let Some(tag) = &plan.context_tag
        && let Some(built) = reuse(env, plan, registries, tag).await?
    {
        return Ok(built);
    }
    let platforms = &plan.platforms;
    let built = if platforms.len() > 1 || (plan.index && !platforms.is_empty()) {
        build_index(env, plan, builder, registries).await?
    } else {
        build_single(env, plan, builder, registries, platforms.first()).await?
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
    builder: &impl Builder,
    registries: &impl Registries,
) -> Result<Option<()>> {
    if !plan.push {
        for r in &plan.push_tags {
            if let Err(e) = builder.tag(digest, r).await {
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
                let d = builder.push(image_id, r).await?;
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

/// One image (the daemon's platform, or the one given): build, tag, push.
async fn build_single(
    env: &Env<'_>,
    plan: &BuildPlan,
    builder: &impl Builder,
    registries: &impl Registries,
    platform: Option<&Platform>,
) -> Result<Built> {
    let local_tag = plan.local_tag();
    let image_id = builder.build(plan, platform, &local_tag).await?;
    if !plan.push {
        for r in &plan.push_tags {
            builder.tag(&image_id, r).await?;
        }
        return Ok(Built {
            digest: image_id,
            reference: Some(local_tag),
            platform_digests: BTreeMap::new(),
        });
    }
    let digest = push_all(env, builder, registries, &image_id, &plan.push_tags).await?;
    let platform_digests = platform
        .map(|p| (p.name(), digest.clone()))
        .into_iter()
        .collect();
    Ok(Built {
        reference: Some(plan.reference.with_digest(&digest)),
        digest,
        platform_digests,
    })
}

/// Several platforms: each built and pushed under `<tag>-<os>-<arch>[-<variant>]` in every
/// repository the tags name, then one manifest list per repository under each tag.
async fn build_index(
    env: &Env<'_>,
    plan: &BuildPlan,
    builder: &impl Builder,
    registries: &impl Registries,
) -> Result<Built> {
    if !plan.push {
        return Err(BuildError::IndexNeedsPush.into());
    }
    let main = &plan.push_tags[0];
    let mut repos: Vec<Reference> = Vec::new();
    for r in &plan.push_tags {
        if !repos.iter().any(|x| x.repository() == r.repository()) {
            repos.push(r.clone());
        }
    }
    let mut entries: BTreeMap<String, Vec<(Platform, ManifestInfo)>> = BTreeMap::new();
    for p in &plan.platforms {
        let temp_tag = format!("{}-{}", main.tag_or_latest(), p.tag_suffix());
        let local = Reference {
            tag: Some(temp_tag.clone()),
            ..main.clone()
        };
        let image_id = builder.build(plan, Some(p), &local.to_string()).await?;
        for repo in &repos {
            let target = Reference {
                tag: Some(temp_tag.clone()),
                ..repo.clone()
            };
            let digest = builder.push(&image_id, &target).await?;
            let Some((_, info)) = registries.get(&target, &digest).await? else {
                return Err(PushError::Missing {
                    reference: target.with_digest(&digest),
                }
                .into());
            };
            entries
                .entry(repo.repository())
                .or_default()
                .push((p.clone(), info));
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
    })
}

/// The real daemon: connected on first use (a reuse needs no daemon at all).
pub struct DaemonBuilder<'a> {
    env: &'a Env<'a>,
    creds: &'a BTreeMap<String, Credentials>,
    docker: OnceCell<Docker>,
}

impl<'a> DaemonBuilder<'a> {
    pub fn new(env: &'a Env<'a>, creds: &'a BTreeMap<String, Credentials>) -> Self {
        Self {
            env,
            creds,
            docker: OnceCell::new(),
        }
    }

    async fn docker(&self) -> Result<&Docker> {
        self.docker
            .get_or_try_init(|| super::connect(&self.env.daemon))
            .await
    }
}

impl Builder for DaemonBuilder<'_> {
    async fn build(
        &self,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> Result<String> {
        let docker = self.docker().await?;
        let platform = platform.map(Platform::name);
        build::build(
            self.env,
            docker,
            plan,
            platform.as_deref(),
            local_tag,
            self.creds,
        )
        .await
    }

    async fn push(&self, image_id: &str, target: &Reference) -> Result<String> {
        let docker = self.docker().await?;
        let host = target.registry_host();
        let client = RegistryClient::new(host, self.creds.get(host).cloned())?;
        push::push_image(
            self.env,
            docker,
            &super::daemon_host(&self.env.daemon),
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
    }

    impl<'a> FakeDaemon<'a> {
        fn new(registry: &'a FakeRegistry) -> Self {
            Self {
                registry,
                calls: Mutex::default(),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Builder for FakeDaemon<'_> {
        async fn build(
            &self,
            _plan: &BuildPlan,
            platform: Option<&Platform>,
            local_tag: &str,
        ) -> Result<String> {
            let mut calls = self.calls.lock().unwrap();
            let platform = platform.map(Platform::name).unwrap_or_else(|| "-".into());
            calls.push(format!("build {local_tag} {platform}"));
            Ok(format!("img-{}", calls.len()))
        }

        async fn push(&self, image_id: &str, target: &Reference) -> Result<String> {
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
            inline_cache: true,
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
        }
    }

    fn test_env(events: &Recorder) -> Env<'_> {
        Env {
            daemon: DaemonAddress::default(),
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
}
