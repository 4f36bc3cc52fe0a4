//! Bearer-token authentication against a real registry: a second `docker-registry serve`
//! (2.8) configured with `auth: token`, and a token server run by this test that checks
//! Basic credentials (GET) or OAuth2 password grants (POST) and answers with an RS256 JWT
//! signed by a key made here (`openssl`), its certificate in the token's `x5c` and in the
//! registry's `rootcertbundle`.
//!
//! The provider builds two platforms and pushes them there: the Docker daemon does the
//! bearer flow for the image pushes, the provider's own registry client for the context
//! lookup, the manifest lookups and the index PUT. A wrong password fails with the
//! provider's error, which never holds the password.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::services::Services;
use common::services::registry::{Auth, MANIFEST_ACCEPT, TestRegistry, http, sha256_digest};
use common::*;
use docker_buildkit::credentials::Credentials;
use docker_buildkit::registry::{MEDIA_TYPE_DOCKER_MANIFEST_LIST, RegistryClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SERVICE: &str = "dbk-test";
const ISSUER: &str = "dbk-test-issuer";
const USER: &str = "tokenuser";

/// Signs tokens: an RSA key and its self-signed certificate, made with openssl.
struct Signer {
    key: PathBuf,
    cert_der_b64: String,
}

impl Signer {
    fn new(dir: &Path) -> Signer {
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256"])
            .args(["-days", "2", "-subj", "/CN=dbk-test-token-signer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(der.status.success());
        Signer {
            key,
            cert_der_b64: STANDARD.encode(der.stdout),
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.key.with_file_name("cert.pem")
    }

    /// A registry token for `subject` granting `access` (`[{type, name, actions}]`).
    async fn token(&self, subject: &str, access: &Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // RS256 = RSASSA-PKCS1-v1_5 with SHA-256, which is what `openssl dgst -sign` makes.
        let mut child = tokio::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl dgst");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(signing_input.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(
            out.status.success(),
            "openssl dgst: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
    }
}

/// One token request as the token server saw it (never the password).
#[derive(Debug, Clone)]
struct TokenRequest {
    method: String,
    user: String,
    granted: bool,
    scopes: Vec<String>,
}

/// A minimal HTTP/1.1 token server on 127.0.0.1.
struct TokenServer {
    port: u16,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    async fn start(signer: Arc<Signer>, password: String) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let signer = signer.clone();
                let password = password.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &signer, &password, &seen).await;
                });
            }
        });
        TokenServer {
            port,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// `application/x-www-form-urlencoded` decoding (also for query strings).
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// Grants every action asked for on repositories (`repository:<name>:<actions>`).
fn access_for(scopes: &[String]) -> Value {
    let mut access = Vec::new();
    for scope in scopes {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if kind != "repository" {
            continue;
        }
        let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
        access.push(json!({"type": "repository", "name": name, "actions": actions}));
    }
    Value::Array(access)
}

async fn serve(
    mut stream: TcpStream,
    signer: &Signer,
    password: &str,
    seen: &Mutex<Vec<TokenRequest>>,
) -> std::io::Result<()> {
    // The head, then as much body as Content-Length says.
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }

    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = form_pairs(query);
    // Who is asking, and with what secret.
    let mut login: Option<(String, String)> = None;
    if method == "POST" {
        // OAuth2 (what containerd's resolver, so BuildKit, tries first).
        params.extend(form_pairs(&String::from_utf8_lossy(&body)));
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("grant_type").as_deref() == Some("password") {
            login = get("username").zip(get("password"));
        }
    } else if let Some(basic) = header("authorization").and_then(|v| v.strip_prefix("Basic ")) {
        let decoded = STANDARD.decode(basic.trim()).unwrap_or_default();
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        login = decoded
            .split_once(':')
            .map(|(u, p)| (u.to_string(), p.to_string()));
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let service_ok = params
        .iter()
        .find(|(k, _)| k == "service")
        .is_none_or(|(_, v)| v == SERVICE);
    let granted = path == "/token"
        && service_ok
        && login
            .as_ref()
            .is_some_and(|(u, p)| u == USER && p == password);
    seen.lock().unwrap().push(TokenRequest {
        method: method.clone(),
        user: login.map(|(u, _)| u).unwrap_or_default(),
        granted,
        scopes: scopes.clone(),
    });

    let (status, body) = if granted {
        let token = signer.token(USER, &access_for(&scopes)).await;
        (
            "200 OK",
            json!({"token": token, "access_token": token, "expires_in": 600}).to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}).to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Everything one test needs: signer, token server, registry.
struct Setup {
    _dir: tempfile::TempDir,
    signer: Arc<Signer>,
    tokens: TokenServer,
    registry: TestRegistry,
    password: String,
}

async fn setup() -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(Signer::new(dir.path()));
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let tokens = TokenServer::start(signer.clone(), password.clone()).await;
    let realm = format!("http://127.0.0.1:{}/token", tokens.port);
    let registry = TestRegistry::start_or_skip(Auth::Token {
        realm: &realm,
        service: SERVICE,
        issuer: ISSUER,
        rootcertbundle: &signer.cert_path(),
    })
    .await?;
    assert!(
        registry.challenge.starts_with("Bearer ")
            && registry
                .challenge
                .contains(&format!("127.0.0.1:{}/token", tokens.port)),
        "{}",
        registry.challenge
    );
    Some(Setup {
        _dir: dir,
        signer,
        tokens,
        registry,
        password,
    })
}

impl Setup {
    fn registry_input(&self, password: &str) -> Value {
        json!({"server": self.registry.host, "username": USER, "password": secret(json!(password))})
    }

    /// GETs a manifest with a token minted here (independent of the provider's client).
    async fn get_manifest(&self, repo: &str, reference: &str, token: &str) -> (u16, Vec<u8>) {
        let resp = http()
            .get(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.registry.host
            ))
            .bearer_auth(token)
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    async fn pull_token(&self, repo: &str) -> String {
        self.signer
            .token(
                USER,
                &json!([{"type": "repository", "name": repo, "actions": ["pull"]}]),
            )
            .await
    }
}

async fn provider(s: &Services, dir: &Path) -> Harness {
    let mut h = Harness::start(&[]).await;
    h.configure(dir, s.config()).await;
    h
}

#[tokio::test]
async fn provider_pushes_an_index_to_a_token_auth_registry() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let Some(t) = setup().await else {
        return;
    };
    let path = format!("tokenauth/multi-{}", uuid::Uuid::new_v4().simple());
    let repo = format!("{}/{path}", t.registry.host);

    // The registry really checks tokens: none, or a forged one, is refused.
    let token = t.pull_token(&path).await;
    let (status, _) = t.get_manifest(&path, "v1", "").await;
    assert_eq!(status, 401, "no token");
    let mut forged = token.clone().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (status, _) = t
        .get_manifest(&path, "v1", std::str::from_utf8(&forged).unwrap())
        .await;
    assert_eq!(status, 401, "a token with a bad signature");
    let (status, _) = t.get_manifest(&path, "v1", &token).await;
    assert_eq!(status, 404, "a valid token, nothing pushed yet");

    let dir = arch_context();
    let inputs = json!({
        "name": format!("{repo}:v1"),
        "platforms": ["linux/amd64", "linux/arm64"],
        "registry": t.registry_input(&t.password),
    });
    let mut h = provider(&s, dir.path()).await;
    let checked = h.check_ok("tok", &json!({}), &inputs).await;
    let st = match h.create("tok", &checked, false).await {
        Ok(r) => from_struct(r.properties.as_ref().unwrap()),
        Err(e) => panic!(
            "{}\ntoken requests: {:#?}\nregistry log:\n{}\nprovider log:\n{}",
            e.message(),
            t.tokens.requests(),
            t.registry.log_text(),
            h.log_text()
        ),
    };

    // The index is there (read with a token minted here) and is what `ref` names.
    let (status, body) = t.get_manifest(&path, "v1", &token).await;
    assert_eq!(status, 200);
    let index_digest = sha256_digest(&body);
    assert_eq!(st["digest"], json!(index_digest));
    assert_eq!(st["ref"], json!(format!("{repo}@{index_digest}")));
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["mediaType"], MEDIA_TYPE_DOCKER_MANIFEST_LIST);
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");
    for m in index["manifests"].as_array().unwrap() {
        let (status, entry) = t
            .get_manifest(&path, m["digest"].as_str().unwrap(), &token)
            .await;
        assert_eq!(status, 200, "entry {m}");
        assert_eq!(sha256_digest(&entry), m["digest"].as_str().unwrap());
    }

    // Who asked for tokens: the daemon (GET with Basic, pushing) and the provider's client
    // (GET with Basic; pull,push for the index PUT), all with the right user.
    let requests = t.tokens.requests();
    assert!(
        requests.iter().all(|r| r.granted && r.user == USER),
        "{requests:#?}"
    );
    let push_scope = format!("repository:{path}:pull,push");
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.scopes.contains(&push_scope)),
        "{requests:#?}"
    );

    // The provider's registry client, on its own: reads the index back, PUTs it under
    // another tag, and reads that back.
    let client = RegistryClient::new(
        &t.registry.host,
        Some(Credentials {
            server: t.registry.host.clone(),
            username: USER.into(),
            password: t.password.clone(),
            identity_token: None,
        }),
    )
    .unwrap();
    let (got, info) = client.get_manifest(&path, "v1").await.unwrap().unwrap();
    assert_eq!(got, body);
    assert_eq!(info.digest, index_digest);
    assert_eq!(info.media_type, MEDIA_TYPE_DOCKER_MANIFEST_LIST);
    let put = client
        .put_manifest(&path, "copy", MEDIA_TYPE_DOCKER_MANIFEST_LIST, &body)
        .await
        .unwrap();
    assert_eq!(put, index_digest);
    let info = client.manifest_info(&path, "copy").await.unwrap().unwrap();
    assert_eq!(info.digest, index_digest);
    let (status, copy) = t.get_manifest(&path, "copy", &token).await;
    assert_eq!((status, copy), (200, body));
}

#[tokio::test]
async fn a_wrong_password_fails_without_showing_it() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let Some(t) = setup().await else {
        return;
    };
    let repo = format!(
        "{}/tokenauth/wrong-{}",
        t.registry.host,
        uuid::Uuid::new_v4().simple()
    );
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "x\n")],
    );
    let mut h = provider(&s, dir.path()).await;
    // First the provider's own client (the lookup of an image built from this context),
    // then, with that lookup off, the daemon's push.
    for skip_if_pushed in [true, false] {
        let inputs = json!({
            "name": repo,
            "skipIfPushed": skip_if_pushed,
            "registry": t.registry_input(&wrong),
        });
        let checked = h.check_ok("w", &json!({}), &inputs).await;
        let e = h
            .create("w", &checked, false)
            .await
            .expect_err("a wrong password cannot push");
        let msg = e.message();
        assert!(
            msg.contains(&format!("authentication failed for {}", t.registry.host)),
            "skipIfPushed {skip_if_pushed}: {msg}"
        );
        assert!(!msg.contains(&wrong), "the password leaked: {msg}");
        let logs = h.log_text();
        assert!(!logs.contains(&wrong), "the password leaked into the logs");
    }
    let requests = t.tokens.requests();
    assert!(
        !requests.is_empty() && requests.iter().all(|r| !r.granted),
        "{requests:#?}"
    );
    let seen: BTreeSet<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert!(seen.contains("GET"), "{requests:#?}");
    assert!(
        !h.stderr_text().contains(&wrong),
        "the password leaked into the provider's stderr"
    );
}
