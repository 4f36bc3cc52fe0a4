//! The provider's small on-disk cache under the user's cache directory
//! (`$XDG_CACHE_HOME/docker-buildkit`, else `~/.cache/docker-buildkit`).
//!
//! Holds, per context hash, the list of (path, digest) of the files that made it, so that a
//! diff can name the files that changed between two hashes, and (under `statcache/`, written
//! by `context::statcache`) per context directory the digests of its files keyed by their
//! stat, so that unchanged files are not read again. Everything here is an
//! optimization: a missing, unreadable or corrupt entry means "not known", never an error.
//! `DOCKER_BUILDKIT_NO_CACHE=1` turns it off. Not for: anything that must be correct.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The cache directory, or `None` when disabled or no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    if std::env::var_os("DOCKER_BUILDKIT_NO_CACHE").is_some_and(|v| v != "0" && !v.is_empty()) {
        return None;
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("docker-buildkit"))
}

/// Where the per-context stat caches live, or `None` when the cache is disabled.
pub fn stat_cache_dir() -> Option<PathBuf> {
    Some(cache_dir()?.join("statcache"))
}

/// Replaces `path` with `bytes` atomically (a uniquely named temporary file in the same
/// directory, then a rename), creating the directory if needed: concurrent readers see the
/// old or the new file, never a mix, and concurrent writers each install a whole file (the
/// last one wins). Not synced to disk: after a crash the file may be lost or torn, which
/// readers of cache files must detect (a checksum) and treat as absent.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?;
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{}.{}.{}.{nanos}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let result = file
        .write_all(bytes)
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn manifest_path(hash: &str) -> Option<PathBuf> {
    if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(cache_dir()?.join("manifests").join(hash))
}

const HEADER: &str = "docker-buildkit manifest v1";

/// Records the files of a context hash (once; an existing entry is kept).
pub fn store_manifest(hash: &str, files: &[(String, String)]) {
    let Some(path) = manifest_path(hash) else {
        return;
    };
    if path.exists() {
        return;
    }
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{hash}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(f, "{HEADER}")?;
        for (p, d) in files {
            // Paths cannot hold a newline in a way we could store; skip them.
            if !p.contains('\n') {
                writeln!(f, "{d}\t{p}")?;
            }
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if write().is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The files of a context hash, when recorded.
pub fn load_manifest(hash: &str) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(manifest_path(hash)?).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return None;
    }
    lines
        .map(|l| {
            l.split_once('\t')
                .map(|(d, p)| (p.to_string(), d.to_string()))
        })
        .collect()
}
