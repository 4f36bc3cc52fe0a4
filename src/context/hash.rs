//! Content hashing of a build context (xxh3-128).
//!
//! This is for deciding whether a context changed since the last build and,
//! if so, which paths changed (for diff messages). It hashes exactly what
//! the tar writer sends, minus what must not trigger rebuilds: per entry the
//! path, the kind, the owner exec bit, and the file content or symlink
//! target; never mtimes, owners, or other permission bits. It is not a
//! security digest (xxh3 is not collision resistant against an adversary)
//! and not the image/layer digest BuildKit computes.
//!
//! Framing: every entry gets its own digest over
//! `len(path) ‖ path ‖ kind ‖ exec ‖ payload`, where the payload (content, or
//! `len(target) ‖ target`) is last, so no two different entries can produce
//! the same byte stream. The context hash is then taken over a version tag,
//! the entry count and the fixed-size entry digests, then the same for the
//! build files (Dockerfile, ignore file).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use super::{BuildFile, ContextDigest, ContextError, Entry, EntryKind};

/// Bumped whenever the framing changes, so old digests never match new ones.
const VERSION_TAG: &[u8] = b"docker-buildkit/context-hash/v1\0";

/// Read buffer size for file contents.
const CHUNK: usize = 128 * 1024;

/// Hashes the given entries and build files (file contents are read from
/// `root`).
pub(crate) fn hash_all(
    root: &Path,
    entries: &[Entry],
    build_files: &[BuildFile<'_>],
) -> Result<ContextDigest, ContextError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = Xxh3::new();
    total.update(VERSION_TAG);

    total.update(&(entries.len() as u64).to_le_bytes());
    let mut files = Vec::with_capacity(entries.len());
    for entry in entries {
        let digest = entry_digest(root, entry, &mut buf)?;
        total.update(&digest.to_le_bytes());
        files.push((entry.path.clone(), hex(digest)));
    }

    total.update(&(build_files.len() as u64).to_le_bytes());
    let mut build = Vec::with_capacity(build_files.len());
    for file in build_files {
        let digest = match file {
            BuildFile::Disk(entry) => entry_digest(root, entry, &mut buf)?,
            BuildFile::Inline(text) => {
                let mut h = entry_header(file.name(), EntryKind::File, false);
                h.update(text.as_bytes());
                h.digest128()
            }
        };
        total.update(&digest.to_le_bytes());
        build.push((file.name().to_owned(), hex(digest)));
    }

    Ok(ContextDigest {
        hash: hex(total.digest128()),
        files,
        build_files: build,
    })
}

/// Given two `files` lists, the paths added, removed or changed, sorted
/// (for "3 files changed: a, b, c" diff messages).
pub fn changed_paths(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let old_map: BTreeMap<&str, &str> = old.iter().map(|(p, d)| (p.as_str(), d.as_str())).collect();
    let new_map: BTreeMap<&str, &str> = new.iter().map(|(p, d)| (p.as_str(), d.as_str())).collect();
    let mut changed: Vec<String> = new_map
        .iter()
        .filter(|(path, digest)| old_map.get(*path) != Some(*digest))
        .map(|(path, _)| (*path).to_owned())
        .chain(
            old_map
                .keys()
                .filter(|path| !new_map.contains_key(*path))
                .map(|path| (*path).to_owned()),
        )
        .collect();
    changed.sort_unstable();
    changed
}

fn hex(digest: u128) -> String {
    format!("{digest:032x}")
}

/// Starts an entry's hasher with the framed path, kind and exec bit.
fn entry_header(path: &str, kind: EntryKind, executable: bool) -> Xxh3 {
    let mut h = Xxh3::new();
    h.update(&(path.len() as u64).to_le_bytes());
    h.update(path.as_bytes());
    let kind_byte: u8 = match kind {
        EntryKind::File => 1,
        EntryKind::Dir => 2,
        EntryKind::Symlink => 3,
    };
    h.update(&[kind_byte, u8::from(executable)]);
    h
}

/// The digest of one entry (reads file contents in chunks).
pub(crate) fn entry_digest(
    root: &Path,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<u128, ContextError> {
    let mut h = entry_header(&entry.path, entry.kind, entry.executable);
    match entry.kind {
        EntryKind::Dir => {}
        EntryKind::Symlink => {
            let target = entry
                .link_target
                .as_deref()
                .map(path_bytes)
                .unwrap_or_default();
            h.update(&(target.len() as u64).to_le_bytes());
            h.update(&target);
        }
        EntryKind::File => {
            let path = root.join(&entry.path);
            let mut file = open_regular(&path)?;
            loop {
                match file.read(buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(source) => return Err(ContextError::ReadFile { path, source }),
                }
            }
        }
    }
    Ok(h.digest128())
}

/// Opens a file that the walk saw as a regular file, and checks it still is
/// one.
pub(crate) fn open_regular(path: &Path) -> Result<File, ContextError> {
    let file = File::open(path).map_err(|source| ContextError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let md = file.metadata().map_err(|source| ContextError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if !md.is_file() {
        return Err(ContextError::ChangedWhileReading {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Raw bytes of a path (symlink targets need not be UTF-8).
#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().as_bytes().to_vec()
}

#[cfg(all(test, unix))]
mod tests {
    use super::super::test_support::{build_tree, write};
    use super::super::{BuildContext, DockerfileSource};
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    fn open(root: &Path) -> BuildContext {
        BuildContext::open(root, DockerfileSource::Path("Dockerfile".into())).expect("open")
    }

    fn digest(root: &Path) -> ContextDigest {
        open(root).hash().expect("hash")
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        build_tree(
            dir.path(),
            &[
                "Dockerfile",
                "src/main.rs",
                "src/lib.rs",
                "run.sh",
                "empty/",
                "link -> src/main.rs",
            ],
        );
        write(dir.path(), ".dockerignore", "*.tmp\nscratch\n");
        write(dir.path(), "notes.tmp", "ignored");
        chmod(&dir.path().join("src/main.rs"), 0o644);
        dir
    }

    #[test]
    fn digest_shape() {
        let dir = fixture();
        let d = digest(dir.path());
        assert_eq!(d.hash.len(), 32);
        assert!(
            d.hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let paths: Vec<&str> = d.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".dockerignore",
                "Dockerfile",
                "empty",
                "link",
                "run.sh",
                "src",
                "src/lib.rs",
                "src/main.rs"
            ]
        );
        let names: Vec<&str> = d.build_files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["Dockerfile", ".dockerignore"]);
        assert_eq!(digest(dir.path()), d, "deterministic");
    }

    #[test]
    fn full_mode_and_mtime_do_not_matter() {
        let dir = fixture();
        let before = digest(dir.path());
        let main = dir.path().join("src/main.rs");
        chmod(&main, 0o600);
        assert_eq!(digest(dir.path()).hash, before.hash, "0644 -> 0600");
        chmod(&dir.path().join("src"), 0o700);
        assert_eq!(digest(dir.path()).hash, before.hash, "dir mode");
        let file = fs::File::options().write(true).open(&main).expect("open");
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
            .expect("set mtime");
        assert_eq!(digest(dir.path()).hash, before.hash, "mtime");
    }

    #[test]
    fn exec_bit_matters() {
        let dir = fixture();
        let before = digest(dir.path());
        chmod(&dir.path().join("src/main.rs"), 0o744);
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["src/main.rs"]);
    }

    #[test]
    fn rename_matters() {
        let dir = fixture();
        let before = digest(dir.path());
        fs::rename(
            dir.path().join("src/lib.rs"),
            dir.path().join("src/lib2.rs"),
        )
        .expect("mv");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(
            changed_paths(&before.files, &after.files),
            ["src/lib.rs", "src/lib2.rs"]
        );
    }

    #[test]
    fn excluded_edits_do_not_matter_included_edits_do() {
        let dir = fixture();
        let before = digest(dir.path());
        write(dir.path(), "notes.tmp", "changed");
        write(dir.path(), "scratch/new.txt", "new");
        assert_eq!(digest(dir.path()).hash, before.hash);

        write(dir.path(), "src/lib.rs", "fn changed() {}");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["src/lib.rs"]);
    }

    #[test]
    fn symlinks_are_hashed_as_links() {
        let dir = fixture();
        let before = digest(dir.path());
        // Changing what the link points at (not the target's content).
        fs::remove_file(dir.path().join("link")).expect("rm");
        std::os::unix::fs::symlink("src/lib.rs", dir.path().join("link")).expect("symlink");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["link"]);

        // A link out of the context is fine and never followed: changing
        // the outside file changes nothing.
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret", "one");
        fs::remove_file(dir.path().join("link")).expect("rm");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link"))
            .expect("symlink");
        let linked = digest(dir.path());
        write(outside.path(), "secret", "two, longer");
        assert_eq!(digest(dir.path()).hash, linked.hash);
        // Even a dangling link is fine.
        fs::remove_file(outside.path().join("secret")).expect("rm");
        assert_eq!(digest(dir.path()).hash, linked.hash);
    }

    #[test]
    fn file_kind_changes_matter() {
        let dir = fixture();
        let before = digest(dir.path());
        fs::remove_dir(dir.path().join("empty")).expect("rmdir");
        write(dir.path(), "empty", "");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert_eq!(changed_paths(&before.files, &after.files), ["empty"]);
    }

    #[test]
    fn framing_is_unambiguous() {
        let a = tempfile::tempdir().expect("tempdir");
        build_tree(a.path(), &["Dockerfile"]);
        write(a.path(), "ab", "c");
        let b = tempfile::tempdir().expect("tempdir");
        build_tree(b.path(), &["Dockerfile"]);
        write(b.path(), "a", "bc");
        let (da, db) = (digest(a.path()), digest(b.path()));
        assert_ne!(da.hash, db.hash);
        // Same per-file framing regardless of where the context lives.
        assert_eq!(
            da.files[0], db.files[0],
            "Dockerfile digest is root-independent"
        );
    }

    #[test]
    fn excluded_dockerfile_still_counts() {
        let dir = fixture();
        write(dir.path(), ".dockerignore", "Dockerfile\n.dockerignore\n");
        let before = digest(dir.path());
        assert!(
            !before
                .files
                .iter()
                .any(|(p, _)| p == "Dockerfile" || p == ".dockerignore")
        );
        write(dir.path(), "Dockerfile", "FROM other");
        let after = digest(dir.path());
        assert_ne!(after.hash, before.hash);
        assert!(changed_paths(&before.files, &after.files).is_empty());
        assert_ne!(after.build_files[0], before.build_files[0]);
    }

    #[test]
    fn inline_dockerfile_counts() {
        let dir = fixture();
        let hash = |text: &str| {
            BuildContext::open(dir.path(), DockerfileSource::Inline(text.to_owned()))
                .expect("open")
                .hash()
                .expect("hash")
        };
        let one = hash("FROM a");
        assert_eq!(one.build_files[0].0, super::super::INLINE_DOCKERFILE_NAME);
        assert_ne!(one.hash, hash("FROM b").hash);
        assert_eq!(one.hash, hash("FROM a").hash);
    }

    #[test]
    fn unreadable_included_file_is_an_error_naming_it() {
        let dir = fixture();
        let ctx = open(dir.path());
        let entries = ctx.entries().expect("entries");
        let build_files = ctx.build_files().expect("build files");
        // Works whether or not we run as root (where chmod 000 cannot make a
        // read fail): the file disappears between the walk and the read.
        fs::remove_file(dir.path().join("src/lib.rs")).expect("rm");
        let err = hash_all(dir.path(), &entries, &build_files).expect_err("missing file");
        assert!(matches!(err, ContextError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("src/lib.rs"), "{err}");

        // And as a normal user, the chmod 000 case.
        write(dir.path(), "src/lib.rs", "x");
        chmod(&dir.path().join("src/lib.rs"), 0o000);
        if fs::File::open(dir.path().join("src/lib.rs")).is_err() {
            let err = ctx.hash().expect_err("unreadable file");
            assert!(err.to_string().contains("src/lib.rs"), "{err}");
        }
        chmod(&dir.path().join("src/lib.rs"), 0o644);
    }

    #[test]
    fn changed_paths_cases() {
        let list = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(p, d)| ((*p).to_owned(), (*d).to_owned()))
                .collect()
        };
        let old = list(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = list(&[("a", "1"), ("b", "9"), ("d", "4")]);
        assert_eq!(changed_paths(&old, &new), ["b", "c", "d"]);
        assert!(changed_paths(&old, &old).is_empty());
        assert_eq!(changed_paths(&[], &old), ["a", "b", "c"]);
        assert_eq!(changed_paths(&old, &[]), ["a", "b", "c"]);
    }
}
