//! The one launcher for tests that need a registry of their own: `docker-registry serve`
//! (Debian's, distribution 2.8) on a free loopback port, with its own storage and either
//! htpasswd or token authentication, killed on drop. Plus what those tests share: the
//! `Accept` header for manifests, sha256 digests, a blob upload, a gzip for test layers.
//!
//! Not for: the registry every Docker test shares, which `scripts/services.sh` runs (see
//! [`super::Services`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::Digest as _;

/// Every manifest media type the provider reads: asked for fewer, registry 2.8 may convert
/// a Docker image to schema 1 (another digest).
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// How the registry authenticates.
pub enum Auth<'a> {
    /// Basic, for one user (`htpasswd` makes the file).
    Htpasswd { user: &'a str, password: &'a str },
    /// Bearer tokens from `realm`, checked against the certificates in `rootcertbundle`.
    Token {
        realm: &'a str,
        service: &'a str,
        issuer: &'a str,
        rootcertbundle: &'a Path,
    },
}

/// A running `docker-registry`.
pub struct TestRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The `WWW-Authenticate` of its first answer (a 401) to `GET /v2/`.
    pub challenge: String,
    /// The htpasswd user and password, if that is its authentication.
    basic: Option<(String, String)>,
    /// Before `dir`: the process goes before its storage.
    child: KillOnDrop,
    dir: tempfile::TempDir,
}

/// A child process, killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client that never goes through a proxy (everything here is on loopback).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

impl TestRegistry {
    /// [`TestRegistry::start`], or `None` after one line saying the test is skipped when
    /// `docker-registry` or `htpasswd` is not installed and the run does not require them.
    pub async fn start_or_skip(auth: Auth<'_>) -> Option<TestRegistry> {
        let installed = super::on_path("docker-registry") && super::on_path("htpasswd");
        if !installed && !super::services_required() {
            super::skip(
                "docker-registry and htpasswd (apt-get install -y docker-registry apache2-utils)",
            );
            return None;
        }
        Some(TestRegistry::start(auth).await)
    }

    /// Starts a registry and waits until it answers `/v2/` with a 401 (three tries, each on
    /// a fresh port, in case another process took the port first).
    pub async fn start(auth: Auth<'_>) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let (auth_config, basic) = match auth {
            Auth::Htpasswd { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run htpasswd ({e}); install it: apt-get install -y apache2-utils")
                    });
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout).expect("write htpasswd");
                (
                    format!(
                        "  htpasswd:\n    realm: dbk-test\n    path: {}\n",
                        path.display()
                    ),
                    Some((user.to_string(), password.to_string())),
                )
            }
            Auth::Token {
                realm,
                service,
                issuer,
                rootcertbundle,
            } => (
                format!(
                    "  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
                     rootcertbundle: {}\n",
                    rootcertbundle.display()
                ),
                None,
            ),
        };
        let log = dir.path().join("registry.log");
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let config = dir.path().join("registry.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
                     delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: {}\nauth:\n{auth_config}",
                    dir.path().join("data").display(),
                    uuid::Uuid::new_v4().simple(),
                ),
            )
            .expect("write registry.yml");
            let out = std::fs::File::create(&log).expect("log file");
            let mut child = KillOnDrop(Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .env_remove("http_proxy")
                .env_remove("https_proxy")
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run docker-registry ({e}); install it: apt-get install -y docker-registry apache2-utils")
                }));
            let host = format!("127.0.0.1:{port}");
            for _ in 0..200 {
                if let Ok(resp) = http().get(format!("http://{host}/v2/")).send().await {
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    assert_eq!(resp.status().as_u16(), 401, "{challenge}");
                    return TestRegistry {
                        host,
                        challenge,
                        basic,
                        child,
                        dir,
                    };
                }
                if child.0.try_wait().expect("docker-registry").is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!(
            "docker-registry did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// What the registry logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Uploads `data` as a blob of `repo` (POST an upload, PUT the content) with the
    /// htpasswd credentials; returns its digest.
    pub async fn upload_blob(&self, repo: &str, data: &[u8]) -> String {
        let (user, password) = self.basic.as_ref().expect("an htpasswd registry");
        let digest = sha256_digest(data);
        let resp = http()
            .post(format!("http://{}/v2/{repo}/blobs/uploads/", self.host))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("POST upload");
        assert_eq!(resp.status().as_u16(), 202, "POST upload");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location");
        let mut url = reqwest::Url::parse(&format!("http://{}/", self.host))
            .and_then(|base| base.join(location))
            .expect("upload URL");
        url.query_pairs_mut().append_pair("digest", &digest);
        let resp = http()
            .put(url)
            .basic_auth(user, Some(password))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("PUT blob");
        assert_eq!(resp.status().as_u16(), 201, "PUT blob");
        digest
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

/// A gzip (one stored deflate block) of `data` (< 64 KiB): a valid layer without a
/// compression crate.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("small");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}
