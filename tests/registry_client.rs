//! The provider's registry client against a real registry: `docker-registry serve` (2.8)
//! with htpasswd (Basic) auth, started by the tests' one launcher
//! (`common::services::registry`). Needs `docker-registry` and `htpasswd` (installed by
//! `scripts/services.sh up`), not the Docker daemon. The client's unit tests, against a
//! fake server, are beside its code in `src/registry/`.

mod common;

use common::services::registry::{Auth, TestRegistry, gzip_stored, sha256_digest};
use docker_buildkit::credentials::Credentials;
use docker_buildkit::registry::{
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX, ManifestInfo, RegistryClient, RegistryError,
};

const USER: &str = "user";
const PASSWORD: &str = "pa55-Word-xyz";
const WRONG_PASSWORD: &str = "wr0ng-Secret-abc";

async fn htpasswd_registry() -> Option<TestRegistry> {
    TestRegistry::start_or_skip(Auth::Htpasswd {
        user: USER,
        password: PASSWORD,
    })
    .await
}

fn new_client(server: &str, password: Option<&str>) -> RegistryClient {
    let credentials = password.map(|password| Credentials {
        server: server.into(),
        username: USER.into(),
        password: password.into(),
        identity_token: None,
    });
    RegistryClient::new(server, credentials).expect("client")
}

fn assert_no_secret(err: &RegistryError, secret: &str) {
    let text = format!("{err} {err:?} {err:#?}");
    assert!(!text.contains(secret), "secret leaked: {text}");
}

/// Asserts that `err` is [`RegistryError::Unauthorized`] with (or without) credentials.
fn assert_unauthorized(err: &RegistryError, with_credentials: bool) {
    let matched = matches!(
        err,
        RegistryError::Unauthorized { with_credentials: w, .. } if *w == with_credentials
    );
    assert!(matched, "{err:?}");
}

/// Pushes a config blob, an empty layer and a schema 2 manifest (the manifest with
/// `client`); returns the manifest's bytes and the config's bytes.
async fn push_test_image(
    registry: &TestRegistry,
    client: &RegistryClient,
    repo: &str,
    tag: &str,
) -> (Vec<u8>, Vec<u8>) {
    let tar = vec![0u8; 1024]; // an empty tar archive
    let layer = gzip_stored(&tar);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&tar)]},
    }))
    .expect("config json");
    let config_digest = registry.upload_blob(repo, &config).await;
    let layer_digest = registry.upload_blob(repo, &layer).await;
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
    let Some(registry) = htpasswd_registry().await else {
        return;
    };
    let server = registry.host.clone();
    let client = new_client(&server, Some(PASSWORD));
    let (manifest, config) = push_test_image(&registry, &client, "team/app", "v1").await;
    let want = ManifestInfo {
        digest: sha256_digest(&manifest),
        media_type: MEDIA_TYPE_DOCKER_MANIFEST.into(),
        size: manifest.len() as u64,
    };

    // A fresh client, so the Basic challenge is answered again.
    let reader = new_client(&server, Some(PASSWORD));
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
    let Some(registry) = htpasswd_registry().await else {
        return;
    };
    let server = registry.host.clone();

    let wrong = new_client(&server, Some(WRONG_PASSWORD));
    let err = wrong
        .manifest_info("team/app", "v1")
        .await
        .expect_err("wrong password");
    assert_unauthorized(&err, true);
    assert!(err.to_string().contains(&server), "{err}");
    assert_no_secret(&err, WRONG_PASSWORD);
    let err = wrong
        .put_manifest("team/app", "v1", MEDIA_TYPE_DOCKER_MANIFEST, b"{}")
        .await
        .expect_err("wrong password");
    assert_no_secret(&err, WRONG_PASSWORD);

    let anonymous = new_client(&server, None);
    let err = anonymous
        .manifest_info("team/app", "v1")
        .await
        .expect_err("anonymous");
    assert_unauthorized(&err, false);
    assert!(err.to_string().contains("needs credentials"), "{err}");
}
