//! Check rejects what `up` would (issue 9, items 4, 9, 10 and 11), through the provider
//! binary over gRPC and without Docker: every bad input is a CheckFailure naming its
//! property; Create and Update refuse the same inputs before any daemon is contacted;
//! configuration with an unsupported host is refused; an undecodable request is a short
//! INVALID_ARGUMENT; an unknown property is a warning naming the closest known one; and no
//! failure or error quotes a secret value. Also the build inputs Check judges by the files
//! and the environment (`ssh`), and how `secrets` go through Check and Diff: secret, their
//! ids hashed, their values never.

mod common;

use common::*;
use docker_buildkit::generated::pulumirpc::{CheckRequest, ConfigureRequest};
use prost_types::value::Kind;
use serde_json::{Value, json};

fn program_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /\n"),
            ("keys/id_ed25519", "not really a key\n"),
        ],
    );
    dir
}

/// `{"name": "a/b", "context": "app"}` with `extra` merged in.
fn inputs(extra: Value) -> Value {
    let mut v = json!({"name": "a/b", "context": "app"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[tokio::test]
async fn check_rejects_what_up_would_naming_the_property() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (inputs(json!({"name": "[:5000/app"})), "name", "IPv6"),
        (
            inputs(json!({"dockerfileInline": ""})),
            "dockerfileInline",
            "empty",
        ),
        (
            inputs(json!({"registry": {"server": "https://", "username": "u", "password": "p"}})),
            "registry.server",
            "names no registry host",
        ),
        (
            inputs(json!({"buildArgs": {"A": "x\u{0}y"}})),
            "buildArgs.A",
            "NUL",
        ),
        (
            inputs(json!({"labels": {"k": "v\u{0}"}})),
            "labels.k",
            "NUL",
        ),
        (inputs(json!({"target": "a\u{0}b"})), "target", "NUL"),
        (
            inputs(json!({"triggers": ["ok", "x\u{0}"]})),
            "triggers[1]",
            "NUL",
        ),
        (
            inputs(json!({"dockerfile": "Docker\u{0}file"})),
            "dockerfile",
            "NUL",
        ),
        (
            // serde would read a struct from this list.
            inputs(json!({"registry": ["r.io", null, null]})),
            "registry",
            "expected an object",
        ),
        (
            inputs(json!({"cacheFrom": {"a": "b"}})),
            "cacheFrom",
            "expected a list of strings, got an object",
        ),
        (
            inputs(json!({"addHosts": ["db:10.0.0.2", "db.internal"]})),
            "addHosts[1]",
            "use host:ip",
        ),
        (
            inputs(json!({"addHosts": ["v6:2001:db8::1", "my host:10.0.0.2"]})),
            "addHosts[1]",
            "use host:ip",
        ),
        (
            inputs(json!({"addHosts": ["db:not-an-ip"]})),
            "addHosts[0]",
            "use host:ip",
        ),
        (
            inputs(json!({"ssh": [{"paths": ["keys/id_ed25519"]}, {"id": "default"}]})),
            "ssh[1].id",
            "\"default\" is the id of an earlier entry",
        ),
        (
            inputs(json!({"ssh": [{"id": ""}]})),
            "ssh[0].id",
            "must not be empty",
        ),
        (
            inputs(json!({"ssh": [{"id": "git", "paths": ["keys/id_ed25519", "keys/missing"]}]})),
            "ssh[0].paths[1]",
            "keys/missing: No such file",
        ),
        (
            inputs(json!({"ssh": [{"id": "git", "paths": ["keys"]}]})),
            "ssh[0].paths[0]",
            "neither an ssh agent socket nor a key file",
        ),
        (
            inputs(json!({"ssh": [{"id": "git", "paths": "keys/id_ed25519"}]})),
            "ssh[0].paths",
            "expected a list of strings",
        ),
        (inputs(json!({"pull": "yes"})), "pull", "expected a boolean"),
    ];
    for (news, property, reason) in cases {
        h.assert_check_fails(&news, property, reason).await;
    }
}

#[tokio::test]
async fn bad_secrets_are_named_by_id_and_never_quoted() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let state = h.check_ok("app", &json!({}), &inputs(json!({}))).await;
    let big = format!("big-secret-4711{}", "x".repeat(500 * 1024));
    // (inputs, property, what the reason says, the value that must not show)
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (
            inputs(json!({"secrets": {"npmrc": 918273645}})),
            "secrets.npmrc",
            "expected a string, got a number",
            "918273645",
        ),
        (
            inputs(json!({"secrets": secret(json!({"npmrc": ["tok-8080"]}))})),
            "secrets.npmrc",
            "expected a string, got a list",
            "tok-8080",
        ),
        (
            inputs(json!({"secrets": "tok-6060"})),
            "secrets",
            "expected a map of strings",
            "tok-6060",
        ),
        (
            inputs(json!({"secrets": {"big": big}})),
            "secrets.big",
            "at most 500 KiB",
            "big-secret-4711",
        ),
        (
            inputs(json!({"secrets": {"a b": "tok-7070"}})),
            "secrets[\"a b\"]",
            "ids of letters, digits",
            "tok-7070",
        ),
        (
            inputs(json!({"secrets": {"": "tok-9090"}})),
            "secrets",
            "ids of letters, digits",
            "tok-9090",
        ),
    ];
    for (news, property, reason, value) in cases {
        let r = h.check("app", &json!({}), &news).await;
        assert!(
            r.failures
                .iter()
                .any(|f| f.property == property && f.reason.contains(reason)),
            "a failure on {property} saying {reason:?}: {:?}",
            r.failures
        );
        for f in &r.failures {
            assert!(!f.reason.contains(value), "{value} quoted: {f:?}");
        }
        // Create and Update, given the same inputs unchecked, refuse without quoting it.
        let props = to_struct(&news);
        for err in [
            h.create("app", &props, false).await.unwrap_err(),
            h.update("app", "id", &state, &props, false)
                .await
                .unwrap_err(),
        ] {
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.message().contains(property), "{}", err.message());
            assert!(!err.message().contains(value), "{}", err.message());
        }
    }
    for value in ["918273645", "tok-8080", "big-secret-4711", "tok-7070"] {
        assert!(!h.log_text().contains(value), "{value} logged");
    }
}

#[tokio::test]
async fn ssh_without_paths_needs_an_agent_in_the_providers_environment() {
    let dir = program_dir();
    let news = inputs(json!({"ssh": [{"id": "git"}]}));
    // No SSH_AUTH_SOCK: the failure says how to fix it.
    let mut h = Harness::start(&[("SSH_AUTH_SOCK", "")]).await;
    h.configure(dir.path(), json!({"host": NO_DAEMON})).await;
    for reason in ["SSH_AUTH_SOCK", "ssh-agent", "`paths`"] {
        h.assert_check_fails(&news, "ssh[0]", reason).await;
    }
    // An SSH_AUTH_SOCK that names no agent.
    let gone = dir.path().join("gone.sock");
    let mut h = Harness::start(&[("SSH_AUTH_SOCK", gone.to_str().unwrap())]).await;
    h.configure(dir.path(), json!({"host": NO_DAEMON})).await;
    h.assert_check_fails(&news, "ssh[0]", "names no running ssh agent")
        .await;
    // An agent's socket: the check passes, as it does for key files and sockets in `paths`.
    let sock = dir.path().join("agent.sock");
    let _agent = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut h = Harness::start(&[("SSH_AUTH_SOCK", sock.to_str().unwrap())]).await;
    h.configure(dir.path(), json!({"host": NO_DAEMON})).await;
    h.check_ok("app", &json!({}), &news).await;
    let with_paths = inputs(json!({"ssh": [
        {"id": "key", "paths": ["keys/id_ed25519"]},
        {"id": "agent", "paths": [sock.to_str().unwrap()]},
    ]}));
    h.check_ok("app", &json!({}), &with_paths).await;
}

#[tokio::test]
async fn secret_ids_are_hashed_and_their_values_never_are() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let with = |secrets: Value| inputs(json!({"secrets": secrets}));
    let plain = from_struct(&h.check_ok("app", &json!({}), &inputs(json!({}))).await);
    let state = h
        .check_ok("app", &json!({}), &with(json!({"npmrc": "tok-1"})))
        .await;
    let c = from_struct(&state);
    assert!(is_secret(&c["secrets"]), "secret as the schema says: {c}");
    assert_eq!(c["secrets"]["value"], json!({"npmrc": "tok-1"}));
    let hash = c["contextHash"]
        .as_str()
        .unwrap_or_else(|| panic!("a plain hash: {c}"));
    assert_ne!(
        Some(hash),
        plain["contextHash"].as_str(),
        "the id is hashed"
    );

    // Another value, even given as a secret: the same hash, and no change in the diff.
    let rotated = h
        .check_ok(
            "app",
            &json!({}),
            &with(secret(json!({"npmrc": "a longer tok-2"}))),
        )
        .await;
    assert_eq!(from_struct(&rotated)["contextHash"], json!(hash));
    let d = h.diff("app", &state, &rotated).await;
    assert_eq!(d.changes, 1, "DIFF_NONE: {d:?}");
    // A value not known yet (preview): the hash is, and nothing changes.
    let pending = h
        .check_ok("app", &json!({}), &with(json!({"npmrc": unknown()})))
        .await;
    assert_eq!(from_struct(&pending)["contextHash"], json!(hash));
    let d = h.diff("app", &state, &pending).await;
    assert_eq!(d.changes, 1, "DIFF_NONE: {d:?}");
    // Another id: another hash, and the diff names it.
    let more = h
        .check_ok(
            "app",
            &json!({}),
            &with(json!({"npmrc": "tok-1", "aws": "tok-3"})),
        )
        .await;
    assert_ne!(from_struct(&more)["contextHash"], json!(hash));
    let d = h.diff("app", &state, &more).await;
    assert_eq!(d.changes, 2, "DIFF_SOME: {d:?}");
    assert!(d.diffs.contains(&"secrets".to_string()), "{:?}", d.diffs);
    assert!(d.detailed_diff.contains_key("contextHash"), "{d:?}");
    for value in ["tok-1", "tok-2", "tok-3"] {
        assert!(!h.log_text().contains(value), "{value} logged");
    }
}

#[tokio::test]
async fn a_dockerfile_the_os_refuses_is_reported_under_dockerfile_only() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let r = h
        .check(
            "app",
            &json!({}),
            &inputs(json!({"dockerfile": "Docker\u{0}file"})),
        )
        .await;
    let props: Vec<&str> = r.failures.iter().map(|f| f.property.as_str()).collect();
    assert_eq!(props, vec!["dockerfile"], "{:?}", r.failures);
}

#[tokio::test]
async fn create_and_update_refuse_unchecked_inputs_before_contacting_docker() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let digest = format!("sha256:{}", "a".repeat(64));
    let props = to_struct(&json!({
        "name": format!("127.0.0.1:5000/app@{digest}"),
        "context": "app",
        "network": "bridge2",
        "platforms": ["linux"],
    }));
    let state = h.check_ok("app", &json!({}), &inputs(json!({}))).await;
    for preview in [false, true] {
        let err = h.create("app", &props, preview).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        let err2 = h
            .update("app", "id", &state, &props, preview)
            .await
            .unwrap_err();
        assert_eq!(err2.code(), tonic::Code::InvalidArgument, "{err2:?}");
        for e in [&err, &err2] {
            let m = e.message();
            for property in ["name:", "network:", "platforms[0]:"] {
                assert!(m.contains(property), "{property} in {m}");
            }
            assert!(!m.contains("Docker daemon"), "no daemon contact: {m}");
        }
    }
}

#[tokio::test]
async fn provider_config_with_an_unsupported_host_is_refused() {
    let dir = program_dir();
    let mut h = Harness::start(&[]).await;
    for (config, reason) in [
        (json!({"host": "ftp://x"}), "unix://"),
        (json!({"host": "tcp://"}), "names no address"),
        (json!({"host": "unix:///run/d\u{0}.sock"}), "NUL"),
        (
            json!({"host": ["unix:///x"]}),
            "expected a string, got a list",
        ),
    ] {
        let r = h
            .client
            .check_config(CheckRequest {
                news: Some(to_struct(&config)),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.failures.len(), 1, "{config}: {:?}", r.failures);
        assert_eq!(r.failures[0].property, "host");
        assert!(r.failures[0].reason.contains(reason), "{:?}", r.failures);

        let err = h
            .client
            .configure(ConfigureRequest {
                args: Some(to_struct(&config)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{config}");
        assert!(err.message().contains("host: "), "{}", err.message());
    }
    // The legacy variables map is checked the same way.
    let err = h
        .client
        .configure(ConfigureRequest {
            variables: [(
                "docker-buildkit:config:host".to_string(),
                "ftp://x".to_string(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // A good host is still accepted.
    h.configure(dir.path(), json!({"host": NO_DAEMON})).await;
}

#[tokio::test]
async fn a_struct_nested_too_deeply_is_a_check_failure_naming_the_property_in_one_sentence() {
    let mut h = Harness::start(&[]).await;
    let mut v = prost_types::Value {
        kind: Some(Kind::StringValue("leaf".into())),
    };
    for _ in 0..150 {
        v = prost_types::Value {
            kind: Some(Kind::StructValue(prost_types::Struct {
                fields: [("a".to_string(), v)].into_iter().collect(),
            })),
        };
    }
    let news = prost_types::Struct {
        fields: [("name".to_string(), v)].into_iter().collect(),
    };
    // Issue 18: it used to be refused as an undecodable request (INVALID_ARGUMENT); it is a
    // check failure on the property, like any other wrongly shaped input.
    let response = h
        .client
        .check(CheckRequest {
            urn: urn("app"),
            news: Some(news),
            ..Default::default()
        })
        .await
        .expect("a check response, not a request error")
        .into_inner();
    let f = response
        .failures
        .iter()
        .find(|f| f.property == "name")
        .unwrap_or_else(|| panic!("a failure naming `name`: {:?}", response.failures));
    assert!(f.reason.len() < 200, "one short sentence: {}", f.reason);
    // `name` is a string: the type is what is wrong (deeper still, the nesting is named;
    // crates/pulumi-kit's tests cover both).
    assert!(
        f.reason.contains("expected a string") || f.reason.contains("nested"),
        "{}",
        f.reason
    );
    // The server still serves after it.
    h.client.get_plugin_info(()).await.unwrap();
}

#[tokio::test]
async fn unknown_properties_are_warnings_naming_the_closest_known_one() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let news = inputs(json!({
        "buildArg": {"A": "1"},
        "secret": "x",
        "registry": {"server": "r.io", "usrname": "u"},
    }));
    // Not a failure: the check passes.
    h.check_ok("app", &json!({}), &news).await;
    let warnings: Vec<String> = h
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.severity == 2 && l.urn == urn("app"))
        .map(|l| l.message.clone())
        .collect();
    for expected in [
        "buildArg is not a known property and is ignored: did you mean buildArgs?",
        "secret is not a known property and is ignored",
        "registry.usrname is not a known property and is ignored: did you mean registry.username?",
    ] {
        assert!(
            warnings.iter().any(|w| w.starts_with(expected)),
            "{expected:?} in {warnings:?}"
        );
    }
}

#[tokio::test]
async fn no_failure_or_error_quotes_a_secret_value() {
    let dir = program_dir();
    let mut h = Harness::dockerless(dir.path()).await;
    let state = h.check_ok("app", &json!({}), &inputs(json!({}))).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            inputs(json!({"registry": {"server": "r.io", "username": "u",
                "password": secret(json!(918273645))}})),
            "registry.password",
            "918273645",
        ),
        (
            inputs(json!({"tags": secret(json!(["ok", "-bad-tag-1234"]))})),
            "tags[1]",
            "-bad-tag-1234",
        ),
        (
            inputs(json!({"name": secret(json!("Not A Ref 5678"))})),
            "name",
            "Not A Ref 5678",
        ),
        (
            inputs(json!({"registry": secret(json!({"server": "https://",
                "username": "u", "password": "pw-2468"}))})),
            "registry.server",
            "https://",
        ),
        (
            inputs(json!({"push": secret(json!("yes-1357"))})),
            "push",
            "yes-1357",
        ),
        (
            inputs(json!({"registry": {"server": "r.io", "username": "u",
                "password": {"nested": "pw-9753"}}})),
            "registry.password",
            "pw-9753",
        ),
    ];
    for (news, property, value) in cases {
        let r = h.check("app", &json!({}), &news).await;
        let f = r
            .failures
            .iter()
            .find(|f| f.property == property)
            .unwrap_or_else(|| panic!("a failure on {property} for {news}: {:?}", r.failures));
        assert!(
            f.reason.contains("expected"),
            "names the expected type: {}",
            f.reason
        );
        for f in &r.failures {
            assert!(!f.reason.contains(value), "{value} quoted: {f:?}");
        }
        // Create and Update, given the same inputs unchecked, refuse without quoting it.
        let props = to_struct(&news);
        let err = h.create("app", &props, false).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(property), "{}", err.message());
        assert!(!err.message().contains(value), "{}", err.message());
        let err = h
            .update("app", "id", &state, &props, false)
            .await
            .unwrap_err();
        assert!(!err.message().contains(value), "{}", err.message());
    }
    assert!(!h.log_text().contains("918273645"));
}

/// Issue 20, item 5: in preview an input may be unknown (it comes from a resource not made
/// yet). The Dockerfile check skips what depends on it and says nothing false; the same
/// inputs known are checked (so each pass below is the skip, not a check that never runs).
#[tokio::test]
async fn unknown_inputs_skip_the_dockerfile_checks_that_depend_on_them() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            (
                "app/Dockerfile",
                "ARG SRC\nFROM scratch AS build\nARG SRC\nCOPY ${SRC} /app/\n\nFROM scratch AS release\nCOPY --from=build /app /app\n",
            ),
            ("app/a.txt", "a\n"),
            ("bare/a.txt", "a context without a Dockerfile\n"),
        ],
    );
    let mut h = Harness::dockerless(dir.path()).await;

    // A build arg naming a source the context lacks; unknown, the source is not judged.
    h.assert_check_fails(
        &inputs(json!({"buildArgs": {"SRC": "missing.txt"}})),
        "dockerfile",
        "`missing.txt` is not in the build context",
    )
    .await;
    h.check_ok(
        "app",
        &json!({}),
        &inputs(json!({"buildArgs": {"SRC": "a.txt"}})),
    )
    .await;
    h.check_ok(
        "app",
        &json!({}),
        &inputs(json!({"buildArgs": {"SRC": unknown()}})),
    )
    .await;
    h.check_ok("app", &json!({}), &inputs(json!({"buildArgs": unknown()})))
        .await;

    // A target that is not a stage; unknown, the stages are not judged.
    h.assert_check_fails(
        &inputs(json!({"target": "relase", "buildArgs": {"SRC": "a.txt"}})),
        "target",
        "is not a stage",
    )
    .await;
    h.check_ok(
        "app",
        &json!({}),
        &inputs(json!({"target": unknown(), "buildArgs": {"SRC": "a.txt"}})),
    )
    .await;

    // An inline Dockerfile: known, checked against the context; unknown, nothing is said
    // about it, nor about the missing Dockerfile it replaces.
    let bare =
        |inline: Value| json!({"name": "a/b", "context": "bare", "dockerfileInline": inline});
    h.assert_check_fails(
        &bare(json!("FROM scratch\nCOPY missing.txt /\n")),
        "dockerfileInline",
        "`missing.txt` is not in the build context",
    )
    .await;
    h.check_ok(
        "app",
        &json!({}),
        &bare(json!("FROM scratch\nCOPY a.txt /\n")),
    )
    .await;
    h.check_ok("app", &json!({}), &bare(unknown())).await;
}
