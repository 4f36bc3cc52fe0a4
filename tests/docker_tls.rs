//! A daemon reached over `tcp://` with TLS client verification (the private dockerd of
//! `scripts/services.sh` also listens on `DBK_DOCKER_TLS_HOST`, with client certificates in
//! `DBK_DOCKER_CERT_PATH`): through the provider configuration, through the Docker CLI's
//! environment variables, and without certificates (a clear failure).

mod common;

use common::services::Services;
use common::*;
use serde_json::{Value, json};

fn var(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run `bash scripts/services.sh up && source \"$(bash scripts/services.sh env)\"` (scripts/test.sh does this)")
    })
}

/// The TLS endpoint of the private daemon and the directory of its client certificates.
fn tls() -> (String, String) {
    let host = var("DBK_DOCKER_TLS_HOST");
    let certs = var("DBK_DOCKER_CERT_PATH");
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(
            std::path::Path::new(&certs).join(f).is_file(),
            "{certs}/{f} is missing: run `bash scripts/services.sh up`"
        );
    }
    (host, certs)
}

/// The variables a Docker client reads, blanked so that the test process's own
/// environment (which the provider inherits) cannot turn TLS on or off behind our back.
const NO_DOCKER_TLS_ENV: [(&str, &str); 2] = [("DOCKER_TLS_VERIFY", ""), ("DOCKER_CERT_PATH", "")];

/// A program directory with a `FROM scratch` + `COPY` context in `app/`; the inputs of a
/// local-only (`push: false`) image built from it.
fn program(s: &Services) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("app/marker.txt", &format!("{marker}\n")),
        ],
    );
    let inputs = json!({"name": s.repo("tls"), "context": "app", "push": false});
    (dir, inputs)
}

/// Builds through `h`; returns the image id, checked to be the one the daemon (asked
/// over its unix socket) holds under the image's name.
async fn build_ok(h: &mut Harness, s: &Services, inputs: &Value) -> String {
    let checked = h.check_ok("img", &json!({}), inputs).await;
    let created = h.create("img", &checked, false).await.unwrap_or_else(|e| {
        panic!(
            "the build over TLS failed: {e:?}\nlog:\n{}\nstderr:\n{}",
            h.log_text(),
            h.stderr_text()
        )
    });
    let st = from_struct(created.properties.as_ref().unwrap());
    let digest = st["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let name = inputs["name"].as_str().unwrap();
    let out = s.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{name}:latest"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        digest,
        "the image is in the daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    digest
}

#[tokio::test]
async fn tls_through_provider_config() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (host, certs) = tls();
    let (dir, inputs) = program(&s);
    let mut h = Harness::start(&NO_DOCKER_TLS_ENV).await;
    h.configure(dir.path(), json!({"host": host, "certPath": certs}))
        .await;
    build_ok(&mut h, &s, &inputs).await;
}

#[tokio::test]
async fn tls_through_docker_environment_variables() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (host, certs) = tls();
    let (dir, inputs) = program(&s);
    let mut h = Harness::start(&[
        ("DOCKER_HOST", host.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs.as_str()),
    ])
    .await;
    h.configure(dir.path(), json!({})).await;
    build_ok(&mut h, &s, &inputs).await;
}

#[tokio::test]
async fn tls_host_without_certificates_fails_clearly() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (host, _) = tls();
    let (dir, inputs) = program(&s);
    let mut h = Harness::start(&NO_DOCKER_TLS_ENV).await;
    h.configure(dir.path(), json!({"host": host})).await;
    let checked = h.check_ok("img", &json!({}), &inputs).await;
    let e = h
        .create("img", &checked, false)
        .await
        .expect_err("a TLS daemon refuses a client without certificates");
    assert!(
        e.message()
            .contains(&format!("cannot reach the Docker daemon at {host}")),
        "the error names the host: {}",
        e.message()
    );
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
}

#[tokio::test]
async fn tls_cert_path_without_certificates_fails_clearly() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (host, _) = tls();
    let (dir, inputs) = program(&s);
    let empty = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&NO_DOCKER_TLS_ENV).await;
    h.configure(
        dir.path(),
        json!({"host": host, "certPath": empty.path().to_str().unwrap()}),
    )
    .await;
    let checked = h.check_ok("img", &json!({}), &inputs).await;
    let e = h
        .create("img", &checked, false)
        .await
        .expect_err("no certificates in certPath");
    let msg = e.message();
    assert!(
        msg.contains(&host) && msg.contains(&empty.path().display().to_string()),
        "the error names the host and the certificate directory: {msg}"
    );
}
