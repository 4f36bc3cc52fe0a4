//! RUN steps for a foreign platform: on this amd64 Docker host, `linux/arm64` RUN steps run
//! through qemu user emulation registered with the kernel's binfmt_misc
//! (`scripts/services.sh up` sets it up and reports `DBK_EMULATION`), and without it the
//! build fails with the provider's hint on how to enable it.
//!
//! Both tests touch host-wide state (the `qemu-aarch64` binfmt handler), so they run one at
//! a time (`serial(emulation)`).

mod common;

use std::path::{Path, PathBuf};

use common::services::{Services, repo_path};
use common::*;
use serde_json::json;
use serial_test::serial;

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

/// Fails loudly (never skips) when the services report that emulation is unavailable.
fn require_emulation() {
    let flag = std::env::var("DBK_EMULATION").unwrap_or_else(|_| {
        panic!("DBK_EMULATION is not set: run `bash scripts/services.sh up && source \"$(bash scripts/services.sh env)\"`")
    });
    if flag != "1" {
        panic!(
            "emulation of linux/arm64 is not available on this Docker host, so RUN steps for \
             linux/arm64 cannot run: {}",
            std::env::var("DBK_EMULATION_REASON").unwrap_or_default()
        );
    }
    let state = std::fs::read_to_string(HANDLER)
        .unwrap_or_else(|e| panic!("{HANDLER}: {e} (run scripts/services.sh up)"));
    assert!(
        state.starts_with("enabled"),
        "{HANDLER} is not enabled:\n{state}"
    );
}

/// The base image per target architecture: the Dockerfiles use
/// `FROM dbk-busybox-${TARGETARCH}:1`, which must be what the services made.
fn check_base_images() {
    for (var, want) in [
        ("DBK_BASE_IMAGE_AMD64", "dbk-busybox-amd64:1"),
        ("DBK_BASE_IMAGE_ARM64", "dbk-busybox-arm64:1"),
    ] {
        assert_eq!(
            std::env::var(var).as_deref(),
            Ok(want),
            "{var}: the Dockerfiles here name the base images by architecture"
        );
    }
}

/// Disables the qemu-aarch64 handler until dropped; re-enabled on drop, panics included.
struct HandlerDisabled;

impl HandlerDisabled {
    fn new() -> HandlerDisabled {
        std::fs::write(HANDLER, "0").unwrap_or_else(|e| panic!("disable {HANDLER}: {e}"));
        HandlerDisabled
    }
}

impl Drop for HandlerDisabled {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(HANDLER, "1") {
            eprintln!(
                "could not re-enable {HANDLER}: {e}; run `echo 1 > {HANDLER}` or scripts/services.sh up"
            );
        }
    }
}

async fn provider(s: &Services, dir: &Path) -> Harness {
    let mut h = Harness::start(&[]).await;
    h.configure(dir, s.config()).await;
    h
}

/// A context whose Dockerfile picks the base by target architecture and runs `uname -m`
/// (with a fresh nonce, so no build cache can stand in for running it). `TARGETARCH` is
/// used undeclared: the BuildKit of dockerd 20.10 expands a global `ARG TARGETARCH` (no
/// default) in `FROM` to the empty string.
fn context_with_run() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    write_tree(
        dir.path(),
        &[(
            "Dockerfile",
            &format!(
                "FROM dbk-busybox-${{TARGETARCH}}:1\nRUN echo {nonce} > /nonce && uname -m > /arch\n"
            ),
        )],
    );
    dir
}

/// The docker CLI against the private daemon with its own config dir (logged in there).
struct Cli {
    host: String,
    config: tempfile::TempDir,
}

impl Cli {
    fn login(s: &Services) -> Cli {
        let cli = Cli {
            host: s.docker_host.clone(),
            config: tempfile::tempdir().unwrap(),
        };
        let status = std::process::Command::new("docker")
            .args(["login", "-u", &s.user, "--password-stdin", &s.registry])
            .env("DOCKER_HOST", &cli.host)
            .env("DOCKER_CONFIG", cli.config.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(s.password.as_bytes())?;
                c.wait()
            })
            .unwrap();
        assert!(status.success(), "docker login {}", s.registry);
        cli
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Pulls `image` for `platform` and returns the content of `path` in it.
    fn file_of(&self, image: &str, platform: &str, path: &str) -> String {
        self.run(&["pull", "-q", "--platform", platform, image]);
        let id = self.run(&["create", "--platform", platform, image, "true"]);
        let id = id.trim();
        let out = tempfile::tempdir().unwrap();
        let dest: PathBuf = out.path().join("file");
        self.run(&["cp", &format!("{id}:{path}"), dest.to_str().unwrap()]);
        self.run(&["rm", id]);
        self.run(&["image", "rm", image]);
        std::fs::read_to_string(dest).unwrap()
    }
}

#[tokio::test]
#[serial(emulation)]
async fn arm64_run_steps_run_under_emulation_in_a_pushed_index() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    require_emulation();
    check_base_images();
    let dir = context_with_run();
    let repo = s.repo("emulated");
    let inputs = json!({
        "name": format!("{repo}:v1"),
        "platforms": ["linux/amd64", "linux/arm64"],
        // RUN needs a network mode other than the default under this daemon's --bridge=none.
        "network": "none",
        "registry": s.registry_input(),
    });
    let mut h = provider(&s, dir.path()).await;
    let checked = h.check_ok("e", &json!({}), &inputs).await;
    let created = h.create("e", &checked, false).await;
    let st = match created {
        Ok(r) => from_struct(r.properties.as_ref().unwrap()),
        Err(e) => panic!("{}\nlog:\n{}", e.message(), h.log_text()),
    };

    let (status, index_digest, index) = s.get_manifest(repo_path(&repo), "v1").await;
    assert_eq!(status, 200);
    assert_eq!(st["ref"], json!(format!("{repo}@{index_digest}")));
    let entries = index["manifests"].as_array().unwrap();
    let archs: Vec<&str> = entries
        .iter()
        .map(|e| e["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{index}");
    for entry in entries {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        let (_, _, manifest) = s
            .get_manifest(repo_path(&repo), entry["digest"].as_str().unwrap())
            .await;
        let config = s
            .get_blob(
                repo_path(&repo),
                manifest["config"]["digest"].as_str().unwrap(),
            )
            .await;
        assert_eq!(config["architecture"], arch, "config of the {arch} entry");
    }

    // What `uname -m` printed in the RUN step of each platform's build.
    let cli = Cli::login(&s);
    let pinned = format!("{repo}@{index_digest}");
    assert_eq!(cli.file_of(&pinned, "linux/amd64", "/arch"), "x86_64\n");
    assert_eq!(
        cli.file_of(&pinned, "linux/arm64", "/arch"),
        "aarch64\n",
        "the arm64 RUN step ran as an arm64 program (under qemu)"
    );
}

#[tokio::test]
#[serial(emulation)]
async fn without_emulation_an_arm64_run_step_fails_with_the_fix() {
    let Some(s) = Services::get_or_skip() else {
        return;
    };
    require_emulation();
    check_base_images();
    let dir = context_with_run();
    let repo = s.repo("noemu");
    let inputs = json!({
        "name": repo,
        "platforms": ["linux/arm64"],
        "network": "none",
        "registry": s.registry_input(),
    });
    let mut h = provider(&s, dir.path()).await;
    let checked = h.check_ok("n", &json!({}), &inputs).await;
    let result = {
        let _disabled = HandlerDisabled::new();
        h.create("n", &checked, false).await
    };
    let state = std::fs::read_to_string(HANDLER).unwrap();
    assert!(state.starts_with("enabled"), "re-enabled:\n{state}");

    let e = result.expect_err("an arm64 RUN step cannot run without emulation");
    let msg = e.message();
    // The daemon's error says only "exit code: 1"; the cause is in the step's log, which
    // the user sees too.
    let log = h.log_text();
    assert!(
        log.contains("exec /bin/sh: exec format error"),
        "the build log shows the cause: {log}"
    );
    assert!(
        msg.contains("The Docker host cannot run linux/arm64 programs"),
        "{msg}"
    );
    assert!(msg.contains("qemu-user-static"), "{msg}");
    assert!(msg.contains("binfmt"), "{msg}");
    assert!(
        msg.contains("update-binfmts --enable qemu-aarch64"),
        "{msg}"
    );
    assert!(msg.contains("RUN echo"), "names the failing step: {msg}");
}
