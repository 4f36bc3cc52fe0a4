//! The real services the Docker tests use (started by `scripts/services.sh up`, which
//! `scripts/test.sh` runs): a private dockerd and a registry with htpasswd auth. A test
//! that needs a registry of its own starts one with [`registry::TestRegistry`].
#![allow(dead_code)]

pub mod registry;

use std::process::Command;

use serde_json::{Value, json};

use registry::{MANIFEST_ACCEPT, sha256_digest};

pub struct Services {
    pub docker_host: String,
    pub registry: String,
    pub user: String,
    pub password: String,
    pub base_image: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `bash scripts/services.sh up && source \"$(bash scripts/services.sh env)\"` (scripts/test.sh does this)")
    })
}

/// Whether this run must have the services: `DBK_REQUIRE_SERVICES=1` (scripts/test.sh and CI
/// set it), so that a missing service fails there instead of skipping.
pub fn services_required() -> bool {
    std::env::var("DBK_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Says, in one line, that the running test is skipped for want of `what`.
pub fn skip(what: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!(
        "skipped {test}: needs {what}; run `bash scripts/services.sh up && source \"$(bash scripts/services.sh env)\"` (or `bash scripts/test.sh`, which requires them)"
    );
}

/// Whether `program` runs from PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

impl Services {
    /// The services, or `None` after one line saying the test is skipped when they are not
    /// running (the env file was not sourced) and the run does not require them.
    pub fn get_or_skip() -> Option<Services> {
        if std::env::var_os("DBK_REGISTRY").is_none() && !services_required() {
            skip("the private dockerd and registry");
            return None;
        }
        Some(Services::get())
    }

    pub fn get() -> Services {
        Services {
            docker_host: var("DOCKER_HOST"),
            registry: var("DBK_REGISTRY"),
            user: var("DBK_REGISTRY_USER"),
            password: var("DBK_REGISTRY_PASSWORD"),
            base_image: var("DBK_BASE_IMAGE"),
        }
    }

    /// A repository name unique to this test run.
    pub fn repo(&self, what: &str) -> String {
        format!("{}/{what}-{}", self.registry, uuid::Uuid::new_v4().simple())
    }

    /// The `registry` input with the right credentials (password as a secret).
    pub fn registry_input(&self) -> Value {
        json!({"server": self.registry, "username": self.user, "password": super::secret(json!(self.password))})
    }

    /// A temporary build context whose Dockerfile runs `run` on the busybox base image, with
    /// every `{marker}` in it replaced by a marker unique to this call; returns the
    /// directory and the marker.
    pub fn busybox_context(&self, run: &str) -> (tempfile::TempDir, String) {
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let dir = tempfile::tempdir().unwrap();
        super::write_tree(
            dir.path(),
            &[(
                "Dockerfile",
                &format!(
                    "FROM {}\nRUN {}\n",
                    self.base_image,
                    run.replace("{marker}", &marker)
                ),
            )],
        );
        (dir, marker)
    }

    /// A provider configured for `program_dir` and the private daemon.
    pub async fn harness(&self, program_dir: &std::path::Path) -> super::Harness {
        super::Harness::configured(program_dir, self.config()).await
    }

    /// Provider configuration pointing at the private daemon.
    pub fn config(&self) -> Value {
        json!({"host": self.docker_host})
    }

    /// GETs a manifest with basic auth (independently of the provider's own client);
    /// returns (status, sha256 digest of the body, body).
    pub async fn get_manifest(&self, repo_path: &str, reference: &str) -> (u16, String, Value) {
        let url = format!(
            "http://{}/v2/{repo_path}/manifests/{reference}",
            self.registry
        );
        let resp = reqwest::Client::new()
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        (
            status,
            sha256_digest(&body),
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        )
    }

    /// GETs a blob (e.g. an image config) with basic auth.
    pub async fn get_blob(&self, repo_path: &str, digest: &str) -> Value {
        let url = format!("http://{}/v2/{repo_path}/blobs/{digest}", self.registry);
        let resp = reqwest::Client::new()
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "blob {digest}: {}",
            resp.status()
        );
        resp.json().await.unwrap()
    }

    /// Deletes a manifest from the registry.
    pub async fn delete_manifest(&self, repo_path: &str, digest: &str) {
        let url = format!("http://{}/v2/{repo_path}/manifests/{digest}", self.registry);
        let resp = reqwest::Client::new()
            .delete(url)
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "delete {digest}");
    }

    /// Runs the docker CLI against the private daemon.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("run docker")
    }
}

/// The repository path inside the registry of `repo` (`host:port/path` → `path`).
pub fn repo_path(repo: &str) -> &str {
    repo.split_once('/').map(|(_, p)| p).unwrap_or(repo)
}
