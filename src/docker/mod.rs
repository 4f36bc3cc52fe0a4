//! The build engine: everything that talks to the Docker daemon. It carries out a
//! [`BuildPlan`] in an [`Env`] ([`plan`]): connecting ([`connect`]), building with BuildKit
//! ([`build`]), tagging and pushing ([`push`]), rendering progress ([`progress`]), image
//! indexes and registry-side tags ([`index`]), and finding registry credentials ([`auth`]).
//!
//! [`build_and_push`] is the one entry point for `up`: reuse, or build, tag, push, and report
//! the digest. Cancellation drops the daemon's streams, which makes the daemon stop the build
//! or push. Imports nothing of the resource layer or the wire: the arrows are resource →
//! plan → engine. Not for: deciding *whether* to build (the resource's diff does that).

pub mod auth;
pub mod build;
pub mod error;
pub mod index;
pub mod plan;
pub mod progress;
pub mod push;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::Docker;

pub use self::plan::{BuildPlan, DaemonAddress, Env, Events, Level, Pending};
use crate::docker::auth::{Credentials, normalize_server};
use crate::reference::Reference;
use crate::registry::RegistryClient;

pub use self::error::{BuildError, DaemonError, EngineError, Kind, PushError};

/// The engine's results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The schemes of a Docker host that [`connect`] can reach.
pub const HOST_SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://"];

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long the daemon may take to answer the version negotiation and the ping.
const DAEMON_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl BuildPlan {
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
    /// Platform → its manifest's digest (several platforms, or one given explicitly).
    pub platform_digests: BTreeMap<String, String>,
}

/// Where the daemon is: provider config, then `DOCKER_HOST`, then the default socket.
pub fn daemon_host(config: &DaemonAddress) -> String {
    config
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_SOCKET.to_string())
}

fn cert_path(config: &DaemonAddress) -> Option<PathBuf> {
    if let Some(p) = config.cert_path.as_ref().filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    // As the Docker CLI: any non-empty DOCKER_TLS_VERIFY turns verification on, and an
    // empty DOCKER_CERT_PATH means the default ~/.docker.
    let verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    if !verify {
        return None;
    }
    std::env::var_os("DOCKER_CERT_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// Connects to the daemon and checks that it answers, agreeing on an API version both
/// sides speak.
pub async fn connect(config: &DaemonAddress) -> Result<Docker> {
    let host = daemon_host(config);
    let certs = cert_path(config);
    let hint = if host.starts_with("unix://") {
        "Is dockerd running? Set DOCKER_HOST or the provider's `host` configuration to point at it"
    } else if certs.is_some() {
        "Is dockerd listening there with TLS, and do ca.pem, cert.pem and key.pem (the provider's `certPath`, or DOCKER_CERT_PATH) belong to it?"
    } else {
        "Is dockerd listening there? A daemon with TLS needs the provider's `certPath` (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
    };
    let unreachable = |reason: String| DaemonError::Unreachable {
        host: host.clone(),
        reason,
        hint,
    };
    const TIMEOUT_SECS: u64 = 3600;
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if let Some(addr) = HOST_SCHEMES
        .iter()
        .filter(|scheme| **scheme != "unix://")
        .find_map(|scheme| host.strip_prefix(scheme))
    {
        // bollard strips only some schemes: hand it `tcp://host:port` always.
        let tcp = format!("tcp://{addr}");
        match (&certs, host.starts_with("https://")) {
            (Some(dir), _) => Docker::connect_with_ssl(
                &tcp,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            (None, true) => return Err(DaemonError::TlsWithoutCerts { host }.into()),
            (None, false) => {
                Docker::connect_with_http(&tcp, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            }
        }
    } else {
        return Err(DaemonError::Unsupported { host }.into());
    }
    .map_err(|e| unreachable(e.to_string()))?;
    // A daemon that accepts the connection but never answers must not hang the build.
    let answer = async {
        let docker = docker.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    };
    match tokio::time::timeout(DAEMON_ANSWER_TIMEOUT, answer).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(unreachable(e.to_string()).into()),
        Err(_) => Err(unreachable(format!(
            "no answer to a ping within {} s",
            DAEMON_ANSWER_TIMEOUT.as_secs()
        ))
        .into()),
    }
}

/// Credentials for `host`: `login` when it is for that host, else the Docker CLI's
/// configuration.
pub async fn credentials_for(
    host: &str,
    login: Option<&Credentials>,
) -> Result<Option<Credentials>> {
    let host = normalize_server(host);
    if let Some(c) = login
        && normalize_server(&c.server) == host
    {
        return Ok(Some(Credentials {
            server: host,
            ..c.clone()
        }));
    }
    let lookup = host.clone();
    Ok(
        tokio::task::spawn_blocking(move || auth::from_docker_config(&lookup))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??,
    )
}

/// The daemon's form of `c` for `server` (pushes and the build session's auth both use it).
pub(crate) fn docker_credentials(
    c: &Credentials,
    server: &str,
) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        identitytoken: c.identity_token.clone(),
        serveraddress: Some(server.to_string()),
        ..Default::default()
    }
}

/// Credentials for every registry a build touches (push target, cache sources), keyed by
/// registry host as the daemon's BuildKit session expects.
async fn build_credentials(plan: &BuildPlan) -> Result<BTreeMap<String, Credentials>> {
    let mut hosts: Vec<String> = plan
        .push_tags
        .iter()
        .map(|r| r.registry_host().to_string())
        .collect();
    for c in &plan.cache_from {
        if let Ok(r) = Reference::parse(c) {
            hosts.push(r.registry_host().to_string());
        }
    }
    hosts.sort();
    hosts.dedup();
    let mut out = BTreeMap::new();
    for h in hosts {
        if let Some(c) = credentials_for(&h, plan.login.as_ref()).await? {
            out.insert(h, c);
        }
    }
    Ok(out)
}

/// A registry client for `host` with `creds`; a host the client cannot use is an input error.
fn registry_client(host: &str, creds: Option<Credentials>) -> Result<RegistryClient> {
    Ok(RegistryClient::new(host, creds)?)
}

/// A registry client for `host`, with the credentials found for it.
fn client_for(host: &str, creds: &BTreeMap<String, Credentials>) -> Result<RegistryClient> {
    registry_client(host, creds.get(host).cloned())
}

/// Builds the image, tags it, and pushes every tag (unless `push` is off). With several
/// platforms, builds each and pushes an index. With `skipIfPushed`, first looks for an image
/// built from the same context and reuses it without building.
pub async fn build_and_push(env: &Env<'_>, plan: BuildPlan) -> Result<Built> {
    let creds = build_credentials(&plan).await?;
    for c in creds.values() {
        env.add_secret(&c.password);
        if let Some(t) = &c.identity_token {
            env.add_secret(t);
        }
    }
    let context_tag = plan.context_tag.clone();
    if plan.push
        && plan.skip_if_pushed
        && let Some(tag) = &context_tag
        && let Some(built) = reuse(env, &plan, &creds, tag).await?
    {
        return Ok(built);
    }
    let docker = connect(&env.daemon).await?;
    let daemon = daemon_host(&env.daemon);
    let docker = Daemon {
        docker: &docker,
        host: &daemon,
    };
    let platforms = &plan.platforms;
    let built = if platforms.len() > 1 || (plan.index && !platforms.is_empty()) {
        build_index(env, docker, &plan, &creds, platforms).await?
    } else {
        build_single(env, docker, &plan, &creds, platforms.first()).await?
    };
    if plan.push
        && let Some(tag) = &context_tag
    {
        // Mark the image as built from this context, for the next machine.
        let main = &plan.push_tags[0];
        let client = client_for(main.registry_host(), &creds)?;
        if let Some((body, info)) = index::fetch(&client, &main.api_path(), &built.digest).await? {
            index::put(&client, &main.api_path(), tag, &info.media_type, &body).await?;
        }
    }
    Ok(built)
}

/// Looks for `<repository>:<context tag>`; when present, tags it as asked (registry-side)
/// and returns it. Only when every tag is in `name`'s repository (a manifest copy cannot
/// cross repositories without its blobs); otherwise the image is built.
async fn reuse(
    env: &Env<'_>,
    plan: &BuildPlan,
    creds: &BTreeMap<String, Credentials>,
    context_tag: &str,
) -> Result<Option<Built>> {
    let main = &plan.push_tags[0];
    if plan
        .push_tags
        .iter()
        .any(|r| r.repository() != main.repository())
    {
        return Ok(None);
    }
    let client = client_for(main.registry_host(), creds)?;
    let path = main.api_path();
    let Some((body, info)) = index::fetch(&client, &path, context_tag).await? else {
        return Ok(None);
    };
    env.log(
        Level::Info,
        &format!(
            "{}:{context_tag} was built from this same context: tagging it instead of building",
            main.repository()
        ),
    )
    .await;
    for r in &plan.push_tags {
        index::put(&client, &path, r.tag_or_latest(), &info.media_type, &body).await?;
    }
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

/// A connected daemon and the host it was reached at.
#[derive(Clone, Copy)]
struct Daemon<'a> {
    docker: &'a Docker,
    host: &'a str,
}

impl Daemon<'_> {
    /// Pushes image `image_id` under `target`: see [`push::push_image`].
    async fn push(
        &self,
        env: &Env<'_>,
        image_id: &str,
        target: &Reference,
        creds: &BTreeMap<String, Credentials>,
    ) -> Result<String> {
        let client = client_for(target.registry_host(), creds)?;
        push::push_image(
            env,
            self.docker,
            self.host,
            image_id,
            target,
            creds.get(target.registry_host()),
            &client,
        )
        .await
    }
}

/// Pushes image `image_id` under every tag of `tags`: through the daemon once per
/// repository (which uploads the layers there), then registry-side for the other tags of
/// that repository. Returns the digest pushed under the first tag.
async fn push_all(
    env: &Env<'_>,
    daemon: Daemon<'_>,
    image_id: &str,
    tags: &[Reference],
    creds: &BTreeMap<String, Credentials>,
) -> Result<String> {
    let mut pushed: Vec<(String, String)> = Vec::new(); // (repository, digest)
    for r in tags {
        match pushed.iter().find(|(repo, _)| *repo == r.repository()) {
            None => {
                let d = daemon.push(env, image_id, r, creds).await?;
                pushed.push((r.repository(), d));
            }
            Some((_, digest)) => {
                let client = client_for(r.registry_host(), creds)?;
                let Some((body, info)) = index::fetch(&client, &r.api_path(), digest).await? else {
                    return Err(PushError::Missing {
                        reference: r.with_digest(digest),
                    }
                    .into());
                };
                index::put(
                    &client,
                    &r.api_path(),
                    r.tag_or_latest(),
                    &info.media_type,
                    &body,
                )
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
    daemon: Daemon<'_>,
    plan: &BuildPlan,
    creds: &BTreeMap<String, Credentials>,
    platform: Option<&index::Platform>,
) -> Result<Built> {
    let local_tag = plan.local_tag();
    let image_id = build::build(
        env,
        daemon.docker,
        plan,
        platform.map(|p| p.name()).as_deref(),
        &local_tag,
        creds,
    )
    .await?;
    if !plan.push {
        for r in &plan.push_tags {
            push::tag(daemon.docker, &image_id, r).await?;
        }
        return Ok(Built {
            digest: image_id,
            reference: Some(local_tag),
            platform_digests: BTreeMap::new(),
        });
    }
    let digest = push_all(env, daemon, &image_id, &plan.push_tags, creds).await?;
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
    daemon: Daemon<'_>,
    plan: &BuildPlan,
    creds: &BTreeMap<String, Credentials>,
    platforms: &[index::Platform],
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
    let mut entries: BTreeMap<String, Vec<(index::Platform, crate::registry::ManifestInfo)>> =
        BTreeMap::new();
    for p in platforms {
        let temp_tag = format!("{}-{}", main.tag_or_latest(), p.tag_suffix());
        let local = Reference {
            tag: Some(temp_tag.clone()),
            ..main.clone()
        };
        let image_id = build::build(
            env,
            daemon.docker,
            plan,
            Some(&p.name()),
            &local.to_string(),
            creds,
        )
        .await?;
        for repo in &repos {
            let target = Reference {
                tag: Some(temp_tag.clone()),
                ..repo.clone()
            };
            let digest = daemon.push(env, &image_id, &target, creds).await?;
            let client = client_for(target.registry_host(), creds)?;
            let info = index::info(&client, &target.api_path(), &digest).await?;
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
        let client = client_for(r.registry_host(), creds)?;
        let d = index::put(
            &client,
            &r.api_path(),
            r.tag_or_latest(),
            crate::registry::MEDIA_TYPE_DOCKER_MANIFEST_LIST,
            &list,
        )
        .await?;
        env.progress(&format!(
            "pushed the index of {} platforms as {r}: {d}",
            platforms.len()
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

/// Whether `reference` (`repo@sha256:…`, or a local tag/id for unpushed images) still
/// exists: asks the registry over HTTP, or the daemon for local images.
pub async fn registry_has(
    env: &Env<'_>,
    reference: &str,
    login: Option<&Credentials>,
) -> Result<bool> {
    let r = Reference::parse(reference)?;
    let Some(digest) = &r.digest else {
        let docker = connect(&env.daemon).await?;
        return match docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(DaemonError::Inspect {
                host: daemon_host(&env.daemon),
                reference: reference.to_string(),
                source,
            }
            .into()),
        };
    };
    let creds = credentials_for(r.registry_host(), login).await?;
    let client = registry_client(r.registry_host(), creds)?;
    let found = client.manifest_info(&r.api_path(), digest).await?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str) -> DaemonAddress {
        DaemonAddress {
            host: Some(host.to_string()),
            cert_path: None,
        }
    }

    #[tokio::test]
    async fn hosts_that_cannot_work_are_refused_with_the_fix() {
        let e = connect(&config("ftp://x")).await.err().unwrap();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = connect(&config("https://127.0.0.1:1")).await.err().unwrap();
        assert!(e.to_string().contains("certPath"), "{e}");
        // http:// is plain tcp:// (bollard would otherwise mangle it): nothing listens on
        // port 1, so the error is about reaching it.
        let e = connect(&config("http://127.0.0.1:1")).await.err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot reach the Docker daemon at http://127.0.0.1:1"),
            "{e}"
        );
        assert!(
            e.to_string().contains("certPath"),
            "the hint names the TLS settings: {e}"
        );
    }
}
