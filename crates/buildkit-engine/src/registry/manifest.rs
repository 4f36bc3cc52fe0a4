//! What the client knows of manifests and names: the media types the provider reads and
//! writes (Docker schema 2 manifests and manifest lists, OCI manifests and indexes), the
//! `Accept` header that keeps a registry from converting them, [`ManifestInfo`], and the
//! grammar of repository names, tags and digests.
//!
//! Not for: HTTP (`client.rs`), or reading a manifest beyond its `mediaType` (what an index
//! holds is `crate::docker::index`'s business).

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Sent with every manifest request. All four are needed: asked for OCI types only,
/// registry 2.8 converts Docker images to schema 1, which has a different digest.
pub(super) const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json";

/// The header in which a registry names a manifest's digest.
pub(super) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// What identifies a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `sha256:<hex>` of the manifest's exact bytes.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// The media type of a manifest served with `content_type` (parameters stripped): that,
/// when it names a manifest type; else the body's `mediaType` (some registries, and
/// schema 1, answer with a generic content type); else `content_type` anyway.
pub(super) fn media_type_of(content_type: String, body: &[u8]) -> String {
    if is_manifest_media_type(&content_type) {
        return content_type;
    }
    #[derive(Deserialize)]
    struct MediaTypeField {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeField>(body)
        .ok()
        .and_then(|m| m.media_type)
        .unwrap_or(content_type)
}

fn is_manifest_media_type(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.") && media_type.ends_with("+json")
        || media_type.starts_with("application/vnd.docker.distribution.manifest.v1")
}

/// A repository path: lowercase components of letters, digits, `.`, `_` and `-`, each
/// starting with a letter or digit, separated by `/`.
pub(super) fn is_repository(repo: &str) -> bool {
    !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|component| {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// A tag: up to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`.
pub(super) fn is_tag(reference: &str) -> bool {
    !reference.is_empty()
        && reference.len() <= 128
        && reference
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && reference.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// `algorithm:hex`, e.g. `sha256:…`.
pub(super) fn is_digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((algorithm, hex)) => {
            !algorithm.is_empty()
                && algorithm
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// `sha256:<hex>` of `bytes`.
pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_names() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_digest(&sha256_digest(b"x")));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest("SHA256:e3b0c44298fc1c149afbf4c8996fb924"));
        assert!(is_tag("v1.2-rc_3") && is_tag("_x") && !is_tag(".x") && !is_tag("a/b"));
        assert!(is_repository("team/app") && is_repository("a.b/c_d-e"));
        assert!(!is_repository("Team/app") && !is_repository("a//b") && !is_repository("-a"));
    }

    #[test]
    fn media_type_from_the_body_when_the_content_type_is_generic() {
        let body = format!(r#"{{"mediaType":"{MEDIA_TYPE_OCI_INDEX}"}}"#);
        assert_eq!(
            media_type_of("application/json".into(), body.as_bytes()),
            MEDIA_TYPE_OCI_INDEX
        );
        assert_eq!(
            media_type_of(MEDIA_TYPE_DOCKER_MANIFEST.into(), body.as_bytes()),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of("application/json".into(), b"{}"),
            "application/json"
        );
    }
}
