//! The engine's entry points for a resource's lifecycle: [`build_and_push`] (reuse, or build,
//! tag, push, index), [`retag`] (new tags, no build) and [`registry_has`] (does the image
//! still exist), with the registry credentials each one needs.

use std::collections::BTreeMap;

use super::error::DaemonError;
use super::{BuildPlan, EngineError, Env, Result, connect, daemon_host, flow};
use crate::credentials::{self, Credentials, normalize_server};
use crate::reference::Reference;
use crate::registry::RegistryClient;

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
    /// What the plan's exports wrote.
    pub exported: Vec<super::plan::Exported>,
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
        tokio::task::spawn_blocking(move || credentials::from_docker_config(&lookup))
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
    let exported = plan.cache_to.iter().filter_map(|c| c.registry_ref());
    for c in plan.cache_from.iter().map(String::as_str).chain(exported) {
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
