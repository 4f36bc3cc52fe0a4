//! Our own BuildKit client (`docker_buildkit::buildkit`) against the real standalone
//! buildkitd of `scripts/services.sh` (issue 19): over its unix socket and over tcp with
//! mutual TLS, a Dockerfile build whose context comes through our FileSync session, pushed
//! by BuildKit's image exporter with our registry credentials (Auth over the session); the
//! registry, read independently, holds the digest the solve reported. A daemon that is not
//! there, and one that is not a buildkitd, are clear errors naming them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use common::services::{Services, repo_path, services_required, skip};
use docker_buildkit::buildkit::{BuildkitAddress, BuildkitError, Buildkitd, Solve};
use docker_buildkit::context::{BuildContext, DockerfileSource};
use docker_buildkit::credentials::Credentials;
use docker_buildkit::docker::plan::{Events, Level, Pending};
use docker_buildkit::docker::session::{SessionSpec, filesync::FileSource, ssh::Agents};
use tokio_util::sync::CancellationToken;

/// The buildkitd addresses: (unix, tcp, client certificates), or `None` after a skip line.
fn buildkitd() -> Option<(String, String, String)> {
    let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (
        get("DBK_BUILDKIT_HOST"),
        get("DBK_BUILDKIT_TCP_HOST"),
        get("DBK_BUILDKIT_CERT_PATH"),
    ) {
        (Some(u), Some(t), Some(c)) => Some((u, t, c)),
        _ if services_required() => {
            panic!("DBK_BUILDKIT_HOST is not set: run scripts/services.sh up")
        }
        _ => {
            skip("the standalone buildkitd of scripts/services.sh");
            None
        }
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Events for Recorder {
    fn log<'a>(&'a self, _level: Level, message: &'a str) -> Pending<'a> {
        self.0.lock().unwrap().push(message.to_string());
        Box::pin(async {})
    }
    fn progress<'a>(&'a self, line: &'a str) -> Pending<'a> {
        self.0.lock().unwrap().push(line.to_string());
        Box::pin(async {})
    }
    fn secret(&self, _value: &str) {}
}

fn spec(dir: &Path, s: &Services) -> SessionSpec {
    let context =
        BuildContext::open(dir, DockerfileSource::Path("Dockerfile".into())).expect("context");
    let server = s.registry.clone();
    SessionSpec {
        context_dir: dir.to_path_buf(),
        context: FileSource::context(&context).unwrap(),
        dockerfile: FileSource::dockerfile(&context).unwrap(),
        named: BTreeMap::new(),
        file_targets: BTreeMap::new(),
        credentials: BTreeMap::from([(
            server.clone(),
            Credentials {
                server,
                username: s.user.clone(),
                password: s.password.clone(),
                identity_token: None,
            },
        )]),
        secrets: BTreeMap::new(),
        agents: Agents::default(),
        content_stores: BTreeMap::new(),
    }
}

fn push_to(target: &str) -> Vec<(String, BTreeMap<String, String>)> {
    vec![(
        "image".to_string(),
        BTreeMap::from([
            ("name".to_string(), target.to_string()),
            ("push".to_string(), "true".to_string()),
        ]),
    )]
}

async fn build_and_push(address: BuildkitAddress, s: &Services) {
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n",
            ),
            ("hello.txt", &marker),
            ("ignored.txt", "never sent"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    let kit = Buildkitd::connect(&address).await.expect("connect");
    assert!(kit.version.contains("buildkit"), "{}", kit.version);
    let repo = s.repo("own-client");
    let target = format!("{repo}:v1");
    let events = Recorder::default();
    let outcome = kit
        .solve(
            Solve {
                session: spec(dir.path(), s),
                frontend_attrs: BTreeMap::from([
                    ("filename".to_string(), "Dockerfile".to_string()),
                    ("build-arg:GREETING".to_string(), marker.clone()),
                ]),
                exporters: push_to(&target),
                cache_exports: vec![("inline".to_string(), BTreeMap::new())],
                cache_imports: vec![],
            },
            &events,
            &CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", events.0.lock().unwrap().join("\n")));
    let digest = outcome.image_digest().expect("a digest").to_string();
    // The registry, read on its own, has that manifest under the tag.
    let (status, got, manifest) = s.get_manifest(repo_path(&repo), "v1").await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(got, digest, "the tag names the digest the solve reported");
    let config = s
        .get_blob(
            repo_path(&repo),
            manifest["config"]["digest"].as_str().unwrap(),
        )
        .await;
    assert_eq!(config["config"]["Labels"]["greeting"], marker.as_str());
    // Only the context's two files and the Dockerfile were sent (not the ignored one).
    let (files, _) = outcome.sent;
    assert!((1..=3).contains(&files), "sent {files} files");
    let lines = events.0.lock().unwrap().join("\n");
    assert!(
        lines.contains("COPY hello.txt"),
        "progress streamed: {lines}"
    );
}

#[tokio::test]
async fn builds_and_pushes_over_the_unix_socket() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    build_and_push(
        BuildkitAddress {
            host: unix,
            cert_path: None,
        },
        &s,
    )
    .await;
}

#[tokio::test]
async fn builds_and_pushes_over_tcp_with_mutual_tls() {
    let (Some(s), Some((_, tcp, certs))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    build_and_push(
        BuildkitAddress {
            host: tcp,
            cert_path: Some(certs.into()),
        },
        &s,
    )
    .await;
}

#[tokio::test]
async fn a_daemon_that_is_not_there_or_not_a_buildkitd_is_named() {
    let gone = BuildkitAddress {
        host: "unix:///nonexistent/buildkitd.sock".into(),
        cert_path: None,
    };
    let e = Buildkitd::connect(&gone).await.unwrap_err();
    assert!(matches!(e, BuildkitError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().contains("unix:///nonexistent/buildkitd.sock"),
        "{e}"
    );

    let no_certs = BuildkitAddress {
        host: "tcp://127.0.0.1:1".into(),
        cert_path: None,
    };
    let e = Buildkitd::connect(&no_certs).await.unwrap_err();
    assert!(matches!(e, BuildkitError::BadAddress { .. }), "{e}");
    assert!(e.to_string().contains("ca.pem"), "{e}");

    let docker_scheme = BuildkitAddress {
        host: "ssh://me@host".into(),
        cert_path: None,
    };
    assert!(matches!(
        Buildkitd::connect(&docker_scheme).await.unwrap_err(),
        BuildkitError::BadAddress { .. }
    ));

    // A Docker daemon's socket speaks HTTP/1.1, not BuildKit's Control API.
    if let Ok(docker) = std::env::var("DOCKER_HOST")
        && docker.starts_with("unix://")
    {
        let e = Buildkitd::connect(&BuildkitAddress {
            host: docker.clone(),
            cert_path: None,
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains(&docker), "{e}");
    }
}

#[tokio::test]
async fn a_failed_solve_says_why_with_the_build_log() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY config.yaml /config.yaml\n",
            ),
            ("config.yaml", "excluded"),
            (".dockerignore", "*.yaml\n"),
        ],
    );
    let kit = Buildkitd::connect(&BuildkitAddress {
        host: unix,
        cert_path: None,
    })
    .await
    .unwrap();
    let events = Recorder::default();
    let e = kit
        .solve(
            Solve {
                session: spec(dir.path(), &s),
                frontend_attrs: BTreeMap::from([("filename".into(), "Dockerfile".into())]),
                exporters: push_to(&format!("{}:v1", s.repo("own-client-fails"))),
                cache_exports: vec![],
                cache_imports: vec![],
            },
            &events,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    let BuildkitError::Failed { message, log, .. } = &e else {
        panic!("{e}");
    };
    // The file the .dockerignore excluded is not in the context BuildKit sees.
    assert!(
        message.contains("config.yaml") && message.contains("not found"),
        "{message}"
    );
    assert!(log.contains("COPY config.yaml"), "{log}");
}

/// Through the provider, as the engine calls it: `driver: buildkit` on the default `host`.
/// Check hashes and passes; Create builds on the buildkitd, whose image exporter pushes;
/// the state's digest and `ref` name the manifest the registry has under every tag; a
/// second Image from the same context is reused by its `ctx-` tag without building; and
/// `push: false` is a check failure on `push`.
#[tokio::test]
async fn an_image_builds_on_a_buildkitd_through_the_provider() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        &dir.path().join("app"),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG STAMP\nLABEL stamp=$STAMP\nCOPY hello.txt /\n",
            ),
            ("hello.txt", &marker),
        ],
    );
    let config = serde_json::json!({"host": unix, "driver": "buildkit"});
    let mut h = common::Harness::configured(dir.path(), config.clone()).await;
    let repo = s.repo("kit-provider");
    let news = serde_json::json!({
        "name": repo, "context": "app", "tags": ["v2"],
        "buildArgs": {"STAMP": marker}, "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let digest = state["digest"].as_str().unwrap().to_string();
    assert_eq!(state["ref"], serde_json::json!(format!("{repo}@{digest}")));
    for tag in ["latest", "v2"] {
        let (status, got, _) = s.get_manifest(repo_path(&repo), tag).await;
        assert_eq!((status, got.as_str()), (200, digest.as_str()), "{tag}");
    }
    let (_, _, manifest) = s.get_manifest(repo_path(&repo), &digest).await;
    let config_blob = s
        .get_blob(
            repo_path(&repo),
            manifest["config"]["digest"].as_str().unwrap(),
        )
        .await;
    assert_eq!(config_blob["config"]["Labels"]["stamp"], marker.as_str());
    assert!(h.log_text().contains("BuildKit daemon"), "{}", h.log_text());

    // Another Image of the same context and repository: found by its ctx- tag, not built.
    let again = serde_json::json!({
        "name": format!("{repo}:other"), "context": "app",
        "buildArgs": {"STAMP": marker}, "registry": s.registry_input(),
    });
    let checked = h.check_ok("again", &serde_json::json!({}), &again).await;
    let before = h.log_text().matches("building ").count();
    let created = h.create("again", &checked, false).await.unwrap();
    let state = common::from_struct(created.properties.as_ref().unwrap());
    assert_eq!(state["digest"], serde_json::json!(digest), "the same image");
    assert!(
        h.log_text().contains("was built from this same context"),
        "{}",
        h.log_text()
    );
    assert_eq!(
        h.log_text().matches("building ").count(),
        before,
        "nothing built"
    );

    // A buildkitd keeps no images.
    h.assert_check_fails(
        &serde_json::json!({"name": repo, "context": "app", "push": false}),
        "push",
        "BuildKit daemon",
    )
    .await;
}

/// A buildkitd in `builders`, beside the default Docker host: a two-platform Image builds
/// `linux/arm64` there and `linux/amd64` on the Docker host, under one index.
#[tokio::test]
async fn a_buildkitd_builder_builds_its_platform_of_an_index() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETPLATFORM\nLABEL built-for=$TARGETPLATFORM\nCOPY hello.txt /\n",
            ),
            ("hello.txt", &uuid::Uuid::new_v4().simple().to_string()),
        ],
    );
    let config = serde_json::json!({
        "host": s.docker_host,
        "builders": [{"host": unix, "driver": "buildkit", "platforms": ["linux/arm64"]}],
    });
    let mut h = common::Harness::configured(dir.path(), config).await;
    let repo = s.repo("kit-fleet");
    let news = serde_json::json!({
        "name": repo, "context": "app", "platforms": ["linux/amd64", "linux/arm64"],
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let digest = state["digest"].as_str().unwrap().to_string();
    assert_eq!(
        index_platforms(&s, &repo, &digest).await,
        ["linux/amd64", "linux/arm64"]
    );
    let log = h.log_text();
    assert!(
        log.contains("[linux/arm64] building") && log.contains("BuildKit daemon"),
        "{log}"
    );
}

/// The platforms of the index `digest` in `repo`, sorted; each image's `built-for` label
/// must name its own platform (attestation manifests are skipped).
async fn index_platforms(s: &Services, repo: &str, digest: &str) -> Vec<String> {
    let (status, _, index) = s.get_manifest(repo_path(repo), digest).await;
    assert_eq!(status, 200);
    let mut found = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        if m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
            continue;
        }
        let platform = format!(
            "{}/{}",
            m["platform"]["os"].as_str().unwrap(),
            m["platform"]["architecture"].as_str().unwrap()
        );
        let (_, _, manifest) = s
            .get_manifest(repo_path(repo), m["digest"].as_str().unwrap())
            .await;
        let config = s
            .get_blob(
                repo_path(repo),
                manifest["config"]["digest"].as_str().unwrap(),
            )
            .await;
        assert_eq!(config["config"]["Labels"]["built-for"], platform.as_str());
        found.push(platform);
    }
    found.sort();
    found
}

/// Two platforms on a buildkitd that builds both: one solve, one index straight from
/// BuildKit (no per-platform tags), under every tag; `platformDigests` names the two images
/// and not the attestation manifest beside them.
#[tokio::test]
async fn several_platforms_on_one_buildkitd_are_one_solve() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETPLATFORM\nLABEL built-for=$TARGETPLATFORM\nCOPY hello.txt /\n",
            ),
            ("hello.txt", &uuid::Uuid::new_v4().simple().to_string()),
        ],
    );
    let config = serde_json::json!({"host": unix, "driver": "buildkit"});
    let mut h = common::Harness::configured(dir.path(), config).await;
    let repo = s.repo("kit-one-solve");
    let news = serde_json::json!({
        "name": repo, "context": "app", "tags": ["v2"], "provenance": "min",
        "platforms": ["linux/amd64", "linux/arm64"], "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let digest = state["digest"].as_str().unwrap().to_string();
    assert_eq!(
        index_platforms(&s, &repo, &digest).await,
        ["linux/amd64", "linux/arm64"]
    );
    for tag in ["latest", "v2"] {
        let (status, got, _) = s.get_manifest(repo_path(&repo), tag).await;
        assert_eq!((status, got.as_str()), (200, digest.as_str()), "{tag}");
    }
    for suffix in ["latest-linux-amd64", "latest-linux-arm64"] {
        let (status, _, _) = s.get_manifest(repo_path(&repo), suffix).await;
        assert_eq!(status, 404, "no per-platform tag {suffix}");
    }
    let platforms = state["platformDigests"].as_object().unwrap();
    assert_eq!(
        platforms.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    let log = h.log_text();
    assert_eq!(
        log.matches("in one solve on the BuildKit daemon").count(),
        1,
        "{log}"
    );
}

/// The busybox base image, pushed to the test registry through the provider on the Docker
/// host (a buildkitd here can pull only from there): `repo@digest`.
async fn base_in_registry(s: &Services) -> String {
    let (dir, _) = s.busybox_context("true");
    let mut h = s.harness(dir.path()).await;
    let repo = s.repo("kit-base");
    let news = serde_json::json!({"name": repo, "network": "none", "registry": s.registry_input()});
    let checked = h.check_ok("base", &serde_json::json!({}), &news).await;
    let created = h
        .create("base", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    state["ref"].as_str().unwrap().to_string()
}

/// On a buildkitd, `RUN` steps get the build's secrets and a target stage; the secret's
/// value is never in the log or the state.
#[tokio::test]
async fn secrets_and_target_reach_run_steps_on_a_buildkitd() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let base = base_in_registry(&s).await;
    let secret = format!("s3cret-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[(
            "Dockerfile",
            &format!(
                "FROM {base} AS checked\nRUN --mount=type=secret,id=token,required=true test \"$(cat /run/secrets/token)\" = \"{secret}\" && echo secret-matched\nFROM checked AS wrong\nRUN false\n"
            ),
        )],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let news = serde_json::json!({
        "name": s.repo("kit-secret"), "context": "app", "target": "checked",
        "secrets": {"token": common::secret(serde_json::json!(secret))},
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let log = h.log_text();
    assert!(log.contains("secret-matched"), "{log}");
    assert!(!log.contains(&secret) && !h.stderr_text().contains(&secret));
    // In the state only as a Pulumi secret (which the engine encrypts).
    let mut state = common::from_struct(created.properties.as_ref().unwrap());
    let secrets = state.as_object_mut().unwrap().remove("secrets").unwrap();
    assert!(
        common::is_secret(&secrets) || common::is_secret(&secrets["token"]),
        "{secrets}"
    );
    assert!(
        !state.to_string().contains(&secret),
        "the secret is in the state in clear"
    );
}

/// Cancel stops a running build on a buildkitd within seconds.
#[tokio::test]
async fn cancel_stops_a_build_on_a_buildkitd() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let base = base_in_registry(&s).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN echo started-{marker} && sleep 120\n"),
        )],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let news = serde_json::json!({
        "name": s.repo("kit-cancel"), "context": "app", "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let mut client = h.client.clone();
    let create = h.create_in_background("app", &checked, 0.0);
    h.wait_for_log(
        &format!("started-{marker}"),
        std::time::Duration::from_secs(60),
    )
    .await;
    let cancelled_at = std::time::Instant::now();
    client.cancel(()).await.unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), create)
        .await
        .expect("create returns soon after Cancel");
    let err = result.unwrap().expect_err("a cancelled build fails");
    assert_eq!(err.code(), tonic::Code::Cancelled, "{err:?}");
    assert!(cancelled_at.elapsed() < std::time::Duration::from_secs(20));
}

/// Empties the buildkitd's build cache, as a fresh builder's would be.
fn prune_buildkitd(unix: &str) {
    let bin = std::env::var("DBK_TOOLS_BIN").expect("DBK_TOOLS_BIN");
    let out = std::process::Command::new(format!("{bin}/buildctl"))
        .args(["--addr", unix, "prune", "--all"])
        .output()
        .expect("run buildctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cache tests' context in `dir`: three stages on `base`, the middle one slow (3 s) and
/// printing `slow-ran-2-<marker>` when it runs.
fn write_three_stages(dir: &Path, base: &str, marker: &str) {
    common::write_tree(
        dir,
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {base} AS deps\nRUN echo deps-{marker} > /deps\nFROM deps AS slow\nRUN echo slow-ran-$((1+1))-{marker} && sleep 3 && echo done > /slow\nFROM {base}\nCOPY --from=slow /slow /slow\nCOPY hello.txt /\n"
                ),
            ),
            ("hello.txt", marker),
        ],
    );
}

/// A builder that never saw this test's builds, as a fresh CI runner's: the services'
/// second buildkitd (its own state; the marker is new), or without one, `unix` emptied.
fn empty_builder(unix: &str) -> String {
    match std::env::var("DBK_BUILDKIT_HOST2") {
        Ok(h) if !h.is_empty() => h,
        _ => {
            prune_buildkitd(unix);
            unix.to_string()
        }
    }
}

/// Every step of the three-stage build of the cache tests is `CACHED` in `log`.
fn assert_every_stage_cached(log: &str) {
    for step in [
        "RUN echo deps-",
        "RUN echo slow-ran-",
        "COPY --from=slow",
        "COPY hello.txt",
    ] {
        let number = log
            .lines()
            .find(|l| l.contains(step) && l.starts_with('#'))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {step:?}:\n{log}"))
            .to_string();
        assert!(
            log.lines().any(|l| l == format!("{number} CACHED")),
            "{step} is not CACHED:\n{log}"
        );
    }
}

/// `cacheTo: registry mode=max`: a three-stage build with a slow middle stage exports every
/// stage's cache to the registry; after the buildkitd's own cache is emptied, the same
/// context under another name imports it and every step is CACHED (the slow one does not
/// run again).
#[tokio::test]
async fn a_registry_cache_with_mode_max_serves_every_stage_to_an_empty_builder() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let base = base_in_registry(&s).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    write_three_stages(&dir.path().join("app"), &base, &marker);
    let config = serde_json::json!({"host": unix, "driver": "buildkit"});
    let cache_ref = format!("{}:buildcache", s.repo("kit-cache"));
    let inputs = |name: &str| {
        serde_json::json!({
            "name": name, "context": "app", "registry": s.registry_input(),
            "cacheTo": [{"registry": {"ref": cache_ref, "mode": "max"}}],
        })
    };
    let mut h = common::Harness::configured(dir.path(), config.clone()).await;
    let first = h
        .check_ok(
            "first",
            &serde_json::json!({}),
            &inputs(&s.repo("kit-cache-a")),
        )
        .await;
    let started = std::time::Instant::now();
    h.create("first", &first, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let cold = started.elapsed();
    assert!(
        h.log_text().contains(&format!("slow-ran-2-{marker}")),
        "{}",
        h.log_text()
    );
    let (status, _, _) = s
        .get_manifest(
            repo_path(&cache_ref.replace(":buildcache", "")),
            "buildcache",
        )
        .await;
    assert_eq!(status, 200, "the cache is in the registry");

    // The second buildkitd of the services never saw this build (its marker is new): a
    // fresh CI runner's builder. Without one, the first is emptied instead.
    let second_host = empty_builder(&unix);
    let mut h2 = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": second_host, "driver": "buildkit"}),
    )
    .await;
    let second = h2
        .check_ok(
            "second",
            &serde_json::json!({}),
            &inputs(&s.repo("kit-cache-b")),
        )
        .await;
    let started = std::time::Instant::now();
    h2.create("second", &second, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h2.log_text()));
    let warm = started.elapsed();
    let log = h2.log_text();
    assert!(
        !log.contains(&format!("slow-ran-2-{marker}")),
        "the slow stage ran again:\n{log}"
    );
    assert_every_stage_cached(&log);
    eprintln!(
        "three-stage build: cold {cold:?}, from the registry cache on an empty builder {warm:?}"
    );
}

/// `cacheTo: local mode=max` writes every stage's cache into a directory (an OCI layout,
/// its `index.json` tagged); a second buildkitd that never saw the build imports it with
/// `cacheFrom: local` and every step is CACHED. A directory with no cache yet is skipped with
/// a warning, never an error.
#[tokio::test]
async fn a_local_cache_with_mode_max_serves_every_stage_to_an_empty_builder() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let base = base_in_registry(&s).await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    write_three_stages(&dir.path().join("app"), &base, &marker);
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let first = serde_json::json!({
        "name": s.repo("kit-local-cache-a"), "context": "app", "registry": s.registry_input(),
        "cacheTo": [{"local": {"dest": "cache", "mode": "max"}}],
        "cacheFrom": [{"local": {"src": "never-written"}}],
    });
    let checked = h.check_ok("first", &serde_json::json!({}), &first).await;
    h.create("first", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    assert!(
        h.log_text().contains(&format!("slow-ran-2-{marker}")),
        "{}",
        h.log_text()
    );
    assert!(
        h.log_text().contains("never-written") && h.log_text().contains("skipped"),
        "a missing cache directory is a warning: {}",
        h.log_text()
    );
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cache/index.json")).expect("index.json"),
    )
    .unwrap();
    let manifests = index["manifests"].as_array().expect("manifests");
    assert!(
        manifests.iter().any(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"] == "latest"
                && dir
                    .path()
                    .join("cache/blobs/sha256")
                    .join(m["digest"].as_str().unwrap().trim_start_matches("sha256:"))
                    .is_file()
        }),
        "{index}"
    );

    let second_host = empty_builder(&unix);
    let mut h2 = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": second_host, "driver": "buildkit"}),
    )
    .await;
    let second = serde_json::json!({
        "name": s.repo("kit-local-cache-b"), "context": "app", "registry": s.registry_input(),
        "cacheFrom": [{"local": {"src": "cache"}}],
    });
    let checked = h2.check_ok("second", &serde_json::json!({}), &second).await;
    h2.create("second", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h2.log_text()));
    let log = h2.log_text();
    assert!(
        !log.contains(&format!("slow-ran-2-{marker}")),
        "the slow stage ran again:\n{log}"
    );
    assert_every_stage_cached(&log);

    for (bad, property, says) in [
        (
            serde_json::json!({"cacheTo": [{"local": {"dest": ""}}]}),
            "cacheTo[0].local.dest",
            "needs its directory",
        ),
        (
            serde_json::json!({"cacheTo": [{"local": {"dest": "c", "mode": "all"}}]}),
            "cacheTo[0].local.mode",
            "not a cache mode",
        ),
        (
            serde_json::json!({"cacheTo": [{"local": {"dest": "c"}, "inline": {}}]}),
            "cacheTo[0]",
            "exactly one",
        ),
        (
            serde_json::json!({"cacheFrom": [{"local": {"src": ""}}]}),
            "cacheFrom[0].local.src",
            "needs its directory",
        ),
        (
            serde_json::json!({"cacheFrom": [{"local": {"src": "c"}, "registry": {"ref": "a/b"}}]}),
            "cacheFrom[0]",
            "exactly one",
        ),
        (
            serde_json::json!({"cacheFrom": [{"local": {"dest": "c"}}]}),
            "cacheFrom[0]",
            "unknown field `dest`",
        ),
    ] {
        let mut news = serde_json::json!({"name": s.repo("x"), "context": "app"});
        news.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        h.assert_check_fails(&news, property, says).await;
    }
    let mut docker = s.harness(dir.path()).await;
    docker
        .assert_check_fails(&first, "cacheTo[0]", "needs a BuildKit daemon")
        .await;
    docker
        .assert_check_fails(&second, "cacheFrom[0].local", "needs a BuildKit daemon")
        .await;
}

/// A cache export that fails (a registry that is not there) fails the update cleanly, the
/// image not pushed; with `ignoreError` it is a warning and the image is pushed.
#[tokio::test]
async fn a_failing_cache_export_fails_the_update_unless_ignored() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        &dir.path().join("app"),
        &[
            ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("hello.txt", &marker),
        ],
    );
    // A port nothing listens on: the cache push is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("127.0.0.1:{}/cache:x", closed.local_addr().unwrap().port());
    drop(closed);
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let inputs = |repo: &str, ignore: bool| {
        serde_json::json!({
            "name": repo, "context": "app", "registry": s.registry_input(),
            "cacheTo": [{"registry": {"ref": gone, "ignoreError": ignore}}],
        })
    };
    let strict = s.repo("kit-cache-fails");
    let checked = h
        .check_ok("strict", &serde_json::json!({}), &inputs(&strict, false))
        .await;
    let err = h
        .create("strict", &checked, false)
        .await
        .expect_err("a failed cache export fails the update");
    assert!(
        err.message().contains(&gone[..gone.find('/').unwrap()]),
        "{}",
        err.message()
    );
    let (status, _, _) = s.get_manifest(repo_path(&strict), "latest").await;
    assert_eq!(status, 404, "nothing is pushed when the build failed");

    let lenient = s.repo("kit-cache-ignored");
    let checked = h
        .check_ok("lenient", &serde_json::json!({}), &inputs(&lenient, true))
        .await;
    let created = h
        .create("lenient", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("ignoreError: {e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let (status, digest, _) = s.get_manifest(repo_path(&lenient), "latest").await;
    assert_eq!(
        (status, digest.as_str()),
        (200, state["digest"].as_str().unwrap())
    );
    let warned = h.log_text().lines().any(|l| {
        l.contains("failed and was ignored (ignoreError)") && l.contains("connection refused")
    });
    assert!(
        warned,
        "the ignored failure is a warning:\n{}",
        h.log_text()
    );
}

/// `cacheTo` entries are checked: one kind each, modes and compressions BuildKit takes, a
/// registry export only where a buildkitd builds.
#[tokio::test]
async fn cache_exports_are_checked() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(dir.path(), &[("Dockerfile", "FROM scratch\n")]);
    let name = s.repo("kit-cache-check");
    let mut docker = s.harness(dir.path()).await;
    docker
        .assert_check_fails(
            &serde_json::json!({"name": name, "cacheTo": [{"registry": {"ref": format!("{name}:c")}}]}),
            "cacheTo[0]",
            "needs a BuildKit daemon",
        )
        .await;
    // The inline cache is fine anywhere.
    docker
        .check_ok(
            "ok",
            &serde_json::json!({}),
            &serde_json::json!({"name": name, "cacheTo": [{"inline": {}}]}),
        )
        .await;
    for (bad, property, says) in [
        (serde_json::json!([{}]), "cacheTo[0]", "exactly one"),
        (
            serde_json::json!([{"inline": {}, "registry": {"ref": "r/x:c"}}]),
            "cacheTo[0]",
            "exactly one",
        ),
        (
            serde_json::json!([{"registry": {"ref": "Not A Ref"}}]),
            "cacheTo[0].registry.ref",
            "not a valid image reference",
        ),
        (
            serde_json::json!([{"registry": {"ref": "r/x:c", "mode": "all"}}]),
            "cacheTo[0].registry.mode",
            "min",
        ),
        (
            serde_json::json!([{"registry": {"ref": "r/x:c", "compression": "lz4"}}]),
            "cacheTo[0].registry.compression",
            "zstd",
        ),
        (
            serde_json::json!([{"registry": {}}]),
            "cacheTo[0].registry",
            "ref",
        ),
        // A kind this provider does not export is not silently ignored.
        (
            serde_json::json!([{"gha": {"scope": "c"}}]),
            "cacheTo[0].gha",
            "unknown field",
        ),
        // Nor is an option where it means nothing.
        (
            serde_json::json!([{"inline": {"mode": "max"}}]),
            "cacheTo[0].inline.mode",
            "unknown field",
        ),
        (
            serde_json::json!([{"disabled": true}, {"inline": {}}]),
            "cacheTo",
            "disabled",
        ),
    ] {
        docker
            .assert_check_fails(
                &serde_json::json!({"name": name, "cacheTo": bad}),
                property,
                says,
            )
            .await;
    }
    // `cacheFrom`: image references, or typed `registry {ref}` entries.
    docker
        .check_ok(
            "ok",
            &serde_json::json!({}),
            &serde_json::json!({"name": name, "cacheFrom": [format!("{name}:c"), {"registry": {"ref": format!("{name}:d")}}]}),
        )
        .await;
    for (bad, property, says) in [
        (
            serde_json::json!(["Not A Ref"]),
            "cacheFrom[0]",
            "not a valid image reference",
        ),
        (
            serde_json::json!([{"registry": {"ref": "Not A Ref"}}]),
            "cacheFrom[0].registry.ref",
            "not a valid image reference",
        ),
        (serde_json::json!([{}]), "cacheFrom[0]", "registry"),
        (
            serde_json::json!([{"gha": {}}]),
            "cacheFrom[0]",
            "unknown field",
        ),
        (
            serde_json::json!([7]),
            "cacheFrom[0]",
            "a string or an object with registry",
        ),
    ] {
        docker
            .assert_check_fails(
                &serde_json::json!({"name": name, "cacheFrom": bad}),
                property,
                says,
            )
            .await;
    }
}

/// `push: false` on a buildkitd builds only the exports: a tarball with nothing pushed,
/// and `cacheOnly` with nothing at all but the builder's cache (no digest, no ref). Without
/// exports it is a check failure on `push`; `cacheOnly` with a push, or beside another
/// export, is one on `exports[i].cacheOnly`.
#[tokio::test]
async fn unpushed_builds_on_a_buildkitd_write_only_their_exports() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("app/hello.txt", &marker),
            ("out/.keep", ""),
        ],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let repo = s.repo("kit-unpushed");
    let base = serde_json::json!({"name": repo, "context": "app", "push": false});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    h.assert_check_fails(&base, "push", "exports").await;
    h.assert_check_fails(
        &with(serde_json::json!({"push": true, "exports": [{"cacheOnly": true}]})),
        "exports[0].cacheOnly",
        "push: false",
    )
    .await;
    h.assert_check_fails(
        &with(serde_json::json!({"exports": [{"cacheOnly": true}, {"load": true}]})),
        "exports[0].cacheOnly",
        "other exports",
    )
    .await;

    let news = with(serde_json::json!({"exports": [{"tarball": {"path": "out/app.tar"}}]}));
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(&created.properties.clone().unwrap());
    let tar = dir.path().join("out/app.tar");
    let entries = tar_entries(&tar);
    assert!(entries.iter().any(|e| e == "manifest.json"), "{entries:?}");
    assert_eq!(state["exported"][0]["type"], "tarball");
    assert!(
        state["ref"].is_null(),
        "no image is named anywhere: {state}"
    );
    let (status, _, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 404, "nothing is pushed");

    let news = with(serde_json::json!({"exports": [{"cacheOnly": true}]}));
    let checked = h.check_ok("cache", &serde_json::json!({}), &news).await;
    let created = h
        .create("cache", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(&created.properties.clone().unwrap());
    assert_eq!(state["exported"][0]["type"], "cacheOnly", "{state}");
    assert!(
        state["digest"].is_null() && state["ref"].is_null(),
        "{state}"
    );
    assert!(
        h.log_text().contains("the build cache only"),
        "{}",
        h.log_text()
    );
    let (status, _, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 404, "nothing is pushed");
}

/// `provenance: max` on a buildkitd: the pushed tag is an index holding the image and
/// BuildKit's attestation manifest for it (off by default: a plain manifest); on a Docker
/// host it is a check failure on `provenance`.
#[tokio::test]
async fn provenance_is_attested_in_the_pushed_index() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[
            ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("hello.txt", &uuid::Uuid::new_v4().simple().to_string()),
        ],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let repo = s.repo("kit-provenance");
    let news = serde_json::json!({
        "name": repo, "context": "app", "provenance": "max", "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let (status, digest, index) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 200);
    assert_eq!(state["digest"], serde_json::json!(digest));
    let manifests = index["manifests"].as_array().expect("an index");
    let attestation = manifests
        .iter()
        .find(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .unwrap_or_else(|| panic!("no attestation manifest: {index}"));
    let image = manifests
        .iter()
        .find(|m| m["platform"]["os"] == "linux")
        .expect("the image");
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.digest"],
        image["digest"]
    );

    // Off (the default): a plain image manifest.
    let plain = serde_json::json!({"name": s.repo("kit-plain"), "context": "app", "registry": s.registry_input()});
    let checked = h.check_ok("plain", &serde_json::json!({}), &plain).await;
    let created = h.create("plain", &checked, false).await.unwrap();
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let name = state["name"].as_str().unwrap().to_string();
    let (_, _, manifest) = s.get_manifest(repo_path(&name), "latest").await;
    assert!(manifest["manifests"].is_null(), "{manifest}");

    // A Docker host cannot attest.
    let mut docker = s.harness(dir.path()).await;
    docker
        .assert_check_fails(&news, "provenance", "needs a BuildKit daemon")
        .await;
}

/// `buildContexts` on a buildkitd: a named directory is sent with its own `.dockerignore`
/// (the main context's `*.txt` does not apply to it; its own `*.log` does), and a
/// `docker-image://` one stands in for a `FROM`; a file its own ignore file excludes changes
/// nothing, one it keeps changes the hash and shows in the diff by file; on a Docker host
/// `buildContexts` is a check failure, and a directory that is not there names its entry.
#[tokio::test]
async fn named_contexts_build_on_a_buildkitd_each_with_its_own_dockerignore() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let base = base_in_registry(&s).await;
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        dir.path(),
        &[
            (
                "app/Dockerfile",
                "FROM busybase\nCOPY --from=assets . /assets/\nRUN test -f /assets/notes.txt && test ! -e /assets/debug.log && echo named-context-ok\n",
            ),
            ("app/.dockerignore", "*.txt\n"),
            ("assets/.dockerignore", "*.log\n"),
            (
                "assets/notes.txt",
                "the main context's *.txt does not apply here",
            ),
            (
                "assets/debug.log",
                "excluded by the named context's own file",
            ),
        ],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let news = serde_json::json!({
        "name": s.repo("kit-named"), "context": "app", "network": "none",
        "buildContexts": {"assets": "assets", "busybase": format!("docker-image://{base}")},
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let log = h.log_text();
    assert!(log.contains("named-context-ok"), "{log}");
    let state = created.properties.unwrap();
    let hash = |p: &prost_types::Struct| common::from_struct(p)["contextHash"].clone();

    std::fs::write(dir.path().join("assets/debug.log"), "more").unwrap();
    let again = h.check_ok("app", &serde_json::json!({}), &news).await;
    assert_eq!(
        hash(&again),
        hash(&state),
        "an excluded file changes nothing"
    );
    std::fs::write(dir.path().join("assets/notes.txt"), "edited").unwrap();
    let edited = h.check_ok("app", &serde_json::json!({}), &news).await;
    assert_ne!(hash(&edited), hash(&state));
    let d = h.diff("app", &state, &edited).await;
    assert!(!d.diffs.is_empty(), "{d:?}");
    let log = h.log_text();
    assert!(
        log.contains("1 file changed in the build context: [context assets] notes.txt"),
        "{log}"
    );

    let missing = serde_json::json!({
        "name": s.repo("kit-named"), "context": "app", "buildContexts": {"assets": "nope"},
    });
    h.assert_check_fails(&missing, "buildContexts.assets", "nope")
        .await;
    let mut docker = s.harness(dir.path()).await;
    docker
        .assert_check_fails(&news, "buildContexts", "need a BuildKit daemon")
        .await;
}

/// The entries of the tarball at `path` (`tar -tf`).
fn tar_entries(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(path)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `exports` on a buildkitd, several at once beside the push: a docker tarball (what
/// `docker load` reads), an OCI layout tarball, and a load into the Docker daemon of the
/// environment; `exported` says what each wrote, in bytes the files have; refresh drops the
/// resource when a tarball is gone. On a Docker host, a docker tarball is `docker save`, and
/// an OCI tarball or exports of several platforms are check failures.
#[tokio::test]
async fn exports_write_tarballs_and_load_beside_the_push() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("app/hello.txt", &marker),
            ("out/.keep", ""),
        ],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let repo = s.repo("kit-exports");
    let news = serde_json::json!({
        "name": repo, "context": "app", "registry": s.registry_input(),
        "exports": [
            {"tarball": {"path": "out/app.tar"}},
            {"tarball": {"path": "out/app-oci.tar", "format": "oci"}},
            {"load": true},
        ],
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let props = created.properties.clone().unwrap();
    let state = common::from_struct(&props);
    let exported = state["exported"].as_array().expect("exported");
    assert_eq!(exported.len(), 3, "{exported:?}");
    let docker_tar = dir.path().join("out/app.tar");
    let oci_tar = dir.path().join("out/app-oci.tar");
    for (x, path, format) in [
        (&exported[0], &docker_tar, "docker"),
        (&exported[1], &oci_tar, "oci"),
    ] {
        assert_eq!(x["type"], "tarball");
        assert_eq!(x["format"], format);
        assert_eq!(x["path"], serde_json::json!(path.display().to_string()));
        assert_eq!(
            x["bytes"].as_f64().unwrap() as u64,
            std::fs::metadata(path).unwrap().len(),
            "{format}"
        );
    }
    let entries = tar_entries(&docker_tar);
    assert!(entries.iter().any(|e| e == "manifest.json"), "{entries:?}");
    let entries = tar_entries(&oci_tar);
    assert!(
        entries.iter().any(|e| e == "oci-layout") && entries.iter().any(|e| e == "index.json"),
        "{entries:?}"
    );
    assert_eq!(exported[2]["type"], "load");
    assert!(exported[2]["bytes"].as_f64().unwrap() > 0.0);
    // Loaded into the Docker daemon of the environment under the Image's tag.
    let inspect = std::process::Command::new("docker")
        .args([
            "-H",
            &s.docker_host,
            "image",
            "inspect",
            &format!("{repo}:latest"),
        ])
        .output()
        .expect("docker");
    assert!(
        inspect.status.success(),
        "not loaded: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    // The registry has it too, under the digest the state names.
    let (status, digest, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(
        (status, digest.as_str()),
        (200, state["digest"].as_str().unwrap())
    );

    // Refresh: with the tarballs there the resource stays; one gone drops it.
    let id = created.id.clone();
    let read = h.read("app", &id, &props, &checked).await.unwrap();
    assert_eq!(read.id, id);
    std::fs::remove_file(&oci_tar).unwrap();
    let read = h.read("app", &id, &props, &checked).await.unwrap();
    assert!(
        read.id.is_empty(),
        "a gone tarball drops the resource: {read:?}"
    );
    assert!(h.log_text().contains("is gone"), "{}", h.log_text());

    // A Docker host saves docker tarballs; OCI and several platforms are for a buildkitd.
    let mut docker = s.harness(dir.path()).await;
    let saved = serde_json::json!({
        "name": s.repo("docker-export"), "context": "app", "registry": s.registry_input(),
        "exports": [{"tarball": {"path": "out/saved.tar"}}, {"load": true}],
    });
    let checked = docker
        .check_ok("saved", &serde_json::json!({}), &saved)
        .await;
    let created = docker
        .create("saved", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", docker.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let saved_tar = dir.path().join("out/saved.tar");
    assert_eq!(
        state["exported"][0]["bytes"].as_f64().unwrap() as u64,
        std::fs::metadata(&saved_tar).unwrap().len()
    );
    assert!(tar_entries(&saved_tar).iter().any(|e| e == "manifest.json"));
    docker
        .assert_check_fails(
            &news,
            "exports[1].tarball.format",
            "needs a BuildKit daemon",
        )
        .await;
    docker
        .assert_check_fails(
            &serde_json::json!({"name": repo, "context": "app", "platforms": ["linux/amd64", "linux/arm64"],
                "exports": [{"tarball": {"path": "out/x.tar", "format": "oci"}}]}),
            "exports",
            "one solve",
        )
        .await;
    for (bad, property, says) in [
        (
            serde_json::json!([{}]),
            "exports[0]",
            "needs one of `tarball",
        ),
        (
            serde_json::json!([{"tarball": {"path": "out/a.tar"}, "load": true}]),
            "exports[0]",
            "exactly one",
        ),
        (
            serde_json::json!([{"tarball": {"path": ""}}]),
            "exports[0].tarball.path",
            "needs the file",
        ),
        (
            serde_json::json!([{"tarball": {"path": "nope/a.tar"}}]),
            "exports[0].tarball.path",
            "does not exist",
        ),
        (
            serde_json::json!([{"tarball": {"path": "out"}}]),
            "exports[0].tarball.path",
            "is a directory",
        ),
        (
            serde_json::json!([{"tarball": {"path": "out/a.tar"}}, {"tarball": {"path": "out/a.tar"}}]),
            "exports[1].tarball.path",
            "earlier export",
        ),
    ] {
        h.assert_check_fails(
            &serde_json::json!({"name": repo, "context": "app", "exports": bad}),
            property,
            says,
        )
        .await;
    }
}

/// `exports: [{local: {dest}}]` on a buildkitd, beside the push: the image's files land in
/// the directory (merged: what was there stays), the state says so, a refresh with the
/// directory gone drops the resource; bad entries are check failures at their path, and a
/// Docker host says a directory needs a BuildKit daemon.
#[tokio::test]
async fn a_local_export_writes_the_image_files_into_a_directory() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        dir.path(),
        &[
            (
                "app/Dockerfile",
                "FROM scratch\nCOPY hello.txt /\nCOPY sub /sub/\n",
            ),
            ("app/hello.txt", &marker),
            ("app/sub/deep.txt", "deep"),
            ("out/site/kept.txt", "kept"),
            ("out/file", "a file"),
        ],
    );
    let mut h = common::Harness::configured(
        dir.path(),
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;
    let repo = s.repo("kit-local-export");
    let news = serde_json::json!({
        "name": repo, "context": "app", "registry": s.registry_input(),
        "exports": [{"local": {"dest": "out/site"}}],
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(&created.properties.clone().unwrap());
    let site = dir.path().join("out/site");
    assert_eq!(
        std::fs::read_to_string(site.join("hello.txt")).unwrap(),
        marker
    );
    assert_eq!(
        std::fs::read_to_string(site.join("sub/deep.txt")).unwrap(),
        "deep"
    );
    assert_eq!(
        std::fs::read_to_string(site.join("kept.txt")).unwrap(),
        "kept",
        "what was in the directory stays"
    );
    assert_eq!(state["exported"][0]["type"], "local", "{state}");
    assert_eq!(
        state["exported"][0]["path"].as_str().unwrap(),
        site.display().to_string()
    );
    assert_eq!(
        state["exported"][0]["bytes"].as_f64().unwrap() as u64,
        (marker.len() + "deep".len()) as u64,
        "{state}"
    );
    let (status, digest, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(
        (status, digest.as_str()),
        (200, state["digest"].as_str().unwrap()),
        "pushed beside the export"
    );

    // Refresh: the directory there keeps the resource; gone, it drops it.
    let props = created.properties.clone().unwrap();
    let id = created.id.clone();
    let read = h.read("app", &id, &props, &checked).await.unwrap();
    assert_eq!(read.id, id);
    std::fs::remove_dir_all(&site).unwrap();
    let read = h.read("app", &id, &props, &checked).await.unwrap();
    assert!(
        read.id.is_empty(),
        "a gone directory drops the resource: {read:?}"
    );

    for (bad, property, says) in [
        (
            serde_json::json!([{"local": {"dest": ""}}]),
            "exports[0].local.dest",
            "needs the directory",
        ),
        (
            serde_json::json!([{"local": {}}]),
            "exports[0].local",
            "dest",
        ),
        (
            serde_json::json!([{"local": {"dest": "out/file"}}]),
            "exports[0].local.dest",
            "is a file",
        ),
        (
            serde_json::json!([{"local": {"dest": "out/x"}, "load": true}]),
            "exports[0]",
            "exactly one",
        ),
        (
            serde_json::json!([{"local": {"dest": "out/x"}}, {"tarball": {"path": "out/x"}}]),
            "exports[1].tarball.path",
            "earlier export",
        ),
        (
            serde_json::json!([{"local": {"dest": "out/x", "src": "y"}}]),
            "exports[0].local.src",
            "unknown field",
        ),
    ] {
        h.assert_check_fails(
            &serde_json::json!({"name": repo, "context": "app", "exports": bad}),
            property,
            says,
        )
        .await;
    }

    // A Docker host: `/build` builds and pushes, then the Engine's own BuildKit (its `/grpc`
    // endpoint, as buildx's docker driver uses it) writes the directory from that cache.
    let mut docker = s.harness(dir.path()).await;
    let on_docker = serde_json::json!({
        "name": s.repo("docker-local-export"), "context": "app", "registry": s.registry_input(),
        "exports": [{"local": {"dest": "out/docker-site"}}],
    });
    let checked = docker
        .check_ok("docker", &serde_json::json!({}), &on_docker)
        .await;
    let created = docker
        .create("docker", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", docker.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let told = docker
        .log_text()
        .lines()
        .filter(|l| l.contains("exported the directory"))
        .count();
    assert_eq!(told, 1, "the export is told once:\n{}", docker.log_text());
    let site = dir.path().join("out/docker-site");
    assert_eq!(
        std::fs::read_to_string(site.join("hello.txt")).unwrap(),
        marker
    );
    assert_eq!(
        std::fs::read_to_string(site.join("sub/deep.txt")).unwrap(),
        "deep"
    );
    assert_eq!(state["exported"][0]["type"], "local", "{state}");
    assert_eq!(
        state["exported"][0]["bytes"].as_f64().unwrap() as u64,
        (marker.len() + "deep".len()) as u64,
        "{state}"
    );
    let (status, digest, _) = s
        .get_manifest(repo_path(on_docker["name"].as_str().unwrap()), "latest")
        .await;
    assert_eq!(
        (status, digest.as_str()),
        (200, state["digest"].as_str().unwrap()),
        "pushed by /build beside the export"
    );
}

/// A fleet of two buildkitds: the default one builds linux/amd64, the second (a builder
/// listing linux/arm64) builds linux/arm64; each platform is its own solve on its own
/// daemon, and one index names both.
#[tokio::test]
async fn two_buildkitds_build_one_platform_each() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let Some(second) = std::env::var("DBK_BUILDKIT_HOST2")
        .ok()
        .filter(|h| !h.is_empty())
    else {
        skip("the second buildkitd of scripts/services.sh (DBK_BUILDKIT_HOST2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::write_tree(
        &dir.path().join("app"),
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETPLATFORM\nLABEL built-for=$TARGETPLATFORM\nCOPY hello.txt /\n",
            ),
            ("hello.txt", &uuid::Uuid::new_v4().simple().to_string()),
        ],
    );
    let config = serde_json::json!({
        "host": unix, "driver": "buildkit",
        "builders": [{"host": second, "driver": "buildkit", "platforms": ["linux/arm64"]}],
    });
    let mut h = common::Harness::configured(dir.path(), config).await;
    let repo = s.repo("kit-two");
    let news = serde_json::json!({
        "name": repo, "context": "app", "platforms": ["linux/amd64", "linux/arm64"],
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let digest = state["digest"].as_str().unwrap().to_string();
    assert_eq!(
        index_platforms(&s, &repo, &digest).await,
        ["linux/amd64", "linux/arm64"]
    );
    let log = h.log_text();
    for (platform, host) in [("linux/amd64", &unix), ("linux/arm64", &second)] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("[{platform}] building"))
                    && l.contains(&format!("on the BuildKit daemon {host}"))),
            "{platform} not built on {host}:\n{log}"
        );
    }
    assert!(!log.contains("in one solve"), "{log}");
}

/// `exports: [{cacheOnly: true}]` on a Docker host (`network: none`: the services' dockerd has
/// no bridge): `/build` always makes an image, so the
/// solve goes to the Engine's own BuildKit through `/grpc` with no exporter. Nothing is
/// tagged in the daemon or pushed, the state says cache-only, and the next build of the same
/// context (through `/build`, pushed) finds every stage `CACHED`: the slow one does not run
/// again.
#[tokio::test]
async fn a_cache_only_build_on_a_docker_host_warms_its_cache() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    write_three_stages(&dir.path().join("app"), &s.base_image, &marker);
    let repo = s.repo("docker-cache-only");
    let mut warm = s.harness(dir.path()).await;
    let news = serde_json::json!({
        "name": repo, "context": "app", "push": false, "exports": [{"cacheOnly": true}],
        "network": "none",
    });
    let checked = warm.check_ok("warm", &serde_json::json!({}), &news).await;
    let created = warm
        .create("warm", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", warm.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let log = warm.log_text();
    assert!(log.contains(&format!("slow-ran-2-{marker}")), "{log}");
    assert!(log.contains("the build cache only"), "{log}");
    assert_eq!(state["exported"][0]["type"], "cacheOnly", "{state}");
    assert!(
        state["digest"].is_null() && state["ref"].is_null(),
        "no image to show for it: {state}"
    );
    let inspect = s.docker(&["image", "inspect", &repo]);
    assert!(
        !inspect.status.success(),
        "nothing is tagged in the daemon: {}",
        String::from_utf8_lossy(&inspect.stdout)
    );
    let (status, _, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 404, "nothing is pushed");

    let mut build = s.harness(dir.path()).await;
    let news = serde_json::json!({
        "name": repo, "context": "app", "registry": s.registry_input(), "network": "none",
    });
    let checked = build.check_ok("app", &serde_json::json!({}), &news).await;
    let created = build
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", build.log_text()));
    let state = common::from_struct(created.properties.as_ref().unwrap());
    let log = build.log_text();
    assert_every_stage_cached(&log);
    assert!(
        !log.contains(&format!("slow-ran-2-{marker}")),
        "the slow stage ran again:\n{log}"
    );
    let (status, digest, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(
        (status, digest.as_str()),
        (200, state["digest"].as_str().unwrap())
    );
}

/// A free port on 127.0.0.1 (bound, then let go) for a server the test starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `port` (at most 10 s).
fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `root/layout-src` on `h`'s buildkitd into an OCI tarball and unpacks it into
/// `root/layout` (replacing what was there): an OCI layout of one image tagged `latest`.
async fn export_layout(h: &mut common::Harness, s: &Services, root: &Path, name: &str) {
    let news = serde_json::json!({
        "name": s.repo("kit-layout-src"), "context": "layout-src", "push": false,
        "exports": [{"tarball": {"path": "out/layout.tar", "format": "oci"}}],
    });
    let checked = h.check_ok(name, &serde_json::json!({}), &news).await;
    h.create(name, &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let layout = root.join("layout");
    let _ = std::fs::remove_dir_all(&layout);
    std::fs::create_dir_all(&layout).unwrap();
    run(std::process::Command::new("tar")
        .arg("-xf")
        .arg(root.join("out/layout.tar"))
        .arg("-C")
        .arg(&layout));
}

/// `buildContexts` beyond directories, on a buildkitd, as `docker buildx build
/// --build-context` takes them: `oci-layout://DIR` (an image the provider exported as an OCI
/// tarball, unpacked; served over the session as a content store), a Git repository
/// (`git://…/repo.git#main`, served by `git daemon`) and the HTTP URL of a file with a
/// credential in it (served by python's http.server), each read by a `COPY --from`. The
/// credential is masked in the log and the URL is secret in the state; a new image in the
/// layout changes the hash and shows in the diff; bad values are check failures naming the
/// entry.
#[tokio::test]
async fn oci_layout_git_and_http_contexts_build_on_a_buildkitd() {
    let (Some(s), Some((unix, _, _))) = (Services::get_or_skip(), buildkitd()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let marker = uuid::Uuid::new_v4().simple().to_string();
    common::write_tree(
        root,
        &[
            ("layout-src/Dockerfile", "FROM scratch\nCOPY base.txt /\n"),
            ("layout-src/base.txt", &format!("oci-{marker}")),
            ("work/file.txt", &format!("git-{marker}")),
            ("srv/plain.txt", &format!("http-{marker}")),
            (
                "app/Dockerfile",
                "FROM scratch\nCOPY --from=base /base.txt /from-oci.txt\nCOPY --from=src /file.txt /from-git.txt\nCOPY --from=web /context /from-http.txt\n",
            ),
            ("out/.keep", ""),
        ],
    );
    let mut h = common::Harness::configured(
        root,
        serde_json::json!({"host": unix, "driver": "buildkit"}),
    )
    .await;

    // The layout: an image the provider itself wrote as an OCI tarball, unpacked.
    export_layout(&mut h, &s, root, "layout").await;

    // The Git repository, served over git://.
    let git = |args: &[&str]| {
        run(std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(root.join("work")))
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "file.txt"]);
    git(&["commit", "-q", "-m", "one"]);
    std::fs::create_dir_all(root.join("git")).unwrap();
    run(std::process::Command::new("git")
        .args(["clone", "-q", "--bare", "work", "git/repo.git"])
        .current_dir(root));
    let git_port = free_port();
    let _git_daemon = Server(
        std::process::Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={git_port}"))
            .arg(format!("--base-path={}", root.join("git").display()))
            .arg(root.join("git"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon"),
    );
    let http_port = free_port();
    let _http = Server(
        std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(http_port.to_string())
            .current_dir(root.join("srv"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    wait_listening(git_port);
    wait_listening(http_port);

    let token = format!("tok{marker}");
    let contexts = serde_json::json!({
        "base": "oci-layout://layout",
        "src": format!("git://127.0.0.1:{git_port}/repo.git#main"),
        "web": format!("http://user:{token}@127.0.0.1:{http_port}/plain.txt"),
    });
    let news = serde_json::json!({
        "name": s.repo("kit-remote-contexts"), "context": "app", "push": false,
        "buildContexts": contexts, "exports": [{"local": {"dest": "out/site"}}],
    });
    let checked = h.check_ok("app", &serde_json::json!({}), &news).await;
    let web = |p: &prost_types::Struct| common::from_struct(p)["buildContexts"]["web"].clone();
    assert!(
        common::is_secret(&web(&checked)),
        "a URL with a credential is kept secret: {:?}",
        web(&checked)
    );
    assert!(!common::is_secret(
        &common::from_struct(&checked)["buildContexts"]["src"]
    ));
    let created = h
        .create("app", &checked, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", h.log_text()));
    let site = root.join("out/site");
    for (file, want) in [
        ("from-oci.txt", format!("oci-{marker}")),
        ("from-git.txt", format!("git-{marker}")),
        ("from-http.txt", format!("http-{marker}")),
    ] {
        assert_eq!(
            std::fs::read_to_string(site.join(file)).unwrap_or_default(),
            want,
            "{file}\n{}",
            h.log_text()
        );
    }
    let log = h.log_text();
    assert!(!log.contains(&token), "the credential shows:\n{log}");
    assert!(
        !h.stderr_text().contains(&token),
        "the credential shows on stderr"
    );
    let state = created.properties.unwrap();
    assert!(
        common::is_secret(&web(&state)),
        "the URL with a credential is secret in the state: {:?}",
        web(&state)
    );

    // A new image in the layout (same tag): another hash, and the diff says which context.
    std::fs::write(root.join("layout-src/base.txt"), "changed").unwrap();
    export_layout(&mut h, &s, root, "layout2").await;
    let edited = h.check_ok("app", &serde_json::json!({}), &news).await;
    let hash = |p: &prost_types::Struct| common::from_struct(p)["contextHash"].clone();
    assert_ne!(hash(&edited), hash(&state));
    let d = h.diff("app", &state, &edited).await;
    assert!(!d.diffs.is_empty(), "{d:?}");
    assert!(h.log_text().contains("[context base]"), "{}", h.log_text());
    // A new token alone rebuilds nothing.
    let mut rotated = news.clone();
    rotated["buildContexts"]["web"] = serde_json::json!(format!(
        "http://user:other{marker}@127.0.0.1:{http_port}/plain.txt"
    ));
    let again = h.check_ok("app", &serde_json::json!({}), &rotated).await;
    assert_eq!(
        hash(&again),
        hash(&edited),
        "a new credential changes the hash"
    );

    // A layout of two images, tagged `a` and `b`: a tag it lacks has no single image to
    // fall back on (one image alone is taken whatever the tag, as buildx takes it).
    let descriptor = |tag: &str, d: char| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", d.to_string().repeat(64)), "size": 1,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2, "manifests": [descriptor("a", 'a'), descriptor("b", 'b')],
    });
    common::write_tree(root, &[("two/index.json", &index.to_string())]);
    let with = |name: &str, value: &str| {
        serde_json::json!({
            "name": s.repo("kit-remote-contexts"), "context": "app",
            "buildContexts": {name: value},
        })
    };
    for (value, says) in [
        ("oci-layout://nowhere", "no index.json"),
        (
            "oci-layout://two:v9",
            "no image tagged \"v9\" (its tags: a, b)",
        ),
        (
            &format!("oci-layout://layout@sha256:{}", "0".repeat(64)),
            "does not hold sha256:000",
        ),
        ("oci-layout://layout@sha256:nothex", "not an image digest"),
        ("oci-layout://layout:bad tag", "not a tag"),
        (
            "ssh://git@example.com/repo.git",
            "ssh:// contexts are not supported",
        ),
        ("https:///repo.git", "names no host"),
        ("git@:repo.git", "not a Git address"),
    ] {
        h.assert_check_fails(&with("ctx", value), "buildContexts.ctx", says)
            .await;
    }
}
