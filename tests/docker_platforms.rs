//! Several platforms as one pushed index, build-once per context across machines, and
//! `triggers`, against the real dockerd and registry.

mod common;

use common::services::{Services, repo_path};
use common::*;
use serde_json::json;

#[tokio::test]
async fn several_platforms_push_one_index() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = arch_context();
    let repo = s.repo("multi");
    let inputs = json!({"name": format!("{repo}:v1"), "platforms": ["linux/amd64", "linux/arm64"], "registry": s.registry_input()});
    let mut h = s.harness(dir.path()).await;
    let checked = h.check_ok("m", &json!({}), &inputs).await;
    let st = from_struct(
        h.create("m", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );

    let (status, index_digest, index) = s.get_manifest(repo_path(&repo), "v1").await;
    assert_eq!(status, 200);
    assert_eq!(st["digest"], json!(index_digest), "digest is the index's");
    assert_eq!(st["ref"], json!(format!("{repo}@{index_digest}")));
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        assert_eq!(entry["platform"]["os"], "linux");
        assert_eq!(entry["platform"]["architecture"], arch);
        let digest = entry["digest"].as_str().unwrap();
        // The entry's digest and size are exactly the pushed manifest's.
        let url = format!(
            "http://{}/v2/{}/manifests/{digest}",
            s.registry,
            repo_path(&repo)
        );
        let body = reqwest::Client::new()
            .get(url)
            .basic_auth(&s.user, Some(&s.password))
            .header("Accept", entry["mediaType"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            body.len() as u64,
            entry["size"].as_u64().unwrap(),
            "size of {arch}"
        );
        let (_, got, manifest) = s.get_manifest(repo_path(&repo), digest).await;
        assert_eq!(got, digest);
        let config = s
            .get_blob(
                repo_path(&repo),
                manifest["config"]["digest"].as_str().unwrap(),
            )
            .await;
        assert_eq!(config["architecture"], arch, "config of the {arch} entry");
        assert_eq!(
            st["platformDigests"][format!("linux/{arch}")],
            json!(digest)
        );
    }

    // `docker pull --platform` of each gives that platform's files.
    let cfg = tempfile::tempdir().unwrap();
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &s.docker_host)
            .env("DOCKER_CONFIG", cfg.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let login = std::process::Command::new("docker")
        .args(["login", "-u", &s.user, "--password-stdin", &s.registry])
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_CONFIG", cfg.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.password.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(login.success());
    let pinned = format!("{repo}@{index_digest}");
    for arch in ["amd64", "arm64"] {
        docker(&["pull", "--platform", &format!("linux/{arch}"), &pinned]);
        let id = docker(&[
            "create",
            "--platform",
            &format!("linux/{arch}"),
            &pinned,
            "x",
        ]);
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("hello.txt");
        docker(&[
            "cp",
            &format!("{}:/hello.txt", id.trim()),
            dest.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), format!("{arch}\n"));
        docker(&["rm", id.trim()]);
        docker(&["image", "rm", &pinned]);
    }
}

#[tokio::test]
async fn build_once_per_context_across_machines() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /\n"),
            ("f", uuid::Uuid::new_v4().to_string().as_str()),
        ],
    );
    let repo = s.repo("once");
    let inputs = json!({"name": repo, "tags": ["v2"], "registry": s.registry_input()});
    let mut first = s.harness(dir.path()).await;
    let checked = first.check_ok("o", &json!({}), &inputs).await;
    let one = from_struct(
        first
            .create("o", &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    let hash = one["contextHash"].as_str().unwrap();
    let (status, ctx_digest, _) = s
        .get_manifest(repo_path(&repo), &format!("ctx-{}", &hash[..16]))
        .await;
    assert_eq!(status, 200, "every push also tags ctx-<hash>");
    assert_eq!(json!(ctx_digest), one["digest"]);

    // Another machine: its provider cannot even reach a Docker daemon, so anything but a
    // registry lookup would fail. It returns the same image, tagged as asked.
    let mut other = Harness::dockerless(dir.path()).await;
    let checked = other
        .check_ok(
            "o",
            &json!({}),
            &json!({"name": format!("{repo}:v3"), "registry": s.registry_input()}),
        )
        .await;
    let two = from_struct(
        other
            .create("o", &checked, false)
            .await
            .expect("reuse needs no Docker")
            .properties
            .as_ref()
            .unwrap(),
    );
    assert_eq!(two["digest"], one["digest"]);
    assert_eq!(two["ref"], one["ref"]);
    let (status, digest, _) = s.get_manifest(repo_path(&repo), "v3").await;
    assert_eq!(status, 200, "tagged registry-side");
    assert_eq!(json!(digest), one["digest"]);
    assert!(
        other.log_text().contains("built from this same context"),
        "{}",
        other.log_text()
    );

    // skipIfPushed: false builds anyway (and here fails, with no daemon).
    let checked = other
        .check_ok(
            "o",
            &json!({}),
            &json!({"name": repo, "skipIfPushed": false, "registry": s.registry_input()}),
        )
        .await;
    let e = other.create("o", &checked, false).await.unwrap_err();
    assert!(
        e.message().contains("cannot reach the Docker daemon"),
        "{}",
        e.message()
    );
}

#[tokio::test]
async fn triggers_force_a_rebuild() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "same\n")],
    );
    let repo = s.repo("triggers");
    let inputs = json!({"name": repo, "triggers": ["a"], "registry": s.registry_input()});
    let mut h = s.harness(dir.path()).await;
    let checked = h.check_ok("t", &json!({}), &inputs).await;
    let state = h
        .create("t", &checked, false)
        .await
        .unwrap()
        .properties
        .unwrap();

    let same = h.check_ok("t", &json!({}), &inputs).await;
    assert_eq!(
        h.diff("t", &state, &same).await.changes,
        1,
        "an unchanged trigger is no change"
    );

    let changed_inputs = json!({"name": repo, "triggers": ["b"], "registry": s.registry_input()});
    let changed = h.check_ok("t", &json!({}), &changed_inputs).await;
    let d = h.diff("t", &state, &changed).await;
    assert_eq!(d.changes, 2);
    assert!(
        d.diffs.contains(&"triggers".to_string()) && d.detailed_diff.contains_key("contextHash"),
        "{d:?}"
    );
    let before = h.log_count();
    h.update("t", "id", &state, &changed, false).await.unwrap();
    let logs: Vec<String> = h.logs.0.lock().unwrap()[before..]
        .iter()
        .map(|l| l.message.clone())
        .collect();
    assert!(
        logs.iter().any(|l| l.starts_with("building ")),
        "a changed trigger builds again: {logs:?}"
    );
}

#[tokio::test]
async fn one_platform_gets_an_index_when_asked() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "one\n")],
    );
    let repo = s.repo("index1");
    let mut h = s.harness(dir.path()).await;
    let plain = json!({"name": repo, "platforms": ["linux/arm64"], "registry": s.registry_input()});
    let checked = h.check_ok("i", &json!({}), &plain).await;
    let state = h
        .create("i", &checked, false)
        .await
        .unwrap()
        .properties
        .unwrap();
    let (_, _, manifest) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(
        manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "one platform: a plain manifest"
    );

    // Asking for an index changes the hash (so build-once cannot hand back the plain manifest).
    let indexed = json!({"name": repo, "platforms": ["linux/arm64"], "index": true, "registry": s.registry_input()});
    let checked = h.check_ok("i", &json!({}), &indexed).await;
    let d = h.diff("i", &state, &checked).await;
    assert!(
        d.detailed_diff.contains_key("contextHash") && d.detailed_diff.contains_key("index"),
        "{d:?}"
    );
    let st = from_struct(
        h.update("i", "id", &state, &checked, false)
            .await
            .unwrap()
            .properties
            .as_ref()
            .unwrap(),
    );
    let (_, digest, index) = s.get_manifest(repo_path(&repo), "latest").await;
    assert_eq!(
        index["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["platform"]["architecture"], "arm64");
    assert_eq!(st["digest"], json!(digest));

    // An index needs platforms.
    let r = h
        .check("i", &json!({}), &json!({"name": repo, "index": true}))
        .await;
    assert!(
        r.failures.iter().any(|f| f.property == "index"),
        "{:?}",
        r.failures
    );
}
