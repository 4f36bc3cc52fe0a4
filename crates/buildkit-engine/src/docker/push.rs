//! Tagging and pushing through the daemon, with the pushed manifest's digest taken from the
//! push status (`<tag>: digest: sha256:… size: N`; bollard drops the aux record that also
//! carries it) or, failing that, from the image's repo digests.
//!
//! A tag is a name that any other build on the same daemon may move (the engine runs
//! resources in parallel; two stacks or CI jobs may share a daemon), so [`push_image`] checks
//! that the manifest it pushed is the image it was given (its config digest is the image id)
//! and pushes again when another build moved the tag in between: the digest it returns is
//! always that of the caller's image.
//!
//! Errors say what a user can fix: "authentication failed for <server>", "registry
//! <server> is unreachable". Not for: building.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use bollard::Docker;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt;

use super::plan::{Env, Level};
use super::{DaemonError, EngineError, PushError, Result};
use crate::credentials::Credentials;
use crate::reference::Reference;
use crate::registry::RegistryClient;

/// `docker save` of `names` (tags or an image id) into a tarball at `path`: written beside it
/// and renamed into place when complete, so a failure leaves what was there. The bytes
/// written.
pub async fn save(
    docker: &Docker,
    names: &[String],
    path: &std::path::Path,
) -> std::io::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let partial = super::session::filesend::partial_path(path);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let written = async {
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut stream = docker.export_images(&names);
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            file.write_all(&chunk).await?;
            n += chunk.len() as u64;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok::<_, std::io::Error>(n)
    }
    .await;
    match written {
        Ok(n) => {
            tokio::fs::rename(&partial, path).await?;
            Ok(n)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

/// Tags image `id` as `r` (a reference with a tag).
pub async fn tag(docker: &Docker, id: &str, r: &Reference) -> Result<()> {
    let options = TagImageOptionsBuilder::default()
        .repo(&r.repository())
        .tag(r.tag_or_latest())
        .build();
    docker.tag_image(id, Some(options)).await.map_err(|source| {
        PushError::Tag {
            target: r.to_string(),
            source,
        }
        .into()
    })
}

/// How often a push is tried again when other builds keep moving the tag.
const PUSH_ATTEMPTS: usize = 8;

/// One lock per daemon and `repository:tag`: builds in this process take turns between
/// tagging and the end of the push, so they never move each other's tag. Other processes
/// sharing the daemon are caught by the check in [`push_image`].
fn tag_lock(daemon: &str, target: &Reference) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let key = format!("{daemon} {target}");
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(key).or_default().clone()
}

/// The config digest a schema 2 / OCI image manifest names (for an image the daemon built,
/// its image id).
pub fn config_digest(manifest: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    v["config"]["digest"].as_str().map(str::to_string)
}

/// Tags the image `image_id` as `target`, pushes it, and returns the digest of the pushed
/// manifest, checked to be the manifest of `image_id` (pushed again if another build moved
/// the tag meanwhile).
pub async fn push_image(
    env: &Env<'_>,
    docker: &Docker,
    daemon: &str,
    image_id: &str,
    target: &Reference,
    creds: Option<&Credentials>,
    client: &RegistryClient,
) -> Result<String> {
    let lock = tag_lock(daemon, target);
    let _turn = lock.lock().await;
    for attempt in 1..=PUSH_ATTEMPTS {
        tag(docker, image_id, target).await?;
        let digest = push(env, docker, target, creds).await?;
        let manifest = client.get_manifest(&target.api_path(), &digest).await?;
        let pushed = manifest.as_ref().and_then(|(body, _)| config_digest(body));
        if pushed.as_deref() == Some(image_id) {
            return Ok(digest);
        }
        env.log(
            Level::Debug,
            &format!(
                "{target} was moved to another image by a concurrent build during the push (attempt {attempt}): pushing again"
            ),
        )
        .await;
        // Let the other build finish its push before trying again.
        tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
    }
    Err(PushError::TagKeptMoving {
        target: target.to_string(),
        attempts: PUSH_ATTEMPTS,
    }
    .into())
}

/// Finds `sha256:…` after `digest: ` in a push status line.
pub fn digest_from_status(line: &str) -> Option<String> {
    let rest = &line[line.find("digest: ")? + "digest: ".len()..];
    let d: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    (d.starts_with("sha256:") && d.len() == 7 + 64).then_some(d)
}

/// Pushes `r` and returns the manifest digest.
pub async fn push(
    env: &Env<'_>,
    docker: &Docker,
    r: &Reference,
    creds: Option<&Credentials>,
) -> Result<String> {
    let server = r.registry_host().to_string();
    let options = PushImageOptionsBuilder::default()
        .tag(r.tag_or_latest())
        .build();
    let credentials = creds.map(|c| super::docker_credentials(c, &server));
    let mut stream = docker.push_image(&r.repository(), Some(options), credentials);
    let mut digest = None;
    env.progress(&format!("pushing {r}")).await;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = env.cancel.cancelled() => {
                return Err(EngineError::Cancelled { what: "push", target: r.to_string() });
            }
        };
        let Some(item) = item else { break };
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(PushError::from_daemon(&server, &error, creds.is_some()).into());
            }
            // Anything but the daemon's own message is the connection to the daemon failing.
            Err(e) => {
                return Err(DaemonError::lost(super::daemon_host(&env.daemon), "push", e).into());
            }
        };
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(PushError::from_daemon(&server, &detail, creds.is_some()).into());
        }
        if let Some(status) = info.status {
            if let Some(d) = digest_from_status(&status) {
                digest = Some(d);
            }
            // Byte counts and per-layer waiting are noise; the rest is worth showing.
            let noise = matches!(status.as_str(), "Preparing" | "Waiting" | "Pushing");
            if !noise && info.progress_detail.is_none_or(|p| p.total.is_none()) {
                env.progress(&format!("push {r}: {status}")).await;
            }
        }
    }
    if let Some(d) = digest {
        return Ok(d);
    }
    // Fall back to the daemon's record of the push.
    let inspect = docker
        .inspect_image(&r.to_string())
        .await
        .map_err(|source| PushError::Inspect {
            target: r.to_string(),
            source,
        })?;
    let repo = r.repository();
    inspect
        .repo_digests
        .into_iter()
        .flatten()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_string))
        .ok_or_else(|| {
            PushError::NoDigest {
                target: r.to_string(),
            }
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_from_push_status() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            digest_from_status(&format!("latest: digest: {d} size: 528")),
            Some(d)
        );
        assert_eq!(digest_from_status("Pushed"), None);
        assert_eq!(
            digest_from_status("latest: digest: sha256:short size: 1"),
            None
        );
    }
}
