//! Tagging and pushing through the daemon, with the pushed manifest's digest taken from the
//! push status (`<tag>: digest: sha256:… size: N`; bollard drops the aux record that also
//! carries it) or, failing that, from the image's repo digests.
//!
//! Errors say what a user can fix: "authentication failed for <server>", "registry
//! <server> is unreachable". Not for: building.

use bollard::Docker;
use bollard::query_parameters::{PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt;

use super::auth::Credentials;
use crate::reference::Reference;
use crate::resource::{Ctx, ResourceError};
use crate::resources::ProviderConfig;

/// Tags image `id` as `r` (a reference with a tag).
pub async fn tag(docker: &Docker, id: &str, r: &Reference) -> Result<(), ResourceError> {
    let options = TagImageOptionsBuilder::default()
        .repo(&r.repository())
        .tag(r.tag_or_latest())
        .build();
    docker
        .tag_image(id, Some(options))
        .await
        .map_err(|e| ResourceError::Failed(format!("cannot tag the image as {r}: {e}")))
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

/// Turns the daemon's push error into one a user can act on.
pub fn explain_push_error(server: &str, error: &str, had_credentials: bool) -> ResourceError {
    let lower = error.to_ascii_lowercase();
    if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
        || lower.contains("401")
    {
        let hint = if had_credentials {
            "check the registry username and password"
        } else {
            "no credentials were found for it: set `registry` on the Image or log in with `docker login`"
        };
        return ResourceError::InvalidInput(format!(
            "authentication failed for {server}: {hint} ({error})"
        ));
    }
    if lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("i/o timeout")
        || lower.contains("dial tcp")
        || lower.contains("connection reset")
    {
        return ResourceError::Unavailable(format!("registry {server} is unreachable: {error}"));
    }
    ResourceError::Failed(format!("push to {server} failed: {error}"))
}

/// Pushes `r` and returns the manifest digest.
pub async fn push(
    ctx: &Ctx<ProviderConfig>,
    docker: &Docker,
    r: &Reference,
    creds: Option<&Credentials>,
) -> Result<String, ResourceError> {
    let server = r.registry_host().to_string();
    let options = PushImageOptionsBuilder::default()
        .tag(r.tag_or_latest())
        .build();
    let credentials = creds.map(|c| super::docker_credentials(c, &server));
    let mut stream = docker.push_image(&r.repository(), Some(options), credentials);
    let mut digest = None;
    ctx.progress(&format!("pushing {r}")).await;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = ctx.cancel.cancelled() => {
                return Err(ResourceError::Cancelled(format!("the push of {r} was stopped")));
            }
        };
        let Some(item) = item else { break };
        let info = match item {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(explain_push_error(&server, &error, creds.is_some()));
            }
            Err(e) => return Err(explain_push_error(&server, &e.to_string(), creds.is_some())),
        };
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(explain_push_error(&server, &detail, creds.is_some()));
        }
        if let Some(status) = info.status {
            if let Some(d) = digest_from_status(&status) {
                digest = Some(d);
            }
            // Byte counts and per-layer waiting are noise; the rest is worth showing.
            let noise = matches!(status.as_str(), "Preparing" | "Waiting" | "Pushing");
            if !noise && info.progress_detail.is_none_or(|p| p.total.is_none()) {
                ctx.progress(&format!("push {r}: {status}")).await;
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
        .map_err(|e| ResourceError::Failed(format!("cannot inspect {r} after pushing it: {e}")))?;
    let repo = r.repository();
    inspect
        .repo_digests
        .into_iter()
        .flatten()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_string))
        .ok_or_else(|| ResourceError::Failed(format!("the push of {r} reported no digest")))
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

    #[test]
    fn push_errors_are_explained() {
        let e = explain_push_error("r:5000", "unauthorized: authentication required", true);
        assert!(
            e.to_string()
                .starts_with("authentication failed for r:5000"),
            "{e}"
        );
        let e = explain_push_error(
            "r:5000",
            "Get \"http://r:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused",
            true,
        );
        assert!(
            e.to_string().starts_with("registry r:5000 is unreachable"),
            "{e}"
        );
    }
}
