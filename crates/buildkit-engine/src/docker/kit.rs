//! A standalone buildkitd as one of the flow's builders ([`super::flow::Builder`]), through
//! our own BuildKit client ([`crate::buildkit`]).
//!
//! A build is one solve whose image exporter pushes the image itself, under the build's tag
//! in every repository the plan's tags name (so no separate push uploads layers); a "push"
//! of another tag is then a registry-side manifest copy. The plan's options become the
//! Dockerfile frontend's attributes, as buildx sends them; the automatic inline cache is
//! BuildKit's `inline` cache export, with the pushed tag as a cache import. The context is
//! filtered in the `.dockerignore` rule of today's docker CLI and buildx (what a buildkitd
//! user's own client would send).
//!
//! Not for: keeping images (a buildkitd has no image store of its own: `push: false` needs a
//! Docker host).

use std::collections::BTreeMap;

use tokio::sync::OnceCell;

use super::plan::{BuildPlan, DaemonAddress, Env, Export, Exported, Level, NamedContext};
use super::session::filesend::FileTarget;
use super::session::{self, SessionSpec};
use super::{BuildError, EngineError, PushError, Result, index};
use crate::buildkit::{BuildkitAddress, Buildkitd, Solve};
use crate::context::{BuildContext, IgnoreDialect};
use crate::credentials::Credentials;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::RegistryClient;

/// A buildkitd, connected on first use.
pub struct KitBuilder<'a> {
    address: DaemonAddress,
    creds: &'a BTreeMap<String, Credentials>,
    kit: OnceCell<Buildkitd>,
    /// What the last solve's exports wrote.
    exported: std::sync::Mutex<Vec<Exported>>,
    /// The `.dockerignore` rule of the BuildKit it reaches (a Docker Engine's may be old).
    dialect: IgnoreDialect,
}

impl<'a> KitBuilder<'a> {
    pub fn new(address: DaemonAddress, creds: &'a BTreeMap<String, Credentials>) -> Self {
        Self {
            address,
            creds,
            kit: OnceCell::new(),
            exported: std::sync::Mutex::default(),
            dialect: IgnoreDialect::Modern,
        }
    }

    /// A builder on `kit`, connected already (a Docker Engine's BuildKit through `/grpc`),
    /// whose context follows `dialect`.
    pub fn with_kit(
        address: DaemonAddress,
        creds: &'a BTreeMap<String, Credentials>,
        kit: Buildkitd,
        dialect: IgnoreDialect,
    ) -> Self {
        Self {
            address,
            creds,
            kit: OnceCell::new_with(Some(kit)),
            exported: std::sync::Mutex::default(),
            dialect,
        }
    }

    pub fn host(&self) -> String {
        self.address.host.clone().unwrap_or_default()
    }

    async fn kit(&self) -> Result<&Buildkitd> {
        self.kit
            .get_or_try_init(|| async {
                Buildkitd::connect(&BuildkitAddress {
                    host: self.host(),
                    cert_path: self.address.cert_path.as_ref().map(Into::into),
                })
                .await
                .map_err(EngineError::from)
            })
            .await
    }

    pub async fn reach(&self) -> Result<()> {
        self.kit().await.map(|_| ())
    }

    fn needs_docker(&self, what: &'static str) -> EngineError {
        EngineError::NotOnBuildkit {
            host: self.host(),
            what,
            fix: "push the image (a buildkitd pushes it itself), or build on a Docker host"
                .to_string(),
        }
    }

    /// Builds and pushes `plan` for `platform` under `local_tag`'s tag in every repository
    /// of the plan; returns the digest the image exporter reported.
    pub async fn build(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platform: Option<&Platform>,
        local_tag: &str,
    ) -> Result<String> {
        let platforms: Vec<Platform> = platform.into_iter().cloned().collect();
        self.solve(env, plan, &platforms, false, local_tag).await
    }

    /// Builds every one of `platforms` in one solve: BuildKit's image exporter pushes one
    /// index of them (even of one platform) under `local_tag`'s tag in every repository of
    /// the plan; returns the index's digest.
    pub async fn build_all(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platforms: &[Platform],
        local_tag: &str,
    ) -> Result<String> {
        self.solve(env, plan, platforms, true, local_tag).await
    }

    async fn solve(
        &self,
        env: &Env<'_>,
        plan: &BuildPlan,
        platforms: &[Platform],
        index: bool,
        local_tag: &str,
    ) -> Result<String> {
        if !plan.push && plan.exports.is_empty() {
            return Err(self.needs_docker("an image that is neither pushed nor exported"));
        }
        let kit = self.kit().await?;
        let (files, dockerfile) = session::plan_sources(plan, self.dialect).await?;
        let entries = files.len();
        let named = named_sources(plan).await?;
        let layouts = named_layouts(plan).await?;
        let agents = session::ssh::prepare(&plan.ssh).await?;
        let local = Reference::parse(local_tag)?;
        let names = export_names(plan, local.tag_or_latest());
        let what = match platforms {
            [] => String::new(),
            [one] => format!(" for {}", one.name()),
            many => format!(
                " for {} in one solve",
                many.iter()
                    .map(Platform::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        env.progress(&format!(
            "building {local_tag}{what} on the BuildKit daemon {} ({})",
            kit.host, kit.version
        ))
        .await;
        let mut exporters = Vec::new();
        if plan.push {
            exporters.push((
                "image".to_string(),
                BTreeMap::from([
                    ("name".to_string(), names.join(",")),
                    ("push".to_string(), "true".to_string()),
                ]),
            ));
        }
        let mut file_targets = BTreeMap::new();
        let mut loader = None;
        // Each export and the index of the exporter that writes it (none for cache-only).
        let mut writers: Vec<(&Export, Option<u32>)> = Vec::new();
        for export in &plan.exports {
            let id = exporters.len() as u32;
            let attrs = BTreeMap::from([("name".to_string(), names.join(","))]);
            match export {
                Export::Tarball { path, format } => {
                    exporters.push((format.exporter().to_string(), attrs));
                    file_targets.insert(id, FileTarget::Path(path.clone()));
                }
                Export::Load => {
                    exporters.push(("docker".to_string(), attrs));
                    let (tx, rx) = tokio::sync::mpsc::channel(16);
                    file_targets.insert(id, FileTarget::Channel(tx));
                    loader = Some(tokio::spawn(load_into_docker(rx)));
                }
                Export::Local { dir } => {
                    // As buildx sends `--output type=local,dest=DIR`: no attributes (the
                    // directory is the client's business, not the exporter's).
                    exporters.push(("local".to_string(), BTreeMap::new()));
                    file_targets.insert(id, FileTarget::Dir(dir.clone()));
                }
                Export::CacheOnly => {
                    writers.push((export, None));
                    continue;
                }
            }
            writers.push((export, Some(id)));
        }
        let solve = Solve {
            session: SessionSpec {
                context_dir: plan.context_dir.clone(),
                context: files,
                dockerfile,
                named,
                file_targets,
                credentials: self.creds.clone(),
                secrets: plan.secrets.0.clone(),
                agents,
                // The client's solve attaches the `local` caches' stores too.
                content_stores: layouts
                    .values()
                    .map(|l| (format!("oci:{}", l.store), l.dir.clone()))
                    .collect(),
            },
            frontend_attrs: frontend_attrs(plan, platforms, index, &layouts),
            exporters,
            cache_exports: cache_exports(plan),
            cache_imports: cache_imports(plan, local_tag),
        };
        let outcome = kit.solve(solve, env.events, &env.cancel).await;
        let loaded = match loader {
            Some(task) => Some(
                task.await
                    .map_err(|e| EngineError::Internal(e.to_string()))
                    .and_then(|r| r),
            ),
            None => None,
        };
        // A load that failed says more than the solve it broke.
        let outcome = match (outcome, loaded) {
            (Err(_), Some(Err(load))) => return Err(load),
            (outcome, loaded) => {
                let outcome = outcome?;
                if let Some(loaded) = loaded {
                    loaded?;
                }
                outcome
            }
        };
        let mut exported = Vec::new();
        for (export, id) in writers {
            let Some(id) = id else {
                env.progress("exported the build cache only").await;
                exported.push(Exported {
                    export: export.clone(),
                    bytes: 0,
                });
                continue;
            };
            let Some(&bytes) = outcome.exported.get(&id) else {
                return Err(BuildError::Export {
                    target: describe(export),
                    reason: "the BuildKit daemon wrote nothing".to_string(),
                }
                .into());
            };
            env.progress(&format!("exported {} ({bytes} bytes)", describe(export)))
                .await;
            exported.push(Exported {
                export: export.clone(),
                bytes,
            });
        }
        *self.exported.lock().unwrap_or_else(|e| e.into_inner()) = exported;
        let (files_sent, bytes_sent) = outcome.sent;
        env.log(
            Level::Info,
            &format!(
                "{local_tag}: sent {files_sent} {} ({bytes_sent} bytes) to the builder; the context has {entries} entries",
                if files_sent == 1 { "file" } else { "files" }
            ),
        )
        .await;
        if !plan.push {
            // What the exporters made, if they made an image (cache-only makes none).
            return Ok(outcome.image_digest().unwrap_or_default().to_string());
        }
        for name in &names {
            env.progress(&format!("pushed {name} from the BuildKit daemon"))
                .await;
        }
        outcome.image_digest().map(str::to_string).ok_or_else(|| {
            BuildError::NoImage {
                host: self.host(),
                tag: local_tag.to_string(),
            }
            .into()
        })
    }

    /// The image the build pushed (`digest`) under `target`: it is in `target`'s repository
    /// already (the build exported there), so this is a registry-side tag.
    pub async fn push(&self, env: &Env<'_>, digest: &str, target: &Reference) -> Result<String> {
        let host = target.registry_host();
        let client = RegistryClient::new(host, self.creds.get(host).cloned())?;
        let Some((body, info)) = index::fetch(&client, &target.api_path(), digest).await? else {
            return Err(PushError::Missing {
                reference: target.with_digest(digest),
            }
            .into());
        };
        let pushed = index::put(
            &client,
            &target.api_path(),
            target.tag_or_latest(),
            &info.media_type,
            &body,
        )
        .await?;
        env.progress(&format!("tagged {target} registry-side: {pushed}"))
            .await;
        Ok(pushed)
    }

    /// What the last solve's exporters wrote (a buildkitd writes its exports in the solve).
    pub fn take_exported(&self) -> Vec<Exported> {
        std::mem::take(&mut *self.exported.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub async fn tag(&self, _image_id: &str, _target: &Reference) -> Result<()> {
        Err(self.needs_docker("a local tag"))
    }
}

/// The local source name under which a named context's directory is served (never
/// `context` or `dockerfile`, whatever the context's name).
fn named_source(name: &str) -> String {
    format!("named-context:{name}")
}

/// The plan's named contexts that are directories, walked in the `.dockerignore` rule of
/// today's BuildKit (each with its own ignore file), as the session serves them.
async fn named_sources(
    plan: &BuildPlan,
) -> Result<BTreeMap<String, session::filesync::FileSource>> {
    let dirs: Vec<(String, std::path::PathBuf)> = plan
        .build_contexts
        .iter()
        .filter_map(|(name, c)| match c {
            NamedContext::Local(dir) => Some((name.clone(), dir.clone())),
            NamedContext::Image(_) | NamedContext::Remote(_) | NamedContext::OciLayout(_) => None,
        })
        .collect();
    if dirs.is_empty() {
        return Ok(BTreeMap::new());
    }
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for (name, dir) in dirs {
            let context_error = |source| BuildError::Context {
                dir: dir.display().to_string(),
                source,
            };
            let ctx = BuildContext::open_named(&dir)
                .map_err(context_error)?
                .with_dialect(IgnoreDialect::Modern);
            let files = session::filesync::FileSource::context(&ctx).map_err(context_error)?;
            out.insert(named_source(&name), files);
        }
        Ok(out)
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
}

/// A named context's OCI layout, resolved for the solve: the session's store of it and the
/// image BuildKit reads there.
struct NamedLayout {
    /// The store's name (`oci:<store>` in the session), a valid image name as the frontend
    /// parses `oci-layout://<store>:<tag>@<digest>`.
    store: String,
    dir: std::path::PathBuf,
    tag: String,
    digest: String,
}

/// The plan's named contexts in OCI layouts, by name: each image's digest resolved as
/// buildx resolves it (the tag in `index.json`, else its only manifest), at build time (a
/// layout changed since Check is read as it is now).
async fn named_layouts(plan: &BuildPlan) -> Result<BTreeMap<String, NamedLayout>> {
    let refs: Vec<(String, super::OciLayoutRef)> = plan
        .build_contexts
        .iter()
        .filter_map(|(name, c)| match c {
            NamedContext::OciLayout(r) => Some((name.clone(), r.clone())),
            _ => None,
        })
        .collect();
    if refs.is_empty() {
        return Ok(BTreeMap::new());
    }
    tokio::task::spawn_blocking(move || {
        let mut out = BTreeMap::new();
        for (i, (name, r)) in refs.into_iter().enumerate() {
            let digest = session::content::OciLayout::new(&r.dir)
                .resolve_image(&r.tag, r.digest.as_deref())
                .map_err(|source| BuildError::NamedLayout {
                    name: name.clone(),
                    source,
                })?;
            let layout = NamedLayout {
                store: format!("named-context-{i}"),
                dir: r.dir,
                tag: r.tag,
                digest,
            };
            out.insert(name, layout);
        }
        Ok(out)
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
}

/// An export, for messages.
pub fn describe(export: &Export) -> String {
    match export {
        Export::Tarball { path, format } => {
            format!("a {} tarball at {}", format.exporter(), path.display())
        }
        Export::Load => "the Docker daemon of the environment".to_string(),
        Export::CacheOnly => "the build cache only".to_string(),
        Export::Local { dir } => format!("the directory {}", dir.display()),
    }
}

/// Loads the `docker` exporter's tarball, as it comes, into the Docker daemon of the
/// environment (`DOCKER_HOST`, else the default socket), as `docker load`.
async fn load_into_docker(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> Result<()> {
    use futures_util::StreamExt;
    let failed = |reason: String| -> EngineError {
        BuildError::Export {
            target: describe(&Export::Load),
            reason,
        }
        .into()
    };
    let docker = super::connect(&DaemonAddress::default()).await?;
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut stream = docker.import_image_stream(
        bollard::query_parameters::ImportImageOptions::default(),
        body,
        None,
    );
    while let Some(r) = stream.next().await {
        r.map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

/// `tag` in every repository the plan's tags name (the main one first).
fn export_names(plan: &BuildPlan, tag: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in &plan.push_tags {
        let name = r.with_tag(tag);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The Dockerfile frontend's attributes for `plan`, as buildx sends them.
fn frontend_attrs(
    plan: &BuildPlan,
    platforms: &[Platform],
    index: bool,
    layouts: &BTreeMap<String, NamedLayout>,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([(
        "filename".to_string(),
        session::filesync::DOCKERFILE_NAME.to_string(),
    )]);
    for (k, v) in &plan.build_args {
        a.insert(format!("build-arg:{k}"), v.clone());
    }
    for (k, v) in &plan.labels {
        a.insert(format!("label:{k}"), v.clone());
    }
    if let Some(t) = &plan.target {
        a.insert("target".into(), t.clone());
    }
    for (name, c) in &plan.build_contexts {
        let source = match (c, layouts.get(name)) {
            (NamedContext::Local(_), _) => format!("local:{}", named_source(name)),
            (NamedContext::Image(r), _) => format!("{}{r}", super::NAMED_IMAGE_SCHEME),
            (NamedContext::Remote(url), _) => url.clone(),
            (NamedContext::OciLayout(_), Some(l)) => format!(
                "{}{}:{}@{}",
                super::NAMED_OCI_LAYOUT_SCHEME,
                l.store,
                l.tag,
                l.digest
            ),
            // Resolved before the attributes are made: never without its layout.
            (NamedContext::OciLayout(_), None) => continue,
        };
        a.insert(format!("context:{name}"), source);
    }
    if !platforms.is_empty() {
        let names: Vec<String> = platforms.iter().map(Platform::name).collect();
        a.insert("platform".into(), names.join(","));
    }
    if index {
        // An index even of one platform (several make one anyway).
        a.insert("multi-platform".into(), "true".into());
    }
    if let Some(mode) = &plan.provenance {
        a.insert("attest:provenance".into(), format!("mode={mode}"));
    }
    if plan.no_cache {
        a.insert("no-cache".into(), String::new());
    }
    if plan.pull {
        a.insert("image-resolve-mode".into(), "pull".into());
    }
    if let Some(n) = plan.network.as_deref().filter(|n| *n != "default") {
        a.insert("force-network-mode".into(), n.to_string());
    }
    if !plan.add_hosts.is_empty() {
        // `host:ip` as the docker CLI takes it; `host=ip` as the frontend does.
        let hosts: Vec<String> = plan
            .add_hosts
            .iter()
            .map(|h| h.replacen(':', "=", 1))
            .collect();
        a.insert("add-hosts".into(), hosts.join(","));
    }
    a
}

/// The caches to export: the inline one when on, and the plan's others.
fn cache_exports(plan: &BuildPlan) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    if plan.inline_cache && !plan.no_cache {
        out.push(("inline".to_string(), BTreeMap::new()));
    }
    for c in &plan.cache_to {
        out.push((c.kind.clone(), c.attrs.clone()));
    }
    out
}

/// The caches to import: the plan's images, the registry caches it exports to, the pushed
/// tag itself when the inline cache is on, then the plan's other imports (a `local`
/// directory's cache, …) and the `local` caches it exports to that are there already.
fn cache_imports(plan: &BuildPlan, local_tag: &str) -> Vec<(String, BTreeMap<String, String>)> {
    if plan.no_cache {
        return Vec::new();
    }
    let mut out = registry_imports(plan, local_tag);
    for c in &plan.cache_imports {
        out.push((c.kind.clone(), c.attrs.clone()));
    }
    for c in plan.cache_to.iter().filter(|c| c.kind == LOCAL_CACHE) {
        let Some(dest) = c.attrs.get("dest") else {
            continue;
        };
        let imported = out
            .iter()
            .any(|(k, a)| k == LOCAL_CACHE && a.get("src") == Some(dest));
        // A directory with no cache yet is no cache to import (and no warning to give).
        if imported || !std::path::Path::new(dest).join("index.json").is_file() {
            continue;
        }
        let mut attrs = BTreeMap::from([("src".to_string(), dest.clone())]);
        if let Some(tag) = c.attrs.get("tag") {
            attrs.insert("tag".to_string(), tag.clone());
        }
        out.push((LOCAL_CACHE.to_string(), attrs));
    }
    out
}

/// BuildKit's directory cache type.
const LOCAL_CACHE: &str = crate::buildkit::local_cache::LOCAL;

/// The registry imports of [`cache_imports`]: images, as references.
fn registry_imports(plan: &BuildPlan, local_tag: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut refs: Vec<String> = Vec::new();
    if plan.inline_cache {
        refs.push(local_tag.to_string());
    }
    for c in &plan.cache_from {
        if !refs.contains(c) {
            refs.push(c.clone());
        }
    }
    for r in plan.cache_to.iter().filter_map(|c| c.registry_ref()) {
        if !refs.iter().any(|x| x == r) {
            refs.push(r.to_string());
        }
    }
    refs.into_iter()
        .map(|r| {
            (
                "registry".to_string(),
                BTreeMap::from([("ref".to_string(), r)]),
            )
        })
        .collect()
}
