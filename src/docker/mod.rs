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
pub mod dial;
pub mod dialect;
pub mod error;
pub mod flow;
pub mod index;
pub mod plan;
pub mod progress;
pub mod push;
pub mod session;
pub mod tunnel;

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::Docker;

pub use self::plan::{
    BuildPlan, BuildSecrets, BuilderSpec, DaemonAddress, Env, Events, Level, Pending, SshForward,
};
use crate::docker::auth::{Credentials, normalize_server};
use crate::reference::Reference;
use crate::registry::RegistryClient;

pub use self::error::{BuildError, DaemonError, EngineError, Kind, PushError};

/// The engine's results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The schemes of a Docker host that [`connect`] can reach.
pub const HOST_SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://", "ssh://"];

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

/// Where a daemon address leads: read once, for bollard ([`connect`]) and for our own
/// connections ([`dial::Dialer`]).
pub(crate) enum Endpoint {
    Unix(PathBuf),
    /// An `ssh://` host, through its local socket.
    Ssh(std::sync::Arc<tunnel::Tunnel>),
    /// `host:port`, with the TLS certificates directory when there is one.
    Tcp {
        addr: String,
        certs: Option<PathBuf>,
    },
}

/// The daemon's address (as [`daemon_host`] finds it) and where it leads; an address that
/// cannot work is an input error.
pub(crate) fn endpoint(config: &DaemonAddress) -> Result<(String, Endpoint)> {
    let host = daemon_host(config);
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        return Ok((host, Endpoint::Unix(path)));
    }
    if host.starts_with("ssh://") {
        let t = tunnel::tunnel(&host).map_err(|reason| DaemonError::InvalidHost {
            host: host.clone(),
            reason,
        })?;
        return Ok((host, Endpoint::Ssh(t)));
    }
    let Some(addr) = HOST_SCHEMES
        .iter()
        .filter(|scheme| !matches!(**scheme, "unix://" | "ssh://"))
        .find_map(|scheme| host.strip_prefix(scheme))
    else {
        return Err(DaemonError::Unsupported { host }.into());
    };
    let addr = addr.trim_end_matches('/').to_string();
    let certs = cert_path(config);
    if certs.is_none() && host.starts_with("https://") {
        return Err(DaemonError::TlsWithoutCerts { host }.into());
    }
    Ok((host, Endpoint::Tcp { addr, certs }))
}

/// Connects to the daemon and checks that it answers, agreeing on an API version both
/// sides speak.
pub async fn connect(config: &DaemonAddress) -> Result<Docker> {
    let (host, endpoint) = endpoint(config)?;
    let hint = match &endpoint {
        Endpoint::Unix(_) => {
            "Is dockerd running? Set DOCKER_HOST or the provider's `host` configuration to point at it"
        }
        Endpoint::Ssh(_) => {
            "The provider runs `ssh <host> docker system dial-stdio` with your ssh configuration and agent, never prompting"
        }
        Endpoint::Tcp { certs: Some(_), .. } => {
            "Is dockerd listening there with TLS, and do ca.pem, cert.pem and key.pem (the provider's `certPath`, or DOCKER_CERT_PATH) belong to it?"
        }
        Endpoint::Tcp { certs: None, .. } => {
            "Is dockerd listening there? A daemon with TLS needs the provider's `certPath` (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
        }
    };
    let unreachable = |reason: String| DaemonError::Unreachable {
        host: host.clone(),
        reason,
        hint,
    };
    const TIMEOUT_SECS: u64 = 3600;
    let version = bollard::API_DEFAULT_VERSION;
    let docker = match &endpoint {
        Endpoint::Unix(path) => {
            Docker::connect_with_unix(&path.display().to_string(), TIMEOUT_SECS, version)
        }
        Endpoint::Ssh(t) => {
            Docker::connect_with_unix(&t.socket.display().to_string(), TIMEOUT_SECS, version)
        }
        // bollard strips only some schemes: hand it `tcp://host:port` always.
        Endpoint::Tcp {
            addr,
            certs: Some(dir),
        } => Docker::connect_with_ssl(
            &format!("tcp://{addr}"),
            &dir.join("key.pem"),
            &dir.join("cert.pem"),
            &dir.join("ca.pem"),
            TIMEOUT_SECS,
            version,
        ),
        Endpoint::Tcp { addr, certs: None } => {
            Docker::connect_with_http(&format!("tcp://{addr}"), TIMEOUT_SECS, version)
        }
    }
    .map_err(|e| unreachable(e.to_string()))?;
    match &endpoint {
        // Over ssh a handshake alone can take seconds; a failure says what ssh said.
        Endpoint::Ssh(t) => answered(docker, 3 * DAEMON_ANSWER_TIMEOUT)
            .await
            .map_err(|reason| unreachable(t.explain(&reason)).into()),
        _ => answered(docker, DAEMON_ANSWER_TIMEOUT)
            .await
            .map_err(|reason| unreachable(reason).into()),
    }
}

/// `docker` once it has agreed on an API version and answered a ping within `limit`: a
/// daemon that accepts the connection but never answers must not hang the build.
async fn answered(
    docker: Docker,
    limit: std::time::Duration,
) -> std::result::Result<Docker, String> {
    let answer = async {
        let docker = docker.negotiate_version().await?;
        docker.ping().await?;
        Ok::<_, bollard::errors::Error>(docker)
    };
    match tokio::time::timeout(limit, answer).await {
        Ok(Ok(docker)) => Ok(docker),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer to a ping within {} s", limit.as_secs())),
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

/// [`build_credentials`], each secret declared to `env` so that it is masked like the inputs.
async fn plan_credentials(
    env: &Env<'_>,
    plan: &BuildPlan,
) -> Result<BTreeMap<String, Credentials>> {
    let creds = build_credentials(plan).await?;
    for c in creds.values() {
        env.add_secret(&c.password);
        if let Some(t) = &c.identity_token {
            env.add_secret(t);
        }
    }
    Ok(creds)
}

/// A registry client for `host` with `creds`; a host the client cannot use is an input error.
fn registry_client(host: &str, creds: Option<Credentials>) -> Result<RegistryClient> {
    Ok(RegistryClient::new(host, creds)?)
}

/// Builds the image, tags it, and pushes every tag (unless `push` is off). With several
/// platforms, builds each and pushes an index. With `skipIfPushed`, first looks for an image
/// built from the same context and reuses it without building (see [`flow`]).
pub async fn build_and_push(env: &Env<'_>, plan: BuildPlan) -> Result<Built> {
    let creds = plan_credentials(env, &plan).await?;
    let fleet = flow::daemon_fleet(env.daemon.clone(), &env.builders, &creds);
    let registries = flow::RegistryClients::new(&creds);
    flow::up(env, &plan, &fleet, &registries).await
}

/// Puts the image built before (`digest`) under the plan's tags without building, when that
/// can be done (see [`flow::retag`]); `false` when it must be built.
pub async fn retag(env: &Env<'_>, plan: &BuildPlan, digest: &str) -> Result<bool> {
    let creds = plan_credentials(env, plan).await?;
    let fleet = flow::daemon_fleet(env.daemon.clone(), &env.builders, &creds);
    let registries = flow::RegistryClients::new(&creds);
    Ok(flow::retag(env, plan, digest, &fleet, &registries)
        .await?
        .is_some())
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
