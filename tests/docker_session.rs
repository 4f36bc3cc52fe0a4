//! The provider's own BuildKit session against the real dockerd: build secrets reach `RUN`
//! and nothing else; ssh agents (a running one, or key files in a private one) are forwarded;
//! no agent is a clear error; a second build of a context sends only what changed; `addHosts`
//! reach `RUN` steps; a Cancel during the file transfer stops the build at once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::services::Services;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Runs the docker CLI against the private daemon; fails the test unless it succeeds.
fn docker_ok(s: &Services, args: &[&str]) -> Vec<u8> {
    let out = s.docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Removes a local image (a best effort: the test is over).
fn remove_image(s: &Services, image: &str) {
    let _ = s.docker(&["image", "rm", "-f", image]);
}

/// The file at `path` inside `image`, copied out of a created (never started) container.
fn file_in_image(s: &Services, image: &str, path: &str) -> Vec<u8> {
    // A command is needed for images without one (FROM scratch); it never runs.
    let id = String::from_utf8(docker_ok(s, &["create", image, "/never-run"])).unwrap();
    let id = id.trim();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("file");
    let copied = s.docker(&["cp", &format!("{id}:{path}"), dest.to_str().unwrap()]);
    let _ = s.docker(&["rm", "-f", id]);
    assert!(
        copied.status.success(),
        "docker cp {path} out of {image}: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    std::fs::read(dest).unwrap()
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `v` with every secret envelope replaced by a placeholder: what is left is in clear.
fn without_secrets(v: &Value) -> Value {
    if is_secret(v) {
        return json!("[secret envelope]");
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), without_secrets(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_secrets).collect()),
        other => other.clone(),
    }
}

/// Whether a step printed `text`: a line of `logs` holds it, other than the step's own name
/// (`RUN … echo <text>`), which the progress shows too.
fn printed(logs: &str, text: &str) -> bool {
    logs.lines()
        .any(|l| l.contains(text) && !l.contains("echo "))
}

/// Every logged message from the `since`-th on.
fn messages_since(h: &Harness, since: usize) -> Vec<String> {
    h.logs.0.lock().unwrap()[since..]
        .iter()
        .map(|l| l.message.clone())
        .collect()
}

/// The digits of a word such as `(1234` or `1,234)`; `None` for a word that is not a number.
fn number(word: &str) -> Option<u64> {
    let digits: String = word.chars().filter(char::is_ascii_digit).collect();
    let rest_is_punctuation = word
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '(' | ')' | ',' | '.' | ':' | ';'));
    (!digits.is_empty() && rest_is_punctuation)
        .then(|| digits.parse().ok())
        .flatten()
}

/// The last session-transfer line of `messages` about `tag` (today "<tag>: sent F file[s] (B
/// bytes) to the builder; the context has M entries"; the wording may change): the line, F
/// and B. Read word by word: the number before the word `file`/`files` and the one before
/// `bytes`.
fn transfer_of(messages: &[String], tag: &str) -> (String, u64, u64) {
    let has_word = |line: &str, word: &str| {
        line.split_whitespace()
            .any(|w| w.trim_matches(|c: char| !c.is_ascii_alphabetic()) == word)
    };
    let line = messages
        .iter()
        .flat_map(|m| m.lines())
        .rfind(|l| {
            l.starts_with(tag)
                && (has_word(l, "files") || has_word(l, "file"))
                && has_word(l, "bytes")
        })
        .unwrap_or_else(|| {
            panic!(
                "no session transfer line for {tag} was logged:\n{}",
                messages.join("\n")
            )
        })
        .to_string();
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |units: &[&str]| {
        words
            .iter()
            .position(|w| units.contains(&w.trim_matches(|c: char| !c.is_ascii_alphabetic())))
            .filter(|&i| i > 0)
            .and_then(|i| number(words[i - 1]))
            .unwrap_or_else(|| panic!("no number before {units:?} in {line:?}"))
    };
    let files = before(&["file", "files"]);
    let bytes = before(&["bytes"]);
    (line, files, bytes)
}

// ---------------------------------------------------------------- secrets

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn a_build_secret_reaches_run_and_nowhere_else() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let value = format!("dbk-secret-{}", uuid::Uuid::new_v4().simple());
    let expected = sha256_hex(&value);
    // The Dockerfile holds the value's hash, never the value; the marker keeps the step out of
    // the daemon's cache (BuildKit's cache key of a RUN does not cover the secret's content).
    let checking_step = |marker: &str| {
        format!(
            "FROM {}\nRUN --mount=type=secret,id=tok echo \"{expected}  /run/secrets/tok\" | sha256sum -c && echo checked-{marker}\n",
            s.base_image
        )
    };

    // The right value: the step checks it, and the image is pushed.
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("Dockerfile", &checking_step(&marker))]);
    let repo = s.repo("secret");
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({
        "name": repo,
        "network": "none",
        "secrets": {"tok": secret(json!(value))},
        "registry": s.registry_input(),
    });
    let checked = h.check_ok("sec", &json!({}), &inputs).await;
    let checked_json = serde_json::to_string(&without_secrets(&from_struct(&checked))).unwrap();
    assert!(
        !checked_json.contains(&value),
        "Check returned the secret in clear: {checked_json}"
    );
    let created = match h.create("sec", &checked, false).await {
        Ok(c) => c,
        Err(e) => panic!(
            "the build with the right secret fails: {}\nlog:\n{}",
            e.message(),
            h.log_text()
        ),
    };
    let logs = h.log_text();
    assert!(
        logs.contains("/run/secrets/tok: OK") && printed(&logs, &format!("checked-{marker}")),
        "the RUN step read the secret from its mount and checked it:\n{logs}"
    );

    // The state: the secrets come back as secrets, and nothing holds the value in clear.
    let st = from_struct(created.properties.as_ref().unwrap());
    let secrets = &st["secrets"];
    assert!(
        is_secret(secrets)
            || secrets
                .as_object()
                .is_some_and(|m| !m.is_empty() && m.values().all(is_secret)),
        "the state's `secrets` is a secret: {secrets}"
    );
    let state_json = serde_json::to_string(&without_secrets(&st)).unwrap();
    assert!(
        !state_json.contains(&value),
        "the state holds the secret in clear: {state_json}"
    );

    // The image: neither its layers and config (`docker save`: uncompressed tars) nor its
    // history hold the value. The marker proves these are the built image's.
    let image = format!("{repo}:latest");
    let saved = docker_ok(&s, &["save", &image]);
    assert!(
        contains_bytes(&saved, format!("checked-{marker}").as_bytes()),
        "`docker save` of {image} is the image built here"
    );
    assert!(
        !contains_bytes(&saved, value.as_bytes()),
        "the secret is in the saved image {image}"
    );
    let history = String::from_utf8(docker_ok(&s, &["history", "--no-trunc", &image])).unwrap();
    assert!(
        history.contains(&expected),
        "the history shows the RUN step:\n{history}"
    );
    assert!(
        !history.contains(&value),
        "the secret is in the image's history:\n{history}"
    );
    for (what, text) in [("engine log", logs), ("provider stderr", h.stderr_text())] {
        assert!(!text.contains(&value), "the secret leaked into the {what}");
        assert!(
            !text.contains(&s.password),
            "the registry password leaked into the {what}"
        );
    }
    remove_image(&s, &image);

    // A wrong value: the same check fails, which proves the mount is really read.
    let wrong = format!("dbk-wrong-{}", uuid::Uuid::new_v4().simple());
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("Dockerfile", &checking_step(&marker))]);
    let mut h = s.harness(dir.path()).await;
    let inputs = json!({
        "name": s.repo("secret-wrong"),
        "network": "none",
        "push": false,
        "secrets": {"tok": secret(json!(wrong))},
    });
    let checked = h.check_ok("wrong", &json!({}), &inputs).await;
    let err = h
        .create("wrong", &checked, false)
        .await
        .expect_err("a secret that does not match fails the check in the RUN step");
    assert!(
        err.message().contains("sha256sum"),
        "the error names the failing step: {}",
        err.message()
    );
    let logs = h.log_text();
    assert!(
        !printed(&logs, &format!("checked-{marker}")),
        "the step did not pass:\n{logs}"
    );
    for (what, text) in [
        ("engine log", logs),
        ("provider stderr", h.stderr_text()),
        ("error", err.message().to_string()),
    ] {
        assert!(!text.contains(&wrong), "the secret leaked into the {what}");
    }
}

// ---------------------------------------------------------------- ssh

/// An `ssh-agent -D` of the test's own, killed when dropped.
struct TestAgent {
    child: Child,
    socket: PathBuf,
}

impl TestAgent {
    fn start(socket: &Path) -> TestAgent {
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let agent = TestAgent {
            child,
            socket: socket.to_path_buf(),
        };
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ssh-agent made no socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        agent
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .expect("run ssh-add");
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A passphrase-less ed25519 key at `path`.
fn make_key(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "dbk-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// tests/fixtures/agent_count.rs, compiled static (it runs in a busybox container) into `dir`.
fn build_agent_count(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent_count.rs");
    let binary = dir.join("agent_count");
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "-C",
            "target-feature=+crt-static",
            "-O",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .output()
        .expect("run rustc");
    assert!(
        out.status.success(),
        "rustc agent_count.rs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn ssh_agent_is_forwarded_into_run() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let agent_count = build_agent_count(tmp.path());
    let key = tmp.path().join("id_ed25519");
    make_key(&key);
    let agent = TestAgent::start(&tmp.path().join("agent.sock"));
    agent.add(&key);
    // The helper itself, here: the agent holds one identity.
    let here = Command::new(&agent_count)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&here.stdout).trim(),
        "identities=1",
        "agent_count on the test's agent: {}",
        String::from_utf8_lossy(&here.stderr)
    );

    for (case, path) in [
        ("a running agent's socket", &agent.socket),
        ("a key file (the provider's private agent)", &key),
    ] {
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&agent_count, dir.path().join("agent_count")).unwrap();
        write_tree(
            dir.path(),
            &[(
                "Dockerfile",
                &format!(
                    "FROM {}\nCOPY agent_count /agent_count\nRUN --mount=type=ssh /agent_count > /out.txt && cat /out.txt && echo forwarded-{marker}\n",
                    s.base_image
                ),
            )],
        );
        let repo = s.repo("ssh");
        let mut h = s.harness(dir.path()).await;
        let inputs = json!({
            "name": repo,
            "network": "none",
            "push": false,
            "ssh": [{"paths": [path.display().to_string()]}],
        });
        let checked = h.check_ok("ssh", &json!({}), &inputs).await;
        if let Err(e) = h.create("ssh", &checked, false).await {
            panic!(
                "{case}: the build fails: {}\nlog:\n{}",
                e.message(),
                h.log_text()
            );
        }
        let image = format!("{repo}:latest");
        let out = file_in_image(&s, &image, "/out.txt");
        assert_eq!(
            String::from_utf8_lossy(&out).trim(),
            "identities=1",
            "{case}: the RUN step saw the agent's one identity"
        );
        let logs = h.log_text();
        assert!(
            printed(&logs, "identities=1") && printed(&logs, &format!("forwarded-{marker}")),
            "{case}: the step's output is in the log:\n{logs}"
        );
        remove_image(&s, &image);
    }
    drop(agent);
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn ssh_without_an_agent_is_a_clear_error() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (dir, marker) = s.busybox_context("--mount=type=ssh echo ssh-step-{marker}");
    // The provider inherits this process's environment: an agent there is overridden with an
    // empty SSH_AUTH_SOCK (which is no agent either).
    let envs: Vec<(&str, &str)> = if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        vec![("SSH_AUTH_SOCK", "")]
    } else {
        Vec::new()
    };
    let mut h = Harness::start(&envs).await;
    h.configure(dir.path(), s.config()).await;
    let inputs = json!({"name": s.repo("nossh"), "network": "none", "push": false, "ssh": [{}]});
    let r = h.check("nossh", &json!({}), &inputs).await;
    let message = if r.failures.is_empty() {
        let started = Instant::now();
        let err = h
            .create("nossh", r.inputs.as_ref().unwrap(), false)
            .await
            .expect_err("`ssh: [{}]` with no SSH_AUTH_SOCK cannot build");
        assert!(
            err.message().contains("ssh"),
            "the error names ssh: {}",
            err.message()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it failed only after {:?}",
            started.elapsed()
        );
        err.message().to_string()
    } else {
        r.failures
            .iter()
            .find(|f| f.property.starts_with("ssh"))
            .unwrap_or_else(|| panic!("the failure names `ssh`: {:?}", r.failures))
            .reason
            .clone()
    };
    assert!(
        message.contains("SSH_AUTH_SOCK"),
        "it says the provider has no SSH_AUTH_SOCK: {message}"
    );
    assert!(
        message.contains("ssh-add") && message.contains("paths"),
        "it says what to do (start an agent and ssh-add, or list key files in `paths`): {message}"
    );
    assert!(
        !printed(&h.log_text(), &format!("ssh-step-{marker}")),
        "the step never ran:\n{}",
        h.log_text()
    );
}

// ---------------------------------------------------------------- incremental context

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn an_edit_resends_only_the_changed_file() {
    const FILES: usize = 20_000;
    const SIZE: usize = 4096;
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY . /app/\n",
    )
    .unwrap();
    let path_of = |i: usize| format!("d{:02}/f{i:05}", i / 1000);
    for i in 0..FILES {
        let p = dir.path().join(path_of(i));
        if i % 1000 == 0 {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        let line = format!("file {i:05} of the incremental context\n");
        let content: Vec<u8> = line.bytes().cycle().take(SIZE).collect();
        std::fs::write(p, content).unwrap();
    }
    let repo = s.repo("incremental");
    let tag = format!("{repo}:latest");
    let inputs = json!({"name": repo, "push": false});
    let mut h = s.harness(dir.path()).await;

    let before = h.log_count();
    let checked = h.check_ok("inc", &json!({}), &inputs).await;
    let started = Instant::now();
    if let Err(e) = h.create("inc", &checked, false).await {
        panic!("first build: {}\n{}", e.message(), h.log_text());
    }
    let (line, files, first) = transfer_of(&messages_since(&h, before), &tag);
    eprintln!(
        "first build ({:?}): {files} files, {first} bytes: {line}",
        started.elapsed()
    );
    assert!(
        first >= (FILES * SIZE) as u64,
        "the first build sends the whole context: {line}"
    );

    // One file changes, same size; its mtime is moved on explicitly.
    let edited = path_of(FILES / 2 + 345);
    let new_content: Vec<u8> = b"edited!\n".iter().copied().cycle().take(SIZE).collect();
    let file = dir.path().join(&edited);
    std::fs::write(&file, &new_content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();

    // A new provider process (as the next `pulumi up` starts): BuildKit's copy of the
    // context is found again under the same shared key.
    let _ = h.stop().await;
    let mut h = s.harness(dir.path()).await;
    let before = h.log_count();
    let checked = h.check_ok("inc", &json!({}), &inputs).await;
    let started = Instant::now();
    if let Err(e) = h.create("inc", &checked, false).await {
        panic!("second build: {}\n{}", e.message(), h.log_text());
    }
    let (line, files, second) = transfer_of(&messages_since(&h, before), &tag);
    eprintln!(
        "second build ({:?}): {files} files, {second} bytes: {line}",
        started.elapsed()
    );
    assert!(
        second < 64 * 1024,
        "after a one-file edit, only that file (and the Dockerfile) is sent: {line}"
    );
    assert!(
        second >= SIZE as u64,
        "the edited file itself is sent: {line}"
    );
    assert_eq!(
        file_in_image(&s, &tag, &format!("/app/{edited}")),
        new_content,
        "the image has the new content"
    );
    assert_eq!(
        file_in_image(&s, &tag, &format!("/app/{}", path_of(7))),
        "file 00007 of the incremental context\n"
            .bytes()
            .cycle()
            .take(SIZE)
            .collect::<Vec<u8>>(),
        "an unchanged file is still there, from the daemon's copy"
    );
    remove_image(&s, &tag);
}

// ---------------------------------------------------------------- addHosts

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn add_hosts_reach_run_steps() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    for (run, must_pass) in [
        (
            "grep -q \"10.1.2.3.*dbk-test-host\" /etc/hosts && echo found-{marker}",
            true,
        ),
        (
            "grep -q \"dbk-absent-host\" /etc/hosts && echo found-{marker}",
            false,
        ),
    ] {
        let (dir, marker) = s.busybox_context(run);
        let repo = s.repo("hosts");
        let mut h = s.harness(dir.path()).await;
        let inputs = json!({
            "name": repo,
            "network": "none",
            "push": false,
            "addHosts": ["dbk-test-host:10.1.2.3"],
        });
        let checked = h.check_ok("hosts", &json!({}), &inputs).await;
        let result = h.create("hosts", &checked, false).await;
        let logs = h.log_text();
        if must_pass {
            if let Err(e) = result {
                panic!(
                    "the added host is not in the RUN step's /etc/hosts: {}\n{logs}",
                    e.message()
                );
            }
            assert!(printed(&logs, &format!("found-{marker}")), "{logs}");
            remove_image(&s, &format!("{repo}:latest"));
        } else {
            let err = result.expect_err("a host that was not added is not in /etc/hosts");
            assert!(
                err.message().contains("exit code: 1"),
                "the grep failed: {}",
                err.message()
            );
            assert!(!printed(&logs, &format!("found-{marker}")), "{logs}");
        }
    }
}

// ---------------------------------------------------------------- cancel

/// Fills `buf` with xorshift noise from `seed`.
fn noise(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
    }
}

#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn cancel_during_the_file_transfer_stops_within_two_seconds() {
    const FILES: usize = 400;
    const SIZE: usize = 1 << 20;
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY . /data/\n",
    )
    .unwrap();
    let mut buf = vec![0u8; SIZE];
    for i in 0..FILES {
        noise(&mut buf, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1));
        std::fs::write(dir.path().join(format!("blob{i:04}")), &buf).unwrap();
    }
    let repo = s.repo("cancel-transfer");
    let tag = format!("{repo}:latest");
    let mut h = s.harness(dir.path()).await;
    let checked = h
        .check_ok("x", &json!({}), &json!({"name": repo, "push": false}))
        .await;
    let mut client = h.client.clone();
    let create = h.create_in_background("x", &checked, 0.0);
    // The daemon starts fetching the context; the line that reports the transfer comes only
    // when it is complete.
    h.wait_for_log("[internal] load build context", Duration::from_secs(60))
        .await;
    // BuildKit's vertex of the context transfer, e.g. `#3 [internal] load build context`; its
    // `#3 transferring context: … done` line comes once every file has arrived.
    let vertex = h
        .log_text()
        .lines()
        .find(|l| l.ends_with("[internal] load build context"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the context vertex is numbered")
        .to_string();
    let transfer_done = format!("{vertex} transferring context");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !h.log_text().contains(&transfer_done),
        "the transfer was over before the cancel (make the context bigger):\n{}",
        h.log_text()
    );
    let cancelled_at = Instant::now();
    client.cancel(()).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(2), create)
        .await
        .unwrap_or_else(|_| panic!("the create did not return within 2 s of Cancel"));
    let took = cancelled_at.elapsed();
    eprintln!("the create returned {took:?} after Cancel");
    let err = result.unwrap().expect_err("a cancelled build fails");
    assert_eq!(err.code(), tonic::Code::Cancelled, "{err:?}");
    // Had the daemon gone on, it would have finished the copy and tagged the image by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let inspect = s.docker(&["image", "inspect", &tag]);
    assert!(
        !inspect.status.success(),
        "the build went on after the cancel and made {tag}"
    );
    assert!(
        !h.log_text().contains(&transfer_done),
        "the transfer never completed:\n{}",
        h.log_text()
    );
}

// ---------------------------------------------------------------- modes, as Docker

/// `path → mode` of everything under `ctx/` in `image` (exported through a created
/// container).
fn modes_in(s: &Services, image: &str) -> std::collections::BTreeMap<String, u32> {
    let id = String::from_utf8(docker_ok(s, &["create", image, "/never-run"])).unwrap();
    let id = id.trim().to_string();
    let out = tempfile::tempdir().unwrap();
    let tar_path = out.path().join("export.tar");
    let exported = s.docker(&["export", &id, "-o", tar_path.to_str().unwrap()]);
    let _ = s.docker(&["rm", "-f", &id]);
    assert!(exported.status.success(), "docker export of {image}");
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut modes = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if let Some(rel) = path.strip_prefix("ctx/").filter(|r| !r.is_empty()) {
            let mode = entry.header().mode().unwrap() & 0o7777;
            modes.insert(rel.trim_end_matches('/').to_string(), mode);
        }
    }
    modes
}

/// Permission bits reach the image as with the docker CLI's BuildKit client: `0600`,
/// `0700`, setgid directories and all (owners are root either way).
#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn permission_bits_reach_the_image_as_with_docker() {
    use std::os::unix::fs::PermissionsExt;
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            ("private.key", "k"),
            ("run.sh", "#!/bin/sh\n"),
            ("shared/readme.txt", "r"),
            ("group.txt", "g"),
        ],
    );
    let set = |p: &str, mode: u32| {
        std::fs::set_permissions(dir.path().join(p), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set("private.key", 0o600);
    set("run.sh", 0o700);
    set("group.txt", 0o664);
    set("shared", 0o2775);

    let cli_tag = format!("dbk-modes-cli-{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("/usr/bin/docker")
        .args(["build", "-q", "-t", &cli_tag])
        .arg(dir.path())
        .env("DOCKER_HOST", &s.docker_host)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DOCKER_BUILDKIT=1 docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docker = modes_in(&s, &cli_tag);
    remove_image(&s, &cli_tag);

    let name = s.repo("modes");
    let mut h = s.harness(dir.path()).await;
    let checked = h
        .check_ok("m", &json!({}), &json!({"name": name, "push": false}))
        .await;
    if let Err(e) = h.create("m", &checked, false).await {
        panic!("{e}\n{}", h.log_text());
    }
    let tag = format!("{name}:latest");
    let ours = modes_in(&s, &tag);
    remove_image(&s, &tag);

    assert_eq!(docker.get("private.key"), Some(&0o600), "{docker:?}");
    assert_eq!(docker.get("shared"), Some(&0o2775), "{docker:?}");
    assert_eq!(ours, docker, "the provider's image against docker's");
}

/// `pull: true` reaches the daemon: a base image that exists only locally (no registry has
/// it) builds without it and fails with it, as `docker build --pull` does.
#[tokio::test]
#[serial_test::parallel(builder_cache)]
async fn pull_asks_the_daemon_to_pull_the_base_image() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    let (dir, _marker) = s.busybox_context("echo {marker}");
    let name = s.repo("pull");
    let mut h = s.harness(dir.path()).await;
    let base = json!({"name": name, "push": false, "network": "none"});
    let checked = h.check_ok("p", &json!({}), &base).await;
    if let Err(e) = h.create("p", &checked, false).await {
        panic!("without pull: {e}\n{}", h.log_text());
    }
    remove_image(&s, &format!("{name}:latest"));
    let mut pulling = base.clone();
    pulling["pull"] = json!(true);
    pulling["noCache"] = json!(true);
    let checked = h.check_ok("p", &json!({}), &pulling).await;
    let e = h
        .create("p", &checked, false)
        .await
        .expect_err("the local-only base image cannot be pulled");
    assert!(
        e.message().contains(&s.base_image.replace(":1", "")),
        "the failure names the base image it tried to pull: {}",
        e.message()
    );
}
