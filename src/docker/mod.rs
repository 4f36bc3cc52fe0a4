//! Everything that talks to the Docker daemon: connecting ([`connect`]), building with
//! BuildKit ([`build`]), tagging and pushing ([`push`]), rendering progress ([`progress`]),
//! and finding registry credentials ([`auth`]).
//!
//! [`build_and_push`] is the one entry point the `Image` resource uses for `up`: build,
//! tag, push, and report the digest. Cancellation (the engine's `Cancel`) drops the
//! daemon's streams, which makes the daemon stop the build or push.
//! Not for: deciding *whether* to build (the resource's diff does that).

pub mod auth;
pub mod build;
pub mod progress;
pub mod push;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::docker::auth::{Credentials, normalize_server};
use crate::reference::Reference;
use crate::resource::{Ctx, ResourceError};
use crate::resources::ProviderConfig;
use crate::resources::image::{ImageArgs, Registry};

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// Everything one build needs, resolved from the inputs.
#[derive(Clone)]
pub struct BuildRequest {
    pub context_dir: PathBuf,
    pub args: ImageArgs,
    /// `name`, parsed.
    pub reference: Reference,
    /// Every `repository:tag` to push: `name` (tag `latest` by default) first, then `tags`.
    pub push_tags: Vec<Reference>,
}

impl BuildRequest {
    pub fn from_args(args: &ImageArgs, context_dir: &Path) -> Result<Self, String> {
        let reference = Reference::parse(&args.name).map_err(|e| format!("name: {e}"))?;
        let mut push_tags = vec![Reference {
            tag: Some(reference.tag_or_latest().to_string()),
            digest: None,
            ..reference.clone()
        }];
        for t in args.tags.iter().flatten() {
            let r = if t.contains('/') || t.contains(':') {
                let r = Reference::parse(t).map_err(|e| format!("tags: {e}"))?;
                Reference {
                    tag: Some(r.tag_or_latest().to_string()),
                    ..r
                }
            } else {
                Reference {
                    tag: Some(t.clone()),
                    digest: None,
                    ..reference.clone()
                }
            };
            if !push_tags.contains(&r) {
                push_tags.push(r);
            }
        }
        Ok(Self {
            context_dir: context_dir.to_path_buf(),
            args: args.clone(),
            reference,
            push_tags,
        })
    }

    /// The reference the image is built under locally: `name` with its tag.
    pub fn local_tag(&self) -> String {
        self.push_tags[0].to_string()
    }
}

/// The result of a build (and push).
#[derive(Debug, Clone)]
pub struct Built {
    /// The pushed manifest's digest, or the image id when not pushed.
    pub digest: String,
    /// `repository@digest` when pushed; the local tag otherwise.
    pub reference: Option<String>,
}

/// Where the daemon is: provider config, then `DOCKER_HOST`, then the default socket.
pub fn daemon_host(config: &ProviderConfig) -> String {
    config
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

fn cert_path(config: &ProviderConfig) -> Option<PathBuf> {
    if let Some(p) = config.cert_path.as_ref().filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty() && v != "0");
    if !verify {
        return None;
    }
    std::env::var_os("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// Connects to the daemon and checks that it answers, agreeing on an API version both
/// sides speak.
pub async fn connect(config: &ProviderConfig) -> Result<Docker, ResourceError> {
    let host = daemon_host(config);
    let unreachable = |e: String| {
        ResourceError::Unavailable(format!(
            "cannot reach the Docker daemon at {host}: {e}. Is dockerd running? Set DOCKER_HOST or the provider's `host` configuration to point at it"
        ))
    };
    const TIMEOUT_SECS: u64 = 3600;
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") || host.starts_with("https://") {
        match cert_path(config) {
            Some(dir) => Docker::connect_with_ssl(
                &host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            None => Docker::connect_with_http(&host, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION),
        }
    } else {
        return Err(ResourceError::InvalidInput(format!(
            "the Docker host {host:?} is not supported: use unix:///path/to/docker.sock or tcp://host:port"
        )));
    }
    .map_err(|e| unreachable(e.to_string()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    docker
        .ping()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}

/// Credentials for `host`: the `registry` input when it names that host, else the Docker
/// CLI's configuration.
pub async fn credentials_for(
    host: &str,
    registry: Option<&Registry>,
) -> Result<Option<Credentials>, ResourceError> {
    let host = normalize_server(host);
    if let Some(r) = registry
        && normalize_server(&r.server) == host
        && let (Some(username), Some(password)) = (&r.username, &r.password)
    {
        return Ok(Some(Credentials {
            server: host,
            username: username.clone(),
            password: password.clone(),
            identity_token: None,
        }));
    }
    let lookup = host.clone();
    tokio::task::spawn_blocking(move || auth::from_docker_config(&lookup))
        .await
        .map_err(|e| ResourceError::Failed(e.to_string()))?
        .map_err(|e| ResourceError::InvalidInput(e.to_string()))
}

/// Credentials for every registry a build touches (push target, cache sources), keyed by
/// registry host as the daemon's BuildKit session expects.
async fn build_credentials(
    req: &BuildRequest,
) -> Result<BTreeMap<String, Credentials>, ResourceError> {
    let mut hosts: Vec<String> = req
        .push_tags
        .iter()
        .map(|r| r.registry_host().to_string())
        .collect();
    for c in req.args.cache_from.iter().flatten() {
        if let Ok(r) = Reference::parse(c) {
            hosts.push(r.registry_host().to_string());
        }
    }
    hosts.sort();
    hosts.dedup();
    let mut out = BTreeMap::new();
    for h in hosts {
        if let Some(c) = credentials_for(&h, req.args.registry.as_ref()).await? {
            out.insert(h, c);
        }
    }
    Ok(out)
}

/// Builds the image, tags it, and pushes every tag (unless `push` is off).
pub async fn build_and_push(
    ctx: &Ctx<ProviderConfig>,
    req: BuildRequest,
) -> Result<Built, ResourceError> {
    let docker = connect(&ctx.config).await?;
    let creds = build_credentials(&req).await?;
    let image_id = build::build(ctx, &docker, &req, &creds).await?;
    for r in req.push_tags.iter().skip(1) {
        push::tag(&docker, &image_id, r).await?;
    }
    if !req.args.push {
        return Ok(Built {
            digest: image_id,
            reference: Some(req.local_tag()),
        });
    }
    let mut digest = None;
    for r in &req.push_tags {
        let c = creds.get(r.registry_host());
        let d = push::push(ctx, &docker, r, c).await?;
        if digest.is_none() {
            digest = Some(d);
        }
    }
    let digest = digest.ok_or_else(|| ResourceError::Failed("nothing was pushed".into()))?;
    Ok(Built {
        reference: Some(req.reference.with_digest(&digest)),
        digest,
    })
}

/// Whether `reference` (`repo@sha256:…`, or a local tag/id for unpushed images) still
/// exists: asks the registry over HTTP, or the daemon for local images.
pub async fn registry_has(
    ctx: &Ctx<ProviderConfig>,
    reference: &str,
    registry: Option<&Registry>,
) -> Result<bool, ResourceError> {
    let r = Reference::parse(reference).map_err(|e| ResourceError::InvalidInput(e.to_string()))?;
    let Some(digest) = &r.digest else {
        let docker = connect(&ctx.config).await?;
        return Ok(docker.inspect_image(reference).await.is_ok());
    };
    let creds = credentials_for(r.registry_host(), registry).await?;
    let client = crate::registry::RegistryClient::new(r.registry_host(), creds)
        .map_err(|e| ResourceError::Unavailable(e.to_string()))?;
    let found = client
        .manifest_info(&r.api_path(), digest)
        .await
        .map_err(|e| ResourceError::Unavailable(e.to_string()))?;
    Ok(found.is_some())
}
