//! Trust under real use, against the real dockerd and registry: the digest a build reports is
//! that of the image it built however many builds of one `name:tag` run at once; `noCache`
//! builds; secret values never leave the provider in clear; the engine's timeout stops a
//! build; hashing does not hold up other calls; refresh keeps the resource when the registry
//! cannot answer.

mod common;

use std::time::{Duration, Instant};

use common::services::{Services, repo_path};
use common::*;
use serde_json::{Value, json};

/// The label `dbk.test` of the image behind `reference` (`repo@sha256:…`), read from the
/// registry: the manifest, then its config blob.
async fn label_of(s: &Services, reference: &str) -> Option<String> {
    let (repo, digest) = reference.split_once('@').expect("repo@digest");
    let (status, _, manifest) = s.get_manifest(repo_path(repo), digest).await;
    assert_eq!(status, 200, "{reference} resolves");
    let config = manifest["config"]["digest"].as_str().expect("a config");
    let config = s.get_blob(repo_path(repo), config).await;
    config["config"]["Labels"]["dbk.test"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn parallel_builds_of_one_tag_each_report_their_own_digest() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "same\n")],
    );
    let repo = s.repo("race");
    let h = s.harness(dir.path()).await;
    const N: usize = 8;
    let mut tasks = Vec::new();
    for i in 0..N {
        let mut client = h.client.clone();
        let inputs = json!({
            "name": format!("{repo}:shared"),
            "labels": {"dbk.test": format!("build-{i}")},
            "registry": s.registry_input(),
        });
        tasks.push(tokio::spawn(async move {
            let name = format!("b{i}");
            let checked = client
                .check(docker_buildkit::generated::pulumirpc::CheckRequest {
                    urn: urn(&name),
                    news: Some(to_struct(&inputs)),
                    ..Default::default()
                })
                .await
                .expect("check")
                .into_inner();
            assert!(checked.failures.is_empty(), "{:?}", checked.failures);
            let created = client
                .create(docker_buildkit::generated::pulumirpc::CreateRequest {
                    urn: urn(&name),
                    properties: checked.inputs,
                    ..Default::default()
                })
                .await
                .expect("create")
                .into_inner();
            let st = from_struct(created.properties.as_ref().unwrap());
            (i, st["ref"].as_str().unwrap().to_string())
        }));
    }
    for t in tasks {
        let (i, reference) = t.await.unwrap();
        assert_eq!(
            label_of(&s, &reference).await.as_deref(),
            Some(format!("build-{i}").as_str()),
            "build {i}'s ref {reference} pins the image build {i} made"
        );
    }
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn no_cache_builds_even_when_the_context_was_pushed() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /\n"),
            ("f", "nocache\n"),
        ],
    );
    let repo = s.repo("nocache");
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({"name": repo, "registry": s.registry_input()});
    let checked = h.check_ok("n", &json!({}), &inputs).await;
    h.create("n", &checked, false).await.expect("first build");
    let before = h.log_count();

    let inputs = json!({"name": repo, "registry": s.registry_input(), "noCache": true});
    let checked = h.check_ok("n", &json!({}), &inputs).await;
    h.create("n", &checked, false).await.expect("second build");
    let logs: Vec<String> = h.logs.0.lock().unwrap()[before..]
        .iter()
        .map(|l| l.message.clone())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains("COPY f /")),
        "noCache builds, whatever was pushed before: {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("tagging it instead of building")),
        "noCache never reuses: {logs:?}"
    );
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn secret_build_args_are_masked_everywhere() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = format!("tok{}", uuid::Uuid::new_v4().simple());
    write_tree(
        dir.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM {}\nARG TOKEN\nRUN echo \"value is $TOKEN\" && test -n \"$TOKEN\" && exit 7\n",
                s.base_image
            ),
        )],
    );
    let repo = s.repo("secretarg");
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({
        "name": repo,
        "network": "none",
        "buildArgs": {"TOKEN": secret(json!(token))},
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("sa", &json!({}), &inputs).await;
    let c = from_struct(&checked);
    assert!(
        is_secret(&c["contextHash"]),
        "a hash over a secret is a secret: {c}"
    );
    let err = h
        .create("sa", &checked, false)
        .await
        .expect_err("the RUN step fails");
    let logs = h.log_text();
    assert!(
        logs.contains("value is [secret]"),
        "the step's output is shown, masked:\n{logs}"
    );
    assert!(
        logs.contains("image's history"),
        "a warning says Docker keeps build args in the image:\n{logs}"
    );
    assert!(
        err.message().contains("exit code: 7"),
        "the error still says what failed: {}",
        err.message()
    );
    for (what, text) in [
        ("engine log", logs),
        ("stderr", h.stderr_text()),
        ("error", err.message().to_string()),
    ] {
        assert!(!text.contains(&token), "the secret leaked into the {what}");
        assert!(
            !text.contains(&s.password),
            "the password leaked into the {what}"
        );
    }
    // No `ctx-` tag was published for a context whose hash covers a secret.
    let hash = c["contextHash"]["value"].as_str().unwrap();
    let (status, _, _) = s
        .get_manifest(repo_path(&repo), &format!("ctx-{}", &hash[..16]))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn the_engines_timeout_stops_the_build() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (dir, _marker) = s.busybox_context("echo started-{marker} && sleep 30");
    let mut h = s.harness(dir.path()).await;
    let name = s.repo("timeout");
    let inputs = json!({"name": name, "network": "none", "push": false});
    let checked = h.check_ok("t", &json!({}), &inputs).await;
    let start = Instant::now();
    let err = h
        .create_in_background("t", &checked, 5.0)
        .await
        .unwrap()
        .expect_err("the build takes longer than the timeout");
    let took = start.elapsed();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("timed out after 5 s"),
        "{}",
        err.message()
    );
    assert!(took < Duration::from_secs(20), "it took {took:?}");
    // The daemon stopped the build: had it gone on, it would have tagged the image by now.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let inspect = s.docker(&["image", "inspect", &name]);
    assert!(
        !inspect.status.success(),
        "the build went on after the timeout and made {name}"
    );
}

#[tokio::test]
async fn a_cheap_call_is_answered_while_a_context_hashes() {
    let dir = tempfile::tempdir().unwrap();
    // A context that takes a while to hash: 50,000 small files, and no stat cache.
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
    for d in 0..50 {
        let sub = dir.path().join(format!("d{d}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..1000 {
            std::fs::write(sub.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let h = Harness::start(&[("DOCKER_BUILDKIT_NO_CACHE", "1")]).await;
    let mut h = h;
    h.configure(dir.path(), json!({"host": NO_DAEMON})).await;
    // More hashes at once than the runtime has worker threads (one per core; CI has 2).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut checks = Vec::new();
    for i in 0..=workers {
        let mut client = h.client.clone();
        let inputs = json!({"name": format!("127.0.0.1:5000/x{i}")});
        checks.push(tokio::spawn(async move {
            client
                .check(docker_buildkit::generated::pulumirpc::CheckRequest {
                    urn: urn(&format!("h{i}")),
                    news: Some(to_struct(&inputs)),
                    ..Default::default()
                })
                .await
                .expect("check")
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut client = h.client.clone();
    let info = client.get_plugin_info(()).await.expect("plugin info");
    assert!(!info.into_inner().version.is_empty());
    // An ordering, not a stopwatch: the cheap call came back before any hash was done.
    let finished_first = checks.iter().filter(|c| c.is_finished()).count();
    for c in checks {
        let r = c.await.unwrap().into_inner();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
    }
    assert_eq!(
        finished_first, 0,
        "GetPluginInfo waited for {finished_first} hashes to finish"
    );
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn refresh_keeps_the_resource_when_the_registry_refuses() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /\n"),
            ("f", "refresh\n"),
        ],
    );
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({"name": s.repo("refresh"), "registry": s.registry_input()});
    let checked = h.check_ok("r", &json!({}), &inputs).await;
    let created = h.create("r", &checked, false).await.expect("up");
    let mut state = from_struct(created.properties.as_ref().unwrap());
    // The password expired since: the registry answers 401.
    state["registry"]["password"] = secret(json!("expired-token"));
    let state = to_struct(&state);
    let read = h
        .read("r", &created.id, &state, &checked)
        .await
        .expect("refresh does not fail on a refused check");
    assert_eq!(read.id, created.id, "the resource is kept, not dropped");
    let logs = h.log_text();
    assert!(
        logs.contains("is kept as it was"),
        "a warning says why:\n{logs}"
    );
    assert!(!logs.contains("expired-token"));
    let _: Value = from_struct(read.properties.as_ref().unwrap());
}

/// A unix-socket proxy in front of the real daemon that can cut every open connection at
/// once, as a daemon that dies mid-build does. Returns its `unix://` host and the trigger.
async fn cutting_proxy(
    daemon: &str,
    dir: &std::path::Path,
) -> (String, std::sync::Arc<tokio::sync::Notify>) {
    let upstream = daemon
        .strip_prefix("unix://")
        .expect("the private daemon listens on a unix socket")
        .to_string();
    let path = dir.join("proxy.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let cut = std::sync::Arc::new(tokio::sync::Notify::new());
    let trigger = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::UnixStream::connect(&upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    () = cut.notified() => {}
                }
            });
        }
    });
    (format!("unix://{}", path.display()), trigger)
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn a_daemon_that_goes_away_mid_build_is_named() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (dir, marker) = s.busybox_context("echo started-{marker} && sleep 20");
    let (host, cut) = cutting_proxy(&s.docker_host, dir.path()).await;
    let mut h = Harness::configured(dir.path(), json!({"host": host})).await;
    let inputs = json!({"name": s.repo("gone"), "network": "none", "push": false});
    let checked = h.check_ok("g", &json!({}), &inputs).await;
    let create = h.create_in_background("g", &checked, 0.0);
    h.wait_for_log(&format!("started-{marker}"), Duration::from_secs(60))
        .await;
    cut.notify_waiters();
    let err = tokio::time::timeout(Duration::from_secs(30), create)
        .await
        .expect("the create returns once the connection is gone")
        .unwrap()
        .expect_err("the build cannot finish");
    assert!(
        err.message().contains(&format!(
            "the Docker daemon at {host} closed the connection during the build"
        )),
        "{}",
        err.message()
    );
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn a_chatty_failing_build_keeps_memory_bounded() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    // 200 MB of output, in lines and in one line without a newline, then a failure. (The
    // daemon's BuildKit clips a step's log itself, to a few hundred kB here; the printer's own
    // bound is proven by its unit test on 80 MB.)
    let (dir, _marker) = s.busybox_context("echo {marker} && yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000 && tr -d '\\n' < /dev/zero | head -c 100000000 && echo && echo last-line && exit 3");
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({"name": s.repo("chatty"), "network": "none", "push": false});
    let checked = h.check_ok("c", &json!({}), &inputs).await;
    let err = h
        .create("c", &checked, false)
        .await
        .expect_err("the build fails at the end");
    assert!(err.message().contains("exit code: 3"), "{}", err.message());
    let peak = h.peak_rss();
    assert!(peak < 64 << 20, "the provider peaked at {} MiB", peak >> 20);
    let failure_log = h
        .logs
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.severity == 3)
        .map(|l| l.message.len())
        .max()
        .unwrap_or(0);
    assert!(
        failure_log < 4 << 20,
        "the failure log is a bounded tail: {failure_log} bytes"
    );
}
