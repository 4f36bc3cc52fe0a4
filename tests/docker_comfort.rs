//! What a user meets in the first hour, against the real dockerd and registry: a tag-only
//! change is a registry-side tag and no build; an inline Dockerfile with no `context` builds
//! from an empty context; the very first build shows a calm note, not an ERROR, for the
//! inline-cache source that does not exist yet.

mod common;

use common::services::{Services, repo_path};
use common::*;
use serde_json::json;

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn a_tag_only_change_tags_registry_side_and_builds_nothing() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "tags\n")],
    );
    let repo = s.repo("tagsonly");
    let mut h = s.harness(dir.path()).await;
    // skipIfPushed off: no build-once reuse to hide behind.
    let v1 = json!({"name": repo, "tags": ["v1"], "skipIfPushed": false, "registry": s.registry_input()});
    let checked = h.check_ok("t", &json!({}), &v1).await;
    let created = h.create("t", &checked, false).await.expect("up");
    let state = created.properties.unwrap();
    let digest = from_struct(&state)["digest"].as_str().unwrap().to_string();

    let v2 = json!({"name": repo, "tags": ["v1", "v2"], "skipIfPushed": false, "registry": s.registry_input()});
    let news = h.check_ok("t", &json!({}), &v2).await;
    let before = h.log_count();
    let diff = h.diff("t", &state, &news).await;
    assert_eq!(diff.diffs, ["tags"]);
    assert!(
        h.log_text().contains("tags only: no build"),
        "preview says so:\n{}",
        h.log_text()
    );
    let preview = h
        .update("t", &created.id, &state, &news, true)
        .await
        .expect("preview");
    assert_eq!(
        from_struct(preview.properties.as_ref().unwrap())["digest"],
        json!(digest),
        "preview knows the digest will not change"
    );
    let updated = h
        .update("t", &created.id, &state, &news, false)
        .await
        .expect("up");
    let logs: Vec<String> = h.logs.0.lock().unwrap()[before..]
        .iter()
        .map(|l| l.message.clone())
        .collect();
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("COPY f /") || l.starts_with("pushing ")),
        "nothing built or pushed: {logs:?}"
    );
    assert_eq!(
        from_struct(updated.properties.as_ref().unwrap())["digest"],
        json!(digest)
    );
    let (status, got, _) = s.get_manifest(repo_path(&repo), "v2").await;
    assert_eq!(
        (status, got),
        (200, digest.clone()),
        "v2 names the same image"
    );

    // Removing a tag leaves it in the registry (images may be shared).
    let v3 = json!({"name": repo, "tags": ["v2"], "skipIfPushed": false, "registry": s.registry_input()});
    let news3 = h.check_ok("t", &json!({}), &v3).await;
    let state2 = updated.properties.unwrap();
    h.update("t", &created.id, &state2, &news3, false)
        .await
        .expect("up");
    let (status, got, _) = s.get_manifest(repo_path(&repo), "v1").await;
    assert_eq!((status, got), (200, digest));
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn an_inline_dockerfile_without_context_builds_from_an_empty_context() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("program.txt", "one\n")]);
    let mut h = s.harness(dir.path()).await;
    let name = s.repo("nocontext");
    // COPY . copies the whole context: with none, the image holds no file of the program.
    let inputs = json!({
        "name": name,
        "push": false,
        "dockerfileInline": "FROM scratch\nCOPY . /ctx/\nLABEL empty=yes\n",
    });
    let first = h.check_ok("n", &json!({}), &inputs).await;
    h.create("n", &first, false).await.expect("builds");
    let out = s.docker(&["create", &name, "x"]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let export = s.docker(&["export", &id]);
    let _ = s.docker(&["rm", &id]);
    let listing = String::from_utf8_lossy(&export.stdout).to_string();
    assert!(
        !listing.contains("program.txt"),
        "the program's files are not in the image"
    );
    // Editing the program's directory changes nothing.
    write_tree(dir.path(), &[("program.txt", "two\n"), ("new.txt", "x\n")]);
    let again = h.check_ok("n", &json!({}), &inputs).await;
    assert_eq!(
        from_struct(&first)["contextHash"],
        from_struct(&again)["contextHash"]
    );
    // An explicit context keeps its meaning.
    let explicit = h
        .check_ok(
            "n",
            &json!({}),
            &json!({"name": name, "push": false, "context": ".", "dockerfileInline": "FROM scratch\nCOPY . /ctx/\n"}),
        )
        .await;
    assert_ne!(
        from_struct(&explicit)["contextHash"],
        from_struct(&first)["contextHash"]
    );
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn the_first_build_is_calm_about_the_cache_it_cannot_have_yet() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[("Dockerfile", "FROM scratch\nCOPY f /\n"), ("f", "calm\n")],
    );
    let repo = s.repo("calm");
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({"name": repo, "registry": s.registry_input()});
    let checked = h.check_ok("c", &json!({}), &inputs).await;
    h.create("c", &checked, false).await.expect("up");
    let logs = h.log_text();
    assert!(
        logs.contains(&format!("no cache at {repo}:latest yet: first build")),
        "a plain note:\n{logs}"
    );
    assert!(!logs.contains("ERROR"), "no ERROR line:\n{logs}");
}
