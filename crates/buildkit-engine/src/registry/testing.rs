//! Test-only fixtures for the registry client's unit tests: a hand-rolled HTTP/1.1 server
//! on a loopback port that answers through a closure, a fake registry with its token
//! server behind it (Bearer `abc` for `user`/[`PASSWORD`] or the refresh token
//! [`PASSWORD`]), and test credentials.
//!
//! Not for: a real registry (the tests that need one, `tests/registry_client.rs` and
//! `tests/registry_token_auth.rs`, start `docker-registry` with `tests/common`'s launcher).
//! Compiled only with `cfg(test)`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use reqwest::Url;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

use super::manifest::sha256_digest;
use super::{MEDIA_TYPE_OCI_INDEX, RegistryError};
use crate::credentials::Credentials;

pub(super) const USER: &str = "user";
pub(super) const PASSWORD: &str = "pa55-Word-xyz";
pub(super) const WRONG_PASSWORD: &str = "wr0ng-Secret-abc";

pub(super) fn creds(server: &str, password: &str) -> Credentials {
    Credentials {
        server: server.into(),
        username: USER.into(),
        password: password.into(),
        identity_token: None,
    }
}

pub(super) fn assert_no_secret(err: &RegistryError, secret: &str) {
    let text = format!("{err} {err:?} {err:#?}");
    assert!(!text.contains(secret), "secret leaked: {text}");
}

/// Asserts that `err` is [`RegistryError::Unauthorized`] with (or without) credentials.
pub(super) fn assert_unauthorized(err: &RegistryError, with_credentials: bool) {
    let matched = matches!(
        err,
        RegistryError::Unauthorized { with_credentials: w, .. } if *w == with_credentials
    );
    assert!(matched, "{err:?}");
}

/// A loopback port nothing listens on (for now).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ----- a hand-rolled HTTP/1.1 server -----

pub(super) struct FakeRequest {
    pub(super) method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl FakeRequest {
    pub(super) fn path(&self) -> &str {
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

pub(super) struct FakeResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub(super) fn respond(status: u16, headers: &[(&str, &str)], body: &[u8]) -> FakeResponse {
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
pub(super) async fn fake_server<F>(handler: F) -> u16
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

// ----- a fake registry that wants Bearer tokens -----

pub(super) const FAKE_MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
const FAKE_SERVICE: &str = "fake, registry";
const FAKE_SCOPE: &str = "repository:team/app:pull";
pub(super) const JSON: (&str, &str) = ("Content-Type", "application/json");

#[derive(Default)]
pub(super) struct Counters {
    pub(super) token_requests: AtomicUsize,
    pub(super) manifest_gets: AtomicUsize,
}

/// A registry whose manifests need `Bearer abc`, from a token server that wants
/// `user:PASSWORD` (GET) or the refresh token PASSWORD (POST).
pub(super) async fn bearer_registry() -> (u16, Arc<Counters>) {
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
