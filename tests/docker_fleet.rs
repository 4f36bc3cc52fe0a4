//! Beyond one machine: builders per platform (two private dockerds), a builder that is down,
//! and `ssh://` Docker hosts through a real local sshd (whose login runs the classic docker
//! CLI against the private dockerd), with the three ssh failures named.
//!
//! Needs `DBK_DOCKER_HOST2` (a second private dockerd) and `DBK_SSH_BIN` (an `ssh` wrapper
//! with the test client configuration: host aliases `dbk-ssh-ok`, `dbk-ssh-unknown-host`,
//! `dbk-ssh-refused`, `dbk-ssh-nodocker`), both from `scripts/services.sh`.

mod common;

use std::process::Command;

use common::services::{Services, repo_path};
use common::*;
use serde_json::{Value, json};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `bash scripts/services.sh up` and source its env file")
    })
}

/// Whether image `reference` is in the daemon at `host`.
fn has_image(host: &str, reference: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker image inspect")
        .status
        .success()
}

fn remove_image(host: &str, reference: &str) {
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", reference])
        .env("DOCKER_HOST", host)
        .output();
}

#[tokio::test]
async fn each_platform_builds_on_its_builder_in_parallel_and_one_index_is_pushed() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let host2 = var("DBK_DOCKER_HOST2");
    let dir = arch_context();
    let repo = s.repo("fleet");
    // `builders` as stack configuration reaches the provider: a JSON string.
    let builders = json!([{"host": host2, "platforms": ["linux/arm64"]}]).to_string();
    let mut h = Harness::start(&[]).await;
    h.configure(
        dir.path(),
        json!({"host": s.docker_host, "builders": builders}),
    )
    .await;
    let inputs = json!({
        "name": format!("{repo}:v1"),
        "platforms": ["linux/amd64", "linux/arm64"],
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("f", &json!({}), &inputs).await;
    let created = h.create("f", &checked, false).await;
    let logs = h.log_text();
    let st = from_struct(
        created
            .unwrap_or_else(|e| panic!("{e}\n{logs}"))
            .properties
            .as_ref()
            .unwrap(),
    );
    let amd = format!("{repo}:v1-linux-amd64");
    let arm = format!("{repo}:v1-linux-arm64");
    let cleanup = || {
        for host in [&s.docker_host, &host2] {
            remove_image(host, &amd);
            remove_image(host, &arm);
        }
    };
    let found = (
        has_image(&s.docker_host, &amd),
        has_image(&s.docker_host, &arm),
        has_image(&host2, &amd),
        has_image(&host2, &arm),
    );
    cleanup();
    assert_eq!(
        found,
        (true, false, false, true),
        "amd64 built by the default daemon only, arm64 by the second only\n{logs}"
    );
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            logs.lines().any(|l| l.starts_with(&format!("[{p}] #"))),
            "the lines of {p} are prefixed with it:\n{logs}"
        );
    }

    let (status, index_digest, index) = s.get_manifest(repo_path(&repo), "v1").await;
    assert_eq!(status, 200);
    assert_eq!(st["digest"], json!(index_digest));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        assert_eq!(entry["platform"]["architecture"], arch);
        let digest = entry["digest"].as_str().unwrap();
        assert_eq!(
            st["platformDigests"][format!("linux/{arch}")],
            json!(digest)
        );
        let (status, _, manifest) = s.get_manifest(repo_path(&repo), digest).await;
        assert_eq!(status, 200);
        let config = s
            .get_blob(
                repo_path(&repo),
                manifest["config"]["digest"].as_str().unwrap(),
            )
            .await;
        assert_eq!(
            config["architecture"], arch,
            "the {arch} entry is an {arch} image"
        );
    }

    // Build-once across the fleet: the context tag lives in the registry, so a second
    // stack (a new provider) with the builders the other way round reuses the image.
    let builders = json!([{"host": s.docker_host, "platforms": ["linux/arm64"]}]).to_string();
    let mut h2 = Harness::start(&[]).await;
    h2.configure(dir.path(), json!({"host": host2, "builders": builders}))
        .await;
    let checked = h2.check_ok("f", &json!({}), &inputs).await;
    let again = from_struct(
        h2.create("f", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    assert_eq!(again["digest"], st["digest"]);
    assert!(
        h2.log_text().contains("was built from this same context"),
        "{}",
        h2.log_text()
    );
    cleanup();
}

/// An image name for which the rendezvous order over `hosts` puts `first` first.
fn name_preferring(s: &Services, first: &str, hosts: &[&str]) -> String {
    (0..1000)
        .map(|_| s.repo("down"))
        .find(|name| {
            let repo = docker_buildkit::reference::Reference::parse(name)
                .unwrap()
                .repository();
            docker_buildkit::docker::flow::rendezvous(&repo, hosts)[0] == first
        })
        .expect("some name prefers the host")
}

#[tokio::test]
async fn a_builder_that_is_down_is_skipped_with_a_warning_or_named_when_none_is_left() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let host2 = var("DBK_DOCKER_HOST2");
    let down = "unix:///nonexistent/dbk-builder.sock";
    let dir = arch_context();
    let name = name_preferring(&s, down, &[down, &host2]);
    let builders = json!([
        {"host": down, "platforms": ["linux/arm64"]},
        {"host": host2, "platforms": ["linux/arm64"]},
    ]);
    let mut h = Harness::start(&[]).await;
    h.configure(
        dir.path(),
        json!({"host": s.docker_host, "builders": builders}),
    )
    .await;
    let inputs = json!({"name": name, "platforms": ["linux/arm64"], "push": false});
    let checked = h.check_ok("d", &json!({}), &inputs).await;
    let created = h.create("d", &checked, false).await;
    let logs = h.log_text();
    created.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert!(
        logs.contains(&format!(
            "builder {down} for linux/arm64 cannot be reached, trying the next"
        )),
        "{logs}"
    );
    let tag = format!("{name}:latest");
    let on_second = has_image(&host2, &tag);
    let on_default = has_image(&s.docker_host, &tag);
    remove_image(&host2, &tag);
    remove_image(&s.docker_host, &tag);
    assert!(on_second && !on_default, "built on the next builder only");

    // The only builder listing the platform is down: a clear failure, not the default daemon.
    let mut h = Harness::start(&[]).await;
    h.configure(
        dir.path(),
        json!({"host": s.docker_host, "builders": [{"host": down, "platforms": ["linux/arm64"]}]}),
    )
    .await;
    let checked = h.check_ok("d", &json!({}), &inputs).await;
    let e = h.create("d", &checked, false).await.unwrap_err();
    assert!(
        e.message().starts_with(&format!(
            "no builder for linux/arm64 can be reached: {down} ("
        )),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn bad_builders_are_refused_at_check_config_naming_the_property() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness::start(&[]).await;
    let r = h
        .client
        .check_config(docker_buildkit::generated::pulumirpc::CheckRequest {
            urn: "urn:pulumi:test::proj::pulumi:providers:docker-buildkit::default".into(),
            olds: Some(to_struct(&json!({}))),
            news: Some(to_struct(&json!({"builders": [
                {"host": "ftp://x", "platforms": ["linux/arm64"]},
                {"host": "ssh://h/path", "platforms": []},
                {"host": "unix:///a.sock", "platforms": ["arm64"]},
            ]}))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(String, String)> = r
        .failures
        .iter()
        .map(|f| (f.property.clone(), f.reason.clone()))
        .collect();
    for property in [
        "builders[0].host",
        "builders[1].host",
        "builders[1].platforms",
        "builders[2].platforms[0]",
    ] {
        assert!(
            got.iter().any(|(p, _)| p == property),
            "no failure on {property}: {got:?}"
        );
    }
    drop(dir);
}

// ---------------------------------------------------------------- ssh://

/// A provider that reaches the daemon through `ssh://<alias>` with the test ssh configuration.
async fn ssh_harness(dir: &std::path::Path, alias: &str) -> Harness {
    let path = format!("{}:{}", var("DBK_SSH_BIN"), std::env::var("PATH").unwrap());
    let mut h = Harness::start(&[("PATH", &path)]).await;
    h.configure(dir, json!({"host": format!("ssh://{alias}")}))
        .await;
    h
}

#[tokio::test]
async fn an_ssh_host_builds_and_pushes() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = arch_context();
    let repo = s.repo("over-ssh");
    let mut h = ssh_harness(dir.path(), "dbk-ssh-ok").await;
    let inputs = json!({"name": repo, "registry": s.registry_input()});
    let checked = h.check_ok("s", &json!({}), &inputs).await;
    let created = h.create("s", &checked, false).await;
    let logs = h.log_text();
    let st: Value = from_struct(
        created
            .unwrap_or_else(|e| panic!("{e}\n{logs}"))
            .properties
            .as_ref()
            .unwrap(),
    );
    let digest = st["digest"].as_str().unwrap();
    let (status, got, _) = s.get_manifest(repo_path(&repo), digest).await;
    assert_eq!((status, got.as_str()), (200, digest));
    assert!(
        logs.contains("bytes) to the builder"),
        "the context went through the build session, over ssh: {logs}"
    );
    remove_image(&s.docker_host, &format!("{repo}:latest"));

    // DOCKER_HOST=ssh://… in the provider's environment, no `host` in its configuration.
    let path = format!("{}:{}", var("DBK_SSH_BIN"), std::env::var("PATH").unwrap());
    let mut h = Harness::start(&[("PATH", &path), ("DOCKER_HOST", "ssh://dbk-ssh-ok")]).await;
    h.configure(dir.path(), json!({})).await;
    let name = s.repo("over-ssh-env");
    let checked = h
        .check_ok("s", &json!({}), &json!({"name": name, "push": false}))
        .await;
    let created = h.create("s", &checked, false).await;
    let logs = h.log_text();
    created.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let tag = format!("{name}:latest");
    let there = has_image(&s.docker_host, &tag);
    remove_image(&s.docker_host, &tag);
    assert!(there, "built, through ssh, in the daemon behind it");
}

#[tokio::test]
async fn ssh_failures_name_the_host_and_the_fix() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = arch_context();
    for (alias, expected) in [
        (
            "dbk-ssh-unknown-host",
            "ssh does not know the host key of ssh://dbk-ssh-unknown-host",
        ),
        (
            "dbk-ssh-refused",
            "ssh://dbk-ssh-refused refused the ssh key",
        ),
        (
            "dbk-ssh-nodocker",
            "ssh://dbk-ssh-nodocker has no docker CLI on its PATH",
        ),
    ] {
        let mut h = ssh_harness(dir.path(), alias).await;
        let inputs = json!({"name": s.repo("ssh-fails"), "push": false});
        let checked = h.check_ok("e", &json!({}), &inputs).await;
        let started = std::time::Instant::now();
        let e = h.create("e", &checked, false).await.unwrap_err();
        assert!(
            e.message().contains(expected),
            "{alias}: expected {expected:?} in: {}",
            e.message()
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "{alias}: no prompt, no hang"
        );
    }
}
