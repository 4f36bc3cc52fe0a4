//! The Image lifecycle against a real dockerd and a real registry, played as the engine
//! plays it: preview → up → up again → edit an ignored file → edit an included file →
//! update → refresh → destroy; plus inline cache, cross-building, credentials from the
//! Docker CLI config, cancellation and every failure a user can cause.

mod common;

use std::time::{Duration, Instant};

use common::services::{Services, repo_path};
use common::*;
use serde_json::{Value, json};

fn assert_no_password(s: &Services, h: &Harness, extra: &str) {
    for (what, text) in [
        ("logs", h.log_text()),
        ("stderr", h.stderr_text()),
        ("error", extra.to_string()),
    ] {
        assert!(
            !text.contains(&s.password),
            "the registry password leaked into {what}"
        );
    }
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn lifecycle_preview_up_noop_edit_update_refresh_destroy() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("app/Dockerfile", "FROM scratch\nCOPY . /app/\n"),
            ("app/.dockerignore", "ignored.txt\n*.log\n"),
            ("app/main.txt", "version 1\n"),
            ("app/ignored.txt", "noise 1\n"),
            ("app/sub/kept.log", "nested logs are not matched by *.log\n"),
        ],
    );
    let repo = s.repo("lifecycle");
    let inputs = json!({"name": repo, "context": "app", "registry": s.registry_input()});

    // preview: no Docker at all, unknown outputs.
    let mut offline = Harness::dockerless(dir.path()).await;
    let checked = offline.check_ok("img", &json!({}), &inputs).await;
    let preview = offline
        .create("img", &checked, true)
        .await
        .expect("preview needs no Docker");
    let p = from_struct(preview.properties.as_ref().unwrap());
    assert!(is_unknown(&p["digest"]) && is_unknown(&p["ref"]));

    // up: build and push; logs stream as docker plain progress.
    let mut h = s.harness(dir.path()).await;
    let checked = h.check_ok("img", &json!({}), &inputs).await;
    let created = h
        .create("img", &checked, false)
        .await
        .expect("up builds and pushes");
    let state = created.properties.clone().unwrap();
    let st = from_struct(&state);
    let digest = st["digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(st["ref"], json!(format!("{repo}@{digest}")));
    assert_eq!(st["repoDigest"], st["ref"]);
    assert_eq!(created.id, format!("{repo}@{digest}"));
    assert!(
        is_secret(&st["registry"]["password"]),
        "state keeps the password secret"
    );
    let (status, got, manifest) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 200);
    assert_eq!(got, digest, "the digest output is the pushed manifest's");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let logs = h.log_text();
    assert!(
        logs.contains("COPY . /app/"),
        "build steps are logged:\n{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.starts_with('#') && l.contains(" DONE ")),
        "plain progress:\n{logs}"
    );
    assert!(
        h.logs
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.ephemeral && l.urn == urn("img")),
        "progress is ephemeral and carries the URN"
    );
    let warnings: Vec<String> = h
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.severity >= 2)
        .map(|l| l.message.clone())
        .collect();
    assert!(
        warnings.is_empty(),
        "a first build (no cache to import yet) warns of nothing: {warnings:?}"
    );
    assert_no_password(&s, &h, "");

    // up again with nothing changed: Diff says no change without touching Docker, so the
    // engine calls nothing else.
    let again = offline.check_ok("img", &json!({}), &inputs).await;
    assert_eq!(
        offline.diff("img", &state, &again).await.changes,
        1,
        "DIFF_NONE"
    );

    // An edit to an ignored file is no change either.
    std::fs::write(dir.path().join("app/ignored.txt"), "noise 2\n").unwrap();
    let ignored = offline.check_ok("img", &json!({}), &inputs).await;
    assert_eq!(
        offline.diff("img", &state, &ignored).await.changes,
        1,
        "ignored edits do not rebuild"
    );

    // An edit to an included file: preview shows it and names the file.
    std::fs::write(dir.path().join("app/main.txt"), "version 2\n").unwrap();
    let edited = offline.check_ok("img", &json!({}), &inputs).await;
    let d = offline.diff("img", &state, &edited).await;
    assert_eq!(d.changes, 2, "DIFF_SOME");
    assert!(
        d.detailed_diff.contains_key("contextHash"),
        "{:?}",
        d.detailed_diff
    );
    let notes = offline.log_text();
    assert!(
        notes.contains("main.txt"),
        "the diff names the changed file: {notes}"
    );

    // update: a new image, a new digest.
    let edited = h.check_ok("img", &json!({}), &inputs).await;
    let updated = h
        .update("img", &created.id, &state, &edited, false)
        .await
        .expect("update rebuilds");
    let new_state = updated.properties.unwrap();
    let ns = from_struct(&new_state);
    let new_digest = ns["digest"].as_str().unwrap().to_string();
    assert_ne!(new_digest, digest);
    let (_, got, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(got, new_digest);

    // refresh: still there → same state; deleted from the registry → gone.
    let read = h
        .read("img", &new_digest, &new_state, &edited)
        .await
        .unwrap();
    assert_eq!(read.id, new_digest);
    assert_eq!(
        from_struct(read.properties.as_ref().unwrap())["digest"],
        json!(new_digest)
    );
    s.delete_manifest(repo_path(&repo), &new_digest).await;
    let read = h
        .read("img", &new_digest, &new_state, &edited)
        .await
        .unwrap();
    assert_eq!(
        read.id, "",
        "an image deleted from the registry is reported gone"
    );

    // destroy: removes nothing, succeeds.
    h.delete("img", &new_digest, &new_state).await.unwrap();
    assert_no_password(&s, &h, "");
}

// Prunes the daemon's build cache: no other build of this file may run meanwhile.
#[tokio::test]
#[serial_test::serial(builder_cache)]
async fn inline_cache_is_reused_from_a_clean_daemon() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = uuid::Uuid::new_v4().to_string();
    write_tree(
        dir.path(),
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nRUN echo {marker} > /built\nCOPY data.txt /data.txt\n",
                    s.base_image
                ),
            ),
            ("data.txt", "cached data\n"),
        ],
    );
    let repo = s.repo("cache");
    // skipIfPushed off: this is about rebuilding from the inline cache, not reusing the image.
    let inputs = json!({"name": repo, "context": ".", "network": "none", "skipIfPushed": false,
        "registry": s.registry_input()});
    let mut h = s.harness(dir.path()).await;
    let checked = h.check_ok("c", &json!({}), &inputs).await;
    let first = from_struct(
        h.create("c", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );

    // A clean daemon: no local image, no build cache.
    let out = s.docker(&["image", "rm", "-f", &format!("{repo}:latest")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.docker(&["builder", "prune", "-a", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut h2 = s.harness(dir.path()).await;
    let second = from_struct(
        h2.create("c", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    let logs = h2.log_text();
    assert!(
        logs.contains("CACHED"),
        "layers come from the inline cache:\n{logs}"
    );
    assert!(
        !logs.contains(&format!("#0 {marker}")) && !logs.lines().any(|l| l.ends_with(&marker)),
        "the RUN step did not run again:\n{logs}"
    );
    assert_eq!(first["digest"], second["digest"], "the same image");
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn cross_build_linux_arm64() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
            ("hello.txt", "arm\n"),
        ],
    );
    let repo = s.repo("arm64");
    let inputs =
        json!({"name": repo, "platforms": ["linux/arm64"], "registry": s.registry_input()});
    let mut h = s.harness(dir.path()).await;
    let checked = h.check_ok("a", &json!({}), &inputs).await;
    let st = from_struct(
        h.create("a", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    let (_, digest, manifest) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(st["digest"], json!(digest));
    let config = s
        .get_blob(
            repo_path(&repo),
            manifest["config"]["digest"].as_str().unwrap(),
        )
        .await;
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn tags_push_false_and_docker_config_credentials() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "tags\n")],
    );
    let repo = s.repo("tags");

    // Credentials from $DOCKER_CONFIG/config.json, no `registry` input.
    let cfg = tempfile::tempdir().unwrap();
    let auth = base64_encode(&format!("{}:{}", s.user, s.password));
    std::fs::write(
        cfg.path().join("config.json"),
        json!({"auths": {s.registry.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let mut h = Harness::start(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap())]).await;
    h.configure(dir.path(), s.config()).await;
    let inputs = json!({"name": format!("{repo}:v1"), "tags": ["extra", format!("{repo}:other")]});
    let checked = h.check_ok("t", &json!({}), &inputs).await;
    let st = from_struct(
        h.create("t", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    for tag in ["v1", "extra", "other"] {
        let (status, digest, _) = s.get_manifest(repo_path(&repo), tag).await;
        assert_eq!(status, 200, "tag {tag} pushed");
        assert_eq!(json!(digest), st["digest"], "tag {tag} is the same image");
    }
    let (status, _, _) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(status, 404, "no implicit latest when a tag is given");

    // push: false keeps the image local; the digest is the image id.
    let local = s.repo("local");
    let checked = h
        .check_ok("l", &json!({}), &json!({"name": local, "push": false}))
        .await;
    let st = from_struct(
        h.create("l", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    let out = s.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{local}:latest"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        st["digest"].as_str().unwrap()
    );
    let (status, _, _) = s.get_manifest(repo_path(&local), "latest").await;
    assert_eq!(status, 404, "nothing pushed");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn create_error(h: &mut Harness, inputs: &Value) -> tonic::Status {
    let checked = h.check_ok("f", &json!({}), inputs).await;
    h.create("f", &checked, false)
        .await
        .expect_err("this build must fail")
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn failures_are_clear_and_never_show_the_password() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("ok/Dockerfile", "FROM scratch\nCOPY f /\n"),
            ("ok/f", "x\n"),
            (
                "run/Dockerfile",
                &format!("FROM {}\nRUN echo step-output && exit 3\n", s.base_image),
            ),
            ("bad/Dockerfile", "FROM scratch\nNOT_AN_INSTRUCTION x\n"),
        ],
    );
    let mut h = s.harness(dir.path()).await;

    // Wrong password.
    let wrong = "wrong-password-123";
    let inputs = json!({"name": s.repo("auth"), "context": "ok",
        "registry": {"server": s.registry, "username": s.user, "password": secret(json!(wrong))}});
    let e = create_error(&mut h, &inputs).await;
    assert!(
        e.message()
            .contains(&format!("authentication failed for {}", s.registry)),
        "{}",
        e.message()
    );
    assert!(
        !e.message().contains(wrong)
            && !h.log_text().contains(wrong)
            && !h.stderr_text().contains(wrong)
    );

    // Registry down (nothing listens on the port): found by the build-once lookup, before
    // any build; and, with that lookup off, by the daemon's push.
    let inputs = json!({"name": "127.0.0.1:9/nothing/here", "context": "ok"});
    let e = create_error(&mut h, &inputs).await;
    assert!(
        e.message().starts_with("cannot reach registry 127.0.0.1:9"),
        "{}",
        e.message()
    );
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let inputs = json!({"name": "127.0.0.1:9/nothing/here", "context": "ok", "inlineCache": false, "skipIfPushed": false});
    let e = create_error(&mut h, &inputs).await;
    assert!(
        e.message()
            .starts_with("registry 127.0.0.1:9 is unreachable"),
        "{}",
        e.message()
    );
    assert!(
        e.message().contains("connection refused"),
        "{}",
        e.message()
    );

    // A failing RUN step: the error names the step and the exit code; the full log is
    // logged at error severity.
    let inputs = json!({"name": s.repo("run"), "context": "run", "network": "none", "registry": s.registry_input()});
    let e = create_error(&mut h, &inputs).await;
    assert!(
        e.message().contains("RUN echo step-output && exit 3"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("exit code: 3"), "{}", e.message());
    let errors: Vec<String> = h
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.severity == 3)
        .map(|l| l.message.clone())
        .collect();
    assert!(
        errors.iter().any(|m| m.contains("step-output")),
        "the full log at error severity: {errors:?}"
    );

    // An unparsable Dockerfile: Check says so, naming the input and the line (issue 20);
    // one made unparsable after Check fails the build with BuildKit's own words.
    let bad = json!({"name": s.repo("bad"), "context": "bad", "push": false});
    let r = h.check("f", &json!({}), &bad).await;
    assert!(
        r.failures.iter().any(|f| f.property == "dockerfile"
            && f.reason == "line 2: unknown instruction: NOT_AN_INSTRUCTION"),
        "{:?}",
        r.failures
    );
    write_tree(dir.path(), &[("bad/Dockerfile", "FROM scratch\n")]);
    let checked = h.check_ok("f", &json!({}), &bad).await;
    write_tree(
        dir.path(),
        &[("bad/Dockerfile", "FROM scratch\nNOT_AN_INSTRUCTION x\n")],
    );
    let e = h.create("f", &checked, false).await.unwrap_err();
    assert!(
        e.message().to_lowercase().contains("unknown instruction"),
        "{}",
        e.message()
    );

    // A Dockerfile removed between check and up.
    write_tree(dir.path(), &[("gone/Dockerfile", "FROM scratch\n")]);
    let checked = h
        .check_ok(
            "f",
            &json!({}),
            &json!({"name": s.repo("gone"), "context": "gone", "push": false}),
        )
        .await;
    std::fs::remove_file(dir.path().join("gone/Dockerfile")).unwrap();
    let e = h.create("f", &checked, false).await.unwrap_err();
    assert!(
        e.message().contains("Dockerfile") && e.message().contains("does not exist"),
        "{}",
        e.message()
    );

    assert_no_password(&s, &h, "");

    // The daemon is down (a socket nobody serves).
    let mut down = Harness::dockerless(dir.path()).await;
    let inputs = json!({"name": s.repo("down"), "context": "ok", "registry": s.registry_input()});
    let e = create_error(&mut down, &inputs).await;
    assert!(
        e.message()
            .contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"),
        "{}",
        e.message()
    );
    assert_eq!(e.code(), tonic::Code::Unavailable);
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn cancel_stops_a_running_build() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (dir, marker) = s.busybox_context("echo started-{marker} && sleep 60");
    let mut h = s.harness(dir.path()).await;
    let checked = h
        .check_ok(
            "s",
            &json!({}),
            &json!({"name": s.repo("slow"), "network": "none", "push": false}),
        )
        .await;
    let mut client = h.client.clone();
    let create = h.create_in_background("s", &checked, 0.0);
    // Wait until the RUN step runs, then cancel.
    h.wait_for_log(&format!("started-{marker}"), Duration::from_secs(60))
        .await;
    let cancelled_at = Instant::now();
    client.cancel(()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), create)
        .await
        .expect("create returns soon after Cancel");
    let err = result.unwrap().expect_err("a cancelled build fails");
    assert_eq!(err.code(), tonic::Code::Cancelled, "{err:?}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn refused_cache_import_is_a_warning() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "warn\n")],
    );
    // No credentials anywhere: an empty Docker config, no `registry` input.
    let cfg = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&[("DOCKER_CONFIG", cfg.path().to_str().unwrap())]).await;
    h.configure(dir.path(), s.config()).await;
    let inputs = json!({"name": s.repo("nocreds"), "push": false, "cacheFrom": [format!("{}/private/cache:latest", s.registry)]});
    let checked = h.check_ok("w", &json!({}), &inputs).await;
    h.create("w", &checked, false)
        .await
        .expect("the build itself succeeds uncached");
    let warnings: Vec<String> = h
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.severity == 2)
        .map(|l| l.message.clone())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("cache could not be imported") && w.contains("401")),
        "a refused cache import is a warning: {warnings:?}\nlog:\n{}",
        h.log_text()
    );
}
