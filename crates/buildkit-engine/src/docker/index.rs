//! What the Docker Engine API cannot do, done against the registry: pushing an image index
//! over per-platform manifests, tagging registry-side (a manifest copy), and finding an
//! image already built from the same context (`ctx-<hash>` tags).
//!
//! The daemon pushes Docker schema 2 manifests, so the index is a Docker manifest list
//! (`application/vnd.docker.distribution.manifest.list.v2+json`) whose entries carry each
//! manifest's exact media type, size and digest, and its platform. Not for: building.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Result;
use crate::platform::Platform;
use crate::registry::{
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_OCI_INDEX, ManifestInfo, RegistryClient,
};

/// A platform's JSON in an index entry.
fn platform_json(p: &Platform) -> Value {
    let mut json = json!({"architecture": p.architecture, "os": p.os});
    if let Some(v) = &p.variant {
        json["variant"] = json!(v);
    }
    json
}

/// The bytes of a Docker manifest list over `(platform, manifest)` entries.
pub fn manifest_list(entries: &[(Platform, ManifestInfo)]) -> Vec<u8> {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|(p, m)| {
            json!({
                "mediaType": m.media_type,
                "size": m.size,
                "digest": m.digest,
                "platform": platform_json(p),
            })
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_DOCKER_MANIFEST_LIST,
        "manifests": manifests,
    });
    serde_json::to_vec_pretty(&index).unwrap_or_default()
}

/// The per-platform digests listed in an index (empty for a plain manifest).
pub fn platform_digests(media_type: &str, body: &[u8]) -> BTreeMap<String, String> {
    if media_type != MEDIA_TYPE_DOCKER_MANIFEST_LIST && media_type != MEDIA_TYPE_OCI_INDEX {
        return BTreeMap::new();
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return BTreeMap::new();
    };
    v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            // BuildKit's attestation manifests ride in the index as `unknown/unknown`.
            m["annotations"]["vnd.docker.reference.type"].as_str() != Some("attestation-manifest")
        })
        .filter_map(|m| {
            let p = &m["platform"];
            let mut name = format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?);
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            Some((name, m["digest"].as_str()?.to_string()))
        })
        .collect()
}

/// The tag that marks an image built from a context hash.
pub fn context_tag(context_hash: &str) -> String {
    format!("ctx-{}", &context_hash[..context_hash.len().min(16)])
}

/// Looks up `repo:tag`; returns its bytes and identity when it exists.
pub async fn fetch(
    client: &RegistryClient,
    repo: &str,
    tag: &str,
) -> Result<Option<(Vec<u8>, ManifestInfo)>> {
    client.get_manifest(repo, tag).await.map_err(Into::into)
}

/// Puts `body` under `tag` (a registry-side tag of an existing manifest, or a new index).
pub async fn put(
    client: &RegistryClient,
    repo: &str,
    tag: &str,
    media_type: &str,
    body: &[u8],
) -> Result<String> {
    client
        .put_manifest(repo, tag, media_type, body)
        .await
        .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_name() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm", Some("v7"))
        );
        assert_eq!(p.tag_suffix(), "linux-arm-v7");
        assert_eq!(p.name(), "linux/arm/v7");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }

    #[test]
    fn manifest_list_round_trips_platform_digests() {
        let m = |d: &str, size| ManifestInfo {
            digest: format!("sha256:{}", d.repeat(64)),
            media_type: crate::registry::MEDIA_TYPE_DOCKER_MANIFEST.into(),
            size,
        };
        let body = manifest_list(&[
            (Platform::parse("linux/amd64").unwrap(), m("a", 525)),
            (Platform::parse("linux/arm/v7").unwrap(), m("b", 700)),
        ]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["manifests"][1]["platform"]["variant"], "v7");
        assert_eq!(v["manifests"][0]["size"], 525);
        let digests = platform_digests(MEDIA_TYPE_DOCKER_MANIFEST_LIST, &body);
        assert_eq!(digests["linux/amd64"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(
            digests["linux/arm/v7"],
            format!("sha256:{}", "b".repeat(64))
        );
        assert!(platform_digests(crate::registry::MEDIA_TYPE_DOCKER_MANIFEST, &body).is_empty());
    }

    #[test]
    fn context_tags_are_short_and_valid() {
        let t = context_tag("0123456789abcdef0123456789abcdef");
        assert_eq!(t, "ctx-0123456789abcdef");
        crate::reference::validate_tag(&t).unwrap();
    }
}
