//! A small client for the Distribution (registry v2) HTTP API: what the provider needs to
//! look at and write manifests after a build (digest and media type of a tag, raw manifests,
//! image configs, pushing image indexes), with the registry's Basic or Bearer-token
//! authentication handled transparently.
//!
//! Not for: pushing layers (the Docker engine pushes images), listing tags or catalogs,
//! deleting, or finding credentials (see [`crate::docker::auth`]). Passwords and tokens never
//! appear in errors or `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::docker::auth::Credentials;

pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Sent with every manifest request. All four are needed: asked for OCI types only,
/// registry 2.8 converts Docker images to schema 1, which has a different digest.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json";

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Docker Hub's API host; `docker.io` is only its name.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// What went wrong talking to a registry. Messages never contain a password or token.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{host:?} is not a valid registry host: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("cannot set up an HTTP client: {reason}")]
    Client { reason: String },
    #[error(
        "authentication failed for {server}: {}",
        if *with_credentials {
            "check the registry username and password"
        } else {
            "this registry needs credentials"
        }
    )]
    Unauthorized {
        server: String,
        with_credentials: bool,
    },
    #[error("cannot reach registry {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("registry {server} answered HTTP {status}: {message}")]
    Protocol {
        server: String,
        status: u16,
        message: String,
    },
}

/// What identifies a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `sha256:<hex>` of the manifest's exact bytes.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A client for one registry host. Cheap to clone; clones share tokens.
#[derive(Clone)]
pub struct RegistryClient {
    /// The registry as users name it (normalized), for messages.
    server: String,
    /// `http(s)://<api host>/`.
    base: Url,
    http: reqwest::Client,
    credentials: Option<Arc<Credentials>>,
    auth: Arc<Mutex<AuthCache>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("server", &self.server)
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// What the registry has asked for so far.
#[derive(Default)]
struct AuthCache {
    /// The registry answered with a Basic challenge: send credentials up front.
    basic: bool,
    /// Bearer tokens by scope (`repository:<repo>:<actions>`).
    tokens: HashMap<String, String>,
}

#[derive(Clone, Copy)]
enum Access {
    Pull,
    PullPush,
}

impl Access {
    fn scope(self, repo: &str) -> String {
        match self {
            Access::Pull => format!("repository:{repo}:pull"),
            Access::PullPush => format!("repository:{repo}:pull,push"),
        }
    }
}

/// One request, kept so it can be sent again after authenticating.
struct Request<'a> {
    method: Method,
    url: Url,
    repo: &'a str,
    access: Access,
    manifest_accept: bool,
    body: Option<(&'a str, &'a [u8])>,
}

enum Authorization {
    Basic { username: String, password: String },
    Bearer(String),
}

impl RegistryClient {
    /// `host` like `127.0.0.1:5000`, `ghcr.io`, `docker.io` (→ `registry-1.docker.io` for
    /// API calls). Plain HTTP only for loopback hosts (localhost, 127.0.0.0/8, [::1]);
    /// HTTPS otherwise.
    pub fn new(
        host: &str,
        credentials: Option<Credentials>,
    ) -> Result<RegistryClient, RegistryError> {
        let server = crate::docker::auth::normalize_server(host);
        let invalid = |reason: &str| RegistryError::InvalidHost {
            // `user:password@host` must not be echoed back.
            host: match host.rsplit_once('@') {
                Some((_, rest)) => format!("<redacted>@{rest}"),
                None => host.to_string(),
            },
            reason: reason.to_string(),
        };
        if server.is_empty() {
            return Err(invalid("it is empty"));
        }
        if server.contains(|c: char| c.is_whitespace() || c.is_control() || "@?#\\".contains(c)) {
            return Err(invalid(
                "expected host[:port], e.g. ghcr.io or localhost:5000",
            ));
        }
        let api_host = if server == crate::docker::auth::DOCKER_HUB_HOST {
            DOCKER_HUB_API_HOST
        } else {
            server.as_str()
        };
        let loopback = is_loopback(&server);
        let scheme = if loopback { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| invalid(&e.to_string()))?;
        if base.host_str().is_none_or(str::is_empty) || base.path() != "/" {
            return Err(invalid(
                "expected host[:port], e.g. ghcr.io or localhost:5000",
            ));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("docker-buildkit/", env!("CARGO_PKG_VERSION")));
        if loopback {
            // Like Go's ProxyFromEnvironment (and so Docker): never proxy this machine.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| RegistryError::Client {
            reason: error_chain(&e.without_url()),
        })?;
        Ok(RegistryClient {
            server,
            base,
            http,
            credentials: credentials.map(Arc::new),
            auth: Arc::default(),
        })
    }

    /// The registry host this client talks to, normalized (`docker.io` for Docker Hub).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// HEAD /v2/<repo>/manifests/<reference> (reference = tag or digest). `Ok(None)` on 404.
    /// Uses the Docker-Content-Digest header; if absent, falls back to GET and the sha256 of
    /// the body.
    pub async fn manifest_info(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        let repo = self.repository(repo)?;
        let url = self.manifest_url(&repo, reference)?;
        let resp = self
            .send(&Request {
                method: Method::HEAD,
                url,
                repo: &repo,
                access: Access::Pull,
                manifest_accept: true,
                body: None,
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized());
        }
        if !status.is_success() {
            // A HEAD answer has no body to explain itself: GET for the registry's message.
            return Ok(self
                .get_manifest(&repo, reference)
                .await?
                .map(|(_, info)| info));
        }
        let headers = resp.headers();
        let digest = header_str(headers, DOCKER_CONTENT_DIGEST).filter(|d| d.contains(':'));
        let media_type = header_str(headers, CONTENT_TYPE.as_str()).map(strip_params);
        let size = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) if !media_type.is_empty() => {
                Ok(Some(ManifestInfo {
                    digest: digest.to_string(),
                    media_type: media_type.to_string(),
                    size,
                }))
            }
            _ => Ok(self
                .get_manifest(&repo, reference)
                .await?
                .map(|(_, info)| info)),
        }
    }

    /// GET a manifest: bytes, media type and digest (sha256 of the exact bytes).
    /// `Ok(None)` on 404.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, ManifestInfo)>, RegistryError> {
        let repo = self.repository(repo)?;
        let url = self.manifest_url(&repo, reference)?;
        let resp = self
            .send(&Request {
                method: Method::GET,
                url,
                repo: &repo,
                access: Access::Pull,
                manifest_accept: true,
                body: None,
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
            .map(strip_params)
            .unwrap_or_default()
            .to_string();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?
            .to_vec();
        let digest = sha256_digest(&body);
        if reference.starts_with("sha256:") && !reference.eq_ignore_ascii_case(&digest) {
            return Err(self.protocol(
                status,
                format!("manifest {reference} of {repo} has the content of {digest}"),
            ));
        }
        let media_type = if is_manifest_media_type(&content_type) {
            content_type
        } else {
            // Some registries (and schema 1) answer with a generic content type.
            #[derive(Deserialize)]
            struct MediaTypeField {
                #[serde(rename = "mediaType")]
                media_type: Option<String>,
            }
            serde_json::from_slice::<MediaTypeField>(&body)
                .ok()
                .and_then(|m| m.media_type)
                .unwrap_or(content_type)
        };
        let info = ManifestInfo {
            digest,
            media_type,
            size: body.len() as u64,
        };
        Ok(Some((body, info)))
    }

    /// PUT a manifest (e.g. an image index); returns the digest the registry reports (or,
    /// if it reports none, the sha256 of `body`).
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, RegistryError> {
        let repo = self.repository(repo)?;
        let url = self.manifest_url(&repo, reference)?;
        if media_type.is_empty() || media_type.contains(|c: char| c.is_control()) {
            return Err(RegistryError::InvalidArgument(format!(
                "{media_type:?} is not a valid manifest media type"
            )));
        }
        let resp = self
            .send(&Request {
                method: Method::PUT,
                url,
                repo: &repo,
                access: Access::PullPush,
                manifest_accept: false,
                body: Some((media_type, body)),
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_error(resp).await);
        }
        Ok(header_str(resp.headers(), DOCKER_CONTENT_DIGEST)
            .filter(|d| d.contains(':'))
            .map(str::to_string)
            .unwrap_or_else(|| sha256_digest(body)))
    }

    /// GET a blob (e.g. an image config) by digest, following redirects. A sha256 digest is
    /// checked against the content.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let repo = self.repository(repo)?;
        if !is_digest(digest) {
            return Err(RegistryError::InvalidArgument(format!(
                "{digest:?} is not a valid digest (expected algorithm:hex, e.g. sha256:…)"
            )));
        }
        let url = self.api_url(&format!("{repo}/blobs/{digest}"))?;
        let resp = self
            .send(&Request {
                method: Method::GET,
                url,
                repo: &repo,
                access: Access::Pull,
                manifest_accept: false,
                body: None,
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(resp).await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?
            .to_vec();
        if digest.starts_with("sha256:") {
            let actual = sha256_digest(&body);
            if !digest.eq_ignore_ascii_case(&actual) {
                return Err(self.protocol(
                    status,
                    format!("blob {digest} of {repo} has the content of {actual}"),
                ));
            }
        }
        Ok(body)
    }

    // ----- requests and authentication -----

    /// Sends `req`, answering one authentication challenge if the registry asks.
    async fn send(&self, req: &Request<'_>) -> Result<reqwest::Response, RegistryError> {
        let scope = req.access.scope(req.repo);
        let cached = self.cached_authorization(&scope);
        let had_cached = cached.is_some();
        let resp = self.execute(req, cached.as_ref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if had_cached {
            self.lock_auth().tokens.remove(&scope);
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let authorization = self.authorize(&challenges, &scope).await?;
        let resp = self.execute(req, Some(&authorization)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.lock_auth().tokens.remove(&scope);
            return Err(self.unauthorized());
        }
        Ok(resp)
    }

    async fn execute(
        &self,
        req: &Request<'_>,
        authorization: Option<&Authorization>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut builder = self.http.request(req.method.clone(), req.url.clone());
        if req.manifest_accept {
            builder = builder.header(ACCEPT, MANIFEST_ACCEPT);
        }
        if let Some((content_type, body)) = req.body {
            builder = builder
                .header(CONTENT_TYPE, content_type)
                .body(body.to_vec());
        }
        builder = match authorization {
            Some(Authorization::Basic { username, password }) => {
                builder.basic_auth(username, Some(password))
            }
            Some(Authorization::Bearer(token)) => builder.bearer_auth(token),
            None => builder,
        };
        builder.send().await.map_err(|e| self.transport_error(e))
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        self.auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached_authorization(&self, scope: &str) -> Option<Authorization> {
        let cache = self.lock_auth();
        if let Some(token) = cache.tokens.get(scope) {
            return Some(Authorization::Bearer(token.clone()));
        }
        if cache.basic {
            return self.basic_authorization();
        }
        None
    }

    fn basic_authorization(&self) -> Option<Authorization> {
        self.credentials
            .as_ref()
            .filter(|c| !c.username.is_empty() || !c.password.is_empty())
            .map(|c| Authorization::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            })
    }

    fn unauthorized(&self) -> RegistryError {
        RegistryError::Unauthorized {
            server: self.server.clone(),
            with_credentials: self.credentials.is_some(),
        }
    }

    /// Answers the registry's challenges: a Bearer token if it offers that, else Basic.
    async fn authorize(
        &self,
        challenges: &[Challenge],
        scope: &str,
    ) -> Result<Authorization, RegistryError> {
        if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some())
        {
            let token = self.fetch_token(bearer, scope).await?;
            self.lock_auth()
                .tokens
                .insert(scope.to_string(), token.clone());
            return Ok(Authorization::Bearer(token));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let basic = self
                .basic_authorization()
                .ok_or_else(|| self.unauthorized())?;
            self.lock_auth().basic = true;
            return Ok(basic);
        }
        match challenges.first() {
            Some(other) => Err(self.protocol(
                StatusCode::UNAUTHORIZED,
                format!(
                    "it asks for the unsupported authentication scheme {:?}",
                    other.scheme
                ),
            )),
            None => Err(self.unauthorized()),
        }
    }

    /// Gets a token for `scope` from the challenge's realm (the registry's token server).
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let realm_url = Url::parse(realm).ok().filter(|u| {
            u.scheme() == "https"
                || (u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host))
        });
        let Some(realm_url) = realm_url else {
            return Err(self.protocol(
                StatusCode::UNAUTHORIZED,
                format!("its token server {realm:?} is not an HTTPS URL; refusing to use it"),
            ));
        };
        let token_server = match (realm_url.host_str(), realm_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => realm.to_string(),
        };
        let mut scopes = vec![scope.to_string()];
        if let Some(asked) = challenge.param("scope") {
            scopes.extend(
                asked
                    .split(' ')
                    .filter(|s| !s.is_empty() && *s != scope)
                    .map(str::to_string),
            );
        }
        let service = challenge.param("service");

        let identity_token = self
            .credentials
            .as_ref()
            .and_then(|c| c.identity_token.as_deref());
        let builder = if let Some(refresh_token) = identity_token {
            let joined = scopes.join(" ");
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "docker-buildkit"),
                ("scope", joined.as_str()),
            ];
            if let Some(service) = service {
                form.push(("service", service));
            }
            self.http.post(realm_url).form(&form)
        } else {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(service) = service {
                query.push(("service", service));
            }
            query.extend(scopes.iter().map(|s| ("scope", s.as_str())));
            let builder = self.http.get(realm_url).query(&query);
            match self.basic_authorization() {
                Some(Authorization::Basic { username, password }) => {
                    builder.basic_auth(username, Some(password))
                }
                _ => builder,
            }
        };
        let resp = builder.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized());
        }
        if !status.is_success() {
            let detail = self.error_detail(resp).await;
            return Err(RegistryError::Protocol {
                server: self.server.clone(),
                status: status.as_u16(),
                message: format!("its token server {token_server} refused a token: {detail}"),
            });
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        let parsed: Option<TokenResponse> = serde_json::from_slice(&body).ok();
        parsed
            .and_then(|t| {
                t.token
                    .filter(|t| !t.is_empty())
                    .or(t.access_token.filter(|t| !t.is_empty()))
            })
            .ok_or_else(|| {
                self.protocol(
                    status,
                    format!("its token server {token_server} answered without a token"),
                )
            })
    }

    // ----- URLs, errors -----

    /// The repository path as the API wants it (`library/` added for Docker Hub).
    fn repository(&self, repo: &str) -> Result<String, RegistryError> {
        let valid = !repo.is_empty()
            && repo.len() <= 255
            && repo.split('/').all(|component| {
                !component.is_empty()
                    && component
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                    && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            });
        if !valid {
            return Err(RegistryError::InvalidArgument(format!(
                "{repo:?} is not a valid repository name (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            )));
        }
        if self.server == crate::docker::auth::DOCKER_HUB_HOST && !repo.contains('/') {
            return Ok(format!("library/{repo}"));
        }
        Ok(repo.to_string())
    }

    fn manifest_url(&self, repo: &str, reference: &str) -> Result<Url, RegistryError> {
        let valid_tag = !reference.is_empty()
            && reference.len() <= 128
            && reference
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && reference.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if !valid_tag && !is_digest(reference) {
            return Err(RegistryError::InvalidArgument(format!(
                "{reference:?} is neither a valid tag nor a digest"
            )));
        }
        self.api_url(&format!("{repo}/manifests/{reference}"))
    }

    fn api_url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(&format!("v2/{path}")).map_err(|e| {
            RegistryError::InvalidArgument(format!("cannot build a URL for {path:?}: {e}"))
        })
    }

    fn protocol(&self, status: StatusCode, message: String) -> RegistryError {
        RegistryError::Protocol {
            server: self.server.clone(),
            status: status.as_u16(),
            message: self.scrub(message),
        }
    }

    fn transport_error(&self, err: reqwest::Error) -> RegistryError {
        let timed_out = err.is_timeout();
        let mut reason = error_chain(&err.without_url());
        if timed_out {
            reason = format!("timed out ({reason})");
        }
        RegistryError::Unreachable {
            server: self.server.clone(),
            reason: self.scrub(reason),
        }
    }

    /// The error for an unexpected status.
    async fn status_error(&self, resp: reqwest::Response) -> RegistryError {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return self.unauthorized();
        }
        let detail = self.error_detail(resp).await;
        self.protocol(status, detail)
    }

    /// The registry's own explanation: its JSON `errors`, else a short text body, else the
    /// status's reason phrase.
    async fn error_detail(&self, resp: reqwest::Response) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(Deserialize)]
        struct ErrorEntry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let fallback = || {
            status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string()
        };
        if let Ok(parsed) = serde_json::from_slice::<Errors>(&body) {
            let joined = parsed
                .errors
                .iter()
                .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                    (false, false) => format!("{}: {}", e.code, e.message),
                    (false, true) => e.code.clone(),
                    _ => e.message.clone(),
                })
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            return self.scrub(if joined.is_empty() {
                fallback()
            } else {
                joined
            });
        }
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if text.is_empty() || text.len() > 300 || text.starts_with('<') {
            return fallback();
        }
        self.scrub(text.to_string())
    }

    /// Removes any secret this client knows from text that came from elsewhere.
    fn scrub(&self, mut text: String) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(c) = &self.credentials {
            secrets.push(c.password.clone());
            secrets.extend(c.identity_token.clone());
        }
        secrets.extend(self.lock_auth().tokens.values().cloned());
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn strip_params(content_type: &str) -> &str {
    content_type
        .split(';')
        .next()
        .unwrap_or(content_type)
        .trim()
}

fn is_manifest_media_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.") && media_type.ends_with("+json")
        || media_type.starts_with("application/vnd.docker.distribution.manifest.v1")
}

fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((algorithm, hex)) => {
            !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// An error and its sources, `: `-joined, without repeats.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether `server` (`host[:port]`, IPv6 in brackets) is on this machine.
fn is_loopback(server: &str) -> bool {
    let host = if let Some(rest) = server.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if server.matches(':').count() == 1 {
        server.split(':').next().unwrap_or(server)
    } else {
        server
    };
    is_loopback_host(host)
}

/// Whether a bare host name or address (IPv6 with or without brackets) is on this machine.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One `WWW-Authenticate` challenge: a lowercased scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// A parameter by case-insensitive name.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a scheme
/// followed by comma-separated `name=value` or `name="quoted, \"value\""` parameters.
/// Anything unparsable is skipped rather than failing.
fn parse_challenges(header: &str) -> Vec<Challenge> {
    let chars: Vec<char> = header.chars().collect();
    let mut pos = 0;
    let mut challenges: Vec<Challenge> = Vec::new();
    let is_token_char = |c: char| !c.is_whitespace() && !matches!(c, ',' | '=' | '"');
    let skip_ws = |pos: &mut usize| {
        while *pos < chars.len() && chars[*pos].is_whitespace() {
            *pos += 1;
        }
    };
    loop {
        while pos < chars.len() && (chars[pos].is_whitespace() || chars[pos] == ',') {
            pos += 1;
        }
        if pos >= chars.len() {
            break;
        }
        let start = pos;
        while pos < chars.len() && is_token_char(chars[pos]) {
            pos += 1;
        }
        let token: String = chars[start..pos].iter().collect();
        if token.is_empty() {
            // A stray `=` or `"`: skip it.
            pos += 1;
            continue;
        }
        let mut after = pos;
        skip_ws(&mut after);
        if after < chars.len() && chars[after] == '=' {
            // `name=value`: a parameter of the current challenge.
            pos = after + 1;
            skip_ws(&mut pos);
            let value = if pos < chars.len() && chars[pos] == '"' {
                pos += 1;
                let mut value = String::new();
                while pos < chars.len() && chars[pos] != '"' {
                    if chars[pos] == '\\' && pos + 1 < chars.len() {
                        pos += 1;
                    }
                    value.push(chars[pos]);
                    pos += 1;
                }
                pos += 1; // closing quote
                value
            } else {
                let start = pos;
                while pos < chars.len() && chars[pos] != ',' && !chars[pos].is_whitespace() {
                    pos += 1;
                }
                chars[start..pos].iter().collect()
            };
            if let Some(current) = challenges.last_mut() {
                current.params.push((token.to_ascii_lowercase(), value));
            }
        } else {
            challenges.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    challenges
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

    const USER: &str = "user";
    const PASSWORD: &str = "pa55-Word-xyz";
    const WRONG_PASSWORD: &str = "wr0ng-Secret-abc";

    fn creds(server: &str, password: &str) -> Credentials {
        Credentials {
            server: server.into(),
            username: USER.into(),
            password: password.into(),
            identity_token: None,
        }
    }

    fn assert_no_secret(err: &RegistryError, secret: &str) {
        let text = format!("{err} {err:?} {err:#?}");
        assert!(!text.contains(secret), "secret leaked: {text}");
    }

    // ----- challenge parser -----

    fn challenge(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn parses_bearer_challenge() {
        let got = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            got,
            vec![challenge(
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/alpine:pull"),
                ]
            )]
        );
    }

    #[test]
    fn parses_commas_spaces_and_escapes_inside_quotes() {
        let got = parse_challenges(
            r#"BEARER  realm = "https://x/token?a=1,b=2" , scope="repository:a:pull,push repository:b:pull", error="say \"hi\"""#,
        );
        assert_eq!(
            got,
            vec![challenge(
                "bearer",
                &[
                    ("realm", "https://x/token?a=1,b=2"),
                    ("scope", "repository:a:pull,push repository:b:pull"),
                    ("error", r#"say "hi""#),
                ]
            )]
        );
        assert_eq!(got[0].param("REALM"), Some("https://x/token?a=1,b=2"));
    }

    #[test]
    fn parses_several_challenges_and_bare_values() {
        let got = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm=https://t/token,service=svc, Negotiate"#,
        );
        assert_eq!(
            got,
            vec![
                challenge("basic", &[("realm", "Registry Realm")]),
                challenge(
                    "bearer",
                    &[("realm", "https://t/token"), ("service", "svc")]
                ),
                challenge("negotiate", &[]),
            ]
        );
    }

    #[test]
    fn parser_survives_garbage() {
        for input in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer ,=,\"x",
        ] {
            let _ = parse_challenges(input);
        }
        assert_eq!(
            parse_challenges("Bearer realm=\"unterminated"),
            vec![challenge("bearer", &[("realm", "unterminated")])]
        );
        assert_eq!(parse_challenges("basic"), vec![challenge("basic", &[])]);
    }

    // ----- scheme and host selection -----

    #[test]
    fn plain_http_only_for_loopback() {
        for (host, want) in [
            ("localhost:5000", "http://localhost:5000/"),
            ("LOCALHOST", "http://localhost/"),
            ("127.0.0.1:5000", "http://127.0.0.1:5000/"),
            ("127.1.2.3", "http://127.1.2.3/"),
            ("[::1]:5000", "http://[::1]:5000/"),
            ("ghcr.io", "https://ghcr.io/"),
            (
                "registry.example.com:5000",
                "https://registry.example.com:5000/",
            ),
            ("10.0.0.1:5000", "https://10.0.0.1:5000/"),
            ("localhost.example.com", "https://localhost.example.com/"),
            ("docker.io", "https://registry-1.docker.io/"),
            ("index.docker.io", "https://registry-1.docker.io/"),
            (
                "https://index.docker.io/v1/",
                "https://registry-1.docker.io/",
            ),
        ] {
            let client = RegistryClient::new(host, None).expect(host);
            assert_eq!(client.base.as_str(), want, "{host}");
        }
        assert_eq!(
            RegistryClient::new("index.docker.io", None)
                .expect("hub")
                .server(),
            "docker.io"
        );
    }

    #[test]
    fn rejects_bad_hosts_and_arguments() {
        let err =
            RegistryClient::new(&format!("me:{PASSWORD}@ghcr.io"), None).expect_err("userinfo");
        assert_no_secret(&err, PASSWORD);
        for host in ["", "user:pw@ghcr.io", "ghcr io", "a?b"] {
            assert!(
                matches!(
                    RegistryClient::new(host, None),
                    Err(RegistryError::InvalidHost { .. })
                ),
                "{host}"
            );
        }
        let client = RegistryClient::new("ghcr.io", None).expect("client");
        assert!(client.repository("Team/App").is_err());
        assert!(client.repository("team//app").is_err());
        assert!(client.repository("../x").is_err());
        assert!(client.manifest_url("team/app", "../x").is_err());
        assert!(client.manifest_url("team/app", "v1?x=1").is_err());
        assert!(client.manifest_url("team/app", "v1.2-rc_3").is_ok());
        assert!(
            client
                .manifest_url("team/app", &sha256_digest(b"x"))
                .is_ok()
        );
        let hub = RegistryClient::new("docker.io", None).expect("hub");
        assert_eq!(hub.repository("alpine").expect("repo"), "library/alpine");
        assert_eq!(hub.repository("me/app").expect("repo"), "me/app");
    }

    #[test]
    fn debug_and_errors_hide_the_password() {
        let client =
            RegistryClient::new("ghcr.io", Some(creds("ghcr.io", PASSWORD))).expect("client");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains(PASSWORD), "{dbg}");
        let scrubbed = client.scrub(format!("server said {PASSWORD}!"));
        assert!(!scrubbed.contains(PASSWORD), "{scrubbed}");
    }

    #[test]
    fn unauthorized_messages() {
        let with = RegistryError::Unauthorized {
            server: "ghcr.io".into(),
            with_credentials: true,
        };
        assert_eq!(
            with.to_string(),
            "authentication failed for ghcr.io: check the registry username and password"
        );
        let without = RegistryError::Unauthorized {
            server: "ghcr.io".into(),
            with_credentials: false,
        };
        assert_eq!(
            without.to_string(),
            "authentication failed for ghcr.io: this registry needs credentials"
        );
    }

    // ----- a hand-rolled HTTP/1.1 server for the token flow -----

    struct FakeRequest {
        method: String,
        target: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    impl FakeRequest {
        fn path(&self) -> &str {
            self.target.split('?').next().unwrap_or(&self.target)
        }
        fn query(&self) -> Vec<(String, String)> {
            let url = Url::parse(&format!("http://x{}", self.target)).expect("target");
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(String::as_str)
        }
    }

    struct FakeResponse {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    fn respond(status: u16, headers: &[(&str, &str)], body: &[u8]) -> FakeResponse {
        FakeResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    /// Serves `handler` on a fresh loopback port until the test ends; returns the port.
    async fn fake_server<F>(handler: F) -> u16
    where
        F: Fn(u16, &FakeRequest) -> FakeResponse + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.is_err() {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let target = parts.next().unwrap_or_default().to_string();
                    let mut headers = HashMap::new();
                    loop {
                        let mut line = String::new();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let length: usize = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let req = FakeRequest {
                        method,
                        target,
                        headers,
                        body,
                    };
                    let resp = handler(port, &req);
                    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
                    let explicit_length = resp
                        .headers
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
                    for (k, v) in &resp.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    if !explicit_length {
                        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
                    }
                    out.push_str("\r\n");
                    let mut bytes = out.into_bytes();
                    if req.method != "HEAD" {
                        bytes.extend_from_slice(&resp.body);
                    }
                    let mut stream = stream.into_inner();
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        port
    }

    const FAKE_MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    const FAKE_SERVICE: &str = "fake, registry";
    const FAKE_SCOPE: &str = "repository:team/app:pull";
    const JSON: (&str, &str) = ("Content-Type", "application/json");

    #[derive(Default)]
    struct Counters {
        token_requests: AtomicUsize,
        manifest_gets: AtomicUsize,
    }

    /// A registry whose manifests need `Bearer abc`, from a token server that wants
    /// `user:PASSWORD` (GET) or the refresh token PASSWORD (POST).
    async fn bearer_registry() -> (u16, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let seen = Arc::clone(&counters);
        let port = fake_server(move |port, req| bearer_handler(port, req, &seen)).await;
        (port, counters)
    }

    fn bearer_handler(port: u16, req: &FakeRequest, counters: &Counters) -> FakeResponse {
        match req.path() {
            "/token" => {
                counters.token_requests.fetch_add(1, Ordering::SeqCst);
                token_handler(req)
            }
            "/v2/team/app/manifests/v1" if req.header("authorization") == Some("Bearer abc") => {
                if req.method == "GET" {
                    counters.manifest_gets.fetch_add(1, Ordering::SeqCst);
                }
                let digest = sha256_digest(FAKE_MANIFEST);
                let length = FAKE_MANIFEST.len().to_string();
                let headers = [
                    ("Docker-Content-Digest", digest.as_str()),
                    ("Content-Type", MEDIA_TYPE_OCI_INDEX),
                    ("Content-Length", length.as_str()),
                ];
                respond(200, &headers, FAKE_MANIFEST)
            }
            "/v2/team/app/manifests/v1" => {
                let challenge = format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="{FAKE_SERVICE}",scope="{FAKE_SCOPE}""#
                );
                let body =
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                respond(401, &[("WWW-Authenticate", challenge.as_str()), JSON], body)
            }
            _ => respond(404, &[], b""),
        }
    }

    fn token_handler(req: &FakeRequest) -> FakeResponse {
        let expected_basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let basic_ok = req.header("authorization") == Some(expected_basic.as_str());
        let params = if req.method == "POST" {
            let form = String::from_utf8_lossy(&req.body).into_owned();
            let url = Url::parse(&format!("http://x/?{form}")).expect("form");
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        } else {
            req.query()
        };
        let has = |key: &str, value: &str| params.iter().any(|(k, v)| k == key && v == value);
        let form_ok = req.method == "POST"
            && has("grant_type", "refresh_token")
            && has("refresh_token", PASSWORD);
        let scope_ok = params
            .iter()
            .any(|(k, v)| k == "scope" && v.split(' ').any(|s| s == FAKE_SCOPE));
        if !scope_ok || !has("service", FAKE_SERVICE) {
            return respond(400, &[], b"bad scope or service");
        }
        if basic_ok {
            respond(200, &[JSON], br#"{"token":"abc","expires_in":300}"#)
        } else if form_ok {
            respond(200, &[JSON], br#"{"access_token":"abc"}"#)
        } else {
            respond(
                401,
                &[JSON],
                br#"{"details":"incorrect username or password"}"#,
            )
        }
    }

    #[tokio::test]
    async fn bearer_flow_fetches_caches_and_retries() {
        let (port, counters) = bearer_registry().await;
        let server = format!("127.0.0.1:{port}");
        let client = RegistryClient::new(&server, Some(creds(&server, PASSWORD))).expect("client");
        let want = ManifestInfo {
            digest: sha256_digest(FAKE_MANIFEST),
            media_type: MEDIA_TYPE_OCI_INDEX.into(),
            size: FAKE_MANIFEST.len() as u64,
        };
        assert_eq!(
            client.manifest_info("team/app", "v1").await.expect("info"),
            Some(want.clone())
        );
        // A clone shares the token: no second token request.
        let (body, info) = client
            .clone()
            .get_manifest("team/app", "v1")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(body, FAKE_MANIFEST);
        assert_eq!(info, want);
        assert_eq!(counters.token_requests.load(Ordering::SeqCst), 1);
        // manifest_info used the HEAD answer; only get_manifest did a GET.
        assert_eq!(counters.manifest_gets.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bearer_flow_with_identity_token() {
        let (port, counters) = bearer_registry().await;
        let server = format!("127.0.0.1:{port}");
        let credentials = Credentials {
            server: server.clone(),
            username: String::new(),
            password: String::new(),
            identity_token: Some(PASSWORD.into()),
        };
        let client = RegistryClient::new(&server, Some(credentials)).expect("client");
        let info = client
            .manifest_info("team/app", "v1")
            .await
            .expect("info")
            .expect("found");
        assert_eq!(info.digest, sha256_digest(FAKE_MANIFEST));
        assert_eq!(counters.token_requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn bearer_flow_wrong_password_and_anonymous() {
        let (port, _) = bearer_registry().await;
        let server = format!("127.0.0.1:{port}");

        let client =
            RegistryClient::new(&server, Some(creds(&server, WRONG_PASSWORD))).expect("client");
        let err = client
            .manifest_info("team/app", "v1")
            .await
            .expect_err("wrong password");
        assert!(
            matches!(
                err,
                RegistryError::Unauthorized {
                    with_credentials: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&server), "{err}");
        assert!(err.to_string().contains("username and password"), "{err}");
        assert_no_secret(&err, WRONG_PASSWORD);

        let anonymous = RegistryClient::new(&server, None).expect("client");
        let err = anonymous
            .manifest_info("team/app", "v1")
            .await
            .expect_err("anonymous");
        assert!(err.to_string().contains("needs credentials"), "{err}");
    }

    #[tokio::test]
    async fn missing_digest_header_falls_back_to_get_and_redirects_are_followed() {
        let blob = b"config blob".to_vec();
        let blob_digest = sha256_digest(&blob);
        let blob_path = format!("/v2/team/app/blobs/{blob_digest}");
        let bad_digest = sha256_digest(b"something else");
        let bad_path = format!("/v2/team/app/blobs/{bad_digest}");
        let port = fake_server(move |_, req| match req.path() {
            "/v2/team/app/manifests/v1" => {
                // A Docker media type with parameters, and no Docker-Content-Digest.
                respond(
                    200,
                    &[(
                        "Content-Type",
                        "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8",
                    )],
                    FAKE_MANIFEST,
                )
            }
            "/v2/team/app/manifests/broken" => respond(
                500,
                &[("Content-Type", "application/json")],
                br#"{"errors":[{"code":"UNKNOWN","message":"storage backend is on fire"}]}"#,
            ),
            "/storage/blob" => respond(200, &[], &blob),
            path if path == blob_path || path == bad_path => {
                respond(307, &[("Location", "/storage/blob")], b"")
            }
            _ => respond(404, &[], b""),
        })
        .await;
        let client = RegistryClient::new(&format!("localhost:{port}"), None).expect("client");

        let info = client
            .manifest_info("team/app", "v1")
            .await
            .expect("info")
            .expect("found");
        assert_eq!(info.digest, sha256_digest(FAKE_MANIFEST));
        assert_eq!(info.media_type, MEDIA_TYPE_DOCKER_MANIFEST);
        assert_eq!(info.size, FAKE_MANIFEST.len() as u64);

        assert_eq!(
            client.manifest_info("team/app", "nope").await.expect("404"),
            None
        );

        let err = client
            .manifest_info("team/app", "broken")
            .await
            .expect_err("500");
        let msg = err.to_string();
        assert!(
            matches!(err, RegistryError::Protocol { status: 500, .. }),
            "{err:?}"
        );
        assert!(
            msg.contains("storage backend is on fire") && msg.contains("localhost:"),
            "{msg}"
        );

        assert_eq!(
            client
                .get_blob("team/app", &blob_digest)
                .await
                .expect("blob"),
            b"config blob"
        );
        let err = client
            .get_blob("team/app", &bad_digest)
            .await
            .expect_err("mismatch");
        assert!(err.to_string().contains(&bad_digest), "{err}");
    }

    #[tokio::test]
    async fn unreachable_port_is_unreachable() {
        let port = free_port();
        let server = format!("127.0.0.1:{port}");
        let client = RegistryClient::new(&server, Some(creds(&server, PASSWORD))).expect("client");
        let err = client
            .manifest_info("team/app", "v1")
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&server), "{msg}");
        assert!(!msg.contains("http://"), "{msg}");
        assert_no_secret(&err, PASSWORD);
    }

    // ----- a real registry (Debian's docker-registry, distribution 2.8) -----

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    }

    /// A `docker-registry` with htpasswd auth (`user` / PASSWORD), killed on drop.
    struct TestRegistry {
        child: Child,
        server: String,
        dir: tempfile::TempDir,
    }

    impl Drop for TestRegistry {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl TestRegistry {
        async fn start() -> TestRegistry {
            let dir = tempfile::tempdir().expect("temp dir");
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run htpasswd ({e}); install it: apt-get install -y apache2-utils"
                    )
                });
            assert!(htpasswd.status.success(), "htpasswd failed");
            let htpasswd_path = dir.path().join("htpasswd");
            std::fs::write(&htpasswd_path, &htpasswd.stdout).expect("write htpasswd");
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n\
                 auth:\n  htpasswd:\n    realm: dbk-test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd_path.display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).expect("write config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run docker-registry ({e}); install it: apt-get install -y docker-registry apache2-utils"
                    )
                });
            let mut registry = TestRegistry {
                child,
                server: format!("127.0.0.1:{port}"),
                dir,
            };
            registry.wait_ready().await;
            registry
        }

        async fn wait_ready(&mut self) {
            let url = format!("http://{}/v2/", self.server);
            for _ in 0..200 {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("docker-registry exited with {status}: {}", self.log());
                }
                if let Ok(resp) = reqwest::get(&url).await
                    && resp.status() == StatusCode::UNAUTHORIZED
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("docker-registry did not answer on {url}: {}", self.log());
        }

        fn log(&self) -> String {
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
        }
    }

    impl RegistryClient {
        /// Test-only monolithic-ish blob upload: POST an upload session, PUT the content.
        async fn upload_blob(&self, repo: &str, data: &[u8]) -> Result<String, RegistryError> {
            let digest = sha256_digest(data);
            let url = self.api_url(&format!("{repo}/blobs/uploads/"))?;
            let resp = self
                .send(&Request {
                    method: Method::POST,
                    url,
                    repo,
                    access: Access::PullPush,
                    manifest_accept: false,
                    body: Some(("application/octet-stream", &[])),
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(self.status_error(resp).await);
            }
            let location = header_str(resp.headers(), "location").ok_or_else(|| {
                self.protocol(StatusCode::ACCEPTED, "upload without a Location".into())
            })?;
            let mut url = self
                .base
                .join(location)
                .map_err(|e| self.protocol(StatusCode::ACCEPTED, e.to_string()))?;
            url.query_pairs_mut().append_pair("digest", &digest);
            let resp = self
                .send(&Request {
                    method: Method::PUT,
                    url,
                    repo,
                    access: Access::PullPush,
                    manifest_accept: false,
                    body: Some(("application/octet-stream", data)),
                })
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.status_error(resp).await);
            }
            Ok(digest)
        }
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A gzip (one stored deflate block) of `data` (< 64 KiB).
    fn gzip_stored(data: &[u8]) -> Vec<u8> {
        let len = u16::try_from(data.len()).expect("small");
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    /// Pushes a config blob, an empty layer and a schema 2 manifest; returns the
    /// manifest's bytes and the config's bytes.
    async fn push_test_image(client: &RegistryClient, repo: &str, tag: &str) -> (Vec<u8>, Vec<u8>) {
        let tar = vec![0u8; 1024]; // an empty tar archive
        let layer = gzip_stored(&tar);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
        }))
        .expect("config json");
        let config_digest = client
            .upload_blob(repo, &config)
            .await
            .expect("upload config");
        let layer_digest = client
            .upload_blob(repo, &layer)
            .await
            .expect("upload layer");
        // Pretty-printed: the digest must be of these exact bytes, whitespace included.
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": layer.len(),
                "digest": layer_digest,
            }],
        }))
        .expect("manifest json");
        let digest = client
            .put_manifest(repo, tag, MEDIA_TYPE_DOCKER_MANIFEST, &manifest)
            .await
            .expect("put manifest");
        assert_eq!(digest, sha256_digest(&manifest));
        (manifest, config)
    }

    #[tokio::test]
    async fn real_registry_push_and_inspect() {
        let registry = TestRegistry::start().await;
        let server = registry.server.clone();
        let client = RegistryClient::new(&server, Some(creds(&server, PASSWORD))).expect("client");
        let (manifest, config) = push_test_image(&client, "team/app", "v1").await;
        let want = ManifestInfo {
            digest: sha256_digest(&manifest),
            media_type: MEDIA_TYPE_DOCKER_MANIFEST.into(),
            size: manifest.len() as u64,
        };

        // A fresh client, so the Basic challenge is answered again.
        let reader = RegistryClient::new(&server, Some(creds(&server, PASSWORD))).expect("client");
        assert_eq!(
            reader.manifest_info("team/app", "v1").await.expect("info"),
            Some(want.clone())
        );
        assert_eq!(
            reader
                .manifest_info("team/app", &want.digest)
                .await
                .expect("by digest"),
            Some(want.clone())
        );
        let (body, info) = reader
            .get_manifest("team/app", "v1")
            .await
            .expect("get")
            .expect("found");
        assert_eq!(body, manifest);
        assert_eq!(info, want);
        assert_eq!(
            reader
                .manifest_info("team/app", "missing")
                .await
                .expect("404"),
            None
        );
        assert_eq!(
            reader
                .get_manifest("team/app", "missing")
                .await
                .expect("404"),
            None
        );
        assert_eq!(
            reader.manifest_info("team/other", "v1").await.expect("404"),
            None
        );

        let config_digest = sha256_digest(&config);
        assert_eq!(
            reader
                .get_blob("team/app", &config_digest)
                .await
                .expect("config"),
            config
        );
        let err = reader
            .get_blob("team/app", &sha256_digest(b"not there"))
            .await
            .expect_err("missing blob");
        assert!(
            matches!(err, RegistryError::Protocol { status: 404, .. }),
            "{err:?}"
        );

        // An OCI index over the image, as a multi-platform push would write.
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_DOCKER_MANIFEST,
                "size": want.size,
                "digest": want.digest,
                "platform": {"architecture": "amd64", "os": "linux"},
            }],
        }))
        .expect("index json");
        let index_digest = client
            .put_manifest("team/app", "multi", MEDIA_TYPE_OCI_INDEX, &index)
            .await
            .expect("put index");
        assert_eq!(index_digest, sha256_digest(&index));
        let info = reader
            .manifest_info("team/app", "multi")
            .await
            .expect("info")
            .expect("found");
        assert_eq!(info.media_type, MEDIA_TYPE_OCI_INDEX);
        assert_eq!(info.digest, index_digest);
    }

    #[tokio::test]
    async fn real_registry_rejects_bad_credentials() {
        let registry = TestRegistry::start().await;
        let server = registry.server.clone();

        let wrong =
            RegistryClient::new(&server, Some(creds(&server, WRONG_PASSWORD))).expect("client");
        let err = wrong
            .manifest_info("team/app", "v1")
            .await
            .expect_err("wrong password");
        assert!(
            matches!(
                err,
                RegistryError::Unauthorized {
                    with_credentials: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(&server), "{err}");
        assert_no_secret(&err, WRONG_PASSWORD);
        let err = wrong
            .put_manifest("team/app", "v1", MEDIA_TYPE_DOCKER_MANIFEST, b"{}")
            .await
            .expect_err("wrong password");
        assert_no_secret(&err, WRONG_PASSWORD);

        let anonymous = RegistryClient::new(&server, None).expect("client");
        let err = anonymous
            .manifest_info("team/app", "v1")
            .await
            .expect_err("anonymous");
        assert!(
            matches!(
                err,
                RegistryError::Unauthorized {
                    with_credentials: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("needs credentials"), "{err}");
    }
}
