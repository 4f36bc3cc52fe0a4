//! The provider binary through the engine's call sequence, without Docker: start-up, plugin
//! info, schema, config, check (failures, secrets, unknowns, wrong types), diff, preview
//! create, delete, unimplemented RPCs and shutdown.

mod common;

use common::*;
use docker_buildkit::generated::pulumirpc::{
    CheckRequest, ConfigureRequest, GetSchemaRequest, InvokeRequest,
};
use serde_json::{Value, json};

fn program_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /\n"),
            ("app/hello.txt", "hi\n"),
        ],
    );
    dir
}

#[tokio::test]
async fn engine_sequence_without_docker() {
    let dir = program_dir();
    let mut h = Harness::start(&[]).await;

    // GetPluginInfo: the crate's version.
    let info = h.client.get_plugin_info(()).await.unwrap().into_inner();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));

    // CheckConfig accepts a host; rejects a wrong type naming the key.
    let ok = h
        .client
        .check_config(CheckRequest {
            urn: "urn:pulumi:test::proj::pulumi:providers:docker-buildkit::default".into(),
            news: Some(to_struct(
                &json!({"host": "unix:///tmp/x.sock", "version": "0.1.0"}),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.failures.is_empty(), "{:?}", ok.failures);
    let bad = h
        .client
        .check_config(CheckRequest {
            news: Some(to_struct(&json!({"host": 5}))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bad.failures.len(), 1);
    assert_eq!(bad.failures[0].property, "host");

    // Configure via the legacy variables map works too.
    let resp = h
        .client
        .configure(ConfigureRequest {
            variables: [(
                "docker-buildkit:config:host".to_string(),
                "unix:///nowhere.sock".to_string(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.supports_preview);
    h.configure(dir.path(), json!({})).await;

    // Check: a good input set, with a secret password and the context resolved against the
    // program directory.
    let news = json!({
        "name": "127.0.0.1:5000/app",
        "context": "app",
        "buildArgs": {"VERSION": "1.2"},
        "registry": {"server": "127.0.0.1:5000", "username": "u", "password": secret(json!("hunter2"))},
    });
    let checked = h.check_ok("app", &json!({}), &news).await;
    let c = from_struct(&checked);
    assert!(
        is_secret(&c["registry"]["password"]),
        "password stays secret: {c}"
    );
    assert_eq!(c["registry"]["password"]["value"], "hunter2");
    assert_eq!(c["inlineCache"], true, "defaults are filled");
    assert_eq!(c["push"], true);
    let hash = c["contextHash"]
        .as_str()
        .expect("check computes contextHash")
        .to_string();
    assert_eq!(hash.len(), 32);

    // A password given in clear is still returned as a secret (the schema says so).
    let mut clear = news.clone();
    clear["registry"]["password"] = json!("hunter2");
    let c2 = from_struct(&h.check_ok("app", &json!({}), &clear).await);
    assert!(is_secret(&c2["registry"]["password"]));

    // Diff against a state with the same inputs: no change.
    let state = checked.clone();
    let d = h.diff("app", &state, &checked).await;
    assert_eq!(d.changes, 1, "DIFF_NONE: {d:?}");

    // Changing only the password is not a change (rotating credentials must not rebuild).
    let mut rotated = news.clone();
    rotated["registry"]["password"] = secret(json!("rotated"));
    rotated["registry"]["username"] = json!("u2");
    let rotated = h.check_ok("app", &json!({}), &rotated).await;
    let d = h.diff("app", &state, &rotated).await;
    assert_eq!(d.changes, 1, "credential rotation is no change: {d:?}");

    // Changing a build arg changes the hash and the diff names it.
    let mut changed = news.clone();
    changed["buildArgs"]["VERSION"] = json!("1.3");
    let changed = h.check_ok("app", &json!({}), &changed).await;
    let d = h.diff("app", &state, &changed).await;
    assert_eq!(d.changes, 2, "DIFF_SOME: {d:?}");
    assert!(d.diffs.contains(&"buildArgs".to_string()), "{:?}", d.diffs);
    assert!(
        d.detailed_diff.contains_key("contextHash"),
        "{:?}",
        d.detailed_diff
    );
    assert!(d.replaces.is_empty(), "an image is updated, never replaced");

    // Preview create: no Docker (the configured host does not exist), unknown outputs, the
    // secret still wrapped.
    let created = h
        .create("app", &checked, true)
        .await
        .expect("preview never touches Docker");
    let props = from_struct(created.properties.as_ref().unwrap());
    assert!(is_unknown(&props["digest"]), "{props}");
    assert!(is_unknown(&props["ref"]));
    assert!(is_unknown(&props["repoDigest"]));
    assert_eq!(props["contextHash"], json!(hash));
    assert!(is_secret(&props["registry"]["password"]));

    // Delete removes nothing and succeeds.
    h.delete("app", "id", created.properties.as_ref().unwrap())
        .await
        .unwrap();

    // RPCs we do not serve answer UNIMPLEMENTED.
    let err = h.client.invoke(InvokeRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let status = h.stop().await;
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn unknowns_survive_check_and_preview() {
    let dir = program_dir();
    let mut h = Harness::start(&[]).await;
    h.configure(dir.path(), json!({})).await;
    // `name` comes from another resource that does not exist yet, and a tag too.
    let news = json!({"name": unknown(), "context": "app", "tags": [unknown()]});
    let checked = h.check_ok("app", &json!({}), &news).await;
    let c = from_struct(&checked);
    assert!(is_unknown(&c["name"]), "{c}");
    assert!(is_unknown(&c["tags"][0]), "{c}");
    // The context is known, so the hash is too.
    assert_eq!(c["contextHash"].as_str().map(str::len), Some(32));

    // An unknown context makes the hash unknown.
    let c = from_struct(
        &h.check_ok(
            "app",
            &json!({}),
            &json!({"name": "a/b", "context": unknown()}),
        )
        .await,
    );
    assert!(is_unknown(&c["contextHash"]), "{c}");

    let created = h.create("app", &checked, true).await.unwrap();
    let props = from_struct(created.properties.as_ref().unwrap());
    assert!(is_unknown(&props["name"]));
    assert!(is_unknown(&props["digest"]));

    // Output values (the newer encoding) decode the same way.
    let c = from_struct(
        &h.check_ok(
            "app",
            &json!({}),
            &json!({"name": output_unknown(), "context": "app"}),
        )
        .await,
    );
    assert!(is_unknown(&c["name"]), "{c}");

    // Diff with an unknown name is a change.
    let state = h
        .check_ok("app", &json!({}), &json!({"name": "a/b", "context": "app"}))
        .await;
    let d = h.diff("app", &state, &checked).await;
    assert_eq!(d.changes, 2);
    assert!(d.diffs.contains(&"name".to_string()));

    // Up (not preview) with unknown inputs is refused clearly.
    let err = h.create("app", &checked, false).await.unwrap_err();
    assert!(err.message().contains("unknown"), "{}", err.message());
}

#[tokio::test]
async fn bad_inputs_are_check_failures_naming_the_property() {
    let dir = program_dir();
    let mut h = Harness::start(&[]).await;
    h.configure(dir.path(), json!({})).await;

    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"context": "app"}), "name", "missing field"),
        (
            json!({"name": 42, "context": "app"}),
            "name",
            "expected a string",
        ),
        (
            json!({"name": "a/b", "context": "app", "registry": ["x"]}),
            "registry",
            "expected an object",
        ),
        (
            json!({"name": "a/b", "context": "app", "platforms": "linux/amd64"}),
            "platforms",
            "expected a list of strings",
        ),
        (
            json!({"name": "a/b", "context": "app", "push": "yes"}),
            "push",
            "expected a boolean",
        ),
        (
            json!({"name": "a/b", "context": "app", "buildArgs": {"A": 1}}),
            "buildArgs.A",
            "expected a string",
        ),
        (
            json!({"name": "Not A Ref", "context": "app"}),
            "name",
            "not a valid image reference",
        ),
        (
            json!({"name": "a/b", "context": "missing"}),
            "context",
            "does not exist",
        ),
        (
            json!({"name": "a/b", "context": "app", "dockerfile": "nope.Dockerfile"}),
            "dockerfile",
            "does not exist",
        ),
        (
            json!({"name": "a/b", "context": "app", "dockerfile": "Dockerfile", "dockerfileInline": "FROM scratch"}),
            "dockerfileInline",
            "not both",
        ),
        (
            json!({"name": "a/b", "context": "app", "platforms": ["linux"]}),
            "platforms[0]",
            "os/arch",
        ),
        (
            json!({"name": "a/b", "context": "app", "platforms": ["linux/amd64", "linux/arm64", "linux/amd64"]}),
            "platforms[2]",
            "listed twice",
        ),
        (
            json!({"name": "a/b", "context": "app", "network": "bridge"}),
            "network",
            "not a network mode",
        ),
        (
            json!({"name": "a/b", "context": "app", "tags": ["-x"]}),
            "tags[0]",
            "tag",
        ),
        (
            json!({"name": "a/b", "context": "app", "registry": {"server": "r", "username": "u"}}),
            "registry.password",
            "both",
        ),
    ];
    for (news, property, reason) in cases {
        h.assert_check_fails(&news, property, reason).await;
    }
}

#[tokio::test]
async fn schema_and_unknown_types() {
    let mut h = Harness::start(&[]).await;
    let schema = h
        .client
        .get_schema(GetSchemaRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schema;
    let schema: Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(schema["name"], "docker-buildkit");
    let image = &schema["resources"][TOKEN];
    assert_eq!(image["requiredInputs"], json!(["name"]));
    assert_eq!(
        image["inputProperties"]["registry"]["$ref"],
        "#/types/docker-buildkit:index:Registry"
    );
    assert_eq!(
        schema["types"]["docker-buildkit:index:Registry"]["properties"]["password"]["secret"],
        true
    );
    assert!(image["properties"]["contextHash"].is_object());
    assert!(
        image["inputProperties"].get("contextHash").is_none(),
        "contextHash is an output only"
    );

    // A resource type this provider does not have.
    let err = h
        .client
        .check(CheckRequest {
            urn: "urn:pulumi:test::proj::docker-buildkit:index:Nope::x".into(),
            news: Some(to_struct(&json!({}))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("docker-buildkit:index:Nope"),
        "{}",
        err.message()
    );
    assert!(err.message().contains(TOKEN));
}

#[tokio::test]
async fn exits_when_the_engine_goes_away() {
    // Point the provider at an engine address that stops answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut child =
        std::process::Command::new(env!("CARGO_BIN_EXE_pulumi-resource-docker-buildkit"))
            .arg(&addr)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.trim().parse::<u16>().is_ok(), "{line:?}");
    drop(listener);
    let status = wait_timeout(&mut child, std::time::Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}
