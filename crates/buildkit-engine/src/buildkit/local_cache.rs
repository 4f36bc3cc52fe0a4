//! The `local` cache of a solve, the client's part, as BuildKit's own client does it
//! (`client/solve.go`, `parseCacheOptions`): the cache lives in an OCI layout directory on
//! this machine, served to the daemon over the session as containerd's Content service
//! ([`content`]) under the store id `local:<dir>`.
//!
//! Before the solve, an export (`type=local,dest=DIR`) gets its directory created and its
//! store attached; its attributes go to the daemon as they are (the daemon makes the store id
//! of `dest` itself). An import (`type=local,src=DIR`) gets the digest of its cache manifest
//! from the directory's `index.json` (by `tag`, `latest` by default) unless it names one
//! (`digest`); one whose directory has no `index.json`, no manifest of that tag, or not that
//! blob is dropped with a warning, as BuildKit's client drops it (a missing cache is no
//! error). After a solve that went well, each export's `index.json` is given the cache
//! manifest the daemon reports under `cache.manifest` (its descriptor, as JSON), tagged.
//!
//! Not for: serving the store (`docker::session::content`), deciding which caches a build
//! uses (the caller's plan, `docker/kit.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::BuildkitError;
use crate::docker::plan::Level;
use crate::docker::session::content::{self, ContentError, OciLayout};

/// Key of the exporter response holding the exported cache manifest's descriptor (BuildKit's
/// `remotecache.ExporterResponseManifestDesc`).
pub const MANIFEST_RESPONSE_KEY: &str = "cache.manifest";

/// The cache type of a directory cache.
pub const LOCAL: &str = "local";

/// The tag of a cache in its directory's `index.json` when none is given.
pub const DEFAULT_TAG: &str = "latest";

type Entries = Vec<(String, BTreeMap<String, String>)>;

/// A solve's cache options made ready for the daemon.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The exports, as the daemon takes them.
    pub exports: Entries,
    /// The imports, as the daemon takes them (local ones with their `digest`; those with no
    /// cache left out).
    pub imports: Entries,
    /// The directories the session serves, by store id.
    pub stores: BTreeMap<String, PathBuf>,
    /// The directories whose `index.json` takes the exported manifest, with its tag.
    pub to_update: Vec<(PathBuf, String)>,
    /// What was passed over, for the build's log.
    pub warnings: Vec<String>,
}

/// Makes `exports` and `imports` what the daemon expects: the directories of `local` exports
/// created, `local` imports given their digest (or dropped with a warning). Blocking (it
/// reads and creates directories).
pub fn prepare(exports: Entries, imports: Entries) -> Result<Prepared, BuildkitError> {
    let mut out = Prepared::default();
    for (kind, attrs) in exports {
        if kind == LOCAL {
            let dir = required(&attrs, "dest", "a local cache export")?;
            std::fs::create_dir_all(&dir).map_err(|e| BuildkitError::LocalCache {
                dir: dir.display().to_string(),
                reason: format!("cannot create it: {e}"),
            })?;
            let tag = attrs
                .get("tag")
                .cloned()
                .unwrap_or_else(|| DEFAULT_TAG.to_string());
            out.stores.insert(content::store_id(&dir), dir.clone());
            out.to_update.retain(|(d, _)| *d != dir);
            out.to_update.push((dir, tag));
        }
        out.exports.push((kind, attrs));
    }
    for (kind, mut attrs) in imports {
        if kind == LOCAL {
            let dir = required(&attrs, "src", "a local cache import")?;
            match import_digest(&dir, &attrs)? {
                Ok(digest) => {
                    attrs.insert("digest".to_string(), digest);
                    out.stores.insert(content::store_id(&dir), dir);
                }
                Err(why) => {
                    out.warnings.push(format!(
                        "local cache import at {} skipped: {why}",
                        dir.display()
                    ));
                    continue;
                }
            }
        }
        out.imports.push((kind, attrs));
    }
    Ok(out)
}

fn required(
    attrs: &BTreeMap<String, String>,
    key: &'static str,
    what: &'static str,
) -> Result<PathBuf, BuildkitError> {
    attrs
        .get(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(BuildkitError::CacheOption { what, needs: key })
}

/// The cache manifest digest a local import of `dir` reads, or why it has none.
fn import_digest(
    dir: &std::path::Path,
    attrs: &BTreeMap<String, String>,
) -> Result<Result<String, String>, BuildkitError> {
    let layout = OciLayout::new(dir);
    let digest = match attrs.get("digest").filter(|d| !d.is_empty()) {
        Some(d) => d.clone(),
        None => {
            let tag = attrs.get("tag").map(String::as_str).unwrap_or(DEFAULT_TAG);
            if tag.is_empty() {
                return Err(BuildkitError::CacheOption {
                    what: "a local cache import",
                    needs: "digest or a tag (`latest` by default)",
                });
            }
            match layout.read_index() {
                Ok(None) => return Ok(Err("it has no index.json".to_string())),
                Err(e) => return Ok(Err(e.to_string())),
                Ok(Some(_)) => {}
            }
            match layout.tagged(tag) {
                Ok(Some(desc)) => match desc.get("digest").and_then(|d| d.as_str()) {
                    Some(d) => d.to_string(),
                    None => return Ok(Err(format!("the manifest of tag {tag} has no digest"))),
                },
                Ok(None) => return Ok(Err(format!("no digest found for tag {tag}"))),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
    };
    match layout.blob_path(&digest) {
        Ok(path) if path.is_file() => Ok(Ok(digest)),
        Ok(_) => Ok(Err(format!("digest {digest} unavailable: not found"))),
        Err(e) => Ok(Err(format!("digest {digest} unavailable: {e}"))),
    }
}

/// After a solve that went well: puts the cache manifest the daemon reported in the
/// `index.json` of every local export; what was written, and what was passed over (a
/// warning), for the log. Blocking.
pub fn finish(
    prepared: &Prepared,
    exporter_response: &BTreeMap<String, String>,
) -> Result<Vec<(Level, String)>, BuildkitError> {
    let mut notes = Vec::new();
    if prepared.to_update.is_empty() {
        return Ok(notes);
    }
    let Some(json) = exporter_response.get(MANIFEST_RESPONSE_KEY) else {
        for (dir, _) in &prepared.to_update {
            notes.push((
                Level::Warning,
                format!(
                    "the BuildKit daemon reported no cache manifest: the index.json of the local cache {} is not updated",
                    dir.display()
                ),
            ));
        }
        return Ok(notes);
    };
    let failed = |dir: &PathBuf, reason: String| BuildkitError::LocalCache {
        dir: dir.display().to_string(),
        reason,
    };
    let descriptor: serde_json::Value = serde_json::from_str(json).map_err(|e| {
        failed(
            &prepared.to_update[0].0,
            format!("the daemon's cache manifest descriptor is not JSON: {e}"),
        )
    })?;
    let digest = descriptor
        .get("digest")
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .to_string();
    for (dir, tag) in &prepared.to_update {
        let layout = OciLayout::new(dir);
        // The daemon reports one manifest for all its cache exports: a directory that did
        // not get it (another export's) keeps its index.json.
        let there = layout.blob_path(&digest).map(|p| p.is_file());
        match there {
            Ok(true) => {
                layout
                    .put_index(&descriptor, tag)
                    .map_err(|e: ContentError| failed(dir, e.to_string()))?;
                layout.tidy();
                notes.push((
                    Level::Info,
                    format!(
                        "exported the cache to {} ({digest}, tag {tag})",
                        dir.display()
                    ),
                ));
            }
            Ok(false) | Err(_) => notes.push((
                Level::Warning,
                format!(
                    "the cache manifest the BuildKit daemon reported ({digest}) is not in {}: its index.json is not updated",
                    dir.display()
                ),
            )),
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn put_blob(dir: &std::path::Path, data: &[u8]) -> String {
        use sha2::Digest;
        let hex = format!("{:x}", sha2::Sha256::digest(data));
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(&hex), data).unwrap();
        format!("sha256:{hex}")
    }

    #[test]
    fn an_export_gets_its_directory_and_store_and_keeps_its_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("cache");
        let dest_s = dest.to_string_lossy().into_owned();
        let p = prepare(
            vec![
                ("inline".into(), BTreeMap::new()),
                ("local".into(), attrs(&[("dest", &dest_s), ("mode", "max")])),
            ],
            vec![],
        )
        .unwrap();
        assert!(dest.is_dir());
        assert_eq!(p.exports[1].1, attrs(&[("dest", &dest_s), ("mode", "max")]));
        assert_eq!(p.stores.get(&format!("local:{dest_s}")), Some(&dest));
        assert_eq!(p.to_update, vec![(dest, "latest".to_string())]);
    }

    #[test]
    fn an_import_without_a_cache_is_dropped_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().to_string_lossy().into_owned();
        let p = prepare(
            vec![],
            vec![
                ("local".into(), attrs(&[("src", &src)])),
                ("registry".into(), attrs(&[("ref", "r.io/a:cache")])),
            ],
        )
        .unwrap();
        assert_eq!(p.imports.len(), 1, "{:?}", p.imports);
        assert_eq!(p.imports[0].0, "registry");
        assert!(p.stores.is_empty());
        assert!(
            p.warnings[0].contains("skipped") && p.warnings[0].contains("index.json"),
            "{:?}",
            p.warnings
        );

        // An index.json without that tag.
        let digest = put_blob(tmp.path(), b"{}");
        OciLayout::new(tmp.path())
            .put_index(
                &serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 2}),
                "other",
            )
            .unwrap();
        let p = prepare(vec![], vec![("local".into(), attrs(&[("src", &src)]))]).unwrap();
        assert!(p.imports.is_empty());
        assert!(
            p.warnings[0].contains("no digest found for tag latest"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn an_import_reads_its_digest_from_the_tag_and_needs_the_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().to_string_lossy().into_owned();
        let digest = put_blob(tmp.path(), b"manifest");
        let desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 8});
        OciLayout::new(tmp.path())
            .put_index(&desc, "latest")
            .unwrap();
        let p = prepare(vec![], vec![("local".into(), attrs(&[("src", &src)]))]).unwrap();
        assert_eq!(
            p.imports,
            vec![(
                "local".to_string(),
                attrs(&[("src", &src), ("digest", &digest)])
            )]
        );
        assert!(p.stores.contains_key(&format!("local:{src}")));
        assert!(p.warnings.is_empty());

        // A digest given, but not there; and one that is no digest at all.
        for given in [
            format!("sha256:{}", "0".repeat(64)),
            "sha256:../../etc/passwd".to_string(),
        ] {
            let p = prepare(
                vec![],
                vec![("local".into(), attrs(&[("src", &src), ("digest", &given)]))],
            )
            .unwrap();
            assert!(p.imports.is_empty());
            assert!(p.warnings[0].contains("unavailable"), "{:?}", p.warnings);
        }
    }

    #[test]
    fn without_dest_or_src_it_is_an_error() {
        let e = prepare(vec![("local".into(), BTreeMap::new())], vec![]).unwrap_err();
        assert!(e.to_string().contains("dest"), "{e}");
        let e = prepare(vec![], vec![("local".into(), BTreeMap::new())]).unwrap_err();
        assert!(e.to_string().contains("src"), "{e}");
    }

    #[test]
    fn after_the_solve_the_index_takes_the_reported_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("c");
        let p = prepare(
            vec![(
                "local".into(),
                attrs(&[("dest", &dest.to_string_lossy()), ("tag", "v1")]),
            )],
            vec![],
        )
        .unwrap();
        let digest = put_blob(&dest, b"the manifest");
        let desc = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 12});
        let response = BTreeMap::from([(MANIFEST_RESPONSE_KEY.to_string(), desc.to_string())]);
        let notes = finish(&p, &response).unwrap();
        assert_eq!(notes[0].0, Level::Info);
        assert!(notes[0].1.contains("exported the cache"), "{notes:?}");
        let layout = OciLayout::new(&dest);
        let tagged = layout.tagged("v1").unwrap().unwrap();
        assert_eq!(tagged["digest"], digest.as_str());
        assert!(dest.join("oci-layout").is_file());

        // A manifest that is not in the directory leaves the index as it was.
        let other = serde_json::json!({"digest": format!("sha256:{}", "1".repeat(64)), "size": 1});
        let response = BTreeMap::from([(MANIFEST_RESPONSE_KEY.to_string(), other.to_string())]);
        let notes = finish(&p, &response).unwrap();
        assert_eq!(notes[0].0, Level::Warning);
        assert!(notes[0].1.contains("not updated"), "{notes:?}");
        assert_eq!(
            layout.tagged("v1").unwrap().unwrap()["digest"],
            digest.as_str()
        );
    }
}
