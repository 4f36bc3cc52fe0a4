//! [`RegistryClient`]: one registry host and the calls the provider makes to it (manifest
//! HEAD, GET and PUT, blob GET); which scheme a host gets (plain HTTP only on loopback);
//! building URLs from checked names; the size cap of each kind of answer; sending a
//! request again once its [`Authenticator`] has answered a 401.
//!
//! Not for: deciding what to send for authentication or answering challenges
//! (`auth.rs`), reading capped bodies or building errors (`http.rs`), or what a manifest or
//! name is (`manifest.rs`). The top of the client: imports those three, none imports it.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};

use super::RegistryError;
use super::auth::{Access, Authenticator, Authorization};
use super::http::{ErrorContext, error_chain, is_loopback, read_body, status_error};
use super::manifest::{
    DOCKER_CONTENT_DIGEST, MANIFEST_ACCEPT, ManifestInfo, is_digest, is_repository, is_tag,
    media_type_of, sha256_digest,
};
use crate::credentials::Credentials;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest manifest accepted (the distribution spec lets registries refuse over 4 MiB).
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The largest blob fetched whole (image configs; layers are never fetched here).
const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;
/// Docker Hub's API host; `docker.io` is only its name.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A client for one registry host. Cheap to clone; clones share tokens.
#[derive(Clone)]
pub struct RegistryClient {
    /// `http(s)://<api host>/`.
    base: Url,
    http: reqwest::Client,
    /// The registry's name, credentials and tokens; builds the errors.
    auth: Authenticator,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("server", &self.auth.server())
            .field("base", &self.base.as_str())
            .field("credentials", &self.auth.credentials())
            .finish_non_exhaustive()
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

impl RegistryClient {
    /// `host` like `127.0.0.1:5000`, `ghcr.io`, `docker.io` (→ `registry-1.docker.io` for
    /// API calls). Plain HTTP only for loopback hosts (localhost, 127.0.0.0/8, `[::1]`);
    /// HTTPS otherwise.
    pub fn new(
        host: &str,
        credentials: Option<Credentials>,
    ) -> Result<RegistryClient, RegistryError> {
        let server = crate::credentials::normalize_server(host);
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
        let api_host = if server == crate::credentials::DOCKER_HUB_HOST {
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
            base,
            http,
            auth: Authenticator::new(server, credentials),
        })
    }

    /// The registry host this client talks to, normalized (`docker.io` for Docker Hub).
    pub fn server(&self) -> &str {
        self.auth.server()
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` (reference = tag or digest). `Ok(None)` on 404.
    /// Uses the Docker-Content-Digest header; if absent, falls back to GET and the sha256 of
    /// the body.
    pub async fn manifest_info(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        let Some((repo, resp)) = self.request_manifest(Method::HEAD, repo, reference).await? else {
            return Ok(None);
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.auth.unauthorized());
        }
        // A HEAD answer has no body to explain a failure, and may lack a header: then GET,
        // for the registry's message or the digest of the body.
        let answered = if status.is_success() {
            info_from_headers(resp.headers())
        } else {
            None
        };
        match answered {
            Some(info) => Ok(Some(info)),
            None => Ok(self
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
        let Some((repo, resp)) = self.request_manifest(Method::GET, repo, reference).await? else {
            return Ok(None);
        };
        let status = resp.status();
        if !status.is_success() {
            return Err(status_error(&self.auth, resp).await);
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
            .map(strip_params)
            .unwrap_or_default()
            .to_string();
        let body = read_body(&self.auth, resp, MAX_MANIFEST_BYTES, "a manifest").await?;
        let digest = sha256_digest(&body);
        if reference.starts_with("sha256:") && !reference.eq_ignore_ascii_case(&digest) {
            return Err(self.auth.protocol(
                status,
                format!("manifest {reference} of {repo} has the content of {digest}"),
            ));
        }
        let info = ManifestInfo {
            digest,
            media_type: media_type_of(content_type, &body),
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
            return Err(status_error(&self.auth, resp).await);
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
            return Err(status_error(&self.auth, resp).await);
        }
        let body = read_body(&self.auth, resp, MAX_BLOB_BYTES, "a blob").await?;
        if digest.starts_with("sha256:") {
            let actual = sha256_digest(&body);
            if !digest.eq_ignore_ascii_case(&actual) {
                return Err(self.auth.protocol(
                    status,
                    format!("blob {digest} of {repo} has the content of {actual}"),
                ));
            }
        }
        Ok(body)
    }

    // ----- requests and answers -----

    /// Sends a HEAD or GET for a manifest; `Ok(None)` on 404, else the repository path the
    /// API was given and the answer.
    async fn request_manifest(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(String, reqwest::Response)>, RegistryError> {
        let repo = self.repository(repo)?;
        let url = self.manifest_url(&repo, reference)?;
        let resp = self
            .send(&Request {
                method,
                url,
                repo: &repo,
                access: Access::Pull,
                manifest_accept: true,
                body: None,
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some((repo, resp)))
    }

    /// Sends `req`, answering one authentication challenge if the registry asks.
    async fn send(&self, req: &Request<'_>) -> Result<reqwest::Response, RegistryError> {
        let scope = req.access.scope(req.repo);
        let cached = self.auth.cached_authorization(&scope);
        let resp = self.execute(req, cached.as_ref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if cached.is_some() {
            self.auth.forget(&scope);
        }
        let authorization = self.auth.answer(&self.http, resp.headers(), &scope).await?;
        let resp = self.execute(req, Some(&authorization)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.auth.forget(&scope);
            return Err(self.auth.unauthorized());
        }
        Ok(resp)
    }

    /// Sends `req` once, with `authorization` if any.
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
        if let Some(authorization) = authorization {
            builder = authorization.apply(builder);
        }
        builder
            .send()
            .await
            .map_err(|e| self.auth.transport_error(e))
    }

    // ----- URLs -----

    /// The repository path as the API wants it (`library/` added for Docker Hub).
    fn repository(&self, repo: &str) -> Result<String, RegistryError> {
        if !is_repository(repo) {
            return Err(RegistryError::InvalidArgument(format!(
                "{repo:?} is not a valid repository name (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            )));
        }
        if self.auth.server() == crate::credentials::DOCKER_HUB_HOST && !repo.contains('/') {
            return Ok(format!("library/{repo}"));
        }
        Ok(repo.to_string())
    }

    fn manifest_url(&self, repo: &str, reference: &str) -> Result<Url, RegistryError> {
        if !is_tag(reference) && !is_digest(reference) {
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
}

/// A manifest's digest, media type and size from the headers of a HEAD answer, if they
/// are all there.
fn info_from_headers(headers: &HeaderMap) -> Option<ManifestInfo> {
    let digest = header_str(headers, DOCKER_CONTENT_DIGEST).filter(|d| d.contains(':'))?;
    let media_type = header_str(headers, CONTENT_TYPE.as_str())
        .map(strip_params)
        .filter(|m| !m.is_empty())?;
    let size = header_str(headers, CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok())?;
    Some(ManifestInfo {
        digest: digest.to_string(),
        media_type: media_type.to_string(),
        size,
    })
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::registry::http::MAX_SMALL_BODY_BYTES;
    use crate::registry::testing::*;
    use crate::registry::{MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX};

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

    // ----- answers, against a fake server -----

    #[tokio::test]
    async fn oversized_answers_are_refused() {
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        let huge_error = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "e".repeat(MAX_SMALL_BODY_BYTES)
        );
        let port = fake_server(move |_, req| match req.path() {
            "/v2/team/app/manifests/big" => respond(200, &[JSON], &huge),
            _ => respond(500, &[JSON], huge_error.as_bytes()),
        })
        .await;
        let client = RegistryClient::new(&format!("localhost:{port}"), None).expect("client");
        let e = client
            .get_manifest("team/app", "big")
            .await
            .expect_err("a 4 MiB + 1 manifest is refused");
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = client
            .get_manifest("team/app", "broken")
            .await
            .expect_err("500");
        assert!(
            e.to_string().len() < 1000,
            "an oversized error body is not quoted: {} bytes",
            e.to_string().len()
        );
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

    // ----- secrets -----

    #[test]
    fn debug_and_errors_hide_the_password() {
        let client =
            RegistryClient::new("ghcr.io", Some(creds("ghcr.io", PASSWORD))).expect("client");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains(PASSWORD), "{dbg}");
        let scrubbed = client.auth.scrub(format!("server said {PASSWORD}!"));
        assert!(!scrubbed.contains(PASSWORD), "{scrubbed}");
    }

    // ----- the token flow, against a fake registry and token server -----

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
        assert_unauthorized(&err, true);
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
}
